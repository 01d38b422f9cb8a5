"""Lint the generated Verilog with ``verilator --lint-only -Wall`` against reviewed waiver patterns and counts.

Usage: ``dbpim lint <dir> [--update]`` (``make lint``). Every block of
the folder's ``manifest.json`` is linted as top module with its ``sources``.

No warning category is waived as a whole, and no warning by its line number.
Each warning Verilator reports must match one of the reviewed patterns of
:data:`EXPLAINED`: an id, a warning rule, the shape of its message (which
names the signal: ``'$<n>'`` for a Yosys temporary, ``'rst'``, ...) and, where
it matters, of the flagged source line or of the signal's uses in the file,
that the Verilog Amaranth and Yosys write produces by construction, each with
the reason it is not a design bug. A warning that matches none fails the run
(exit status 1) and is printed: MULTIDRIVEN, LATCH, COMBDLY, UNOPTFLAT,
UNDRIVEN, BLKSEQ, an unused port, dead logic, an operator on mismatched widths
that is not one of Yosys' forms, ...

The matching warnings are counted per configuration and SRAM mode (the
manifest's ``config`` and ``sram``), file and pattern, and compared with the
counts recorded in the repository, :data:`COUNTS_FILE` (``hw/lint_waivers.yaml``):
a count above its record, or a pattern or file without a record, fails too (a
new warning of an explained shape, e.g. one more unused alias, is a change to
review). A count below its record passes and says so; ``--update`` rewrites
the record of this configuration from the current counts (review the diff).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dbpim.hw.common import ports_of_verilog
from dbpim.hw.tools import verilator_env

__all__ = ["EXPLAINED", "COUNTS_FILE", "Warning_", "lint_dir", "lint_top", "count_warnings", "compare_counts"]
_MSG_RE = re.compile(r"^%Warning-([A-Z0-9_]+): (.+?):(\d+):(\d+): (.*)$")


@dataclass(frozen=True)
class Warning_:
    """One Verilator warning: rule, file name, line and message (plus the flagged source line)."""

    rule: str
    file: str
    line: int
    message: str
    source: str = ""


@dataclass(frozen=True)
class Explanation:
    """A reviewed waiver pattern: why warnings of one shape are not design bugs.

    ``id`` names the pattern in the recorded counts; ``message`` must match the warning's message; ``source`` (optional) the
    flagged source line; ``check`` (optional) gets (warning, file text, port
    names) and must return True.
    """

    id: str
    rule: str
    message: str
    reason: str
    source: str | None = None
    check: object = None

    def covers(self, w: Warning_, text: str, ports: set) -> bool:
        if w.rule != self.rule or not re.search(self.message, w.message):
            return False
        if self.source is not None and not re.search(self.source, w.source):
            return False
        return self.check is None or bool(self.check(w, text, ports))


def _unused_name(w: Warning_) -> str:
    m = re.search(r"used: '([^']+)'", w.message)
    return m.group(1) if m else ""


_NET = r"(\\[^\s]+ |[A-Za-z_][\w$]*)\s*(\[\d+(:\d+)?\])?"  # a net, escaped or not, optionally sliced
_CONST = r"\d+'[bhd][0-9a-fA-FxzXZ_]+"
_ALIAS_RHS = rf"({_NET}|{_CONST}|\{{\s*({_NET}|{_CONST})(\s*,\s*({_NET}|{_CONST}))*\s*\}})"


def _is_plain_alias(w: Warning_, text: str, ports: set) -> bool:
    """The unused net is no port and its only driver is ``assign <it> = <another net or a slice of one>;``."""
    name = _unused_name(w)
    if not name or name in ports:
        return False
    ident = re.escape(name if re.fullmatch(r"[A-Za-z_]\w*", name) else "\\" + name + " ")
    drivers = [ln for ln in text.splitlines() if re.match(rf"\s*assign {ident}\s*=", ln)]
    return (len(drivers) == 1
            and re.fullmatch(rf"\s*assign {ident}\s*=\s*{_ALIAS_RHS}\s*;", drivers[0]) is not None)


def _is_yosys_temporary(w: Warning_, text: str, ports: set) -> bool:
    return re.fullmatch(r"\$\d+", _unused_name(w)) is not None


def _uses(name: str, text: str) -> list[str]:
    """Lines that mention net ``name`` (escaped or not), its declaration excluded."""
    ident = name if re.fullmatch(r"[A-Za-z_]\w*", name) else "\\" + name + " "
    pat = re.compile(rf"(?<![\w$\\]){re.escape(ident)}(?![\w$])")
    return [ln for ln in text.splitlines() if pat.search(ln) and not re.match(r"\s*(wire|reg|input|output|module)\b", ln)]


def _is_unneeded_instance_output(w: Warning_, text: str, ports: set) -> bool:
    """The net's only use is as the output connection ``.port(net)`` of a sub-block instance."""
    name = _unused_name(w)
    uses = _uses(name, text)
    return name not in ports and len(uses) == 1 and re.match(r"\s*\.\w+\(", uses[0]) is not None


