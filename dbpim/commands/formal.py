"""``dbpim formal``: formal proofs of the PIM core's handshakes (``make formal``)."""

from __future__ import annotations

import click

from dbpim.commands._common import Number, hw_option, load_hw, verbosity_options
from dbpim.model import limits


@click.command("formal")
@hw_option(default="small", help_extra="; its core memories are shrunk for the solver")
@click.option("--depth", type=Number(limits.COUNT), default=25, show_default=True,
              help="cycles of the bounded check and of the cover search (the first result beat of the small "
                   "core is reachable at cycle 19, a stalled one at 20)")
@click.option("--induction-depth", type=Number(limits.COUNT), default=8, show_default=True,
              help="k of the k-induction")
@click.option("--no-cover", is_flag=True, help="skip the reachability search")
@click.option("--no-gate", is_flag=True, help="skip the proof that gating an idle PIM core's clock changes nothing")
@click.option("--core-induction", is_flag=True,
              help="also try k-induction on the whole core (does not close: see docs/rtl.md)")
@verbosity_options
def command(hw, depth, induction_depth, no_cover, no_gate, core_induction):
    """Formal proofs of the PIM core's AXI4-Stream / AXI4-Lite handshakes, START and STATUS.ERROR, and of the chip's
    AXI4-Lite port and irq.

    SymbiYosys with yices: reachability of a result beat, a bounded model
    check of the core, k-induction of its AXI4-Lite target and of the chip's
    (dbpim_chip_axi), a bounded model check and k-induction of the whole chip
    top, and that a quiet, idle PIM core keeps its state across a clock edge
    its clock gate skips (from any state). Exit status 1 when a property fails
    (the counterexample and log are named).
    """
    from dbpim.verif.formal import CHIP_PROPERTIES, PROPERTIES, FormalFailure, prove
    cfg = load_hw(hw)
    runs = ([] if no_cover else [("core", "cover", depth)]) + [("core", "bmc", depth),
                                                               ("axil", "prove", induction_depth),
                                                               ("chip_axil", "prove", induction_depth),
                                                               ("chip", "bmc", depth),
                                                               ("chip", "prove", induction_depth)]
    runs += [("core", "prove", induction_depth)] if core_induction else []
    bad = 0
    for target, mode, d in runs:
        try:
            # (the whole chip's check takes minutes: 236 s for 25 cycles, over 600 s on a loaded machine)
            res = prove(cfg, mode=mode, depth=d, target=target, timeout=1800.0 if target == "chip" else 600.0)
        except FormalFailure as e:
            click.echo(f"FAILED: {e}", err=True)
            bad += 1
            continue
        if mode == "cover":
            click.echo(f"core {hw}: reachable within {d} cycles: "
                       + ", ".join(f"{k} at cycle {v}" for k, v in sorted(res.reached.items(), key=lambda kv: kv[1]))
                       + f", {res.seconds:.1f} s")
        else:
            what = (f"bounded, {d} cycles from power-up" if mode == "bmc"
                    else f"k-induction, k = {d}: every reachable state")
            props = (list(CHIP_PROPERTIES) if target == "chip"
                     else [p for p in PROPERTIES if target == "core" or p.startswith("axil_")])
            props += ["axil_one_port"] if target == "chip_axil" else []
            click.echo(f"{target} {hw}: {len(props)} properties hold ({what}), {res.seconds:.1f} s  [{res.folder}]")
    if not no_gate:
        from dbpim.verif.formal_gate import prove_gate
        try:
            res = prove_gate(cfg)
            click.echo(f"gate {hw}: a quiet core idle for {res.depth - 2} cycles keeps its {res.summary} across a "
                       f"skipped clock edge (from any state), {res.seconds:.1f} s  [{res.folder}]")
        except FormalFailure as e:
            click.echo(f"FAILED: {e}", err=True)
            bad += 1
    click.get_current_context().exit(1 if bad else 0)
