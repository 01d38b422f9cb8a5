"""The chip controller's functional coverage (verif.coverage.ChipCoverage, verif/chip_tb.py).

* fast: the checker on synthetic samples: the complete set closes the coverage, each missing kind of sample (a reset
  state, an error code, an opcode, a wait, a PIM layer of several segments) fails it naming its bin; the required
  reset states are the controller's FSM states, read from the elaborated hw.chip_ctrl;
* slow, marked ``coverage`` (``make test-rtl`` runs it, ``-m slow``): the regression of verif/chip_tb.py on the Amaranth simulator closes the
  coverage (every opcode, every error code, a reset in every state, the waits, a PIM layer of several segments),
  each run equal to the golden chip, and writes build/coverage/chip/coverage.{json,txt}.
"""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("amaranth")
pytest.importorskip("cocotb_coverage")

_fresh = itertools.count()


def _full(cov):
    from dbpim.model import isa
    for spec in isa.OPCODES.values():
        cov.decode(spec.code)
    cov.decode(15)  # an undefined opcode counts nowhere
    for code in isa.CHIP_ERRORS:
        cov.status({"DONE": 1, "ERROR": 1, "ERROR_CODE": code})
    for s in cov.required["chip.reset"]:
        cov.reset_in(s)
    for w in ("simd_o", "pim"):
        cov.wait(w)
    cov.pim_layer(3)


def test_chip_states_are_the_controllers_fsm():
    from dbpim.verif.coverage import chip_states
    states = chip_states()
    assert states[0] == "IDLE" and {"FETCH", "DECODE", "PIM", "SEND_DESC", "STREAM"} <= set(states)
    assert len(states) == len(set(states))


@pytest.mark.parametrize("drop, bin_", [
    (None, None),
    ("reset STREAM", "chip.reset: STREAM"),
    ("error 6", "chip.error_code: 6"),
    ("opcode DWC", "chip.opcode: DWC"),
    ("wait simd_o", "chip.wait: simd_o"),
    ("one segment", "chip.pim_segments: >1"),
])
def test_the_chip_coverage_check_names_each_unhit_bin(drop, bin_):
    from dbpim.model import isa
    from dbpim.verif.coverage import ChipCoverage, check_closed
    cov = ChipCoverage(prefix=f"chipcheck{next(_fresh)}")
    if drop is None:
        _full(cov)
        check_closed(cov, stall=0, seed=0)
        return
    real = {"reset_in": cov.reset_in, "status": cov.status, "decode": cov.decode, "wait": cov.wait,
            "pim_layer": cov.pim_layer}
    skip = {"reset STREAM": ("reset_in", lambda s: s == "STREAM"),
            "error 6": ("status", lambda st: st.get("ERROR_CODE") == 6),
            "opcode DWC": ("decode", lambda c: c == isa.OPCODES["DWC"].code),
            "wait simd_o": ("wait", lambda w: w == "simd_o"),
            "one segment": ("pim_layer", lambda n: True)}[drop]
    setattr(cov, skip[0], lambda v: None if skip[1](v) else real[skip[0]](v))
    _full(cov)
    if drop == "one segment":
        real["pim_layer"](1)
    with pytest.raises(AssertionError, match=rf"unhit: .*{bin_}"):
        check_closed(cov, stall=0, seed=0)


@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.coverage
@pytest.mark.timeout(3600)
def test_the_chip_controller_regression_closes_its_coverage():
    """verif/chip_tb.py on the Amaranth simulator: every run equals the golden chip, and the coverage closes."""
    from dbpim.verif.chip_tb import run_chip_coverage
    from dbpim.verif.coverage import check_closed
    from dbpim.verif.native import ROOT
    cov = run_chip_coverage(seed=0)
    check_closed(cov, stall=1, seed=0, out=ROOT / "build" / "coverage" / "chip")
