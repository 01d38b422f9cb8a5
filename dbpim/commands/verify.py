"""``dbpim verify``: compiled layers on the RTL against the golden model (one command, two checks)."""

from __future__ import annotations

import click

from dbpim.commands._common import (CommandError, Number, artifact_hw, load_artifact, load_hw,
                                    verbosity_options)
from dbpim.model import limits

HELP = """Run compiled layers on the RTL (Verilator) against the golden model.

\b
Two checks, chosen by --macro:
  layer check (default with --artifact): every START of each mapped layer
    (--layer: only that one) on the PIM core RTL, all tiles and output
    pixels of --samples recorded samples; outputs must equal run_layer bit
    for bit and the RTL's cycle count the performance model's.
  macro check (--macro, or without --artifact): every tile of the
    artifact's layers on the RTL macro with --vectors recorded input
    vectors, accumulators and cycles against the golden macro model;
    without --artifact the first --tiles tiles of the built-in example
    layer on --hw (default small).

The hardware of an artifact is the configuration it records; --hw
overrides it when its macro is the artifact's and is refused otherwise (an
artifact that records none uses --hw, default paper). Exit status 0 when everything agrees, 1 on a mismatch, 2 on a bad
input.
"""


@click.command("verify", help=HELP)
@click.option("--artifact", default=None, metavar="DIR", help="a compiled artifact directory")
@click.option("--layer", default=None, metavar="NAME", help="only this mapped layer of --artifact")
@click.option("--macro", "macro_check", is_flag=True,
              help="macro check: the tiles on the RTL macro instead of the layer on the PIM core")
@click.option("--hw", default=None, metavar="YAML|NAME",
              help="hardware YAML or shipped name (default: the artifact's recorded configuration; without "
                   "--artifact: small); overrides the artifact's if its macro is the same, else refused")
@click.option("--samples", type=Number(limits.COUNT), default=None,
              help="layer check: recorded samples to run, >= 1 (default: all)")
@click.option("--vectors", type=Number(limits.COUNT), default=None,
              help="macro check: recorded input vectors per layer, >= 1 (default: 32)")
@click.option("--all-vectors", is_flag=True, help="macro check: every recorded input vector")
@click.option("--tiles", type=Number(limits.COUNT), default=None,
              help="macro check of the example layer: tiles to run, >= 1 (default: 2)")
@click.option("--rtl-log", is_flag=True, help="macro check: show the Verilator build log and cocotb output")
@verbosity_options
def command(artifact, layer, macro_check, hw, samples, vectors, all_vectors, tiles, rtl_log):
    from dbpim.verify import verify_core, verify_macro
    macro_mode = macro_check or artifact is None
    if layer is not None and artifact is None:
        raise CommandError("--layer: needs --artifact DIR")
    if macro_mode:
        if samples is not None:
            raise CommandError("--samples: only for the layer check (--artifact DIR without --macro)")
        if tiles is not None and artifact is not None:
            raise CommandError("--tiles: only for the example layer (without --artifact)")
        if vectors is not None and all_vectors:
            raise CommandError("--vectors: give either --vectors N or --all-vectors")
    else:
        for flag, v in (("--vectors", vectors), ("--all-vectors", all_vectors or None), ("--tiles", tiles),
                        ("--rtl-log", rtl_log or None)):
            if v is not None:
                raise CommandError(f"{flag}: only for the macro check (add --macro)")
    n_vectors = None if all_vectors else (32 if vectors is None else vectors)
    if artifact is None:
        ok = verify_macro(load_hw(hw or "small").macro, n_vectors=n_vectors, tiles=2 if tiles is None else tiles,
                          verbose=rtl_log or None, out=lambda s: click.echo(s))
    else:
        art = load_artifact(artifact)
        cfg = artifact_hw(art, hw)
        if macro_mode:
            ok = verify_macro(cfg.macro, art=art, layer=layer, n_vectors=n_vectors, verbose=rtl_log or None,
                              out=lambda s: click.echo(s))
        else:
            ok = verify_core(art, cfg, layer, samples, out=lambda s: click.echo(s))
    click.get_current_context().exit(0 if ok else 1)
