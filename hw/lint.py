"""Lint the generated Verilog with ``verilator --lint-only -Wall``; waivers per file and line.

Usage: ``dbpim lint <dir>`` (``make lint``). Every block of the
folder's ``manifest.json`` is linted as top module with its ``sources``.

No warning category is waived as a whole. Each warning Verilator reports is
checked against :data:`EXPLAINED`: a warning rule, the shape of its message and,
where it matters, of the flagged source line, that the Verilog Amaranth and
Yosys write produces by construction, each with the reason it is not a design
bug. A warning that matches gets one ``lint_off -rule R -file F -lines L``
entry, under its reason, in a Verilator control file (``--waivers``, default
``<dir>-lint.vlt`` next to the folder, which belongs to ``dbpim verilog``);
lint then runs again with that file and must be silent. A warning that matches no explanation fails the run (exit status 1)
and is printed: MULTIDRIVEN, LATCH, COMBDLY, UNOPTFLAT, UNDRIVEN, BLKSEQ, an
unused port, an operator on mismatched widths that is not one of Yosys'
forms, ...
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hw.common import ports_of_verilog
from hw.tools import verilator_env

__all__ = ["EXPLAINED", "Warning_", "lint_dir", "lint_top", "waivers_path"]
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
    """Why warnings of one shape are not design bugs.

    ``message`` must match the warning's message; ``source`` (optional) the
    flagged source line; ``check`` (optional) gets (warning, file text, port
    names) and must return True.
    """

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


#: The warnings Amaranth's Yosys back end produces by construction, each with its reason.
EXPLAINED = (
    Explanation("UNUSEDSIGNAL", r"^Signal is not used: ",
                "Amaranth names every payload field, array element and named intermediate for waveforms; Yosys "
                "writes such a name as a plain alias (assign name = net) of the net the logic reads",
                check=_is_plain_alias),
    Explanation("UNUSEDSIGNAL", r"^Signal is not used: '\$\d+'",
                "an output of a sub-block instance this block does not need (the IPU's empty strobe, the o_valid "
                "of every adder tree but the first)", check=_is_unneeded_instance_output),
    Explanation("UNUSEDSIGNAL", r"^Signal is not used: '\$\d+'",
                "Amaranth's decode of one FSM state that nothing reads", check=_is_fsm_decode),
    Explanation("UNUSEDSIGNAL", r"^Signal is not used: 'rst'$",
                "the block's only state is memory, which reset does not clear (docs/design.md §5); Amaranth "
                "still gives it the clock domain's reset port", check=_is_reset_without_state),
    Explanation("UNUSEDSIGNAL", r"^Bits of signal are not used: '\$\d+'",
                "a Yosys temporary computed at its operation's full width of which Amaranth keeps the low bits "
                "(an explicit truncation)", check=_is_yosys_temporary),
    Explanation("WIDTHEXPAND", r"(LHS|RHS)'s CONST '.*?' generates",
                "Yosys writes constants at their minimal width; Verilog zero-extends them to the other operand, "
                "as Amaranth specifies"),
    Explanation("WIDTHEXPAND", r"^Operator (ADD|SUB) expects \d+ bits on the (LHS|RHS), but (LHS|RHS)'s SIGNED generates",
                "an Amaranth signed add/subtract: Yosys writes the operands at their own width inside $signed() "
                "and Verilog sign-extends them to the result width", source=r"\$signed\("),
    Explanation("WIDTHEXPAND", r"^Operator SHIFTL expects \d+ bits on the LHS, but LHS's (SIGNED|REPLICATE|VARREF) generates",
                "an Amaranth left shift, whose result is wider than its operand: Verilog extends the operand to "
                "the result width first", source=r"<<"),
    Explanation("WIDTHTRUNC", r"^Operator ASSIGNW expects \d+ bits on the Assign RHS, but Assign RHS's SHIFTR generates",
                "a variable bit select (Amaranth bit_select / word_select) that Yosys writes as a right shift "
                "assigned to a narrower net: the low bits are the selection", source=r"assign .* = .* >> .*;"),
    Explanation("WIDTHTRUNC", r"^Logical operator LOGNOT expects 1 bit on the LHS",
                "a reduce-NOR (Amaranth v == 0 / ~v.any()) that Yosys writes as !v, one bit by definition",
                source=r"!\s*[\\\w$]"),
    Explanation("PROCASSINIT", r"^Procedural assignment to declaration with initial value",
                "Amaranth gives every register its reset value also as a declaration initialiser (the power-up "
                "value); the synchronous reset assigns the same value"),
    Explanation("CASEINCOMPLETE", r"^Case values incompletely covered",
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


def _ranges(lines: list[int]) -> list[str]:
    out, lines = [], sorted(set(lines))
    start = prev = lines[0]
    for n in lines[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return out


def control_file(explained) -> str:
    """The Verilator control file: one ``lint_off -rule -file -lines`` per waived line (range), under its reason."""
    groups: dict = {}
    for w, why in explained:
        groups.setdefault(why, {}).setdefault((w.rule, w.file), []).append(w.line)
    out = ["`verilator_config", "// Generated by `dbpim lint` (make lint): every waiver is one warning of",
           "// one file and line, whose shape hw/lint.py explains; the reason is above each group.", ""]
    for why in EXPLAINED:
        if why not in groups:
            continue
        out.append(f"// {why.rule}: {why.reason}")
        for (rule, f), lines in sorted(groups[why].items()):
            out += [f'lint_off -rule {rule} -file "*/{f}" -lines {r}' for r in _ranges(lines)]
        out.append("")
    return "\n".join(out)


def waivers_path(directory) -> Path:
    """Default control file of a Verilog folder: ``<folder>-lint.vlt`` next to it."""
    d = Path(directory).resolve()
    return d.parent / f"{d.name}-lint.vlt"


def lint_dir(directory, waivers=None) -> int:
    """Lint every block of ``directory``'s manifest; write the waivers; returns the number of failing tops."""
    from model.outdir import write_file

    d = Path(directory)
    man_path = d / "manifest.json"
    if not man_path.is_file():
        print(f"hw.lint: {d}: no manifest.json (run `make verilog` first)", file=sys.stderr)
        return 1
    blocks = json.loads(man_path.read_text())["blocks"]
    results = [lint_top(d, e["top"], e["sources"]) for e in blocks.values()]
    seen, explained = set(), []
    for r in results:
        for w, why in r.explained:
            if (w.rule, w.file, w.line, w.message) not in seen:
                seen.add((w.rule, w.file, w.line, w.message))
                explained.append((w, why))
    vlt = Path(waivers) if waivers else waivers_path(d)
    write_file(vlt, control_file(explained) + "\n")
    bad = 0
    for r, e in zip(results, blocks.values()):
        status, output = _verilator([str(vlt), "--top-module", r.top, *[str(d / s) for s in e["sources"]]])
        if r.unexplained or status:
            bad += 1
            print(f"{r.top}: FAILED ({len(r.unexplained)} warnings without an explanation)")
            for w in r.unexplained:
                print(f"  %Warning-{w.rule}: {w.file}:{w.line}: {w.message}\n      {w.source.strip()}", file=sys.stderr)
            if status and not r.unexplained:
                print(output, file=sys.stderr)
        else:
            print(f"{r.top}: ok ({len(r.explained)} warnings waived by file and line)")
    entries = sum(ln.startswith("lint_off") for ln in vlt.read_text().splitlines())
    print(f"{vlt}: {len(explained)} warnings waived in {entries} lint_off lines (file and line ranges), "
          f"{len({why for _, why in explained})} explained shapes")
    return bad
