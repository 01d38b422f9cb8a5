"""The RTL chip running the throughput core (docs/design.md §15 "Result lanes on the chip", §16 "Several windows")
on the native Verilator harness: tests/small-throughput.yaml (``small`` with hw/configs/paper-throughput.yaml's
four core options: two tile banks, two output banks, two input windows a beat, two results a beat) on its 2 PIM
cores. Random PIM layers whose rounds run on both cores: ACC and CYCLES equal the golden chip's; the demo CNN
compiled for it by ``dbpim run --rtl``: outputs equal on the three paths, CYCLES = ``model.chip_timing``'s.
Each builds the throughput chip's harness (once, cached; ``dbpim run --rtl`` of the same configuration reuses
it): slow. The Amaranth-simulator cases on one core are in tests/test_hw_chip.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("amaranth")

from dbpim.model.config import load_config  # noqa: E402

THROUGHPUT_CHIP = Path(__file__).parent / "small-throughput.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.rtl, pytest.mark.xdist_group("rtl-chip-throughput"),
              pytest.mark.timeout(3600)]


def test_the_configuration_is_the_throughput_core_on_small():
    hw, small, paper = load_config(THROUGHPUT_CHIP), load_config("small"), load_config("paper-throughput")
    for k in ("tile_banks", "out_banks", "in_windows", "result_lanes"):
        assert getattr(hw.core, k) == getattr(paper.core, k) == 2
    assert hw.macro == small.macro and hw.system == small.system


@pytest.mark.parametrize("seed", [31, 32])
def test_random_pim_layers_on_two_throughput_cores_equal_the_golden_chip(seed):
    """Random PIM layers (one in row bands) with images for the 2 throughput cores: every round's results
    through the result buffers (core 0's too), ACC and CYCLES equal the golden chip's (seed in the test id)."""
    from test_chip_native import _pim_cases_on_cores
    hw = load_config(THROUGHPUT_CHIP)
    rng = np.random.default_rng(seed)
    widest = _pim_cases_on_cores(hw, 2, rng, 1, banded=True)[0]
    for _ in range(6):  # until a round ran on both cores
        widest = max(widest, _pim_cases_on_cores(hw, 2, rng, 1)[0])
        if widest == 2:
            break
    assert widest == 2, f"seed {seed}: no drawn layer ran a round on both cores"


def test_demo_cnn_on_the_throughput_chip(tmp_path):
    """``dbpim run --rtl`` of the demo CNN compiled for the throughput chip: logits equal to the golden chip's and
    the torch integer path's, CYCLES equal to model.chip_timing's (and the performance model's)."""
    pytest.importorskip("torch")
    from conftest import real_artifact
    from dbpim import cli
    art_path = real_artifact("smallcnn", hw=str(THROUGHPUT_CHIP))
    out = tmp_path / "run"
    assert cli.main(["run", "--artifact", str(art_path), "--data", "digits", "--samples", "2", "--rtl",
                     "--out", str(out)]) == 0
    r = json.loads((out / "run.json").read_text())
    assert r["logits_equal"] is True and r["logits_equal_to_golden"] == {"torch_int": True, "rtl": True}
    cr = r["cycles_rtl"]
    assert cr["equal_model"] is True and cr["per_inference"] == r["cycles_model"]["chip_cycles"]
    assert r["rtl"]["configuration"] == "small-throughput"
    print(f"demo CNN on the throughput chip: CYCLES {cr['per_inference']:,.1f} per inference = model.chip_timing")