def _is_fsm_decode(w: Warning_, text: str, ports: set) -> bool:
    """The net is Amaranth's decode of one FSM state (``fsm_state == k``), which this FSM does not read."""
    uses = _uses(_unused_name(w), text)
    return len(uses) == 1 and re.fullmatch(r"\s*assign \S+\s*=\s*(! fsm_state|fsm_state == \S+);", uses[0]) is not None


def _is_reset_without_state(w: Warning_, text: str, ports: set) -> bool:
    """``rst`` of a block whose only state is memory (cells survive reset): nothing reads it."""
    return _unused_name(w) == "rst" and not _uses("rst", text)


def _is_folded_async_reset(w: Warning_, text: str, ports: set) -> bool:
    """The net is an async domain's active-high reset, ``assign <it> = ~ <port>;``, of a port the flops already
    take as ``negedge <port>`` (Yosys folds the inversion into the sensitivity list)."""
    name = _unused_name(w)
    ident = re.escape(name) if re.fullmatch(r"[A-Za-z_]\w*", name) else None
    if ident is None or name in ports:
        return False
    drivers = [re.fullmatch(rf"\s*assign {ident}\s*=\s*~\s*([A-Za-z_]\w*)\s*;", ln) for ln in text.splitlines()
               if re.match(rf"\s*assign {ident}\s*=", ln)]
    return (len(drivers) == 1 and drivers[0] is not None and drivers[0].group(1) in ports
            and re.search(rf"negedge {drivers[0].group(1)}\b", text) is not None)


#: The warnings Amaranth's Yosys back end produces by construction, each with its reason.
EXPLAINED = (
    Explanation("unused-alias", "UNUSEDSIGNAL", r"^Signal is not used: ",
                "Amaranth names every payload field, array element and named intermediate for waveforms; Yosys "
                "writes such a name as a plain alias (assign name = net) of the net the logic reads",
                check=_is_plain_alias),
    Explanation("unused-instance-output", "UNUSEDSIGNAL", r"^Signal is not used: '\$\d+'",
                "an output of a sub-block instance this block does not need (the IPU's empty strobe, the o_valid "
                "of every adder tree but the first)", check=_is_unneeded_instance_output),
    Explanation("unused-fsm-decode", "UNUSEDSIGNAL", r"^Signal is not used: '\$\d+'",
                "Amaranth's decode of one FSM state that nothing reads", check=_is_fsm_decode),
    Explanation("unused-reset", "UNUSEDSIGNAL", r"^Signal is not used: 'rst'$",
                "the block's only state is memory, which reset does not clear (docs/design.md §5); Amaranth "
                "still gives it the clock domain's reset port", check=_is_reset_without_state),
    Explanation("unused-async-reset", "UNUSEDSIGNAL", r"^Signal is not used: ",
                "the active-high reset of an asynchronous-reset domain (the core's reset synchronizer), the "
                "inverse of an active-low input port; Yosys writes the flops as always @(negedge port), so the "
                "inverted net is left unread", check=_is_folded_async_reset),
    Explanation("unused-bits-temporary", "UNUSEDSIGNAL", r"^Bits of signal are not used: '\$\d+'",
                "a Yosys temporary computed at its operation's full width of which Amaranth keeps the low bits "
                "(an explicit truncation)", check=_is_yosys_temporary),
    Explanation("widthexpand-const", "WIDTHEXPAND", r"(LHS|RHS)'s CONST '.*?' generates",
                "Yosys writes constants at their minimal width; Verilog zero-extends them to the other operand, "
                "as Amaranth specifies"),
    Explanation("widthexpand-signed-addsub", "WIDTHEXPAND", r"^Operator (ADD|SUB) expects \d+ bits on the (LHS|RHS), but (LHS|RHS)'s SIGNED generates",
                "an Amaranth signed add/subtract: Yosys writes the operands at their own width inside $signed() "
                "and Verilog sign-extends them to the result width", source=r"\$signed\("),
    Explanation("widthexpand-shiftl", "WIDTHEXPAND", r"^Operator SHIFTL expects \d+ bits on the LHS, but LHS's (SIGNED|REPLICATE|VARREF) generates",
                "an Amaranth left shift, whose result is wider than its operand: Verilog extends the operand to "
                "the result width first", source=r"<<"),
    Explanation("widthtrunc-bit-select", "WIDTHTRUNC", r"^Operator ASSIGNW expects \d+ bits on the Assign RHS, but Assign RHS's SHIFTR generates",
                "a variable bit select (Amaranth bit_select / word_select) that Yosys writes as a right shift "
                "assigned to a narrower net: the low bits are the selection", source=r"assign .* = .* >> .*;"),
    Explanation("widthtrunc-reduce-nor", "WIDTHTRUNC", r"^Logical operator LOGNOT expects 1 bit on the LHS",
                "a reduce-NOR (Amaranth v == 0 / ~v.any()) that Yosys writes as !v, one bit by definition",
                source=r"!\s*[\\\w$]"),
    Explanation("procassinit-reset-value", "PROCASSINIT", r"^Procedural assignment to declaration with initial value",
                "Amaranth gives every register its reset value also as a declaration initialiser (the power-up "
                "value); the synchronous reset assigns the same value"),
    Explanation("caseincomplete-default", "CASEINCOMPLETE", r"^Case values incompletely covered",
                "Yosys writes a process as a default assignment followed by a casez over the meaningful values; "
                "values not covered keep the default", source=r"\bcasez\b"),
)


