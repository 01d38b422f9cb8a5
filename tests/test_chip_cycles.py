"""The performance model's end-to-end cycles of the chip (sim_bench.chip_cycles) against the golden chip.

On the demo CNN and on a random small network with depthwise convolutions and a residual add: the performance
model's cycles per inference equal the golden chip's ``CYCLES`` (the RTL's: tests/test_chip_native.py) exactly,
instruction by instruction, and the SIMD layers of ``sim_bench.perf`` cost the chip's SIMD instructions
(``model.chip_timing.instruction_cycles``), not the ``ceil(ops / lanes)`` estimate; with streamed weights (a
WMEM too small for the image) the LOADs are counted too.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
from dbpim.model.artifact import load  # noqa: E402
from dbpim.model.chip import GoldenChip  # noqa: E402
from dbpim.model.config import load_config  # noqa: E402
from dbpim.sim_bench.chip_cycles import chip_cycles, chip_summary, recorded_input  # noqa: E402
from dbpim.sim_bench.perf import evaluate_network, specs_from_artifact  # noqa: E402


def _check_against_the_golden_chip(art, x):
    """chip_cycles on ``x`` equals the golden chip's run, instruction by instruction; the perf model's layers
    cost the chip's SIMD instructions."""
    gold = GoldenChip(art)
    gold.run(x)
    cc = chip_cycles(art, x=x)
    S = len(x)
    assert cc.cycles == gold.cycles and cc.samples == S
    assert cc.total == gold.cycles / S
    np.testing.assert_array_equal([r["cycles"] * S for r in cc.instructions], gold.by_instruction)
    assert sum(cc.layers.values()) + cc.unattributed == pytest.approx(cc.total, rel=1e-12)
    assert cc.unattributed == 2  # HALT alone: every other instruction is a layer record's
    net = evaluate_network(specs_from_artifact(art), art.hw, mechanisms=("dbpim",))
    for lp in net.layers:  # (a streamed program's weight LOADs are its layers' too: not SIMD instructions)
        simd = sum(r["cycles"] for r in cc.instructions
                   if r["layer"] == lp.spec.name and r["op"] not in ("PIM", "LOAD", "STORE"))
        assert lp.spec.chip_simd is not None
        assert lp.simd_cycles == simd, lp.spec.name
        if not lp.mapped:
            assert lp.cycles("dbpim") == cc.layers[lp.spec.name]
    return cc, net


def test_demo_cnn_end_to_end_equals_the_golden_chip():
    from conftest import real_artifact
    from dbpim.model.torch.data import load_data
    art = load(real_artifact("smallcnn", "small"))
    x = load_data("digits", 0).x_test.numpy()[:3]
    cc, net = _check_against_the_golden_chip(art, x)
    ops = [r["op"] for r in cc.instructions]
    assert {"PIM", "REQ", "MAXP", "HALT"} <= set(ops)
    # the recorded samples: the chip's input is the first layer's recorded input (the same quantization)
    gold = GoldenChip(art)
    rec = recorded_input(art, gold.plan)
    p = gold.program
    act = np.zeros((len(rec), p.act_words), np.int64)
    act[:, p.input["addr"]:p.input["addr"] + rec[0].size] = rec.reshape(len(rec), -1)
    gold.execute(act, np.zeros((len(rec), max(1, p.acc_words)), np.int64))
    # a report on the chip's configuration carries the figure (on the recorded samples); on another none
    s = chip_summary(art, art.hw)
    assert s["cycles_per_inference"] == gold.cycles / len(rec)
    assert chip_summary(art, load_config("paper")) is None
    import dataclasses  # the chip runs system.cores cores: another core count is another chip
    more = dataclasses.replace(art.hw, system=dataclasses.replace(art.hw.system, cores=art.hw.system.cores + 1))
    assert chip_summary(art, more) is None
    same = dataclasses.replace(art.hw, system=dataclasses.replace(art.hw.system, replicate_idle_cores=True))
    assert chip_summary(art, same) == s


def test_streamed_weights_are_counted_end_to_end():
    """The demo CNN on a configuration whose WMEM (``chip.wmem_words``) is one word short of its image: the
    compiler streams its weights by default (a LOAD before each PIM) and the performance model counts the
    LOADs: its cycles equal the golden chip's, the resident program's plus every LOAD's dma_cycles, each LOAD
    on its PIM's layer record; on the configuration's own WMEM the program is the resident one."""
    import dataclasses

    from conftest import real_artifact
    from dbpim.model import isa
    from dbpim.model.chip_timing import dma_cycles
    from dbpim.model.torch.data import load_data
    art = load(real_artifact("smallcnn", "small"))
    x = load_data("digits", 0).x_test.numpy()[:2]
    resident = GoldenChip(art)
    assert resident.program.dram is None and "LOAD" not in resident.program.summary()["by_opcode"]
    np.testing.assert_array_equal(resident.program.imem, GoldenChip(art, wmem_words=None).program.imem)
    want = resident.run(x)
    short = dataclasses.replace(art, hw=art.hw.replace(chip={"wmem_words": len(resident.program.wmem) - 1}))
    cc, _ = _check_against_the_golden_chip(short, x)
    chip = GoldenChip(short)
    p = chip.program
    assert p.dram is not None and len(p.wmem) < len(resident.program.wmem)
    np.testing.assert_array_equal(chip.run(x), want)
    loads = [r for r in cc.instructions if r["op"] == "LOAD"]
    assert len(loads) == sum(r["op"] == "PIM" for r in cc.instructions) > 0
    extra = 0
    for r in loads:
        ins = isa.decode(int(p.imem[r["pc"]]))
        d = isa.unpack_descriptor("LOAD", p.dmem[ins["desc"] * isa.DESC_WORDS:(ins["desc"] + 1) * isa.DESC_WORDS])
        assert r["cycles"] == dma_cycles("LOAD", d) and r["layer"] == cc.instructions[r["pc"] + 1]["layer"]
        extra += r["cycles"]
    assert cc.cycles == chip.cycles == resident.cycles + len(x) * extra


def test_depthwise_residual_network_end_to_end_equals_the_golden_chip(tmp_path):
    """A random small network with three DWC instructions, a residual ADD and a GAP."""
    pytest.importorskip("torch")
    from tests.test_chip_native import _tiny_depthwise_artifact
    folder, x = _tiny_depthwise_artifact(load_config("small"), tmp_path / "art", seed=1, samples=3)
    cc, perf = _check_against_the_golden_chip(load(folder), x)
    ops = [r["op"] for r in cc.instructions]
    assert ops.count("DWC") == 3 and ops.count("ADD") == 1 and ops.count("GAP") == 1
    dw = [lp for lp in perf.layers if lp.spec.op == "depthwise"]
    assert len(dw) == 3 and all(lp.spec.chip_simd[0][0] == "DWC" for lp in dw)
