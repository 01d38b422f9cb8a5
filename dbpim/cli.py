"""The ``dbpim`` command line: one click group, one module per subcommand in :mod:`dbpim.commands`.

Subcommands are imported only when run (or when their ``--help`` is asked
for), so ``dbpim --help`` stays fast and works without torch or the RTL tools.

The error contract, for every subcommand:

* a bad option value (``--epochs inf``, ``--phi-max 1.5``, an unknown
  command) or a bad input found by the library (a one-line error type such
  as ``ConfigError``, ``ArtifactError``, ``FlowError``, ``OutputError``):
  one line ``dbpim <command>: <message>`` on stderr, exit status 2;
* ``dbpim`` with no command: the usage on stderr, exit status 2;
* Ctrl-C: one line ``dbpim <command>: interrupted; --out unchanged`` (the
  ``--out`` clause only for commands that write one), exit status 130
  (SIGTERM / SIGHUP: ``terminated by SIGTERM; --out unchanged``, 128 + signal);
* a reader that closes stdout early (``dbpim --help | head -1``): quiet,
  exit status 141;
* any other exception is a bug: its traceback is shown.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from dbpim import __version__
from dbpim.commands._common import configure_logging, reset_verbosity, verbosity_options

__all__ = ["main", "cli", "SUBCOMMANDS", "USER_ERRORS", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE"]

#: Exit status of a usage error or a bad input (one line on stderr).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130
#: Exit status after the reader of stdout went away (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141

#: subcommand -> (module in dbpim.commands, one-line help)
SUBCOMMANDS = {
    "demo": ("demo", "run the built-in example end to end"),
    "verilog": ("verilog", "generate Verilog and a manifest for a hardware YAML"),
    "lint": ("lint", "Verilator lint of generated Verilog, every warning explained and waived by line"),
    "synth": ("synth", "Yosys generic synthesis of generated Verilog (cells, flip-flops, logic depth)"),
    "synth-table": ("synth_table", "several synthesis reports of one block side by side with deltas "
                                   "(the PIM core's throughput options)"),
    "formal": ("formal", "formal proofs of the PIM core's handshakes (SymbiYosys, yices)"),
    "mutate": ("mutate", "automatic mutation of the RTL (PIM core, SIMD core, window generator): mutants killed by a "
                         "fast regression subset"),
    "regress": ("regress", "the whole cocotb/Verilator RTL regression, on one design point with --hw (make test-rtl)"),
    "fpga": ("fpga", "ECP5 resources and Fmax of generated Verilog (yosys synth_ecp5, nextpnr-ecp5)"),
    "compile": ("compile", "prune, FTA-QAT, quantize and export a network; ends with its performance summary"),
    "minilm": ("minilm", "pretrained MiniLM-L6 end to end: pruning, FTA-aware QAT, export, performance"),
    "minilm-fta": ("minilm_fta", "FTA statistics of every Linear layer of the pretrained MiniLM-L6"),
    "bench": ("bench", "performance, energy and utilization report of an artifact"),
    "bench-paper": ("bench_paper", "Tab. II/III, Fig. 11/12 of several networks next to the paper's"),
    "paper-nets": ("paper_nets", "the paper's five networks at full width (untrained) as artifacts"),
    "compare": ("compare", "the ReRAM bit-sparsity schemes next to DB-PIM on compiled networks"),
    "sweep": ("sweep", "block sparsity x phi_max x macro geometry sweep"),
    "run": ("run", "a compiled network on new inputs through the golden chip (integer-only), the torch integer path and the float reference (--rtl: the RTL chip too)"),
    "verify": ("verify", "compiled layers on the RTL (PIM core, or the macro with --macro) vs the golden model"),
    "conformance": ("conformance", "versioned golden-model test vectors (macro and core) for other simulators or RTL"),
    "speed": ("speed", "speed of the golden model, the performance model and the RTL tools (make bench)"),
}

#: The library's one-line error types (module, class): reported as ``dbpim <command>: <message>``, exit 2.
#: Matched by name along the exception's class hierarchy, so none of these modules is imported for it.
USER_ERRORS = frozenset({
    ("dbpim.model.config", "ConfigError"), ("dbpim.model.artifact", "ArtifactError"), ("dbpim.model.outdir", "OutputError"),
    ("dbpim.model.torch.flow", "FlowError"), ("dbpim.model.torch.data", "DataError"), ("dbpim.model.torch.sources", "ModelError"),
    ("dbpim.model.torch.export", "ExportError"), ("dbpim.model.torch.graph", "CaptureError"),
    ("dbpim.model.core_timing", "PlanError"), ("dbpim.sim_bench.perf", "BenchError"), ("dbpim.demo", "DemoError"),
    ("dbpim.verify", "VerifyError"), ("dbpim.model.torch.keras_h5", "KerasH5Error"), ("dbpim.model.jsonio", "JsonError"),
    ("dbpim.model.predict", "PredictError"), ("dbpim.model.chip", "ChipError"), ("dbpim.model.requant", "RequantError"),
    ("dbpim.model.isa", "IsaError"),
})


def _is_user_error(e: BaseException) -> bool:
    return any((c.__module__, c.__name__) in USER_ERRORS for c in type(e).__mro__)


def _one_line(text: str) -> str:
    return " ".join(str(text).strip().splitlines()[:1]) or type(text).__name__


class _Piped(Exception):
    """The reader of stdout went away (a BrokenPipeError, kept away from click's own EPIPE handling)."""


class _Done(Exception):
    """Raised by the group after it printed a command's outcome; carries the exit status."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _usage_line(e: click.UsageError) -> str:
    ctx = e.ctx
    path = ctx.command_path if ctx is not None else "dbpim"
    msg = e.format_message()
    if isinstance(e, click.BadParameter) and e.param is not None:
        flag = e.param.opts[-1] if getattr(e.param, "opts", None) else e.param.name
        long = [o for o in getattr(e.param, "opts", []) if o.startswith("--")]
        msg = f"{long[0] if long else flag}: {e.message}"
    return f"{path}: {_one_line(msg)} (see '{path} --help')"


class LazyGroup(click.Group):
    """The ``dbpim`` group: imports a subcommand's module only when it runs, maps errors to exit statuses."""

    def list_commands(self, ctx):
        return list(SUBCOMMANDS)

    def get_command(self, ctx, name):
        if name not in SUBCOMMANDS:
            return None
        mod_name, _ = SUBCOMMANDS[name]
        try:
            mod = importlib.import_module(f"dbpim.commands.{mod_name}")
        except ImportError as e:
            if not (e.name or "").startswith("dbpim"):
                return _unavailable(name, e)
            raise
        return mod.command

    def format_commands(self, ctx, formatter):  # the one-line helps without importing every command
        with formatter.section("Commands"):
            formatter.write_dl([(n, h) for n, (_, h) in SUBCOMMANDS.items()])

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in SUBCOMMANDS and not name.startswith("-"):
            raise click.UsageError(f"unknown command {name!r}; choose from {', '.join(SUBCOMMANDS)}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        pending = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name = pending[0] if pending else ""
        path = f"dbpim {name}".strip()
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM / SIGHUP (model.outdir.Interrupted, with signum)
            cmd = self.get_command(ctx, name) if name in SUBCOMMANDS else None
            writes_out = cmd is not None and any("--out" in getattr(p, "opts", ()) for p in cmd.params)
            signum = getattr(e, "signum", None)
            what = str(e) if signum else "interrupted"  # Interrupted reads "terminated by SIGTERM"
            click.echo(f"{path}: {what}" + ("; --out unchanged" if writes_out else ""), err=True)
            raise _Done(128 + signum if signum else EXIT_INTERRUPTED) from None
        except click.exceptions.Exit:
            raise
        except click.ClickException as e:
            if isinstance(e, click.UsageError):
                click.echo(_usage_line(e), err=True)
            else:
                click.echo(f"{path}: {_one_line(e.format_message())}", err=True)
            raise _Done(e.exit_code) from None
        except BrokenPipeError:
            raise _Piped() from None
        except Exception as e:
            if _is_user_error(e):
                click.echo(f"{path}: {_one_line(str(e))}", err=True)
                raise _Done(EXIT_USAGE) from None
            raise


def _unavailable(name: str, err: ImportError):
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                   add_help_option=False)
    def cmd():
        raise click.ClickException(f"unavailable ({err}); run `make install` to install every extra")
    cmd.help = f"(unavailable: {err})"
    return cmd


@click.group("dbpim", cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Run 'dbpim COMMAND --help' for the options of a command.")
@click.version_option(__version__, "--version", prog_name="dbpim", message="%(prog)s %(version)s",
                      help="print the version and exit")
@verbosity_options
def cli():
    """DB-PIM: Dyadic Block PIM tools.

    Every command reports a bad input as one line 'dbpim COMMAND: message' on
    stderr with exit status 2; Ctrl-C exits with status 130 leaving --out as
    it was. Off a terminal every stage and training epoch is logged to stderr
    with a UTC timestamp.
    """
    ctx = click.get_current_context()
    configure_logging(f"dbpim {ctx.invoked_subcommand or ''}".strip())


def main(argv: list[str] | None = None) -> int:
    """``dbpim ...``: run a subcommand; returns its exit status (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    reset_verbosity()
    try:
        try:
            return _run(args)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except (BrokenPipeError, _Piped):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the final flush at exit must not fail again
        return EXIT_BROKEN_PIPE


def _run(args: list[str]) -> int:
    if not args:
        with click.Context(cli, info_name="dbpim", help_option_names=["-h", "--help"]) as ctx:
            click.echo(ctx.get_help(), err=True)
        return EXIT_USAGE
    try:
        rv = cli.main(args=args, prog_name="dbpim", standalone_mode=False)
    except _Done as d:
        return d.code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        click.echo(_usage_line(e), err=True)
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"dbpim: {_one_line(e.format_message())}", err=True)
        return e.exit_code
    except click.exceptions.Abort:  # Ctrl-C before a command ran (click turns it into Abort)
        click.echo("dbpim: interrupted", err=True)
        return EXIT_INTERRUPTED
    return int(rv or 0) if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
