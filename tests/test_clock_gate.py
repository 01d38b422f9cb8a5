"""The PIM cores' clock gate (hw.clock_gate): its enable cycle by cycle, and where the option is refused.

The proof that a skipped edge changes nothing is tests/test_formal.py's (slow); the gated chip against the golden
chip is tests/test_chip_native.py (its harness is the gated chip)."""

import pytest

pytest.importorskip("amaranth")
from amaranth.hdl import Module, Signal  # noqa: E402
from amaranth.sim import Simulator  # noqa: E402

from dbpim.hw.clock_gate import gate_enable, hold_cycles  # noqa: E402
from dbpim.model.spec import CORE_REG  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _enables(events: list, hold: int) -> list:
    """The enable in each cycle of ``events`` (per cycle: None, "rst", "write", "start" or "window")."""
    m = Module()
    rst, w_en, w_addr, w_data, x_valid = Signal(), Signal(), Signal(8), Signal(32), Signal()
    en = gate_enable(m, rst=rst, w_en=w_en, w_addr=w_addr, w_data=w_data, x_valid=x_valid, hold=hold, name="g")
    ctrl = CORE_REG["CTRL"]
    got = []

    async def bench(ctx):
        for ev in events:
            ctx.set(rst, ev == "rst")
            ctx.set(x_valid, ev == "window")
            ctx.set(w_en, ev in ("write", "start"))
            ctx.set(w_addr, ctrl.word if ev == "start" else ctrl.word + 1)
            ctx.set(w_data, 1 << ctrl.field("START").lsb if ev == "start" else 0)
            got.append(ctx.get(en))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_a_quiet_core_is_gated_after_hold_idle_cycles_until_its_start():
    hold = hold_cycles(4)
    ev = ["rst"] + [None] * (hold + 2) + ["write"] + [None] * (hold + 1) + ["window"] + [None] * hold \
        + ["start"] + [None] * (hold + 3) + ["rst"] + [None] * hold
    en = _enables(ev, hold)
    low = [i for i, e in enumerate(en) if not e]
    s1 = 1 + hold - 1                      # the hold-th idle cycle after the reset
    w = 1 + hold + 2                       # the write: the idle run starts again, the core stays quiet
    x = w + hold + 2                       # a window ends the run too
    st = x + hold + 1                      # START: no longer quiet
    r = st + hold + 4                      # the next reset: quiet again
    want = (list(range(s1, w)) + list(range(w + hold, x)) + list(range(x + hold, st)) + [r + hold])
    assert low == want


def test_a_core_never_reset_is_never_gated():
    assert all(_enables([None] * 40, hold_cycles(4)))  # the quiet flag starts low: only a reset sets it


def test_the_gated_clock_is_refused_outside_the_emitted_verilog():
    from dbpim.hw.chip import DBPIMChip
    from dbpim.hw.generate import build_block
    from dbpim.model.config import load_config
    hw = load_config("small")
    chip = DBPIMChip.from_config(hw, clock_gate=True)
    with pytest.raises(ValueError, match="clock_gate: the gated clock is emitted in Verilog only"):
        chip.elaborate(None)
    with pytest.raises(ValueError, match="clock_gate: only the chip"):
        build_block("core", hw, clock_gate=True)
    with pytest.raises(TypeError, match="clock_gate: must be True or False"):
        DBPIMChip.from_config(hw, clock_gate=1)
