"""Functional coverage of the PIM core (verif/coverage.py): the checker on synthetic samples (a stimulus
removed fails it, naming the bin), and the cocotb regression through cocotbext-axi (random delays on every
channel, registers in random order) that must hit every required bin (verif/test_core_axi.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cocotb_coverage")

ROOT = Path(__file__).resolve().parent.parent
COVERAGE_CONFIG = str(ROOT / "tests" / "coverage_core.yaml")
_n = iter(range(10**6))


def _hw():
    from dbpim.model.config import load_config
    return load_config(COVERAGE_CONFIG)


def _synthetic(hw, drop: str = ""):
    """A fresh coverage model fed what a complete regression's monitors see (the designed layers' bus writes,
    STARTs and input windows, a START with no descriptor, every error code, back-pressure at every stage,
    a reset in every state), less the stimulus ``drop``; returns (report, required)."""
    from dbpim.model import spec
    from dbpim.model.core import bus_writes, input_windows
    from dbpim.verif.core_tb import coverage_layers
    from dbpim.verif.coverage import CONTROLLER_STATES, STAGES, CoreCoverage
    cov = CoreCoverage(hw=hw, prefix=f"synthetic{next(_n)}")
    regs = cov.params.map.regs
    wf = spec.window_fields(hw.macro.n_comp, hw.macro.in_bits)
    for label, prog, xs in coverage_layers(hw, np.random.default_rng(0)):
        if label == drop:
            continue
        cov.layer_phi(prog.compiled.phi)
        for seg in prog.segments:
            for a, d in bus_writes(prog, seg):
                cov.bus_write(a, d)
            cov.bus_write(regs["CTRL"], 1)
            for w in input_windows(prog, seg, xs[0]):
                cov.input_beat(spec.pack(wf, {"data": w}))
            cov.bus_read(regs["STATUS"], spec.CORE_REG["STATUS"].value(DONE=1))
    if drop != "N_DESC = 0":
        cov.bus_write(regs["LAYER"], 0)
        cov.bus_write(regs["CTRL"], 1)
    for code in (1, 2, 3):
        if drop != f"error {code}":
            cov.bus_read(regs["STATUS"], spec.CORE_REG["STATUS"].value(DONE=1, ERROR=1, ERROR_CODE=code))
    for stage in STAGES:
        if drop != f"stall {stage}":
            cov.backpressure(stage)
    for state in CONTROLLER_STATES:
        if drop != f"reset in {state}":
            cov.reset_in(state)
    return cov.report(), cov.required


def test_complete_stimulus_closes_coverage():
    from dbpim.verif.coverage import missing
    report, required = _synthetic(_hw())
    assert missing(report, required) == []


@pytest.mark.parametrize("drop,unhit", [
    ("K=1", ["layer.k: 1", "desc.pixels: min=1", "desc.n_out: min=1"]),
    ("full tile", ["tile.full: full", "desc.mask_base: max=12"]),
    ("a row in every window", ["desc.n_win: max=13"]),
    ("every tile slot", ["layer.n_desc: max=8", "desc.tile: max=3"]),
    ("phi 0, 1, 2", ["filter.phi: 0"]),
    ("N_DESC = 0", ["layer.n_desc: min=0"]),
    ("error 3", ["status.error_code: 3"]),
    ("stall packer", ["stream.backpressure: packer"]),
    ("reset in DECODE", ["reset.state: DECODE"]),
])
def test_a_removed_stimulus_fails_the_check_naming_its_bins(drop, unhit, tmp_path):
    from dbpim.verif.coverage import write_report
    report, required = _synthetic(_hw(), drop)
    bad = write_report(report, required, tmp_path)
    assert set(unhit) <= set(bad), bad
    doc = json.loads((tmp_path / "coverage.json").read_text())
    assert doc["unhit"] == bad
    table = (tmp_path / "coverage.txt").read_text()
    assert all("UNHIT" in ln for ln in table.splitlines() if ln.split()[:2] == unhit[0].split(": "))


def test_a_sample_outside_the_bins_hits_nothing():
    from dbpim.verif.coverage import CoreCoverage, missing
    cov = CoreCoverage(hw=_hw(), prefix=f"outside{next(_n)}")
    cov.backpressure("nowhere")
    cov.reset_in("NOWHERE")
    assert len(missing(cov.report(), cov.required)) == sum(len(v) for v in cov.required.values())


def test_controller_states_are_the_core_fsm_encoding():
    """verif.coverage.CONTROLLER_STATES names the values of the core's fsm_state (Amaranth's numbering)."""
    from dbpim.hw.core import PIMCore
    from dbpim.verif.coverage import CONTROLLER_STATES
    m = PIMCore.from_config(_hw()).elaborate(None)
    enc = m._generated["fsm"].encoding
    assert list(enc.items()) == [(s, k) for k, s in enumerate(CONTROLLER_STATES)]


def test_required_bins_follow_the_configuration():
    from dbpim.model import spec
    from dbpim.verif.coverage import required_bins
    req = required_bins(_hw())
    assert req["status.error_code"] == sorted(spec.ERROR_CODES)
    assert req["desc.tile"] == ["min=0", "max=3"] and req["desc.n_kept"] == ["min=1", "max=16"]
    assert req["filter.phi"] == [0, 1, 2]


@pytest.mark.rtl
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("rtl-core-coverage")
def test_core_axi_random_order_closes_coverage():
    """cocotbext-axi on the core (random pauses on AW, W, B, AR, R and both streams, the program's writes in a
    random order), every result exact; the coverage report (build/coverage/core/coverage.{json,txt}) hits every
    required bin."""
    from dbpim.verif.rtl import run_cocotb
    out = ROOT / "build" / "coverage" / "core"
    run_cocotb("core", COVERAGE_CONFIG, "dbpim.verif.test_core_axi", testcase="core_axi_random_order_coverage",
               env={"DBPIM_COVERAGE_DIR": str(out)}, internals=True)  # its monitor reads the stages' handshakes
    doc = json.loads((out / "coverage.json").read_text())
    assert doc["unhit"] == [] and doc["hits"]["reset.state"]["DECODE"] > 0


def test_macro_coverage_from_agent_records():
    """The macro's coverpoints from its TB agents' records: a beat accepted after its offer is back-pressure,
    an accepted row of zeros / at the MSB alone hits its bin; a run without them leaves those bins unhit."""
    from types import SimpleNamespace

    from dbpim.model import spec
    from dbpim.model.config import load_config
    from dbpim.verif.coverage import MacroCoverage, missing
    mc = load_config("small").macro
    full = {"c_rows_used": mc.n_row, "c_slot": 0b01_01_00_00, "c_used": 0b1111}   # filters at phi 2 and 2
    one = {"c_rows_used": 1, "c_slot": 0b00_10_01_00, "c_used": 0b0111}           # phi 1, 1, 1
    rows = [spec.pack_macro_in([0] * mc.n_comp), spec.pack_macro_in([128] + [0] * (mc.n_comp - 1)),
            spec.pack_macro_in([3] * mc.n_comp)]
    cov = MacroCoverage(macro=mc, prefix=f"macrosyn{next(_n)}")
    for c in (full, one):
        cov.tile(c)
    cov.inputs(SimpleNamespace(taken=rows, offered=[0, 1, 2], accepted=[0, 3, 4]))
    cov.outputs(SimpleNamespace(held=2))
    assert missing(cov.report(), cov.required) == []
    bare = MacroCoverage(macro=mc, prefix=f"macrosyn{next(_n)}")
    bare.tile(full)
    bare.inputs(SimpleNamespace(taken=rows[2:], offered=[0], accepted=[0]))
    bare.outputs(SimpleNamespace(held=0))
    assert set(missing(bare.report(), bare.required)) == {
        "macro.filter.phi: 1", "macro.tile: one_row", "macro.input.row: all_zero", "macro.input.row: lone_msb",
        "macro.backpressure: x", "macro.backpressure: o"}
