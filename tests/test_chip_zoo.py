"""Zoo networks on the RTL chip (docs/rtl.md "What fits a configuration's chip"; ``make chip-zoo``): the zoo
ResNet-18 (residual adds) at width 1/8 and at the zoo's 1/4 (its WMEM image past 2**16 words, a 20-bit host
address) and MobileNetV2 (depthwise convolutions, inverted residuals) at width 1/8 and at the zoo's 1/4 (its
activations past ACT's 65,536 elements: spilled to DRAM, a depthwise layer in channel tiles, docs/design.md §15
"Activation spilling") on 32 x 32 digits, compiled for tests/zoo-chip.yaml (``small`` with a ``chip`` section whose
buffers hold them), run by
``dbpim run --rtl``: the RTL chip's outputs equal to the golden chip's and the torch integer path's on every
sample, its ``CYCLES`` to ``model.chip_timing``'s. Each builds the zoo chip's Verilator harness (once, cached)
and simulates millions of cycles per inference: slow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("amaranth")

from conftest import real_artifact  # noqa: E402
from dbpim import cli  # noqa: E402
from dbpim.model import artifact as gart  # noqa: E402
from dbpim.model.chip import GoldenChip  # noqa: E402
from dbpim.model.config import load_config  # noqa: E402
from dbpim.verif.native_chip import ChipRunError, check_fits, chip_depths  # noqa: E402

ZOO_CHIP = Path(__file__).parent / "zoo-chip.yaml"
#: Samples each network runs on the RTL chip (DBPIM_ZOO_SAMPLES overrides; each takes seconds of harness CPU).
SAMPLES = int(os.environ.get("DBPIM_ZOO_SAMPLES", "2"))
#: The instructions that make each network the case it is here.
FEATURES = {"resnet18": {"PIM", "ADD"}, "resnet18-w0.25": {"PIM", "ADD"}, "mobilenetv2": {"PIM", "ADD", "DWC"},
            "mobilenetv2-w0.25": {"PIM", "ADD", "DWC", "LOAD", "STORE"}}

pytestmark = [pytest.mark.slow, pytest.mark.rtl, pytest.mark.xdist_group("rtl-chip-zoo"), pytest.mark.timeout(3600)]


@pytest.mark.parametrize("name", list(FEATURES))
def test_zoo_network_runs_bit_exact_on_the_rtl_chip(name, tmp_path):
    art_path = real_artifact(name, hw=str(ZOO_CHIP))
    art = gart.load(art_path)
    prog = GoldenChip(art).program
    assert FEATURES[name] <= set(prog.summary()["by_opcode"]), prog.summary()["by_opcode"]
    assert (prog.spill is not None) == (name == "mobilenetv2-w0.25")  # only it spills its activations
    # small's chip (the buffers before the chip section) does not hold it; the zoo chip does
    with pytest.raises(ChipRunError, match=r"^program: needs .*(WMEM|ACT) words, the chip has"):
        check_fits(prog, chip_depths(load_config("small")))
    check_fits(prog, chip_depths(art.hw))
    assert chip_depths(art.hw) == load_config(ZOO_CHIP).chip_words()

    out = tmp_path / "run"
    assert cli.main(["run", "--artifact", str(art_path), "--data", "digits32", "--samples", str(SAMPLES), "--rtl",
                     "--out", str(out)]) == 0
    r = json.loads((out / "run.json").read_text())
    assert r["samples"] == SAMPLES and r["logits_equal"] is True
    assert r["logits_equal_to_golden"] == {"torch_int": True, "rtl": True}
    cr = r["cycles_rtl"]
    assert cr["equal_model"] is True and cr["per_inference"] == r["cycles_model"]["chip_cycles"]
    assert cr["min"] <= cr["per_inference"] <= cr["max"] and r["cycles_perf_model"]["per_inference"] == \
        cr["per_inference"]  # and the performance model's end to end
    rr = r["rtl"]
    assert rr["configuration"] == "zoo-chip" and rr["wall_per_inference_s"] > 0
    print(f"{name} on the zoo chip: {SAMPLES} samples, outputs equal on the three paths, CYCLES "
          f"{cr['per_inference']:,.1f} per inference ({cr['min']:,} to {cr['max']:,}) = model.chip_timing; "
          f"{rr['wall_per_inference_s']:.2f} s wall per inference, "
          f"{rr['simulated_cycles_per_cpu_s'] / 1e6:.2f} M cycles per harness CPU second, harness build "
          f"{rr['harness_build_s']:.0f} s")