@dataclass
class LintResult:
    """Warnings of one top: those explained (with the explanation) and those not."""

    top: str
    explained: list = field(default_factory=list)  # (Warning_, Explanation)
    unexplained: list = field(default_factory=list)  # Warning_
    status: int = 0
    output: str = ""


def _verilator(args: list[str]) -> tuple[int, str]:
    r = subprocess.run([verilator_env(), "--lint-only", "-Wall", *args], capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr)


def _warnings(output: str, directory: Path) -> list[Warning_]:
    out, texts = [], {}
    for line in output.splitlines():
        m = _MSG_RE.match(line)
        if not m:
            continue
        rule, path, ln, _, msg = m.groups()
        f = Path(path).name
        if f not in texts:
            p = directory / f
            texts[f] = p.read_text().splitlines() if p.is_file() else []
        src = texts[f][int(ln) - 1] if 0 < int(ln) <= len(texts[f]) else ""
        out.append(Warning_(rule, f, int(ln), msg, src))
    return out


def lint_top(directory: Path, top: str, sources: list[str]) -> LintResult:
    """Lint ``top`` over ``sources`` (file names in ``directory``) without waivers; classify every warning."""
    res = LintResult(top)
    res.status, res.output = _verilator(["--top-module", top, *[str(directory / s) for s in sources]])
    texts, ports = {}, {}
    for w in _warnings(res.output, directory):
        if w.file not in texts:
            text = (directory / w.file).read_text()
            texts[w.file] = text
            try:
                ports[w.file] = {p["name"] for p in ports_of_verilog(text, Path(w.file).stem)}
            except ValueError:
                ports[w.file] = set()
        why = next((e for e in EXPLAINED if e.covers(w, texts[w.file], ports[w.file])), None)
        if why is None:
            res.unexplained.append(w)
        else:
            res.explained.append((w, why))
    if res.status and not res.explained and not res.unexplained:  # an error, not a warning
        res.unexplained.append(Warning_("ERROR", top, 0, res.output.strip().splitlines()[0] if res.output else "?"))
    return res


#: The reviewed counts: ``{"<config>-<sram>": {"<file>": {"<pattern id>": count}}}``.
COUNTS_FILE = Path(__file__).resolve().parent / "lint_waivers.yaml"


def count_warnings(explained) -> dict:
    """``{file: {pattern id: count}}`` of explained warnings (each file, line and message once)."""
    out: dict = {}
    for w, why in explained:
        f = out.setdefault(w.file, {})
        f[why.id] = f.get(why.id, 0) + 1
    return {f: dict(sorted(c.items())) for f, c in sorted(out.items())}


