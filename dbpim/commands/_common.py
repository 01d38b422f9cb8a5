"""What every ``dbpim`` command shares: numeric option types, ``-v``/``-q``, logging and the hardware option.

This is the edge of the project: the only place where strings and paths from
the command line become objects (:class:`model.config.HwConfig`,
:class:`model.artifact.Artifact`, option dataclasses). The library below
never reads ``sys.argv``, never configures logging and never quotes a flag.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from dbpim.model.limits import Range
from dbpim.model.outdir import OUT_HELP

__all__ = ["Number", "NumberList", "verbosity_options", "progress", "hw_option", "load_hw", "load_artifact",
           "CommandError", "configure_logging", "OUT_HELP", "verilog_folder"]

class CommandError(click.ClickException):
    """A bad input found by a command itself: one line on stderr, exit status 2."""

    exit_code = 2


class Number(click.ParamType):
    """A click type for a number in a :class:`model.limits.Range` (``--epochs inf``: a one-line usage error)."""

    def __init__(self, rng: Range):
        self.rng = rng
        self.name = "integer" if rng.integer else "number"

    def get_metavar(self, param, ctx=None):  # click >= 8.2 passes ctx
        return "INT" if self.rng.integer else "FLOAT"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            v = value
        else:
            text = str(value).strip()
            try:
                v = int(text) if self.rng.integer else float(text)
            except ValueError:
                self.fail(f"must be {self.rng.describe()}, got {text!r}", param, ctx)
        try:
            return self.rng.check("value", v)
        except ValueError as e:
            self.fail(str(e).split(": ", 1)[1], param, ctx)


class NumberList(click.ParamType):
    """A comma-separated, non-empty list of numbers each in a :class:`model.limits.Range`."""

    name = "list"

    def __init__(self, rng: Range):
        self.item = Number(rng)

    def get_metavar(self, param, ctx=None):
        return "A,B,..."

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        parts = [t.strip() for t in str(value).split(",")]
        if not any(parts) or not all(parts):
            self.fail(f"must be a comma-separated list of {self.item.rng.describe().replace('a ', '', 1)}s, "
                      f"got {value!r}", param, ctx)
        return [self.item.convert(t, param, ctx) for t in parts]


# ----------------------------------------------------------------------------- logging and -v / -q

_STATE = {"verbosity": 0}


class _Formatter(logging.Formatter):
    """``2026-12-06T03:10:42Z dbpim compile: <message>``: UTC, one line per record."""

    converter = time.gmtime

    def __init__(self, command: str):
        super().__init__("%(asctime)s " + command.replace("%", "%%") + ": %(message)s", "%Y-%m-%dT%H:%M:%SZ")


def configure_logging(command: str, verbosity: int | None = None) -> None:
    """Send the library's log records to stderr, one timestamped line each.

    Off a terminal (a log file, CI) every stage and training epoch is logged
    (INFO); on a terminal the progress bars show it and only warnings are
    logged. ``-v`` logs INFO (``-vv`` DEBUG) everywhere, ``-q`` only warnings.
    """
    v = _STATE["verbosity"] if verbosity is None else verbosity
    if v < 0:
        level = logging.WARNING
    elif v == 0:
        level = logging.WARNING if _isatty(sys.stderr) else logging.INFO
    else:
        level = logging.INFO if v == 1 else logging.DEBUG
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_dbpim", False):
            root.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)
    h._dbpim = True
    h.setFormatter(_Formatter(command))
    root.addHandler(h)
    root.setLevel(level)
    for noisy in ("matplotlib", "PIL", "urllib3", "filelock", "fsspec", "ray", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _set_verbose(ctx, param, value):
    if value:
        _STATE["verbosity"] = max(_STATE["verbosity"], 0) + value
        configure_logging(ctx.command_path)
    return value


def _set_quiet(ctx, param, value):
    if value:
        _STATE["verbosity"] = -1
        configure_logging(ctx.command_path)
    return value


def verbosity_options(f):
    """``-v``/``--verbose`` (repeatable) and ``-q``/``--quiet`` on a command (also accepted before it)."""
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet, is_eager=True,
                     help="only warnings and errors on stderr; no progress bars")(f)
    f = click.option("-v", "--verbose", count=True, expose_value=False, callback=_set_verbose, is_eager=True,
                     help="log every stage and epoch (-vv: debug), also on a terminal")(f)
    return f


def progress() -> bool:
    """Whether progress bars may be drawn (never with ``-q``; tqdm draws them only on a terminal)."""
    return _STATE["verbosity"] >= 0


def reset_verbosity() -> None:
    _STATE["verbosity"] = 0


# ----------------------------------------------------------------------------- hardware and artifacts

def hw_option(default: str | None = "paper", help_extra: str = ""):
    """``--hw``: a hardware YAML or shipped name (``paper``, ``small``)."""
    d = f"default: {default}" if default else "default: the one recorded in the artifact"
    return click.option("--hw", default=default, metavar="YAML|NAME",
                        help=f"hardware YAML or shipped name ({d}){help_extra}")


def batch_option(help_extra: str = ""):
    """``--batch N``: samples per loaded weight tile in the performance model (``model.limits.BATCH``)."""
    from dbpim.model import limits
    return click.option("--batch", type=Number(limits.BATCH), default=1, show_default=True, metavar="N",
                        help="inference batch of the performance model: the samples whose pixels share each "
                             f"loaded weight tile, the dense baseline's too ({limits.BATCH.describe()}){help_extra}")


def load_hw(spec: str):
    """:func:`model.config.load_config` of ``--hw`` (a ConfigError is a one-line error naming ``--hw``)."""
    from dbpim.model.config import ConfigError, load_config
    try:
        return load_config(spec)
    except ConfigError as e:
        raise CommandError(f"--hw: {e}") from None


def core_overrides(values) -> dict:
    """``--core KEY=N`` options as ``{key: N}`` for ``HwConfig.replace(core=...)``, each key a ``core`` key and
    each value in its range (:data:`model.spec.CORE_GEOMETRY`); a bad one is one :class:`CommandError` line."""
    import dataclasses

    from dbpim.model.config import CoreConfig
    from dbpim.model.spec import CORE_GEOMETRY
    keys = [f.name for f in dataclasses.fields(CoreConfig)]
    out = {}
    for v in values:
        key, eq, num = v.partition("=")
        if not eq or key not in keys:
            raise CommandError(f"--core: {v}: must be KEY=N with KEY one of {', '.join(keys)}")
        try:
            n = int(num)
        except ValueError:
            n = None
        if n is None or not CORE_GEOMETRY[key].ok(n):
            raise CommandError(f"--core: {v}: {key} must be {CORE_GEOMETRY[key].allowed}")
        out[key] = n
    return out


def with_core_overrides(cfg, over: dict):
    """``cfg`` with the ``--core`` keys ``over`` (:func:`core_overrides`) applied, its name followed by
    ``+KEY=N`` per key (``paper+tile_banks=2``); ``cfg`` itself when ``over`` is empty.

    A combination the configuration refuses (``in_windows`` not dividing ``macros_per_core``) is one
    :class:`CommandError` line naming ``--core``.
    """
    import dataclasses

    from dbpim.model.config import ConfigError
    if not over:
        return cfg
    try:
        new = cfg.replace(core=over)
    except ConfigError as e:
        raise CommandError(f"--core: {e}") from None
    return dataclasses.replace(new, name=cfg.name + "".join(f"+{k}={v}" for k, v in over.items()))


def verilog_folder(verilog: str, out: str | None, blocks: str | None, suffix: str, command: str):
    """A folder of generated Verilog named on the command line: ``(folder, --out, block names)``.

    The blocks are ``--blocks`` (comma-separated, each checked against the
    folder's ``manifest.json``) or every block of it; ``--out`` defaults to
    ``<folder>-<suffix>`` next to the folder and is checked before any slow
    work. Every refusal is one :class:`CommandError` line.
    """
    from dbpim.hw.synth import manifest_blocks
    from dbpim.model.outdir import check_output
    d = Path(verilog)
    if not (d / "manifest.json").is_file():
        raise CommandError(f"{d}: no manifest.json (run `dbpim verilog` first)")
    try:
        _, names = manifest_blocks(d, blocks.split(",") if blocks else None)
    except ValueError as e:  # an unknown block, an unreadable manifest
        raise CommandError(str(e)) from None
    out = Path(out) if out else d.resolve().parent / f"{d.resolve().name}-{suffix}"
    check_output(out, command, [d])
    return d, out, names


def load_artifact(path: str, flag: str = "--artifact", **kw):
    """:func:`model.artifact.load` of a directory option (one-line error naming ``flag``)."""
    from pathlib import Path

    from dbpim.model.artifact import ArtifactError, load
    p = Path(path)
    if not p.exists():
        raise CommandError(f"{flag}: {p}: artifact not found (an artifact is a directory with manifest.yaml)")
    try:
        return load(p, **kw)
    except ArtifactError as e:
        raise CommandError(f"{flag}: {str(e).splitlines()[0]}") from None


def artifact_hw(art, hw_spec: str | None, flag: str = "--artifact"):
    """The hardware an artifact is evaluated on: the configuration it records, or ``--hw``.

    An artifact records the configuration it was compiled for (``art.hw``);
    without ``--hw`` that one is used. A ``--hw`` overrides it explicitly (the
    same tiles on another core or system: ``core.tile_banks``, ``lanes``, the
    energy constants) when its macro is the artifact's compiled macro
    (``lanes`` aside), and is refused with one line otherwise; a warning is
    logged when it differs from the recorded one. An older artifact (no
    ``hw``) uses ``--hw``, default ``paper``. No configuration is guessed.
    """
    recorded = getattr(art, "hw", None)
    if hw_spec is None and recorded is not None:
        return recorded
    hw = load_hw(hw_spec or "paper")
    diff = ", ".join(f"{k}={getattr(art.macro, k)} vs {getattr(hw.macro, k)}" for k in art.macro.to_dict()
                     if k != "lanes" and getattr(art.macro, k) != getattr(hw.macro, k))
    if diff:
        why = "" if recorded is not None else "; the artifact records no hardware, name its configuration with --hw"
        raise CommandError(f"--hw {hw_spec or 'paper'}: its macro must match the artifact's compiled macro "
                           f"({diff}){why}")
    if recorded is not None and _digest(hw) != _digest(recorded):
        logging.getLogger("dbpim").warning("--hw %s overrides the configuration recorded in the artifact (%s)",
                                           hw_spec, recorded.name)
    return hw


def _digest(hw):
    d = getattr(hw, "digest", None)
    if callable(d):
        return d()
    return repr(hw.to_dict()) if hasattr(hw, "to_dict") else repr(hw)
