"""The README's demo figures: one table generated from ``dbpim demo``'s ``summary.json``.

README.md quotes the demo's deterministic figures (accuracies, CSD and FTA
figures, cycle ratios, speedup, energy saving, utilizations, the schedule
that produced them) in one Markdown table between two marker lines::

    <!-- BEGIN demo figures (generated from dbpim demo's summary.json: ... ) -->
    | figure | key | value |
    |---|---|---:|
    | small CNN, float: test accuracy | `smallcnn.accuracy.float` | 99.78 % |
    <!-- END demo figures -->

Each value is the figure rounded as the demo prints it. :func:`figures`
formats a summary, :func:`read_readme` parses the table,
:func:`update_readme` rewrites it from a fresh summary (``dbpim demo
--update-readme README.md``), and ``tests/test_readme_figures.py`` compares
the two. Times are not figures here: they depend on the machine and its load.

Pure Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dbpim.demo import STAGE_KEYS, DemoError

__all__ = ["FIGURES", "BEGIN", "END", "REQUIRED_STAGES", "figures", "table", "read_readme", "update_readme",
           "check_readme"]

#: The first line of the generated block (how to refresh it, for the reader of README.md).
BEGIN = ("<!-- BEGIN demo figures: generated from the summary.json of `python -m dbpim demo`; "
         "refresh with `python -m dbpim demo --update-readme README.md`, do not edit by hand -->")
#: The last line of the generated block.
END = "<!-- END demo figures -->"
_HEADER = ["| figure | key | value |", "|---|---|---:|"]
_ROW = re.compile(r"^\| (?P<label>[^|]+?) \| `(?P<key>[a-z0-9_.]+)` \| (?P<value>[^|]+?) \|$")


def _pct(digits: int) -> Callable[[float], str]:
    return lambda v: f"{100 * v:.{digits}f} %"


def _num(digits: int, unit: str = "") -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f}{unit}"


def _slash(keys: tuple[str, ...], fmt=lambda v: f"{v:g}") -> Callable[[dict], str]:
    return lambda d: " / ".join(fmt(d[k]) for k in keys)


@dataclass(frozen=True)
class Figure:
    """One README figure: ``key`` names it, ``path`` finds it in a summary, ``fmt`` rounds it as printed."""

    key: str
    label: str
    path: tuple
    fmt: Callable

    @property
    def stage(self) -> int | None:
        """The demo stage that produces it (None: the demo's options)."""
        return next((n for n, k in STAGE_KEYS.items() if k == self.path[0]), None)


_PHASES = ("float", "finetune", "qat")
#: Every figure the README quotes, in table order.
FIGURES = (
    Figure("demo.hw", "hardware configuration (`--hw`)", ("hw",), str),
    Figure("demo.sparsity", "block sparsity (`--sparsity`)", ("sparsity",), lambda v: f"{100 * v:g} %"),
    Figure("minilm.bits_binary", "MiniLM-L6 FFN weight (stage 1): non-zero bits per weight, binary int8",
           ("pretrained", "bits_per_weight_binary"), _num(3)),
    Figure("minilm.digits_csd", "MiniLM-L6 FFN weight: non-zero digits per weight, CSD",
           ("pretrained", "digits_per_weight_csd"), _num(3)),
    Figure("minilm.csd_fewer", "MiniLM-L6 FFN weight: fewer non-zero digits with CSD",
           ("pretrained", "csd_fewer_digits"), _pct(1)),
    Figure("minilm.fta_error", "MiniLM-L6 FFN weight: FTA mean abs. error, kept weights",
           ("pretrained", "fta_error_lsb"), _num(3, " LSB")),
    Figure("minilm.rounding_error", "MiniLM-L6 FFN weight: int8 rounding alone, mean abs. error",
           ("pretrained", "rounding_error_lsb"), _num(3, " LSB")),
    Figure("mlp.float_accuracy", "digits MLP (stage 2), float: test accuracy", ("golden", "float_accuracy"), _pct(2)),
    Figure("mlp.fc1.speedup", "digits MLP fc1 on the golden macro: dense / DB-PIM macro-cycles",
           ("golden", "layers", "fc1", "speedup"), _num(2, "x")),
    Figure("mlp.fc2.speedup", "digits MLP fc2 on the golden macro: dense / DB-PIM macro-cycles",
           ("golden", "layers", "fc2", "speedup"), _num(2, "x")),
    Figure("smallcnn.epochs", "small CNN (stage 3) schedule: epochs float / block-prune fine-tune / FTA-aware QAT",
           ("smallcnn", "schedule", "epochs"), _slash(_PHASES)),
    Figure("smallcnn.lr", "small CNN schedule: learning rates float / fine-tune / QAT (Adam, cosine)",
           ("smallcnn", "schedule", "lr"), _slash(_PHASES)),
    Figure("smallcnn.phi_max", "small CNN: FTA ceiling phi_max", ("smallcnn", "schedule", "phi_max"), str),
    Figure("smallcnn.accuracy.float", "small CNN, float: test accuracy", ("smallcnn", "accuracy", "float"), _pct(2)),
    Figure("smallcnn.accuracy.final", "small CNN, block pruning + FTA, integer: test accuracy",
           ("smallcnn", "accuracy", "final"), _pct(2)),
    Figure("smallcnn.total_sparsity", "small CNN: total weight sparsity of block pruning + FTA",
           ("smallcnn", "schedule", "total_sparsity"), _pct(0)),
    Figure("smallcnn.accuracy.block_pruned_same_total",
           "small CNN, block pruning alone at that total sparsity, int8: test accuracy",
           ("smallcnn", "accuracy", "block_pruned_same_total"), _pct(2)),
    Figure("perf.speedup", "small CNN on the performance model (stage 5): speedup end to end",
           ("perf", "speedup"), _num(2, "x")),
    Figure("perf.speedup_mapped", "speedup on the macros' layers", ("perf", "speedup_mapped"), _num(2, "x")),
    Figure("perf.energy_saving", "system energy saving", ("perf", "energy_saving"), _pct(1)),
    Figure("perf.energy_saving_macro", "energy saving in the macros", ("perf", "energy_saving_macro"), _pct(1)),
    Figure("perf.utilization_system", "utilization, system level", ("perf", "utilization_system"), _pct(1)),
    Figure("perf.utilization", "utilization, cell level", ("perf", "utilization"), _pct(1)),
    Figure("perf.utilization_system_dense", "dense baseline utilization, system level",
           ("perf", "utilization_system_dense"), _pct(1)),
    Figure("perf.utilization_dense", "dense baseline utilization, cell level", ("perf", "utilization_dense"),
           _pct(1)),
)
#: The stages whose figures the README quotes (all of them are needed to refresh it).
REQUIRED_STAGES = sorted({f.stage for f in FIGURES if f.stage is not None})


def _lookup(summary: dict, path: tuple):
    v = summary
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return v


def _why_missing(summary: dict, fig: Figure) -> str:
    part = summary.get(fig.path[0])
    if fig.stage is not None and part is None:
        return f"stage {fig.stage} ({STAGE_KEYS[fig.stage]}) did not run"
    if isinstance(part, dict) and "skipped" in part:
        return f"stage {fig.stage} was skipped ({part['skipped']})"
    return f"{'.'.join(fig.path)} is not in the summary"


def figures(summary: dict, partial: bool = False) -> dict[str, str]:
    """The README figures of a demo ``summary`` (``summary.json``), key -> value rounded as printed.

    Parameters
    ----------
    summary : dict
        What :func:`dbpim.demo.run_demo` returned or wrote.
    partial : bool
        Leave out the figures of stages that did not run or were skipped;
        otherwise each missing figure is an error.

    Raises
    ------
    DemoError
        ``summary.json: <key>: stage 3 (...) did not run`` (one line), without ``partial``.
    """
    out = {}
    for f in FIGURES:
        v = _lookup(summary, f.path)
        if v is None:
            if partial:
                continue
            raise DemoError(f"summary.json: {f.key}: {_why_missing(summary, f)}; the README's figures need "
                            f"stages {','.join(map(str, REQUIRED_STAGES))}")
        out[f.key] = f.fmt(v)
    return out


def table(values: dict[str, str]) -> str:
    """The generated README block (marker lines included) for ``values`` (key -> value), in :data:`FIGURES` order."""
    rows = [f"| {f.label} | `{f.key}` | {values[f.key]} |" for f in FIGURES if f.key in values]
    return "\n".join([BEGIN, "", *_HEADER, *rows, "", END])


def _block(text: str, where: str) -> tuple[int, int]:
    """(first, last) line index of the generated block in ``text``'s lines."""
    lines = text.splitlines()
    begins = [i for i, ln in enumerate(lines) if ln.startswith("<!-- BEGIN demo figures")]
    ends = [i for i, ln in enumerate(lines) if ln.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise DemoError(f"{where}: must hold one block of demo figures, a line starting '<!-- BEGIN demo figures' "
                        f"then a line '{END}' (found {len(begins)} and {len(ends)})")
    return begins[0], ends[0]


def read_readme(text: str, where: str = "README.md") -> dict[str, str]:
    """The figures of the generated block in ``text`` (a README), key -> value as written.

    Raises
    ------
    DemoError
        No single block, a row that is not ``| label | `key` | value |``, or a key twice (one line naming ``where``).
    """
    first, last = _block(text, where)
    out = {}
    for n, ln in enumerate(text.splitlines()[first + 1:last], start=first + 2):
        if not ln.strip() or ln in _HEADER:
            continue
        m = _ROW.match(ln)
        if m is None:
            raise DemoError(f"{where}: line {n}: not a demo-figure row '| figure | `key` | value |': {ln!r}")
        if m["key"] in out:
            raise DemoError(f"{where}: line {n}: figure {m['key']} is listed twice")
        out[m["key"]] = m["value"]
    return out


def check_readme(path) -> str:
    """The text of ``path`` after checking it holds one well-formed block (before a long demo run)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DemoError(f"{p}: cannot read ({getattr(e, 'strerror', None) or type(e).__name__})") \
            from None
    read_readme(text, str(p))
    return text


def update_readme(path, summary: dict) -> list[str]:
    """Rewrite the generated block of the README at ``path`` from a demo ``summary``; returns the changed keys.

    Everything outside the block is kept byte for byte; the file is replaced
    atomically (:func:`model.outdir.write_file`).

    Raises
    ------
    DemoError
        A figure the summary lacks (a stage not run or skipped), or a README
        without one well-formed block; the README is then unchanged.
    """
    from dbpim.model.outdir import write_file
    text = check_readme(path)
    values = figures(summary)
    old = read_readme(text, str(path))
    lines = text.splitlines()
    first, last = _block(text, str(path))
    new = "\n".join(lines[:first] + table(values).splitlines() + lines[last + 1:])
    write_file(path, new + ("\n" if text.endswith("\n") else ""))
    return [k for k in values if old.get(k) != values[k]]