def compare_counts(got: dict, want: dict | None, key: str) -> tuple[list[str], list[str]]:
    """(failures, notes): counts above ``want`` or without a record fail; counts below it are notes."""
    if want is None:
        return [f"{key}: no recorded lint counts in {COUNTS_FILE.name} (record them with "
                f"`dbpim lint <dir> --update` and review the diff)"], []
    bad, notes = [], []
    for f, c in got.items():
        for pid, n in c.items():
            rec = want.get(f, {}).get(pid)
            if rec is None:
                bad.append(f"{key}: {f}: {n} warnings of pattern {pid}, none recorded")
            elif n > rec:
                bad.append(f"{key}: {f}: {n} warnings of pattern {pid}, {rec} recorded (grew by {n - rec})")
            elif n < rec:
                notes.append(f"{key}: {f}: {n} warnings of pattern {pid}, {rec} recorded (fewer: `--update`)")
    return bad, notes


def _load_counts(path: Path) -> dict:
    import yaml
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("counts", {}), dict):
        raise ValueError(f"{path}: counts: must be a mapping of <config>-<sram> to files to pattern counts")
    return data.get("counts", {})


def _save_counts(path: Path, counts: dict) -> None:
    import yaml

    from dbpim.model.outdir import write_file
    head = ("# Reviewed counts of `verilator --lint-only -Wall` warnings per configuration-SRAM mode, file and\n"
            "# waiver pattern (hw/lint.py EXPLAINED: the pattern and the reason it is no design bug).\n"
            "# `make lint` fails when a count grows or a warning matches no pattern. Rewritten by\n"
            "# `dbpim lint <dir> --update`; review the diff.\n")
    write_file(path, head + yaml.safe_dump({"counts": counts}, sort_keys=True, default_flow_style=False))


def lint_dir(directory, counts_file=None, update: bool = False) -> int:
    """Lint every block of ``directory``'s manifest; returns the number of failures (0: clean).

    A failure is a warning matching no pattern of :data:`EXPLAINED`, a
    Verilator error, or a pattern count above the record in ``counts_file``
    (default :data:`COUNTS_FILE`) for the manifest's configuration and SRAM
    mode. ``update`` records the current counts instead of comparing them.
    """
    d = Path(directory)
    man_path = d / "manifest.json"
    if not man_path.is_file():
        print(f"hw.lint: {d}: no manifest.json (run `make verilog` first)", file=sys.stderr)
        return 1
    man = json.loads(man_path.read_text())
    key = f"{man.get('config', '?')}-{man.get('sram', 'behavioural')}"
    results = [lint_top(d, e["top"], e["sources"]) for e in man["blocks"].values()]
    seen, explained = set(), []
    for r in results:
        for w, why in r.explained:
            if (w.rule, w.file, w.line, w.message) not in seen:
                seen.add((w.rule, w.file, w.line, w.message))
                explained.append((w, why))
    bad = 0
    for r in results:
        if r.unexplained:
            bad += 1
            print(f"{r.top}: FAILED ({len(r.unexplained)} warnings matching no waiver pattern)")
            for w in r.unexplained:
                print(f"  %Warning-{w.rule}: {w.file}:{w.line}: {w.message}\n      {w.source.strip()}", file=sys.stderr)
        else:
            print(f"{r.top}: ok ({len(r.explained)} warnings of reviewed patterns)")
    # records are kept per file without the module prefix (dbpim verilog's default prefix is the config's name)
    pre = f"{man['prefix']}_" if man.get("prefix") else ""
    got = {f.removeprefix(pre): c for f, c in count_warnings(explained).items()}
    path = Path(counts_file) if counts_file else COUNTS_FILE
    counts = _load_counts(path)
    if update:
        if bad:
            print(f"{path}: not updated: fix the warnings above first", file=sys.stderr)
            return bad
        old = counts.get(key, {})
        counts[key] = {**old, **got}  # a folder with some blocks only keeps the other files' records
        _save_counts(path, counts)
        print(f"{path}: recorded {sum(sum(c.values()) for c in got.values())} warnings of {key}")
        return 0
    fails, notes = compare_counts(got, counts.get(key), key)
    for n in notes:
        print(f"note: {n}")
    for f in fails:
        print(f"  {f}", file=sys.stderr)
    total = sum(sum(c.values()) for c in got.values())
    print(f"{key}: {total} warnings of {len({why.id for _, why in explained})} reviewed patterns in "
          f"{len(got)} files" + (f"; {len(fails)} counts above their record" if fails else ", within the record"))
    return bad + len(fails)
