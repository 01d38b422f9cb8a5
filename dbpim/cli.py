"""The ``dbpim`` command line.

Subcommands dispatch lazily to the part of the project that owns them, so
``dbpim --help`` stays fast and works without torch or the RTL tools. The
dispatcher also makes a closed pipe (``dbpim --help | head -1``) quiet::

    dbpim demo         the built-in example end to end (make demo)
    dbpim verilog      generate Verilog + manifest for a hardware YAML (hw/)
    dbpim compile      prune, FTA-QAT and export a network (model/torch/)
    dbpim minilm       the pretrained MiniLM-L6 encoder end to end (make minilm)
    dbpim bench        performance report of a compiled artifact (sim_bench/)
    dbpim bench-paper  the paper's tables and figures over several networks
    dbpim paper-nets   the paper's five networks at full width, untrained, as artifacts
    dbpim compare      the ReRAM bit-sparsity schemes next to DB-PIM (sim_bench/)
    dbpim sweep        sparsity x phi_max x geometry sweep (sim_bench/)
    dbpim verify       a whole layer on the PIM core RTL vs run_layer and the performance model
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dbpim import __version__

__all__ = ["main"]

#: Exit status after the reader of stdout went away (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141

# subcommand -> (module, function taking argv, one-line help)
SUBCOMMANDS = {
    "demo": ("dbpim.demo", "main", "run the built-in example end to end"),
    "verilog": ("hw.generate", "main", "generate Verilog and a manifest for a hardware YAML"),
    "compile": ("model.torch.flow", "main", "prune, FTA-QAT, quantize and export a network"),
    "minilm": ("dbpim.minilm", "main", "pretrained MiniLM-L6 end to end: pruning, FTA-aware QAT, export, performance"),
    "bench": ("sim_bench.report", "main", "performance, energy and utilization report of an artifact"),
    "bench-paper": ("sim_bench.paper", "main", "Tab. II/III, Fig. 11/12 of several networks next to the paper's"),
    "paper-nets": ("dbpim.paper_nets", "main", "the paper's five networks at full width (untrained) as artifacts"),
    "compare": ("dbpim.compare", "main", "the ReRAM bit-sparsity schemes next to DB-PIM on compiled networks"),
    "sweep": ("sim_bench.sweep", "main", "block sparsity x phi_max x macro geometry sweep"),
    "verify": ("dbpim.verify", "main", "run a compiled layer on the PIM core RTL (Verilator) against the golden model"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dbpim", description="DB-PIM: Dyadic Block PIM tools.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Run 'dbpim <command> --help' for the options of a command.")
    p.add_argument("--version", action="version", version=f"dbpim {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="command")
    for name, (_, _, helptext) in SUBCOMMANDS.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """``dbpim ...``: run a subcommand; returns its exit status.

    A reader that closes the pipe early (``dbpim --help | head -1``) ends the
    command quietly with status 141, with no traceback.
    """
    try:
        try:
            return _dispatch(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the final flush at exit must not fail again
        return EXIT_BROKEN_PIPE


def _dispatch(argv: list[str]) -> int:
    p = _parser()
    if argv[:1] == ["--version"]:
        print(f"dbpim {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        p.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        p.error(f"unknown command {name!r}; choose from {', '.join(SUBCOMMANDS)}")
    mod_name, fn_name, _ = SUBCOMMANDS[name]
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        print(f"dbpim {name}: unavailable ({e}); run `make install` to install every extra", file=sys.stderr)
        return 2
    rc = getattr(mod, fn_name)(rest)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
