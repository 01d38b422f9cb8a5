"""Formal proof that gating an idle PIM core's clock changes nothing (docs/rtl.md, "Clock gating of the PIM cores").

The chip with ``clock_gate`` (:mod:`hw.clock_gate`) skips a core's clock edge in a cycle where its gate condition
(:func:`hw.clock_gate.core_idle`, from the core's ports) held for :func:`hw.clock_gate.hold_cycles` cycles. That is
sound when the ungated core would keep every register and memory word across that edge: then the gated and the
ungated chip hold the same state in every cycle, and the core's outputs (functions of its state and inputs)
are the same. :func:`prove_gate` proves it on the core's emitted Verilog (``dbpim_pim_core`` and its
sub-modules, as the chip instantiates it):

1. Yosys flattens the core, maps its memories to flip-flops (each word and each read-data register a
   register), drops every initial value and exposes every register as an output (``expose -dff``);
2. a harness (:class:`GateHarness`) drives every input of the core freely (the solver picks any value in any
   cycle, the core's reset included), computes the clock enable of :func:`hw.clock_gate.gate_enable` from the
   core's ports, and asserts ``state_unchanged``: after a cycle whose enable was low, every exposed register
   equals its value one cycle before;
3. SymbiYosys checks it ``hold + 2`` cycles deep. The core's initial state is unconstrained (every register and
   memory word free, no reset), so the check covers every state the core can be in, reachable or not: an
   edge the chip skips is the last of ``hold`` idle cycles starting from some state, which is a trace the
   check covers. It is a proof for all time, not a bounded one.

The memories are shrunk as for the handshake proofs (:func:`verif.formal.formal_config`, but every macro of the
configuration kept: the gate condition does not read the memories; their words become registers here, and their
depth only adds state); ``shrink=False`` proves the configuration's own core.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from amaranth.hdl import Assert, Cat, ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal

from dbpim.verif.formal import (FormalFailure, FormalResult, _check_names, _run_folder, _sby_text, _tool_env, _tools,
                                formal_config)

__all__ = ["GateHarness", "prove_gate", "harness_rtlil", "CORE_MODULE", "INSTANCE_BITS"]

#: The flattened, exposed core's module name in the proof.
CORE_MODULE = "gated_core"


class GateHarness(Elaboratable):
    """The exposed core (:data:`CORE_MODULE`), its inputs free, its clock enable and ``state_unchanged``.

    Parameters
    ----------
    ports : list of dict
        The exposed core's ports (``name``, ``dir``, ``width``): its own and one output per register.
    state : list of str
        The outputs the registers drive (:func:`_state_ports`).
    hold : int
        :func:`hw.clock_gate.gate_enable`'s ``hold``.
    plant : bool
        Also assert ``planted_false``: no edge is ever skipped. The check must fail (a skipped edge is reachable,
        so ``state_unchanged`` is not vacuous).
    """

    def __init__(self, ports: list, state: list, hold: int, plant: bool = False):
        self._ports = ports
        self._state = set(state)
        self.hold = hold
        self.plant = plant
        self.inputs = {p["name"]: Signal(p["width"], name=f"in_{p['name']}") for p in ports
                       if p["dir"] == "input" and p["name"] != "clk"}
        self.clk = Signal(name="clk")

    def ports(self) -> list:
        return [self.clk, *self.inputs.values()]

    def elaborate(self, platform):
        from dbpim.hw.clock_gate import gate_enable
        m = Module()
        m.domains.sync = ClockDomain(reset_less=True)  # the harness's registers start from their initial values
        m.d.comb += ClockSignal("sync").eq(self.clk)
        outs = {p["name"]: Signal(p["width"], name=f"out_{p['name'].replace('.', '_')}") for p in self._ports
                if p["dir"] == "output"}
        m.submodules.core = Instance(CORE_MODULE, i_clk=self.clk,
                                     **{f"i_{n}": s for n, s in self.inputs.items()},
                                     **{f"o_{n}": s for n, s in outs.items()})
        i = self.inputs
        en = gate_enable(m, rst=i["rst"], w_en=i["w_en"], w_addr=i["w_addr"], w_data=i["w_data"],
                         x_valid=i["x__valid"], hold=self.hold, name="gate")
        state = Cat(*[outs[n] for n in sorted(self._state)])
        before = Signal(len(state), name="state_before")
        skipped = Signal(name="skipped")  # the last edge was one the chip skips
        m.d.sync += [before.eq(state), skipped.eq(~en)]
        m.d.comb += Assert(~skipped | (state == before), "state_unchanged")
        if self.plant:  # a skipped edge is reachable: the property above is not vacuous
            m.d.comb += Assert(~skipped, "planted_false")
        return m


def _state_ports(mod: dict, where: Path) -> list:
    """The output ports of the exposed core (``mod``, Yosys JSON) that its registers drive: every bit of each a
    flip-flop's output. Raises :class:`FormalFailure` when a flip-flop's bit is on no such port (the proof would
    not see it) or the core holds a cell of state other than a ``$dff`` (a latch, an asynchronous reset)."""
    q = set()
    for name, cell in mod["cells"].items():
        if cell["type"] == "$dff":
            q.update(b for b in cell["connections"]["Q"] if isinstance(b, int))
        elif any(k in cell["type"] for k in ("ff", "latch", "mem")):
            raise FormalFailure(f"{where}: cell {name} is a {cell['type']}; the proof knows $dff only")
    state = [n for n, p in mod["ports"].items()
             if p["direction"] == "output" and p["bits"] and all(b in q for b in p["bits"])]
    seen = {b for n in state for b in mod["ports"][n]["bits"]}
    if not q or q - seen:
        raise FormalFailure(f"{where}: {len(q - seen)} of the core's {len(q)} register bits are on no output port")
    return state


def _yosys(tools: dict, script: str, cwd: Path, log: str, timeout: float) -> None:
    r = subprocess.run([tools["yosys"], "-q", "-l", log, "-p", script], cwd=cwd, env=_tool_env(),
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise FormalFailure(f"yosys failed ({r.stderr.strip()[-300:]}); log: {cwd / log}")


#: Amaranth numbers a cell's output bits below 2**16 (``amaranth.hdl._nir.Net``): the exposed core's outputs, one
#: instance in :class:`GateHarness`, must fit.
INSTANCE_BITS = 1 << 16


def harness_rtlil(ports: list, state: list, hold: int, plant: bool = False, where: str = "gate proof") -> str:
    """:class:`GateHarness` of the exposed core as RTLIL text.

    Raises
    ------
    FormalFailure
        The core's outputs (its ports and one per register) are :data:`INSTANCE_BITS` bits or more: the harness
        cannot instantiate it (``paper``'s 8 macros, exposed register by register, are).
    """
    from amaranth.back import rtlil

    bits = sum(p["width"] for p in ports if p["dir"] == "output")
    if bits >= INSTANCE_BITS:
        raise FormalFailure(f"{where}: the exposed core has {bits:,} output bits ({len(state):,} registers), more "
                            f"than the harness's one Amaranth instance takes ({INSTANCE_BITS - 1:,}); not proven")
    h = GateHarness(ports, state, hold, plant=plant)
    return rtlil.convert(h, name="top", ports=h.ports())


def prove_gate(cfg="small", *, hold: int | None = None, out: Path | None = None, timeout: float = 900.0,
               plant: bool = False, shrink: bool = True) -> FormalResult:
    """Prove (SymbiYosys, ``bmc`` ``hold + 2`` cycles deep from an unconstrained state) that the PIM core of
    ``cfg`` keeps every register and memory word across an edge its clock gate skips.

    Parameters
    ----------
    hold : int, optional
        The gate's hold cycles (default :func:`hw.clock_gate.hold_cycles` of the configuration).
    out : Path, optional
        Run folder: new or empty (default ``build/formal/gate-<cfg>-hold<hold>``, replaced).
    plant : bool
        Add the false property of :class:`GateHarness`: the run must fail.
    shrink : bool
        Shrink the core's memories (:func:`verif.formal.formal_config`, every macro kept); False keeps the
        configuration's.

    Raises
    ------
    FormalFailure
        The property fails (the message names the step and the counterexample trace) or the tools failed.
    """
    from dbpim.hw.clock_gate import hold_cycles
    from dbpim.hw.common import Emitter
    from dbpim.hw.core import PIMCore, _config_params
    from dbpim.model.config import HwConfig, load_config
    from dbpim.verif.rtl import ROOT, config_tag

    full = cfg if isinstance(cfg, HwConfig) else load_config(cfg)
    hw = formal_config(full, macros=full.system.macros_per_core) if shrink else full
    hold = hold_cycles(hw.macro.n_col) if hold is None else hold
    if not isinstance(hold, int) or hold < 1:
        raise ValueError(f"hold: must be a positive integer, got {hold!r}")
    out = _run_folder(out, ROOT / "build" / "formal" / f"gate-{config_tag(cfg)}-hold{hold}{'-plant' if plant else ''}")
    tools = _tools()
    t0 = time.perf_counter()
    # 1. the core's Verilog as the chip instantiates it, flattened, memories as registers, every register exposed
    em = Emitter()
    core = PIMCore(**_config_params(hw))
    top = em.convert(core).name
    files = []
    for name in em.sources(top):
        (out / f"{name}.v").write_text(em.modules[name].text)
        files.append(f"{name}.v")
    _yosys(tools, "; ".join([
        f"read_verilog {' '.join(files)}", f"hierarchy -top {top}", "proc", "flatten", "memory", "opt_clean",
        "setattr -unset init w:*", "expose -dff", f"rename {top} {CORE_MODULE}", "opt_clean",
        "write_rtlil core.il", "write_json core.json"]), out, "yosys_core.log", timeout)
    mod = json.loads((out / "core.json").read_text())["modules"][CORE_MODULE]
    ports = [{"name": n, "dir": p["direction"], "width": len(p["bits"])} for n, p in mod["ports"].items()]
    state = _state_ports(mod, out / "core.json")
    # 2. the harness; 3. SymbiYosys
    (out / "harness.il").write_text(harness_rtlil(ports, state, hold, plant, where=f"gate proof on {config_tag(cfg)}"))
    sby = _sby_text("bmc", hold + 2).replace("read_rtlil harness.il", "read_rtlil core.il\nread_rtlil harness.il").replace(
        "prep -top top", "prep -flatten -top top")
    (out / "gate.sby").write_text(sby.replace("[files]\nharness.il", "[files]\ncore.il\nharness.il"))
    try:
        r = subprocess.run([tools["sby"], "--yosys", tools["yosys"], "--smtbmc", tools["yosys-smtbmc"],
                            "--witness", tools["yosys-witness"], "-f", "gate.sby"], cwd=out, env=_tool_env(),
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FormalFailure(f"gate proof on {config_tag(cfg)}: no answer within {timeout:.0f} s ({out})") from None
    log = r.stdout + r.stderr
    (out / "sby.log").write_text(log)
    secs = time.perf_counter() - t0
    if not (r.returncode == 0 and "DONE (PASS" in log):
        names = _check_names((out / "harness.il").read_text())
        fails = sorted({f"{names.get(k, 'check_' + k)} (step {step})" for k, step in
                        re.findall(r"failed assertion \S*check_(\d+) at \S+? step (\d+)", log)})
        trace = next(out.rglob("trace*.vcd"), None)
        raise FormalFailure(f"gate proof on {config_tag(cfg)} (hold {hold}, {len(state)} registers): "
                            + ("; ".join(fails) or f"tools failed (status {r.returncode})")
                            + (f"; counterexample: {trace}" if trace else "") + f"; log: {out / 'sby.log'}")
    summary = f"{len(state)} registers ({sum(p['width'] for p in ports if p['name'] in set(state))} bits)"
    return FormalResult("bmc", hold + 2, True, secs, out, summary)
