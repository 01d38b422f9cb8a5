"""Automatic RTL mutation (``make mutate``): does the regression catch a broken design?

Mutants are generated on the emitted Verilog of a unit (:data:`UNITS`: the
PIM core ``dbpim_core`` and every module it instantiates, the SIMD core
``dbpim_simd``, the window generator ``dbpim_window``, the chip's controllers
and top ``dbpim_chip_ctrl``, ``dbpim_pim_ctrl``, ``dbpim_chip`` on the native
chip harness with :func:`chip_suite`; small configuration by default), line
by line:

* ``cmp``: a comparison flipped or made (non-)strict (``<`` -> ``<=``, ``==`` -> ``!=``, ...);
* ``const``: a constant operand off by one (``8'h10`` -> ``8'h0f`` / ``8'h11``);
* ``arith``: ``+`` <-> ``-``, ``&`` <-> ``|``;
* ``swap``: the operands of a non-commutative operator swapped;
* ``stuck``: a named signal's continuous assignment stuck at 0 or at 1;
* ``reset``: the reset of one register dropped (its ``if (rst)`` never taken).

All mutants live in one build (*mutant schemata*): each mutated expression
becomes ``(dbpim_mutant == k) ? mutated : original``, ``dbpim_mutant`` is read
from the plusarg ``+DBPIM_MUTANT=k`` (0 = the design as generated), so one
Verilator build of the native core harness (:mod:`verif.native`) runs every
mutant. Each mutant runs the *kill suite* (:func:`kill_suite`), a fast subset
of the core regression on the same harness: random layers (signed and
unsigned) at full rate (results, ``tlast``, ``CYCLES``, ``STATUS`` of the twin
:func:`model.core.run_core`) and under random stalls (results), a random
layer whose kept inputs make the row packer carry past a full row, a random
layer of several passes of ``out_pixels`` pixels whose first windows' masks
differ, a dense layer with unsigned and with signed inputs, the dense layer's
tiles with their filter slots rotated (column 0 owned by slot 1, 2, ...: a column map the
compiler never writes, the core accepts), resets at 5 %, 50 %, 70 % and 95 %
of a layer and while held results are on offer (then ``STATUS`` and
``CYCLES`` read 0, the results out before it right) each then rerun,
resets (``aresetn`` low one cycle) at every cycle of two one-pixel layers of a
one-row tile then a full row tile twice, each followed by the same START as
soon as the core takes it (harness ``rerun``), a layer of two filter tiles
with every result held 300 cycles on ``m_axis_tready`` (harness ``hold``),
one-pixel layers of K = 1 .. ``n_comp`` (the shortest delivery: ``CYCLES``), a
chain of ``core.max_row_tiles`` row tiles whose last link's first mask is new, the
three ``STATUS.ERROR_CODE`` aborts (code 2 also with ``pixels`` and ``n_out``
at their maxima and for an accumulation chain one row tile longer than
``core.max_row_tiles``; code 1 also for ``n_kept`` and ``pixels`` one past
their ranges, as the first and as the second descriptor; code 1 for ``LAYER.N_DESC``
one past ``core.descriptors``, after a START of exactly ``core.descriptors`` passes) each then a good
START, a good START after an odd mask word written after the descriptors, the constant registers, ``STATUS`` and ``CYCLES`` after a reset that
follows DONE, and, where they fit the configuration (``tests/coverage_core.yaml``),
the designed layers of the coverage regression (:func:`verif.core_tb.coverage_layers`: every descriptor field at its
extremes), a chain of exactly ``core.max_row_tiles`` row tiles, masks at the last mask windows (and one past:
code 1), and the bus (SLVERR with read data 0 for unaligned accesses, AW or W alone not taken, no response or
result showing after any reset, one with a response pending included). A mutant is *killed* when any of that
differs, the harness fails or it hangs.

The SIMD core and the window generator have no native harness: their
schemata build is a cocotb Verilator build (:func:`verif.rtl.run_test`, the
plusarg passed to the simulator) and each mutant runs that unit's cocotb
regression once, with stalls, at a fixed seed (:class:`Unit`: ``simd_stream``
of ``verif/test_simd.py``: a job of every op, the corners and ties, every
cause of ``err``, a reset while a job runs, each input take and output beat
at its cycle; ``window_stream`` of ``verif/test_window.py``: the designed
job, random jobs, a reset while a pass streams, every beat). Only the unit's
own module is mutated (its memories are the shared ``sram`` blocks).

:func:`run_mutation` returns a :class:`MutationReport` (killed K / N and each
survivor's file, line and mutation), written by ``dbpim mutate`` (the
``make mutate`` command) as ``mutate.json`` and ``mutate.txt``. A survivor on
the reviewed list of equivalent mutants (:data:`EQUIVALENT_LIST`,
``verif/mutants_equivalent.yaml``: each entry names its configuration, file,
kind, mutation and the original and mutated line text, with the reason it
cannot differ, or differs only where no program can reach; entries may name
one mutant, a pattern, or the structural class ``dead``, see
:class:`Equivalent`) is reported as ``equivalent``; the others are
*unexplained* (a missing test).
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["Mutant", "generate_mutants", "select_mutants", "UnknownMutantError", "schemata", "apply_mutant",
           "KillSuite", "kill_suite", "check_suite", "build_mutant_harness", "core_sources", "run_mutant",
           "MutationReport", "run_mutation",
           "MUTANT_PLUSARG", "KINDS", "EQUIVALENT_LIST", "Equivalent", "load_equivalents",
           "stale_equivalents", "Unit", "UNITS", "DEFAULT_MUTANTS", "unit_sources", "unit_mutants", "build_unit_harness",
           "run_unit_mutant", "normalize", "live_signals", "dead_mutants", "CLASSES", "generated_sources",
           "MutantFacts", "mutant_facts", "ChipSuite", "chip_suite", "check_chip_suite", "CHIP_RUN_LIMIT",
           "build_chip_harness", "run_chip_mutant"]

#: the plusarg that selects a mutant in a schemata build (0: none)
MUTANT_PLUSARG = "DBPIM_MUTANT"
#: mutation kinds, in the order :func:`generate_mutants` tries them on a line
KINDS = ("cmp", "const", "arith", "swap", "stuck", "reset")
_SEL = "dbpim_mutant"
#: the reviewed list of equivalent mutants (read by :func:`run_mutation`)
EQUIVALENT_LIST = Path(__file__).with_name("mutants_equivalent.yaml")

# An operand of Yosys's write_verilog: an escaped identifier (always followed by a space), a plain one, either
# with a part select; a sized constant; $signed(...).
_OPND = (r"(?:\$signed\([^()]*\)|\\\S+ (?:\[[^\]]*\])?|[A-Za-z_][\w$]*(?:\[[^\]]*\])?"
         r"|\d+'[bhd][0-9a-fA-F_]+)")
_BINARY = re.compile(rf"^(?P<a>{_OPND})\s*(?P<op>==|!=|<=|>=|<|>|\+|-|&|\|)\s*(?P<b>{_OPND})\s*$")
_ASSIGN = re.compile(r"^(?P<ind>\s*)assign (?P<lhs>.+?) = (?P<rhs>.+);\s*$")
_CONST = re.compile(r"^(?P<w>\d+)'h(?P<v>[0-9a-fA-F]+)$")
_CMP_FLIP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
_ARITH_FLIP = {"+": "-", "-": "+", "&": "|", "|": "&"}
_NONCOMMUTATIVE = {"-", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Mutant:
    """One mutation: ``file`` line ``line`` (1-based) of the generated Verilog, ``original`` -> ``mutated``.

    ``kind`` is one of :data:`KINDS`; ``what`` says it in words; ``index`` is
    the mutant's number in its schemata build (from 1).
    """

    index: int
    file: str
    line: int
    kind: str
    what: str
    original: str
    mutated: str


def _const_variants(c: str) -> list[str]:
    m = _CONST.match(c.strip())
    if not m:
        return []
    w, v = int(m["w"]), int(m["v"], 16)
    digits = len(m["v"])
    return [f"{w}'h{u:0{digits}x}" for u in (v - 1, v + 1) if 0 <= u < 1 << w]


def _line_mutations(text: str):
    """(kind, what, mutated expression or None, original expression) of one ``assign`` line's mutations."""
    m = _ASSIGN.match(text)
    if not m:
        return
    lhs, rhs = m["lhs"].strip(), m["rhs"]
    b = _BINARY.match(rhs)
    if b:
        x, op, y = b["a"], b["op"], b["b"]
        if op in _CMP_FLIP:
            yield "cmp", f"`{op}` -> `{_CMP_FLIP[op]}`", f"{x} {_CMP_FLIP[op]} {y}", rhs
        for side, c in (("left", x), ("right", y)):
            for v in _const_variants(c):
                yield "const", f"{side} constant {c.strip()} -> {v}", \
                    (f"{v} {op} {y}" if side == "left" else f"{x} {op} {v}"), rhs
        if op in _ARITH_FLIP:
            yield "arith", f"`{op}` -> `{_ARITH_FLIP[op]}`", f"{x} {_ARITH_FLIP[op]} {y}", rhs
        if op in _NONCOMMUTATIVE and x.strip() != y.strip():
            yield "swap", f"operands of `{op}` swapped", f"{y} {op} {x}", rhs
    if not lhs.startswith("\\"):  # a named signal (not one of Yosys's $ temporaries)
        # a signed expression stays signed (its sign extension to the left-hand side's width is kept)
        zero, one = ("$signed(1'h0)", "$signed(2'h1)") if "$signed(" in rhs else ("1'h0", "1'h1")
        for what, v in ((f"{lhs} stuck at 0", zero), (f"{lhs} stuck at 1 (bit 0)", one)):
            if rhs.strip() != v:  # a signal tied to that constant already: no change, no mutant
                yield "stuck", what, v, rhs


def _reset_mutations(lines: list[str]):
    """(line index, register) of each ``if (rst) begin`` of a next-state process (``reg = ...`` before it)."""
    reg = None
    for k, ln in enumerate(lines):
        s = ln.strip()
        if s.startswith("always @*"):
            reg = None
        elif reg is None and re.match(r"^\\?\S+\s*= [^=].*;$", s) and not s.startswith("if"):
            reg = s.split("=")[1].strip().rstrip(";").strip()  # `\$248 = fin_held;`: the register it computes
        elif s == "if (rst) begin" and reg and re.match(r"^[A-Za-z_][\w$]*(\[[^\]]*\])?$", reg):
            yield k, reg


def _unread(text: str, name: str) -> bool:
    """``name`` is a plain alias nothing reads: declared and assigned only, not a port (a stuck-at on it is
    an equivalent mutant)."""
    base = name.split("[")[0]
    # not a port name of an instance connection (``.awaddr(...)``) nor part of an escaped identifier
    uses = len(re.findall(rf"(?<![\w\\$.]){re.escape(base)}(?![\w$])", text))
    header = re.search(r"^module [^;]*;", text, flags=re.M)
    port = header and re.search(rf"[(, ]{re.escape(base)}[,)]", header[0])
    return uses <= 2 and not port


def generate_mutants(sources: dict[str, str]) -> list[Mutant]:
    """Every mutant of the Verilog ``sources`` (file name -> text), numbered from 1 in file and line order.

    Stuck-at mutants of a signal nothing reads (a name alias Yosys keeps) are left out: they cannot differ.
    """
    out = []
    for name in sorted(sources):
        text = sources[name]
        lines = text.splitlines()
        resets = dict(_reset_mutations(lines))
        for k, ln in enumerate(lines):
            for kind, what, new, old in _line_mutations(ln):
                if kind == "stuck" and _unread(text, _ASSIGN.match(ln)["lhs"].strip()):
                    continue
                out.append((name, k + 1, kind, what, ln.strip(), ln.replace(f" = {old};", f" = {new};").strip()))
            if k in resets:
                out.append((name, k + 1, "reset", f"reset of {resets[k]} dropped", ln.strip(), "if (1'h0) begin"))
    return [Mutant(i + 1, *m) for i, m in enumerate(out)]


class UnknownMutantError(ValueError):
    """An ``only`` index (:func:`select_mutants`) that no generated mutant has; one line, starting ``only: ``."""


def select_mutants(mutants: list[Mutant], count: int | None, seed: int = 0, only=None) -> list[Mutant]:
    """``count`` mutants spread over the kinds (round robin over a seeded shuffle of each kind); all when None.
    With ``only`` (mutant indices) those mutants, whatever ``count`` and ``seed`` (an :class:`UnknownMutantError`
    names any index no mutant has)."""
    if only is not None:
        only = {int(i) for i in only}
        missing = sorted(only - {m.index for m in mutants})
        if missing:
            raise UnknownMutantError(f"only: no mutant {', '.join(f'#{i}' for i in missing)} among the "
                                     f"{len(mutants)} generated (indices 1 .. {len(mutants)})")
        return [m for m in mutants if m.index in only]
    if count is None or count >= len(mutants):
        return list(mutants)
    rng = np.random.default_rng(seed)
    by_kind = {k: [m for m in mutants if m.kind == k] for k in KINDS}
    for v in by_kind.values():
        rng.shuffle(v)
    out = []
    while len(out) < count:
        for k in KINDS:
            if by_kind[k] and len(out) < count:
                out.append(by_kind[k].pop())
    return sorted(out, key=lambda m: m.index)


def _declare(text: str) -> str:
    """``text`` with ``dbpim_mutant`` (from the plusarg) declared in each module."""
    decl = (f"  reg [15:0] {_SEL};\n  initial begin\n    if (!$value$plusargs(\"{MUTANT_PLUSARG}=%d\", {_SEL}))"
            f" {_SEL} = 16'd0;\n  end\n")
    return re.sub(r"(^module [^;]*;\n)", lambda m: m[1] + decl, text, flags=re.M)


def schemata(sources: dict[str, str], mutants: list[Mutant]) -> dict[str, str]:
    """The sources with every mutant in, each selected by ``dbpim_mutant == index`` (0 = none)."""
    out = {}
    for name, text in sources.items():
        lines = text.splitlines()
        for mu in (m for m in mutants if m.file == name):
            ln = lines[mu.line - 1]
            if mu.kind == "reset":
                lines[mu.line - 1] = ln.replace("if (rst) begin", f"if (rst && {_SEL} != 16'd{mu.index}) begin")
                continue
            a = _ASSIGN.match(ln)
            old = a["rhs"]
            new = _ASSIGN.match(mu.mutated)["rhs"]
            lines[mu.line - 1] = f"{a['ind']}assign {a['lhs']} = ({_SEL} == 16'd{mu.index}) ? ({new}) : ({old});"
        out[name] = _declare("\n".join(lines) + "\n") if any(m.file == name for m in mutants) else text
    return out


def apply_mutant(sources: dict[str, str], mutant: Mutant) -> dict[str, str]:
    """The sources with one mutant applied in place (a standalone mutated design)."""
    lines = sources[mutant.file].splitlines()
    ln = lines[mutant.line - 1]
    lines[mutant.line - 1] = ln[:len(ln) - len(ln.lstrip())] + mutant.mutated
    return {**sources, mutant.file: "\n".join(lines) + "\n"}


# --------------------------------------------------------------------------- names and structure

_TEMP = re.compile(r"\$\d+(?![\w$])")


def normalize(text: str) -> str:
    r"""``text`` with the numbers Yosys and Amaranth give their names written ``$N`` (``\$127`` -> ``\$N``,
    ``\w_en$113`` -> ``\w_en$N``): they are renumbered by unrelated RTL changes, so the reviewed list keys on
    the rest of the text."""
    return _TEMP.sub("$N", text)


# ----------------------------------------------------------------- structural liveness (a path to an output)

_ID = re.compile(r"\\\S+|(?<![\w$'\\])[A-Za-z_][\w$]*")
_KEYWORDS = {"if", "else", "begin", "end", "case", "casez", "casex", "endcase", "default", "assign", "always",
             "posedge", "negedge", "or", "signed", "reg", "wire", "input", "output", "initial", "full_case",
             "parallel_case", "module", "endmodule"}


def _ids(text: str) -> set:
    return {t for t in _ID.findall(re.sub(r"\(\*.*?\*\)|/\*.*?\*/|\"[^\"]*\"", " ", text)) if t not in _KEYWORDS}


def _target(stmt: str):
    m = re.match(r"^\s*(\\\S+|[A-Za-z_][\w$]*)\s*(?:\[[^=]*\])*\s*<?=", stmt)
    return m[1] if m else None


def _parse_module(text: str):
    """(name, port -> direction, signal -> signals it feeds, instances (module, {port: expression})) of one
    module of Yosys's ``write_verilog``. Every signal a process reads feeds every signal it assigns (an
    over-approximation: it can only make more signals live)."""
    name = re.search(r"^module\s+(\S+?)\s*\(", text, flags=re.M)[1]
    ports = dict((n, d) for d, n in re.findall(
        r"^\s*(input|output|inout)\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?(\\\S+|[\w$]+)\s*;", text, flags=re.M))
    edges, insts, lines, k = {}, [], text.splitlines(), 0

    def add(srcs, dsts):
        for x in srcs:
            edges.setdefault(x, set()).update(dsts)

    while k < len(lines):
        s = lines[k].strip()
        a = re.match(r"^assign\s+(.+?)\s*=\s*(.+);$", s)
        if a:
            lhs = _target(a[1] + " =")
            # a part select's index feeds the signal too; a concatenation assigns every signal in it
            targets = {lhs} if lhs else _ids(a[1])
            add(_ids(a[2]) | (_ids(a[1]) - targets), targets)
            k += 1
            continue
        if s.startswith(("always", "initial")):
            block = [s]
            depth = len(re.findall(r"\bbegin\b", s)) - len(re.findall(r"\bend\b", s))
            k += 1
            if depth == 0 and not s.endswith(";") and k < len(lines):
                block.append(lines[k].strip())
                k += 1
            while depth > 0 and k < len(lines):
                t = lines[k].strip()
                block.append(t)
                depth += len(re.findall(r"\bbegin\b", t)) - len(re.findall(r"\bend\b", t))
                k += 1
            if s.startswith("always"):
                targets = {_target(re.sub(r"^\s*if\s*\(.*\)\s*", "", part.strip()))
                           for t in block for part in re.split(r"\bbegin\b|\bend\b|\belse\b", t)} - {None}
                add(_ids("\n".join(block)) - {"clk"}, targets)
            continue
        m = re.match(r"^(\\\S+|[\w$]+)\s+(\\\S+|[\w$]+)\s*\($", s)
        if m and not s.startswith(("module", "assign")):
            conns, k = {}, k + 1
            while k < len(lines) and not lines[k].strip().startswith(");"):
                # (a port whose name is a Verilog keyword is escaped: `.\signed (\signed ),`)
                c = re.match(r"^\.(\\\S+|[\w$]+)\s*\((.*)\),?$", lines[k].strip())
                if c:
                    conns[c[1]] = c[2]
                k += 1
            insts.append((m[1], conns))
        k += 1
    return name, ports, edges, insts


def _modules(sources: dict[str, str]) -> dict:
    mods = {}
    for text in sources.values():
        for chunk in re.split(r"(?=^module )", text, flags=re.M):
            if chunk.startswith("module "):
                n, ports, edges, insts = _parse_module(chunk)
                mods[n] = (ports, edges, insts)
    return mods


def live_signals(sources: dict[str, str], top: str, mods: dict | None = None) -> dict[str, set]:
    """Module name -> the signals of it that have a structural path (assignments, processes, instance ports)
    to an output of ``top``; a signal outside its module's set can change no output (dead logic)."""
    mods = mods or _modules(sources)
    if top not in mods:
        raise ValueError(f"top: no module {top!r} in the sources")
    live = {n: set() for n in mods}
    live[top] = {p for p, d in mods[top][0].items() if d != "input"}
    rev = {n: {} for n in mods}
    for n, (_, edges, _) in mods.items():
        for x, ds in edges.items():
            for d in ds:
                rev[n].setdefault(d, set()).add(x)
    changed = True
    while changed:
        changed = False
        for n, (_, _, insts) in mods.items():
            for mod, conns in insts:
                for p, expr in conns.items() if mod in mods else ():
                    d = mods[mod][0].get(p)
                    if d == "input" and p in live[mod] and not _ids(expr) <= live[n]:
                        live[n] |= _ids(expr)
                        changed = True
                    elif d != "input" and _ids(expr) & live[n] and p not in live[mod]:
                        live[mod].add(p)
                        changed = True
            stack = list(live[n])
            while stack:
                for x in rev[n].get(stack.pop(), ()):
                    if x not in live[n]:
                        live[n].add(x)
                        changed = True
                        stack.append(x)
    return live


def _mutated_signal(mutant: Mutant) -> str:
    """The signal a mutant changes: the register whose reset it drops, or its assignment's left-hand side."""
    if mutant.kind == "reset":
        return mutant.what[len("reset of "):-len(" dropped")]
    return _target(mutant.original.split(" = ")[0][len("assign "):] + " =")  # None: not one signal


_YOSYS_TEMP = re.compile(r"^\\\$\d+$")


@dataclass(frozen=True)
class MutantFacts:
    """What the generated Verilog says about a mutant: ``dead`` (its changed signal has no structural path to an
    output of the unit's top: no stimulus can tell it from the design) and ``drives`` (the named signals its
    changed signal reaches through Yosys's temporaries alone, normalized: which copy of a check it is)."""

    dead: bool = False
    drives: tuple = ()
    #: the mutant's rank (from 1), in line order, among the mutants of its file with the same kind, mutation,
    #: original and mutated text after :func:`normalize` and the same ``drives`` (Yosys's copies of one expression)
    occurrence: int = 1


def _text_key(mutant: Mutant) -> tuple:
    """What names a mutant in the reviewed list, less its file: kind, mutation, original and mutated text
    (normalized)."""
    return (mutant.kind, *(normalize(getattr(mutant, f)) for f in ("what", "original", "mutated")))


def _drives(edges: dict, sig) -> tuple:
    """The named signals (normalized, sorted) ``sig`` reaches through Yosys's temporaries alone (``edges``: a
    module's signal -> the signals it drives)."""
    named, seen, stack = set(), {sig}, [sig]
    while stack:
        for x in edges.get(stack.pop(), ()):
            if x in seen:
                continue
            seen.add(x)
            if _YOSYS_TEMP.match(x):
                stack.append(x)
            else:
                named.add(normalize(x))
    return tuple(sorted(named))


def mutant_facts(sources: dict[str, str], mutants: list, top: str) -> dict:
    """:class:`MutantFacts` of each of ``mutants`` (of ``sources``, unit top module ``top``); ``occurrence`` ranks
    each among every mutant of its file (not only ``mutants``)."""
    mods = _modules(sources)
    live = live_signals(sources, top, mods)
    module = {n: re.search(r"^module\s+(\S+?)\s*\(", t, flags=re.M)[1] for n, t in sources.items()}
    rank = {}  # (file, line, mutated text) -> occurrence
    for name in sorted({m.file for m in mutants}):
        edges, seen = mods[module[name]][1], {}
        for m in generate_mutants({name: sources[name]}):  # a file's mutants depend on its own text alone
            key = (_text_key(m), _drives(edges, _mutated_signal(m)))
            rank[(name, m.line, m.mutated)] = seen[key] = seen.get(key, 0) + 1
    out = {}
    for m in mutants:
        sig, mod = _mutated_signal(m), module[m.file]
        out[m] = MutantFacts(dead=sig is not None and sig not in live.get(mod, ()), drives=_drives(mods[mod][1], sig),
                             occurrence=rank.get((m.file, m.line, m.mutated), 1))
    return out


def dead_mutants(sources: dict[str, str], mutants: list, top: str) -> set:
    """The ``mutants`` of ``sources`` (a set) whose changed signal has no structural path to an output of
    ``top`` (:func:`live_signals`): no stimulus can tell them from the design."""
    return {m for m, f in mutant_facts(sources, mutants, top).items() if f.dead}


# --------------------------------------------------------------------------- the reviewed equivalents

#: the entry classes besides one named mutant (:class:`Equivalent` ``cls``)
CLASSES = ("dead",)


@dataclass(frozen=True)
class Equivalent:
    """A reviewed equivalent mutant, or a reviewed class of them, and why.

    ``config`` is the hardware configuration's name the entry was reviewed on; ``reason`` says in one line why
    the mutants it names cannot differ. An entry names mutants in one of three ways:

    * one mutant: ``file``, ``kind``, ``what``, ``original`` and ``mutated`` of the :class:`Mutant`, compared
      after :func:`normalize` (Yosys's renumbered temporaries do not make it stale);
    * a pattern: ``match`` maps some of ``what``, ``original``, ``mutated`` to regular expressions that must
      match the whole normalized text (``file`` and ``kind`` exact); ``count`` mutants must match;
    * a class (``cls``, :data:`CLASSES`): ``dead``, every mutant whose changed signal has no structural path to
      an output of the unit's top (:func:`dead_mutants`).

    ``drives`` (a named mutant or a pattern) also requires the named signals the mutant reaches through Yosys's
    temporaries (:class:`MutantFacts`) to be exactly these: it tells Yosys's copies of one check apart.

    ``occurrence`` (a named mutant with ``drives``) names the k-th (from 1), in line order, of its file's mutants
    with that text and those ``drives`` (:attr:`MutantFacts.occurrence`), where copies of one expression with the
    same text and ``drives`` differ: one equivalent, another a real fault. An unrelated edit that moves lines keeps
    it; one that adds or removes such a copy before it makes the entry name another copy (killed, so reported as a
    wrong entry) or none (stale).

    ``count`` (default 1 for a named mutant, at least 1 otherwise) is how many generated mutants the entry must
    name: anything else makes it stale (:func:`stale_equivalents`).
    """

    config: str
    reason: str
    file: str = ""
    kind: str = ""
    what: str = ""
    original: str = ""
    mutated: str = ""
    match: tuple = ()
    cls: str = ""
    count: int | None = None
    drives: tuple | None = None
    occurrence: int | None = None

    def matches(self, config: str, mutant: Mutant, facts: MutantFacts | None = None) -> bool:
        """This entry names ``mutant`` of configuration ``config`` (``facts``: its :class:`MutantFacts`)."""
        facts = facts or MutantFacts()
        if config != self.config:
            return False
        if self.cls:
            return self.cls == "dead" and facts.dead
        if (mutant.file, mutant.kind) != (self.file, self.kind):
            return False
        if self.drives is not None and tuple(sorted(map(normalize, self.drives))) != facts.drives:
            return False
        if self.occurrence is not None and facts.occurrence != self.occurrence:
            return False
        if self.match:
            return all(re.fullmatch(rx, normalize(getattr(mutant, f))) for f, rx in self.match)
        return all(normalize(getattr(mutant, f)) == normalize(getattr(self, f)) for f in ("what", "original",
                                                                                            "mutated"))


_NAMED = ("file", "kind", "what", "original", "mutated")


def load_equivalents(path: Path = EQUIVALENT_LIST) -> list[Equivalent]:
    """The reviewed equivalent mutants of ``path`` (a YAML list of mappings, the fields of :class:`Equivalent`).

    Raises
    ------
    ValueError
        ``path`` is unreadable, not such a list, or an entry misses a field, has another or an empty one,
        names an unknown kind or class, or has a pattern that is not a regular expression.
    """
    import yaml
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: unreadable ({str(e).splitlines()[0]})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: must be a list of mutants, got {type(data).__name__}")
    shapes = {"named": {"config", "reason", *_NAMED}, "pattern": {"config", "reason", "file", "kind", "match"},
              "class": {"config", "reason", "class"}}
    out = []
    for k, e in enumerate(data):
        where = f"{path}: entry {k + 1}"
        shape = next((n for n, f in shapes.items() if isinstance(e, dict)
                      and set(e) - {"count", "drives", "occurrence"} == f
                      and ("drives" not in e or n != "class") and ("occurrence" not in e or n == "named")), None)
        if shape is None:
            raise ValueError(f"{where}: must have exactly the fields {', '.join(shapes['named'])} (one mutant), "
                             f"or config, reason, file, kind, match (a pattern), or config, reason, class "
                             f"(optionally count; drives but for a class; occurrence for one mutant)")
        bad = [n for n in sorted(set(e) - {"match", "count", "drives", "occurrence"})
               if not isinstance(e[n], str) or not e[n].strip()]
        if bad:
            raise ValueError(f"{where}: field {bad[0]} must be a non-empty string")
        if "kind" in e and e["kind"] not in KINDS:
            raise ValueError(f"{where}: field kind is {e['kind']!r}, allowed: {', '.join(KINDS)}")
        if "class" in e and e["class"] not in CLASSES:
            raise ValueError(f"{where}: field class is {e['class']!r}, allowed: {', '.join(CLASSES)}")
        if "occurrence" in e and "drives" not in e:
            raise ValueError(f"{where}: field occurrence needs drives (it ranks the mutants with that text and drives)")
        for n in ("count", "occurrence"):
            v = e.get(n)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{where}: field {n} must be an integer >= 1, got {v!r}")
        count = e.get("count")
        match = ()
        if shape == "pattern":
            m = e["match"]
            if not isinstance(m, dict) or not m or not set(m) <= {"what", "original", "mutated"} \
                    or not all(isinstance(v, str) and v for v in m.values()):
                raise ValueError(f"{where}: field match must map some of what, original, mutated to a regular "
                                 f"expression")
            for f, rx in m.items():
                try:
                    re.compile(rx)
                except re.error as x:
                    raise ValueError(f"{where}: match.{f} is not a regular expression ({x})") from None
            match = tuple(sorted(m.items()))
        drives = e.get("drives")
        if drives is not None and (not isinstance(drives, list) or not all(isinstance(x, str) and x for x in drives)):
            raise ValueError(f"{where}: field drives must be a list of signal names")
        fields = {n: e[n] for n in ("config", "reason", *_NAMED) if n in e}
        out.append(Equivalent(**fields, match=match, cls=e.get("class", ""), count=count,
                              drives=None if drives is None else tuple(drives), occurrence=e.get("occurrence")))
    return out


def stale_equivalents(equivalents: list, config: str, mutants: list, facts: dict | None = None) -> list:
    """The entries of ``equivalents`` for configuration ``config`` that do not name as many of ``mutants`` (all
    the mutants generated for it; ``facts``: their :class:`MutantFacts`, :func:`mutant_facts`) as they must
    (``count``; one for a named mutant, at least one otherwise): stale entries, to review again."""
    facts = facts or {}
    out = []
    for e in equivalents:
        if e.config != config:
            continue
        n = sum(e.matches(config, m, facts.get(m)) for m in mutants)
        want = e.count if e.count is not None else (1 if not (e.match or e.cls) else None)
        if n == 0 or (want is not None and n != want):
            out.append(e)
    return out


# --------------------------------------------------------------------------- the kill suite

@dataclass
class KillSuite:
    """Stimulus lines of the native core harness and what each START must give (``None``: not checked)."""

    lines: list
    #: per START in order: (label, beats or None, cycles or None, status, tlast ends or None)
    expect: list
    #: per ``read`` line in order: (address, value)
    reads: list
    #: per aborted START in order: (label, the START's results; those out before the reset are a prefix)
    aborted: list = None
    #: the bus lines in order (``idle``, ``bread``, ``bwrite`` of verif/native/core_main.cpp), as they must read
    bus: list = None


def _random_program(params, rng, signed: bool, k_range=None, pixels=None):
    from dbpim.model.compile import compile_layer
    from dbpim.model.core import compile_program
    from dbpim.model.quant import prune_quantize
    from dbpim.model.spec import input_range
    mc = params.macro
    K = int(rng.integers(*(k_range or (5, 3 * mc.capacity_rows))))
    N = int(rng.integers(1, 3 * mc.group_size))
    u = rng.normal(0, 1, (K, N)) * rng.choice([0.5, 4.0, 30.0, 90.0], N)
    u[rng.random((K, N)) < 0.05] = -128.0
    q = prune_quantize(u, mc, float(rng.choice([0.0, 0.3, 0.7])), scale=1.0)
    comp = compile_layer(q.w, q.phi, q.mask, mc, q.group_size)
    P = int(rng.integers(1, 12)) if pixels is None else pixels
    lo, hi = input_range(signed)
    xs = rng.integers(lo, hi + 1, (1, P, K))
    xs[rng.random(xs.shape) < 0.4] = 0
    return compile_program(comp, P, params, signed), xs


def _packer_carries(prog) -> bool:
    """Some pass of ``prog`` makes the row packer hold more than ``n_comp`` inputs before its vector's last beat
    (the switch gives each window's kept inputs ``lanes`` per beat; a vector is a pass's windows of one pixel)."""
    mc = prog.params.macro
    for seg in prog.segments:
        for p in seg.passes:
            beats = [min(mc.lanes, k - b) for w in range(p.n_win)
                     for k in [int(np.sum(seg.masks[p.mask_base + w]))] for b in range(0, k, mc.lanes)]
            fill = 0
            for c in beats[:-1]:
                if fill + c > mc.n_comp:
                    return True
                fill = (fill + c) % mc.n_comp if fill + c >= mc.n_comp else fill + c
    return False


def _new_first_mask_at(prog, pixels: int) -> bool:
    """Some pass of ``prog`` after the first has ``pixels`` pixels and a first window whose mask differs from the
    first window's of the pass before it."""
    seg = prog.segments[0]
    return any(b.pixels == pixels and not np.array_equal(seg.masks[a.mask_base], seg.masks[b.mask_base])
               for a, b in zip(seg.passes, seg.passes[1:]))


def _last_masks_at_the_top(prog, windows: int):
    """``prog`` with each segment's last pass's masks copied to the last of ``windows`` mask windows (its
    ``mask_base + n_win = windows``): the same results (where the masks before it leave room)."""
    segs = []
    for seg in prog.segments:
        p = seg.passes[-1]
        top = windows - p.n_win
        assert top >= len(seg.masks), "room above the segment's masks"
        masks = list(seg.masks) + [seg.masks[0] * 0] * (windows - len(seg.masks))
        masks[top:] = seg.masks[p.mask_base:p.mask_base + p.n_win]
        segs.append(dataclasses.replace(seg, masks=masks, passes=seg.passes[:-1] + [dataclasses.replace(p, mask_base=top)]))
    return dataclasses.replace(prog, segments=segs)


def _rotate_slots(tile, r: int):
    """``tile`` with its filter slots renamed ``s -> (s + r) % filters`` (the columns and outputs follow)."""
    n = int((tile.filters >= 0).sum())
    if n < 2:
        return tile
    col = np.where(tile.col_filter >= 0, (tile.col_filter + r) % n, -1).astype(tile.col_filter.dtype)
    filters = tile.filters.copy()
    filters[(np.arange(n) + r) % n] = tile.filters[:n]
    return dataclasses.replace(tile, col_filter=col, filters=filters)


def kill_suite(hw, seed: int = 1) -> KillSuite:
    """The fast regression subset each mutant runs (see the module docstring), deterministic for ``seed``."""
    from dbpim.model import spec
    from dbpim.model.core import CoreParams, bus_writes, input_windows, run_core
    from dbpim.model.spec import input_range
    from dbpim.verif.native import _hex_rows, write_core_stimulus

    params = CoreParams.from_config(hw)
    rng = np.random.default_rng(seed)
    lines, expect, reads = [], [], []

    def ends(prog, seg):
        return (np.cumsum([p.pixels * p.n_out for p in seg.passes if p.last]) - 1).tolist()

    def each_start(prog, x, label, limit=200000):
        """Every segment of ``prog`` on pixels ``x`` at full rate: its writes, windows and START (results, CYCLES)."""
        want = run_core(prog, x)
        for si, seg in enumerate(prog.segments):
            lines.extend(["stall 0 0 0"] + [f"write {a:x} {d:x}" for a, d in bus_writes(prog, seg)])
            lines.extend([f"window {w}" for w in _hex_rows(input_windows(prog, seg, x))] + [f"run {limit}"])
            expect.append((f"{label}, START {si}", want.beats[si], int(want.cycles[si]), 0b010, ends(prog, seg)))

    progs = []
    for trial in range(4):
        signed = bool(trial % 2)
        prog, xs = _random_program(params, rng, signed)
        while len(prog.segments) != 1:
            prog, xs = _random_program(params, rng, signed)
        progs.append((prog, xs))
        want = run_core(prog, xs[0])
        seg = prog.segments[0]
        lines += write_core_stimulus(prog, xs)
        expect.append((f"layer {trial} full rate", want.beats[0], int(want.cycles[0]), 0b010, ends(prog, seg)))
        stall = (0.35, 0.35, int(rng.integers(1 << 30)))
        lines += [ln for ln in write_core_stimulus(prog, xs, stall=stall) if not ln.startswith("write")]
        expect.append((f"layer {trial} stalled", want.beats[0], None, 0b010, ends(prog, seg)))
        lines.append("stall 0 0 0")
    # a random layer whose kept inputs make the row packer carry past a full row (fill + a beat's inputs >
    # n_comp before a vector's last beat: e.g. windows keeping 3 then 2 inputs with lanes 2)
    for _ in range(200):
        prog, xs = _random_program(params, rng, False)
        if len(prog.segments) == 1 and _packer_carries(prog):
            want = run_core(prog, xs[0])
            lines += write_core_stimulus(prog, xs)
            expect.append(("a row packer carry", want.beats[0], int(want.cycles[0]), 0b010,
                           ends(prog, prog.segments[0])))
            break
    # a random layer of several passes of out_pixels pixels, a pass's first window's mask differing from the pass
    # before it: a good DECODE at the pixels bound presents the new pass's first mask address (Yosys's copy of
    # DECODE's checks that drives the datapath's abort and that address, made to refuse the bound, leaves the old)
    P = hw.core.out_pixels
    for _ in range(200):
        prog, xs = _random_program(params, rng, False, pixels=P)
        if len(prog.segments) == 1 and _new_first_mask_at(prog, P):
            want = run_core(prog, xs[0])
            lines += write_core_stimulus(prog, xs)
            expect.append((f"a layer of passes of {P} pixels, their first masks differing", want.beats[0],
                           int(want.cycles[0]), 0b010, ends(prog, prog.segments[0])))
            break
    else:
        raise RuntimeError(f"no random layer of passes of {P} pixels with differing first masks")
    # the descriptor fields at their extremes: a dense layer with whole row tiles (n_kept = n_comp * n_row),
    # a filter in every column (n_out = n_col) and a pixel run filling the output register file
    # (pixels = out_pixels)
    from dbpim.model.compile import compile_layer
    from dbpim.model.core import compile_program
    from dbpim.model.quant import prune_quantize
    mc = hw.macro
    K, N, P = 2 * mc.capacity_rows, 2 * mc.n_col, hw.core.out_pixels
    # one digit per weight (powers of two): phi = 1, so n_col filters share a tile; unsigned, then signed
    # inputs (the MSB's digit subtracted in every filter slot's lane)
    q = prune_quantize(rng.choice([-64.0, -8.0, -2.0, 1.0, 4.0, 32.0], (K, N)), mc, 0.0, scale=1.0)
    for dense_signed in (False, True):
        prog = compile_program(compile_layer(q.w, q.phi, q.mask, mc, q.group_size), P, params, dense_signed)
        lo, hi = input_range(dense_signed)
        xs = rng.integers(lo, hi + 1, (1, P, K))
        want = run_core(prog, xs[0])
        for si, seg in enumerate(prog.segments):
            one = [ln for ln in write_core_stimulus(prog, xs) if not ln.startswith(("window", "run", "write"))]
            lines += one + [f"write {a:x} {d:x}" for a, d in bus_writes(prog, seg)]
            lines += [f"window {w}" for w in _hex_rows(input_windows(prog, seg, xs[0]))] + ["run 200000"]
            expect.append((f"dense layer{' (signed)' if dense_signed else ''}, START {si}", want.beats[si],
                           int(want.cycles[si]), 0b010, ends(prog, seg)))
    # random layers of several passes, their last pass's masks moved to the last mask windows (mask_base + n_win
    # = mask_windows): a good DECODE at the mask windows' bound while the passes before it still stream (Yosys's
    # copy of DECODE's checks that drives the datapath's abort, made to refuse the bound, would reset their work)
    found = 0
    for _ in range(400):
        prog, xs = _random_program(params, rng, bool(found % 2))
        if (len(prog.segments) != 1 or len(prog.segments[0].passes) < 2
                or len(prog.segments[0].masks) + prog.segments[0].passes[-1].n_win > hw.core.mask_windows):
            continue
        prog = _last_masks_at_the_top(prog, hw.core.mask_windows)
        want = run_core(prog, xs[0])
        lines += [ln for ln in write_core_stimulus(prog, xs) if not ln.startswith("reset")]
        expect.append((f"a layer of several passes, its last masks at the top {found}", want.beats[0],
                       int(want.cycles[0]), 0b010, ends(prog, prog.segments[0])))
        found += 1
        if found == 6:
            break
    # the dense layer's tiles with their filter slots rotated (column 0 owned by slot 1, 2, ..., n_col - 1): the
    # compiler's next-fit packing always gives column 0 to slot 0, the column maps the core accepts do not
    rot = compile_layer(q.w, q.phi, q.mask, mc, q.group_size)
    rot = dataclasses.replace(rot, tiles=[_rotate_slots(tl, 1 + i % (mc.n_col - 1)) for i, tl in enumerate(rot.tiles)])
    prog = compile_program(rot, 3, params, False)
    xs = rng.integers(0, 256, (1, 3, K))
    each_start(prog, xs[0], "rotated filter slots")
    # the coverage regression's designed layers (verif.core_tb.coverage_layers: every descriptor field at its
    # extremes) where they fit the configuration (tests/coverage_core.yaml: all of them; small: none)
    from dbpim.model.core_timing import PlanError
    from dbpim.verif.core_tb import coverage_layers
    try:
        designed = coverage_layers(hw, rng)
    except PlanError:
        designed = []
    for label, prog, xs in designed:
        each_start(prog, xs[0], label)
    # a reset in the middle of the first layer, then the same START again; more resets at other points
    aborted = []
    for (prog, xs), frac in ((progs[0], 0.5), (progs[1], 0.05), (progs[2], 0.7), (progs[3], 0.95)):
        want = run_core(prog, xs[0])
        lines += write_core_stimulus(prog, xs, abort_after=(0, 0, max(1, int(int(want.cycles[0]) * frac))))
        aborted.append((f"reset at {frac:g} of a layer", want.beats[0]))
        expect.append((f"rerun after a reset at {frac:g} of a layer", want.beats[0], int(want.cycles[0]), 0b010,
                       ends(prog, prog.segments[0])))
    crng = np.random.default_rng(seed + 19)
    # resets at every cycle of two layers of one pixel and three passes, a one-row tile (n_kept <= n_comp, one window:
    # its vector is delivered at once), then a full row tile (n_row rows) twice (each macro's two input buffers hold
    # its rows: rows pending while it computes), aresetn low for one cycle (the shortest), each followed by the same
    # START as soon as the core takes it (harness `rerun`): the state a dropped reset would leave (rows pending in a
    # macro, an output bank full) meets the fastest START (kills the macro's dropped resets of pending and of
    # bank_full, the latter whatever the harness's random initial state); results only (the plan's cycles are those
    # of the compiler's two passes)
    cap, found = hw.macro.capacity_rows, 0
    for _ in range(2000):
        rprog, rxs = _random_program(params, crng, False, k_range=(cap + 1, cap + hw.macro.n_comp + 1), pixels=1)
        rp = rprog.segments[0].passes if len(rprog.segments) == 1 else []
        if not (len(rp) == 2 and rp[0].n_kept == cap and rp[1].n_kept <= hw.macro.n_comp and rp[1].n_win == 1):
            continue
        cycles = 2 * int(run_core(rprog, rxs[0]).cycles[0])  # past the three passes' end
        rprog = dataclasses.replace(rprog, segments=[dataclasses.replace(rprog.segments[0], passes=[
            dataclasses.replace(rp[1], first=True, last=False), dataclasses.replace(rp[0], first=False, last=False),
            dataclasses.replace(rp[0], first=False, last=True)])])
        rwant = run_core(rprog, rxs[0])
        stim = [ln for ln in write_core_stimulus(rprog, rxs) if ln.startswith(("write", "window"))]
        lines += ["stall 0 0 0"] + [ln for ln in stim if ln.startswith("write")]
        for cut in range(1, cycles):
            lines += [ln for ln in stim if ln.startswith("window")] + [f"rerun {cut} 1 100000"]
            expect.append((f"a START at once after a reset at cycle {cut} of a layer of three passes {found}",
                           rwant.beats[0], None, 0b010, ends(rprog, rprog.segments[0])))
        found += 1
        if found == 2:
            break
    else:
        raise RuntimeError("no 2 random layers of a full row tile and a one-row tile")
    # a layer of two filter tiles (a `last` pass, then more passes) whose result beats each wait 300 cycles on
    # m_axis_tready (harness `hold`): the core's output register holds a beat, so the PIM core's stream waits on
    # its o.ready, the final beat of the first tile's stream for longer than the next pass takes to reach its
    # hand-off (OUT's `ends` = o.valid & o.ready & o_last made `o.valid | o.ready` leaves OUT with that beat untaken
    # and the next hand-off drops it)
    for _ in range(400):
        hprog, hxs = _random_program(params, crng, False)
        hseg = hprog.segments[0]
        if len(hprog.segments) == 1 and any(p.last for p in hseg.passes[:-1]):
            hwant = run_core(hprog, hxs[0])
            stim = [ln for ln in write_core_stimulus(hprog, hxs) if ln.startswith(("write", "window"))]
            lines += ["stall 0 0 0", "hold 300"] + stim + ["run 1000000", "hold 0"]
            expect.append(("a layer of two filter tiles, each result held 300 cycles", hwant.beats[0], None, 0b010,
                           ends(hprog, hseg)))
            break
    else:
        raise RuntimeError("no random layer of two filter tiles")
    # a reset while the result stream is held by back-pressure (a result on offer: m_axis_tvalid high), then
    # the rerun under the same stalls
    prog, xs = progs[0]
    want = run_core(prog, xs[0])
    lines += write_core_stimulus(prog, xs, stall=(0.0, 0.7, int(rng.integers(1 << 30))),
                                 abort_after=(0, 0, int(want.cycles[0]) - 1))
    aborted.append(("reset while the results are held", want.beats[0]))
    expect.append(("rerun after a reset while the results are held", want.beats[0], None, 0b010,
                   ends(prog, prog.segments[0])))
    lines.append("stall 0 0 0")
    # each STATUS.ERROR_CODE: a bad descriptor (1), an accumulation without a first pass (2), masks that
    # disagree with n_kept (3); then the good program again
    cap = hw.macro.capacity_rows
    prog, xs = progs[0]
    while len(prog.segments) != 1 or not prog.segments[0].passes[0].n_kept < cap:
        prog, xs = _random_program(params, rng, False)
    seg = prog.segments[0]
    p = seg.passes[0]
    desc = params.map.regions["desc"]
    good = {"tile": p.slot, "mask_base": p.mask_base, "n_win": p.n_win, "n_kept": p.n_kept, "pixels": p.pixels,
            "n_out": p.n_out, "first": int(p.first), "last": int(p.last)}
    wins = [ln for ln in write_core_stimulus(prog, xs) if ln.startswith("window")]
    want = run_core(prog, xs[0])

    def desc_writes(values):
        return [f"write {desc.address(0, k):x} {w:x}" for k, w in enumerate(spec.entry_words(desc.fields, values))]

    lines += [ln for ln in write_core_stimulus(prog, xs) if not ln.startswith(("window", "run"))]
    # code 2 also with pixels and n_out at their maxima (a good descriptor otherwise: code 2, not 1)
    # code 1 also with n_kept and pixels one past their ranges (a DECODE range check one off accepts them)
    for code, bad in ((1, {"pixels": 0}), (2, {"first": 0}), (3, {"n_kept": p.n_kept + 1}),
                      (2, {"first": 0, "pixels": hw.core.out_pixels, "n_out": hw.macro.n_col}),
                      (1, {"n_kept": cap + 1}), (1, {"pixels": hw.core.out_pixels + 1})):
        lines += desc_writes({**good, **bad}) + wins + ["run 100000", "flush"] + desc_writes(good)
        expect.append((f"STATUS.ERROR_CODE {code} ({', '.join(f'{k} {v}' for k, v in bad.items())})",
                       np.zeros(0, np.int64), None, 0b110 | code << 4, []))
        lines += wins + ["run 100000"]
        expect.append((f"good START after error code {code}", want.beats[0], int(want.cycles[0]), 0b010,
                       ends(prog, seg)))
    # code 1 for a second descriptor out of range while the first pass's work is still in the datapath (Yosys
    # keeps a copy of DECODE's range checks that drives only the datapath's abort reset)
    layer_addr = params.map.regs["LAYER"]
    for bad in ({"n_kept": cap + 1}, {"pixels": hw.core.out_pixels + 1}, {"n_out": hw.macro.n_col + 1}):
        pair = [{**good, "first": 1, "last": 0}, {**good, **bad, "first": 0}]
        lines += [f"write {desc.address(k, w):x} {v:x}" for k, d in enumerate(pair)
                  for w, v in enumerate(spec.entry_words(desc.fields, d))]
        lines += [f"write {layer_addr:x} {spec.CORE_REG['LAYER'].value(N_DESC=2, SIGNED=int(prog.signed)):x}"]
        lines += wins + ["run 100000", "flush"] + [f"write {a:x} {d:x}" for a, d in bus_writes(prog, seg)]
        expect.append((f"STATUS.ERROR_CODE 1 (second descriptor: {', '.join(f'{k} {v}' for k, v in bad.items())})",
                       np.zeros(0, np.int64), None, 0b110 | 1 << 4, []))
        lines += wins + ["run 100000"]
        expect.append(("good START after a bad second descriptor", want.beats[0], int(want.cycles[0]), 0b010,
                       ends(prog, seg)))
    # code 2 for an accumulation chain one row tile longer than core.max_row_tiles (the same pass repeated:
    # the first, then continuations; the last one's DECODE fails), where the descriptors hold it
    chain = hw.core.max_row_tiles + 1
    if chain <= hw.core.descriptors:
        links = [{**good, "first": int(k == 0), "last": int(k == chain - 1)} for k in range(chain)]
        lines += [f"write {desc.address(k, w):x} {v:x}" for k, d in enumerate(links)
                  for w, v in enumerate(spec.entry_words(desc.fields, d))]
        lines += [f"write {layer_addr:x} {spec.CORE_REG['LAYER'].value(N_DESC=chain, SIGNED=int(prog.signed)):x}"]
        lines += wins * (chain - 1) + ["run 1000000", "flush"] + [f"write {a:x} {d:x}" for a, d in bus_writes(prog, seg)]
        expect.append((f"STATUS.ERROR_CODE 2 (a chain of {chain} row tiles)", np.zeros(0, np.int64), None,
                       0b110 | 2 << 4, []))
        lines += wins + ["run 100000"]
        expect.append(("good START after a chain too long", want.beats[0], int(want.cycles[0]), 0b010,
                       ends(prog, seg)))
    # a chain of exactly core.max_row_tiles row tiles (the longest DECODE accepts), where the descriptors hold it
    chain = hw.core.max_row_tiles
    if chain <= hw.core.descriptors:
        links = [dataclasses.replace(p, first=k == 0, last=k == chain - 1) for k in range(chain)]
        cprog = dataclasses.replace(prog, segments=[dataclasses.replace(seg, passes=links)])
        cseg = cprog.segments[0]
        cwant = run_core(cprog, xs[0])
        lines += [f"write {a:x} {d:x}" for a, d in bus_writes(cprog, cseg)]
        lines += [f"window {w}" for w in _hex_rows(input_windows(cprog, cseg, xs[0]))] + ["run 2000000"]
        # (results only: the program's cycles are those the compiler planned for its own passes)
        expect.append((f"a chain of {chain} row tiles", cwant.beats[0], None, 0b010, ends(cprog, cseg)))
        lines += [f"write {a:x} {d:x}" for a, d in bus_writes(prog, seg)]
    # the masks of the first pass moved to the last mask windows (mask_base + n_win = mask_windows, the largest
    # DECODE accepts), then one window further (code 1), then code 2 with every field at its maximum
    mask = params.map.regions["mask"]
    top = hw.core.mask_windows - p.n_win
    if top > p.mask_base:
        written = dict(bus_writes(prog, seg))
        lines += [f"write {mask.address(top + k, w):x} {written[mask.address(p.mask_base + k, w)]:x}"
                  for k in range(p.n_win) for w in range(mask.words)]
        lines += desc_writes({**good, "mask_base": top}) + wins + ["run 100000"]
        expect.append(("masks at the last mask windows", want.beats[0], int(want.cycles[0]), 0b010, ends(prog, seg)))
        for code, bad in ((1, {"mask_base": top + 1}),
                          (2, {"first": 0, "mask_base": top, "n_kept": cap, "pixels": hw.core.out_pixels,
                               "n_out": hw.macro.n_col})):
            lines += desc_writes({**good, **bad}) + wins + ["run 100000", "flush"]
            expect.append((f"STATUS.ERROR_CODE {code} ({', '.join(f'{k} {v}' for k, v in bad.items())})",
                           np.zeros(0, np.int64), None, 0b110 | code << 4, []))
        lines += desc_writes(good)
    # LAYER.N_DESC at its bound: core.descriptors passes (the first pass repeated, each first and last) run; one
    # more is refused at the START with code 1 (START's check `N_DESC > core.descriptors`, the copy that stops the
    # run: made to refuse the bound or to accept one past it)
    nd = hw.core.descriptors
    full = [dataclasses.replace(p, first=True, last=True)] * nd
    fprog = dataclasses.replace(prog, segments=[dataclasses.replace(seg, passes=full)])
    fseg = fprog.segments[0]
    lines += [f"write {a:x} {d:x}" for a, d in bus_writes(fprog, fseg)]
    lines += [f"window {w}" for w in _hex_rows(input_windows(fprog, fseg, xs[0]))] + ["run 2000000"]
    expect.append((f"LAYER.N_DESC {nd} (core.descriptors)", run_core(fprog, xs[0]).beats[0], None, 0b010,
                   ends(fprog, fseg)))
    lines += [f"write {layer_addr:x} {spec.CORE_REG['LAYER'].value(N_DESC=nd + 1, SIGNED=int(prog.signed)):x}",
              "run 100000", "flush"]
    expect.append((f"STATUS.ERROR_CODE 1 (LAYER.N_DESC {nd + 1})", np.zeros(0, np.int64), None, 0b110 | 1 << 4, []))
    lines += [f"write {a:x} {d:x}" for a, d in bus_writes(prog, seg)] + wins + ["run 100000"]
    expect.append(("good START after N_DESC past the descriptors", want.beats[0], int(want.cycles[0]), 0b010,
                   ends(prog, seg)))
    # mask entry 1 (an odd word address, its word index 1 = descriptor 0's upper word) written again after the
    # descriptors, then the good START: the descriptors' upper-word write enable `desc_sel & w_addr[0]` made
    # `desc_sel | w_addr[0]` would copy it into descriptor 0
    # (on a register map where no mask word's index is descriptor 0's upper word, e.g. tests/odd.yaml's, the
    # check is left out)
    mreg = params.map.regions["mask"]
    odd = next((a for k in range(hw.core.mask_windows) for w in range(mreg.words)
                if (a := mreg.address(k, w)) >> 2 & 1 and (a >> 3) & 0xFF == 0), None)
    if odd is not None:
        lines += [f"write {odd:x} {dict(bus_writes(prog, seg)).get(odd, 0):x}"] + wins + ["run 100000"]
        expect.append(("good START after an odd mask word written after the descriptors", want.beats[0],
                       int(want.cycles[0]), 0b010, ends(prog, seg)))
    # a mask word with a padding bit set (past its used bits: DECODE's `bad_masks`, code 3), then the word restored
    # and the good START
    used = sum(spec.field_width(f) for f in mreg.fields) - spec.BUS_BITS * (mreg.words - 1)
    if used < spec.BUS_BITS:
        a = mreg.address(p.mask_base, mreg.words - 1)
        word = dict(bus_writes(prog, seg)).get(a, 0)
        lines += [f"write {a:x} {word | 1 << (spec.BUS_BITS - 1):x}"] + wins + ["run 100000", "flush",
                                                                              f"write {a:x} {word:x}"]
        expect.append(("STATUS.ERROR_CODE 3 (a mask word with a padding bit set)", np.zeros(0, np.int64), None,
                       0b110 | 3 << 4, []))
        lines += wins + ["run 100000"]
        expect.append(("good START after a mask word with a padding bit", want.beats[0], int(want.cycles[0]), 0b010,
                       ends(prog, seg)))
    # a chain of exactly core.max_row_tiles row tiles whose last link's first mask differs from the link's before it
    # (row tile A repeated, then row tile B of the same filter tile): Yosys's copy of DECODE's checks that drives the
    # datapath's abort and the mask read address, with `rt_count >= max_row_tiles` made to refuse the last link,
    # leaves A's first mask address for B's first window
    chain = hw.core.max_row_tiles
    for _ in range(400 if 2 <= chain <= hw.core.descriptors else 0):
        aprog, axs = _random_program(params, crng, False)
        aseg = aprog.segments[0]
        pair = next(((ra, rb) for ra, rb in zip(aseg.passes, aseg.passes[1:]) if ra.first and not rb.first
                     and not np.array_equal(aseg.masks[ra.mask_base], aseg.masks[rb.mask_base])), None)
        if len(aprog.segments) != 1 or pair is None:
            continue
        ra, rb = pair
        links = ([dataclasses.replace(ra, first=True, last=False)]
                 + [dataclasses.replace(ra, first=False, last=False)] * (chain - 2)
                 + [dataclasses.replace(rb, first=False, last=True)])
        cprog = dataclasses.replace(aprog, segments=[dataclasses.replace(aseg, passes=links)])
        cseg = cprog.segments[0]
        lines += ["stall 0 0 0"] + [f"write {ad:x} {v:x}" for ad, v in bus_writes(cprog, cseg)]
        lines += [f"window {w}" for w in _hex_rows(input_windows(cprog, cseg, axs[0]))] + ["run 2000000"]
        # (results only, as the chain above)
        expect.append((f"a chain of {chain} row tiles, its last link's first mask new", run_core(cprog, axs[0]).beats[0],
                       None, 0b010, ends(cprog, cseg)))
        lines += [f"write {ad:x} {v:x}" for ad, v in bus_writes(prog, seg)]
        break
    else:
        if 2 <= chain <= hw.core.descriptors:
            raise RuntimeError("no random layer with a chain of two row tiles whose first masks differ")
    # one-pixel layers of K = 1 .. n_comp inputs (one cell row), unsigned and signed, at full rate: their first
    # round's delivery is the shortest there is, so a tile load one cycle too long shows in CYCLES (the tile loader's
    # last row `ld_rows - 1` made `ld_rows + 1`)
    for k in [*range(1, hw.macro.n_comp + 1)] * 2:
        tprog, txs = _random_program(params, crng, bool(k % 2), k_range=(k, k + 1), pixels=1)
        each_start(tprog, txs[0], f"a one-pixel layer of K {k}", limit=100000)
    lines += [f"write {ad:x} {v:x}" for ad, v in bus_writes(prog, seg)]
    # the constant registers
    d = params.derived
    consts = spec.core_constants(
        n_comp=hw.macro.n_comp, n_col=hw.macro.n_col, n_row=hw.macro.n_row, lanes=hw.macro.lanes,
        macros=params.macros, tile_slots=hw.core.tile_slots, descriptors=hw.core.descriptors,
        mask_windows=hw.core.mask_windows, out_pixels=hw.core.out_pixels, max_row_tiles=hw.core.max_row_tiles,
        psum_bits=d.psum_bits, digest=spec.digest_word(hw.digest()))
    for name, value in consts.items():
        a = params.map.regs[name]
        lines.append(f"read {a:x}")
        reads.append((a, int(value)))
    # a reset after DONE (the last START above finished): STATUS and CYCLES read 0
    lines.append("reset 4")
    for name in ("STATUS", "CYCLES"):
        lines.append(f"read {params.map.regs[name]:x}")
        reads.append((params.map.regs[name], 0))
    # the bus: every reset above left no response or result showing (the aborted STARTs' resets included);
    # an unaligned read and write answer SLVERR (read data 0); AW alone and W alone are not taken; a reset with
    # a write response, then with a read response left pending, and after a START that stopped on an error
    # (then STATUS and CYCLES read 0)
    st, cyc = params.map.regs["STATUS"], params.map.regs["CYCLES"]
    bus = ["idle 0 0 0"] * len(aborted)
    lines += ["idle", f"bread {st + 1:x}", f"bwrite {desc.address(0, 0) + 2:x} 0 0"]
    bus += ["idle 0 0 0", f"bread {st + 1:x} 0 2", f"bwrite {desc.address(0, 0) + 2:x} 2 0"]
    for lead in (3, -3):
        word = spec.entry_words(desc.fields, good)[0]
        lines.append(f"bwrite {desc.address(0, 0):x} {word:x} {lead}")
        bus.append(f"bwrite {desc.address(0, 0):x} 0 0")
    lines += desc_writes({**good, "pixels": 0}) + wins + ["run 100000", "flush"]
    expect.append(("STATUS.ERROR_CODE 1 (pixels 0) before a reset", np.zeros(0, np.int64), None, 0b110 | 1 << 4, []))
    lines += [f"wpend {desc.address(0, 0):x} 0", "reset 4", "idle", f"read {st:x}", f"read {cyc:x}",
              f"rpend {st:x}", "reset 4", "idle"]
    reads += [(st, 0), (cyc, 0)]
    bus += ["idle 0 0 0", "idle 0 0 0"]
    return KillSuite(lines, expect, reads, aborted, bus)


def check_suite(suite: KillSuite, out_lines: list[str], psum_bits: int) -> str | None:
    """Why the harness output differs from the suite's expectations (None: it passes)."""
    from dbpim.verif.native import _parse_core
    runs, _ = _parse_core(out_lines, psum_bits)
    cut = [r for r in runs if r.aborted]
    runs = [r for r in runs if not r.aborted]
    if len(cut) != len(suite.aborted or []):
        return f"{len(cut)} STARTs aborted by a reset, expected {len(suite.aborted or [])}"
    for r, (label, beats) in zip(cut, suite.aborted or []):
        # after the reset: idle, no DONE / ERROR, CYCLES cleared; the results out before it were right
        if r.status != 0 or r.cycles != 0:
            return f"{label}: STATUS {r.status:#x}, CYCLES {r.cycles} after the reset, expected 0 and 0"
        if not np.array_equal(r.beats, beats[:len(r.beats)]):
            return f"{label}: a result before the reset differs"
    if len(runs) != len(suite.expect):
        return f"{len(runs)} STARTs finished, expected {len(suite.expect)}"
    for r, (label, beats, cycles, status, ends) in zip(runs, suite.expect):
        if r.status != status:
            return f"{label}: STATUS {r.status:#x}, expected {status:#x}"
        if not np.array_equal(r.beats, beats):
            return f"{label}: results differ"
        if cycles is not None and r.cycles != cycles:
            return f"{label}: CYCLES {r.cycles}, expected {cycles}"
        if ends is not None and np.flatnonzero(r.last).tolist() != ends:
            return f"{label}: tlast not on each pass's last result"
    got = [(int(t[1], 16), int(t[2], 16)) for t in (ln.split() for ln in out_lines) if t[0] == "read"]
    for (a, v), (ga, gv) in zip(suite.reads, got):
        if gv != v:
            return f"register {a:#x} reads {gv:#x}, expected {v:#x}"
    if len(got) != len(suite.reads):
        return f"{len(got)} register reads, expected {len(suite.reads)}"
    bus = [ln.strip() for ln in out_lines if ln.split()[0] in ("idle", "bread", "bwrite")]
    for k, (want, line) in enumerate(zip(suite.bus or [], bus)):
        if line != want:
            return f"bus line {k}: {line!r}, expected {want!r}"
    if len(bus) != len(suite.bus or []):
        return f"{len(bus)} bus lines, expected {len(suite.bus or [])}"
    return None


# --------------------------------------------------------------------------- the units

@dataclass(frozen=True)
class Unit:
    """A unit ``dbpim mutate`` targets: the block generated, the files mutated (``None``: every file of the
    block) and, for a unit without a native harness, the cocotb regression that kills its mutants (module,
    testcase, stall)."""

    block: str
    files: tuple | None = None
    module: str | None = None
    testcase: str | None = None
    stall: float = 0.3
    #: the native harness that runs the unit's kill suite (``core``, ``chip``), or None (cocotb)
    native: str | None = None


#: unit name -> :class:`Unit` (``core``: the native harness and :func:`kill_suite`)
UNITS = {
    "core": Unit("core", native="core"),
    "chip": Unit("chip", ("dbpim_chip_ctrl.v", "dbpim_pim_ctrl.v", "dbpim_chip.v"), native="chip"),
    "simd": Unit("simd", ("dbpim_simd.v",), "dbpim.verif.test_simd", "simd_stream"),
    "window": Unit("window", ("dbpim_window.v",), "dbpim.verif.test_window", "window_stream"),
}


#: mutants a default run picks per unit (``dbpim mutate`` without ``--mutants``): the core's run takes seconds on
#: its native harness, each SIMD or window mutant a cocotb simulation
DEFAULT_MUTANTS = {"core": 60, "simd": 20, "window": 20, "chip": 60}


def _unit(unit: str) -> Unit:
    if unit not in UNITS:
        raise ValueError(f"unit: must be one of {', '.join(UNITS)}, got {unit!r}")
    return UNITS[unit]


def unit_sources(unit: str, hw, bdir: Path) -> tuple[dict[str, str], list[str], Path]:
    """The generated Verilog of ``unit``'s block for ``hw`` (name -> text), its file order and its manifest."""
    from dbpim.hw.generate import generate
    block = _unit(unit).block
    man = generate(hw, bdir / "rtl", blocks=[block])
    names = man["blocks"][block]["sources"]
    return {n: (bdir / "rtl" / n).read_text() for n in names}, names, bdir / "rtl" / "manifest.json"


def unit_mutants(unit: str, sources: dict[str, str]) -> list:
    """Every mutant of ``unit`` (:func:`generate_mutants` of the files it mutates)."""
    files = _unit(unit).files
    return generate_mutants({n: s for n, s in sources.items() if files is None or n in files})


def build_unit_harness(unit: str, hw, mutants_dir: Path, count: int | None = None, seed: int = 0, pick=None,
                       only=None):
    """The cocotb Verilator build of ``unit``'s schemata (``count`` mutants or those indexed by ``only``,
    :func:`select_mutants`, or those ``pick`` accepts) under ``mutants_dir``.

    Returns
    -------
    (verif.rtl.Build, selected mutants, number of mutants generated, build seconds)
    """
    from dbpim.verif.rtl import _verilate
    u = _unit(unit)
    mutants_dir = Path(mutants_dir).resolve()
    mutants_dir.mkdir(parents=True, exist_ok=True)
    sources, names, manifest = unit_sources(unit, hw, mutants_dir)
    allm = unit_mutants(unit, sources)
    chosen = [m for m in allm if pick(m)] if pick else select_mutants(allm, count, seed, only)
    sdir = mutants_dir / "schemata"
    sdir.mkdir(exist_ok=True)
    for n, text in schemata(sources, chosen).items():
        (sdir / n).write_text(text)
    bdir = mutants_dir / "sim"
    bdir.mkdir(exist_ok=True)
    build = _verilate(bdir, f"dbpim_{u.block}", manifest, [sdir / n for n in names], verbose=False)
    return build, chosen, len(allm), build.seconds


def run_unit_mutant(build, unit: str, hw, index: int, seed: int = 1) -> str | None:
    """Run mutant ``index`` (0: the design as generated) of ``unit`` through its cocotb regression at ``seed``:
    why it was killed (the failure's first line), or None."""
    from dbpim.verif.rtl import RTLFailure, run_test
    u = _unit(unit)
    cfg = str(hw.path) if getattr(hw, "path", None) else hw.name
    try:
        run_test(build, u.module, u.testcase, {"DBPIM_CFG": cfg, "DBPIM_SEED": str(seed), "DBPIM_STALL": str(u.stall)},
                 label=f"mutant{index}", verbose=False, plusargs=[f"+{MUTANT_PLUSARG}={index}"])
    except RTLFailure as e:
        msg = str(e).split("; log:")[0]
        return msg.split(": ", 1)[-1][:160]
    return None


# --------------------------------------------------------------------------- the chip (native harness)

@dataclass
class ChipSuite:
    """Stimulus lines of the native chip harness (verif/native/chip_main.cpp) and what each sample must give."""

    lines: list
    #: per sample in order: (label, the buffers of the regions read, STATUS fields that must match, CYCLES or
    #: None, the regions' values (one array per region) or None)
    expect: list
    #: number of ``abort`` lines (each prints ``aborted``)
    aborts: int = 0


#: cycles one run of the chip suite may take before the harness stops it (a failure: the mutant hangs); its
#: longest program takes under 1,000 on small, so a hung mutant ends in about a second of simulation rather than
#: at :func:`run_chip_mutant`'s wall-clock timeout, which a loaded machine can reach first
CHIP_RUN_LIMIT = 10 ** 5


def chip_suite(hw, seed: int = 1) -> ChipSuite:
    """The chip unit's kill suite on the native chip harness, deterministic for ``seed``: random programs of every
    SIMD instruction on random buffers (ACT after HALT and CYCLES equal the golden chip's), a REQ of more channels
    than lanes over two outer rows, an ADD with its multipliers and shifts at their bounds (and a REQ with its CMEM
    constants at theirs, a CLMP with lo == hi), each buffer read by the host in every clock of one of these runs or
    of the PIM layers below (the results unchanged: the controllers own its read port while busy), a random LOAD /
    STORE program on the harness's ideal DRAM (every DMA buffer, the DRAM and DMEM read back), a random PIM
    convolution of several segments on every PIM core (``system.cores``) and a linear layer as the instruction's
    layer 1 (ACC equal to the golden chip's; CYCLES its :func:`model.chip.program_cycles`), a reset in the middle of
    a SIMD program and of the convolution (STATUS idle after it) each then rerun, one program per STATUS.ERROR_CODE
    (with the PC; code 3 also for a REQ's multiplier or shift out of range and a CLMP of 0, 2**24 and 2**24 + 1
    elements; code 5 also for an operand read one past ACT, ACC and CMEM, a REQ multiplier read at CMEM's depth and
    the linear layer's band copy ending at ACT's depth; code 6 also for a window table past its end, a round ending
    with a result entry left, a layer one past the layer table, a block of more cores than the chip's and a core
    error in a round of no passes, each followed at once by a CLMP that a PIM controller still running would feed),
    a convolution whose core 1 reads several passes from its pass queue (then with core 1's segment given
    core.descriptors + 1 passes: error code 6, then the CLMP), a convolution on core 0 whose passes read different
    window table entries, a layer of one segment of several passes reset at three points of its run and rerun with
    a segment of no passes first, then a reset (STATUS and CYCLES read 0)."""
    from dbpim.model import isa
    from dbpim.model.chip import GoldenChip, program_cycles
    from dbpim.model.core import CoreParams
    from dbpim.model import chip_programs
    from dbpim.verif.native_chip import SEL, chip_depths, chip_stimulus, program_images
    from dbpim.model.pim_programs import pim_program, random_pim
    from dbpim.model.requant import MULT_BITS, SHIFT_MAX
    from dbpim.model.spec import SIMD_PIXEL_BITS

    rng = np.random.default_rng(seed)
    depths = chip_depths(hw)
    lanes = hw.system.simd_lanes
    lines, expect, aborts = [], [], 0
    status_reg, ctrl = isa.CHIP_REG["STATUS"], isa.CHIP_REG["CTRL"]
    regs = isa.HOST_TARGETS.index("REGS")

    def golden(prog, act, acc):
        """ACT and ACC after the golden chip runs ``prog`` on copies of ``act`` and ``acc``."""
        a, c = act[None].copy(), acc[None].copy()
        GoldenChip.from_program(prog, lanes).execute(a, c)
        return a[0], c[0]

    def accepted(prog, what, label, act, acc=None, spy=None):
        """``prog`` run once on ``act`` (and ``acc``, written only when given; zeros for the golden chip): no
        error, ACT after HALT and CYCLES the golden chip's (``what`` the expectation, ``label`` the program)."""
        writes = {"ACT": (0, act)} if acc is None else {"ACT": (0, act), "ACC": (0, acc)}
        want = golden(prog, act, np.zeros(depths["ACC"], np.int64) if acc is None else acc)[0]
        add(prog, [writes], [("ACT", 0, depths["ACT"])],
            [(what, {"DONE": 1, "ERROR": 0, "PC": len(prog.imem) - 1}, program_cycles(prog, lanes), [want])],
            label, spy=spy)

    def golden_pim(pim, case, src):
        """Random ACT and ACC (:func:`model.chip_programs.random_buffers`) with ``case``'s input at ACT ``src``,
        and the golden chip's ACC after ``pim`` on them."""
        act, acc = chip_programs.random_buffers(rng, depths)
        act[src:src + case.x.shape[1]] = case.x[0]
        return act, acc, golden(pim, act, acc)[1]

    def add(prog, samples, reads, want, label, abort_after=None, dram=None, spy=None):
        """One program: its images, then per sample its writes, run and reads; with ``abort_after``, the first
        sample's START is first reset after that many cycles (STATUS and CYCLES read), its writes repeated;
        ``dram`` (bytes, latency): the harness's ideal DRAM on the AXI4 master; ``spy`` (buffer, word): a host read
        of that word in every clock of each run (the controllers own the buffer's read port while the chip is busy:
        the host's read must not move it)."""
        nonlocal aborts
        block = chip_stimulus(program_images(prog), samples, reads, depths, CHIP_RUN_LIMIT, dram=dram)
        if spy is not None:
            block = [ln + f" {SEL[spy[0]]:x} {int(spy[1]):x}" if ln.startswith("run ") else ln for ln in block]
        if abort_after is not None:
            at = next(k for k, ln in enumerate(block) if ln.startswith("run "))
            mark = max(k for k in range(at) if block[k] == "mark")
            block[at:at] = [f"abort {regs:x} {ctrl.word:x} {ctrl.value(START=1):x} {int(abort_after)}",
                            f"read {regs:x} {status_reg.word:x} 1",
                            f"read {regs:x} {isa.CHIP_REG['CYCLES'].word:x} 1"] + block[mark + 1:at]
            aborts += 1
            expect.append((f"{label}: STATUS after a reset mid-run", [], {"BUSY": 0, "DONE": 0, "ERROR": 0}, 0,
                           None))
        lines.extend(block)
        expect.extend((lab, [r[0] for r in reads], f, c, v) for lab, f, c, v in want)

    # random programs of every SIMD instruction, two samples each
    for trial in range(2):
        asm = chip_programs.Asm(rng, depths)
        for op in list(chip_programs.SIMD_OPS) + list(rng.choice(list(chip_programs.SIMD_OPS), 4)):
            asm.random(str(op))
        m, sh = asm.mults(2 * lanes + 1, 43)  # constants in three groups
        # (the second trial's REQ without a bias: its last channel group, one channel, ends the constants' walk;
        # two outer rows of several channels: the write-back's pixel wraps onto the next row)
        d = asm.desc("REQ", C=2 * lanes + 1, inner=2, outer=2, m_addr=asm.const(m), s_addr=asm.const(sh),
                     bias_addr=asm.const(rng.integers(-5000, 5000, 2 * lanes + 1)), has_bias=int(trial == 0),
                     lo=-100, hi=100)
        asm.imem.append(isa.encode("REQ", desc=d, dst=asm.place(2 * 2 * (2 * lanes + 1), []), src0=0))
        prog = asm.program()
        bufs = [chip_programs.random_buffers(rng, depths) for _ in range(2)]
        want = []
        for k, (act, acc) in enumerate(bufs):
            want.append((f"SIMD program {trial} sample {k}", {"DONE": 1, "ERROR": 0, "PC": len(prog.imem) - 1},
                         program_cycles(prog, lanes), [golden(prog, act, acc)[0]]))
        add(prog, [{"ACT": (0, a), "ACC": (0, c)} for a, c in bufs], [("ACT", 0, depths["ACT"])], want,
            f"SIMD program {trial}", abort_after=(137 + 311 * trial) if trial else None,
            spy=(("CMEM", "ACC")[trial], 1))  # (the REQ's constants; its ACC operands)
    def then_clamp(label, broken, act):
        """``broken`` (a PIM instruction that stops with error code 6), then at once (no reset; only IMEM
        rewritten) a CLMP of ACT: the error stop leaves the PIM controller idle (a controller still busy would own
        ACT's read port and feed the CLMP)."""
        zero = np.zeros(depths["ACC"], np.int64)
        stop, clamp = _then_clamp(broken, count=8, dst=depths["ACT"] - 8)
        add(stop, [{"ACT": (0, act), "ACC": (0, zero)}], [],
            [(f"error code 6 ({label}) before a CLMP started at once",
              {"DONE": 1, "ERROR": 1, "ERROR_CODE": 6, "PC": 0}, None, None)], f"{label}, then a CLMP")
        lines.extend(chip_stimulus({"IMEM": program_images(clamp)["IMEM"]}, [{}],
                                   [("ACT", 0, depths["ACT"])], depths, CHIP_RUN_LIMIT)[1:])  # without its reset
        expect.append((f"a CLMP started at once after error code 6 ({label})", ["ACT"],
                       {"DONE": 1, "ERROR": 0, "PC": len(clamp.imem) - 1}, program_cycles(clamp, lanes),
                       [golden(clamp, act, zero)[0]]))

    # a random convolution of several segments, once whole, once after a reset in its middle; a linear layer
    params = CoreParams.from_config(hw)
    # (the convolution once on one PIM core, once with its rounds on every core (``system.cores``: core 1 .. fed
    # from their pass queues, drained after the round); the linear layer's block second in the layer table)
    multi = hw.system.cores
    # (a host read of ACT during the one-core convolution, of WMEM during the linear layer)
    spies = {("conv2d", 1): ("ACT", 1), ("linear", 1): ("WMEM", 1)}
    for kind, cores in (("conv2d", 1), ("conv2d", multi), ("linear", 1)):
        name = f"PIM {kind} layer" + (f" on {cores} cores" if cores > 1 else "")
        for _ in range(200):
            case = random_pim(rng, hw.macro, kind=kind)
            src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
            pim = pim_program(case, params, src=src, dst=dst, table_pad=int(kind == "linear"), cores=cores,
                              result_words=hw.system.result_buffer_words if cores > 1 else None)
            if len(pim.wmem) <= depths["WMEM"] and (kind == "linear" or (
                    _pim_segments(pim) > 1 and (_zero_entries(pim) >= 2 if cores == 1  # a layer of 2 zero entries
                                                else _round_cores(pim) == cores))):  # a round on every core
                break
        else:
            raise RuntimeError(f"no random {name} (of several segments) fits the chip")
        act, acc, acc_after = golden_pim(pim, case, src)
        cyc = program_cycles(pim, lanes, act, acc)
        for abort_after in (None, cyc // 2) if kind == "conv2d" else (None,):
            add(pim, [{"ACT": (0, act), "ACC": (0, acc)}], [("ACC", 0, depths["ACC"])],
                [(name + ("" if abort_after is None else " after a reset"),
                  {"DONE": 1, "ERROR": 0, "PC": len(pim.imem) - 1}, cyc, [acc_after])], name, abort_after,
                spy=spies.get((kind, cores)))
        if kind == "conv2d" and cores == 1:  # its window table one entry past the end: error code 6, ACT and ACC
            # (zeros: its zero entries change nothing) untouched after it (ACT read first: time for a controller
            # that ran on to write)
            zero = np.zeros(depths["ACC"], np.int64)
            add(_table_past_the_end(pim, hw.core.mask_windows), [{"ACT": (0, act), "ACC": (0, zero)}],
                [("ACT", 0, depths["ACT"]), ("ACC", 0, depths["ACC"])],
                [("error code 6 (a window table one entry past its end)",
                  {"DONE": 1, "ERROR": 1, "ERROR_CODE": 6, "PC": 0}, None, [act, zero])], "window table past its end")
            # the same error, then at once (no reset; only IMEM rewritten) a CLMP of ACT: the error stop leaves the
            # PIM controller idle (a controller still busy would own ACT's read port and feed the CLMP)
            then_clamp("window table past its end", _table_past_the_end(pim, hw.core.mask_windows), act)
        elif kind == "conv2d":  # the first round ending with a result entry left (its first segment given one entry
            # more): error code 6, then a CLMP at once
            then_clamp("a result entry more than the results", _one_more_result_entry(pim), act)
        else:  # the linear layer again, its block moved to end at WMEM's last word
            one_layer = pim_program(case, params, src=src, dst=dst, table_pad=0)
            at_end = _block_at_the_end(one_layer, depths["WMEM"])
            add(at_end, [{"ACT": (0, act), "ACC": (0, acc)}], [("ACC", 0, depths["ACC"])],
                [("PIM linear layer ending at WMEM's last word", {"DONE": 1, "ERROR": 0, "PC": len(pim.imem) - 1},
                  program_cycles(at_end, lanes, act, acc), [golden(at_end, act, acc)[1]])],
                "PIM linear layer at WMEM's end")
            # the instruction's layer one past the layer table, the word after the table pointing at the block:
            # error code 6, then a CLMP at once (a controller that read that word would run the layer)
            then_clamp("a layer one past the layer table", _layer_past_the_table(one_layer), act)
            # the block's header naming one core more than system.cores: error code 6 (ZERO's header check, its done
            # and error as well as its next state), then the CLMP at once
            then_clamp("a block of more cores than the chip's", _header_word(one_layer, "cores", hw.system.cores + 1),
                       act)
            # a round whose core stops with an error having taken every pass and owing no result (a segment of no
            # passes whose descriptor is bad): error code 6 (the core's error alone ends the round), then the CLMP
            then_clamp("a core error in a round of no passes", _core_error_first(one_layer, params), act)
            # its band's copy ending exactly at ACT's depth: error code 5 at that read (a controller that took it
            # would copy ACT 0 and run the layer); ACT and ACC (zeros: every input in range) untouched
            past = _copy_ending_at(one_layer, src, depths["ACT"])
            zero_act, zero_acc = np.zeros(depths["ACT"], np.int64), np.zeros(depths["ACC"], np.int64)
            _golden_refuses(past, lanes, zero_act, zero_acc, "a band copy that reads ACT's depth")
            add(past, [{"ACT": (0, zero_act), "ACC": (0, zero_acc)}], [("ACT", 0, depths["ACT"]),
                                                                        ("ACC", 0, depths["ACC"])],
                [("error code 5 (a band copy whose last read is at ACT's depth)",
                  {"DONE": 1, "ERROR": 1, "ERROR_CODE": 5, "PC": 0}, None, [zero_act, zero_acc])],
                "band copy ending at ACT's depth")

    # a convolution on every PIM core whose core 1 .. reads two passes or more from its pass queue (each band's
    # segments reversed: the compiler puts a band's longest segment first, on core 0): the queue's fill and walk
    if multi > 1:
        for _ in range(200):
            case = random_pim(rng, hw.macro, kind="conv2d")
            src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
            pim = _segments_reversed(pim_program(case, params, src=src, dst=dst, cores=multi,
                                                 result_words=hw.system.result_buffer_words))
            if len(pim.wmem) <= depths["WMEM"] and _queued_passes(pim) >= 2:
                break
        else:
            raise RuntimeError("no random PIM convolution puts two passes into a pass queue")
        act, acc, acc_after = golden_pim(pim, case, src)
        add(pim, [{"ACT": (0, act), "ACC": (0, acc)}], [("ACC", 0, depths["ACC"])],
            [(f"PIM conv2d layer on {multi} cores, passes queued", {"DONE": 1, "ERROR": 0, "PC": len(pim.imem) - 1},
              program_cycles(pim, lanes, act, acc), [acc_after])], "PIM conv2d layer, passes queued")
        # its core 1 segment given core.descriptors + 1 passes: the pass queue takes all but the first, up to its
        # last word; the core refuses N_DESC past its descriptors: error code 6 (the golden chip refuses the
        # image), then the CLMP at once (Yosys's copy of QUEUE's bound `qw >= 4 descriptors` that drives the next
        # state, made one less, sends the PIM controller to IDLE at the queue's last word without done: the chip
        # hangs)
        over = _passes_past_the_queue(pim, params, hw.core.descriptors + 1)
        _golden_refuses(over, lanes, act, acc, "a segment of more passes than core.descriptors")
        if len(over.wmem) <= depths["WMEM"]:
            then_clamp(f"a segment of {hw.core.descriptors + 1} passes on core 1", over, act)

    # a layer of one segment of two passes or more on PIM core 0 (it holds its next pass on offer while the
    # first streams), reset at three points of its run, each rerun with a segment of no passes first (a round in
    # which core 0 takes no pass: a pass left on offer through the reset would be taken there)
    for _ in range(500):
        case = random_pim(rng, hw.macro, kind="conv2d")
        src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
        one = pim_program(case, params, src=src, dst=dst)
        pim = _empty_first_segment(one, params)
        if len(pim.wmem) <= depths["WMEM"] and _segment_passes(one) in ([2], [3], [4]):
            break
    else:
        raise RuntimeError("no random PIM convolution of one segment of several passes fits the chip")
    act, acc, acc_after = golden_pim(pim, case, src)
    cyc = program_cycles(pim, lanes, act, acc)
    for at in (9, 11, 13):
        add(pim, [{"ACT": (0, act), "ACC": (0, acc)}], [("ACC", 0, depths["ACC"])],
            [("PIM conv2d layer, a segment of no passes first, after a reset", {"DONE": 1, "ERROR": 0,
              "PC": len(pim.imem) - 1}, cyc, [acc_after])], "PIM layer, a segment of no passes first", cyc * at // 20)

    # a random LOAD / STORE program of every DMA buffer on the harness's ideal DRAM: ACT, ACC, WMEM, CMEM and the
    # DRAM after HALT equal the golden chip's, CYCLES its count; DMEM read back over the host port too (each buffer's
    # host read selects its own read address)
    from dbpim.model.chip_timing import DMA_LATENCY
    small = {**depths, "WMEM": min(depths["WMEM"], 2048), "CMEM": min(depths["CMEM"], 1024)}  # (a fast check)
    prog, _, _, dram = chip_programs.random_dma_program(rng, small)
    act, acc = chip_programs.random_buffers(rng, depths)
    a, c, d = act[None].copy(), acc[None].copy(), dram.copy()
    gold = GoldenChip.from_program(prog, lanes)
    gold.execute(a, c, d)
    dmem = np.asarray(program_images(prog)["DMEM"], np.int64) & 0xFFFFFFFF
    dma_bufs = list(isa.DMA_BUFFERS)
    want = {"ACT": a[0], "ACC": c[0], "WMEM": gold._wmem, "CMEM": gold._cmem,
            "DMEM": np.where(dmem >= 1 << 31, dmem - (1 << 32), dmem), "DRAM": d}
    regions = [(n, 0, small[n]) for n in dma_bufs] + [("DMEM", 0, len(dmem)), ("DRAM", 0, len(dram))]
    add(prog, [{"ACT": (0, act), "ACC": (0, acc), "DRAM": (0, dram)}], regions,
        [("LOAD / STORE program", {"DONE": 1, "ERROR": 0, "PC": len(prog.imem) - 1}, program_cycles(prog, lanes),
          [want[n] for n, _, _ in regions])], "LOAD / STORE program", dram=(len(dram), DMA_LATENCY))

    # each STATUS.ERROR_CODE
    def one(word, op=None, **desc):
        asm = chip_programs.Asm(np.random.default_rng(0), depths)
        if op:
            asm.desc(op, **desc)
        asm.dmem.extend([0] * (isa.DESC_WORDS - len(asm.dmem)))
        asm.imem.append(word)
        return asm.program()

    def dwc_bad_weight():  # a 1-channel 2 x 2 DWC with the weight 128, outside int8
        asm = chip_programs.Asm(np.random.default_rng(0), depths)
        m, s, b, w = asm.const([1 << 30]), asm.const([31]), asm.const([0]), asm.const([1, 2, 128, 4])
        d = asm.desc("DWC", C=1, H=3, W=3, Ho=2, Wo=2, kernel=isa.pack_pair(2, 2), stride=isa.pack_pair(1, 1),
                     padding=0, dilation=isa.pack_pair(1, 1), w_addr=w, m_addr=m, s_addr=s, bias_addr=b, lo=-9, hi=9)
        asm.imem.append(isa.encode("DWC", desc=d, dst=20, src0=0))
        return asm.program()

    def req_const(m=1 << 30, s=31, m_addr=None):
        """A 1-channel REQ of CMEM multiplier ``m`` and shift ``s`` (outside their ranges: code 3); with ``m_addr``,
        its multiplier read from there instead (CMEM's depth: code 5)."""
        asm = chip_programs.Asm(np.random.default_rng(0), depths)
        m_at = asm.const([m]) if m_addr is None else m_addr
        d = asm.desc("REQ", C=1, inner=2, outer=1, m_addr=m_at, s_addr=asm.const([s]),
                     bias_addr=asm.const([0]), has_bias=1, lo=-9, hi=9)
        asm.imem.append(isa.encode("REQ", desc=d, dst=20, src0=0))
        return asm.program()

    def read_past(op):  # an operand read one element past its buffer: REQ's ACC, CLMP's and ADD's ACT, DWC's weight
        asm = chip_programs.Asm(np.random.default_rng(0), depths)
        m, s, b = asm.const([1 << 30]), asm.const([31]), asm.const([0])
        if op == "REQ":
            d = asm.desc("REQ", C=1, inner=2, outer=1, m_addr=m, s_addr=s, bias_addr=b, has_bias=1, lo=-9, hi=9)
            asm.imem.append(isa.encode("REQ", desc=d, dst=20, src0=depths["ACC"] - 1))
        elif op == "CLMP":
            d = asm.desc("CLMP", count=3, lo=-9, hi=9)
            asm.imem.append(isa.encode("CLMP", desc=d, dst=20, src0=depths["ACT"] - 2))
        elif op == "ADD":
            d = asm.desc("ADD", count=2, ma=1 << 30, sa=31, mb=1 << 30, sb=31, lo=-9, hi=9)
            asm.imem.append(isa.encode("ADD", desc=d, dst=20, src0=0, src1=depths["ACT"] - 1))
        else:  # a 1-channel 2 x 2 DWC whose weights start at CMEM's last word (the word loaded: weight 1)
            asm.cmem.extend([1] * (depths["CMEM"] - len(asm.cmem)))
            d = asm.desc("DWC", C=1, H=3, W=3, Ho=2, Wo=2, kernel=isa.pack_pair(2, 2), stride=isa.pack_pair(1, 1),
                         padding=0, dilation=isa.pack_pair(1, 1), w_addr=depths["CMEM"] - 1, m_addr=m, s_addr=s,
                         bias_addr=b, lo=-9, hi=9)
            asm.imem.append(isa.encode("DWC", desc=d, dst=20, src0=0))
        return asm.program()

    # ADD with each scalar at its bound (multipliers 2**31 - 1, shifts model.requant.SHIFT_MAX): accepted, exact
    asm = chip_programs.Asm(np.random.default_rng(0), depths)
    top_m = (1 << MULT_BITS) - 1
    d = asm.desc("ADD", count=8, ma=top_m, sa=SHIFT_MAX, mb=top_m, sb=SHIFT_MAX, lo=-300, hi=300)
    asm.imem.append(isa.encode("ADD", desc=d, dst=40, src0=0, src1=8))
    prog = asm.program()
    accepted(prog, "ADD with its multipliers and shifts at their bounds", "ADD at the scalar bounds",
             rng.integers(-(1 << 15), 1 << 15, depths["ACT"]), spy=("IMEM", 1))  # (word 1: HALT)

    # REQ with its CMEM multiplier and shift at their bounds (2**31 - 1, model.requant.SHIFT_MAX): accepted, exact
    acc = rng.integers(-(1 << 31), 1 << 31, depths["ACC"])
    accepted(req_const(m=top_m, s=SHIFT_MAX), "REQ with its CMEM multiplier and shift at their bounds",
             "REQ at the constant bounds", np.zeros(depths["ACT"], np.int64), acc, spy=("DMEM", 1))

    # a CLMP whose range is one value (lo == hi: accepted, only lo > hi is refused), exact
    accepted(one(isa.encode("CLMP", desc=0, dst=10, src0=0), "CLMP", count=5, lo=3, hi=3), "CLMP with lo == hi",
             "CLMP with lo == hi", rng.integers(-100, 100, depths["ACT"]))

    # a convolution on PIM core 0 with a segment whose passes read different window table entries (core 0 reads
    # each next pass descriptor from WMEM while the one before streams: a word read from the wrong place gives a pass
    # another pass's windows)
    for _ in range(500):
        case = random_pim(rng, hw.macro, kind="conv2d")
        src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
        pim = pim_program(case, params, src=src, dst=dst)
        if len(pim.wmem) <= depths["WMEM"] and _distinct_pass_windows(pim):
            break
    else:
        raise RuntimeError("no random PIM convolution has passes of different windows and fits the chip")
    act, acc, acc_after = golden_pim(pim, case, src)
    add(pim, [{"ACT": (0, act), "ACC": (0, acc)}], [("ACC", 0, depths["ACC"])],
        [("PIM conv2d layer, passes of different windows on core 0", {"DONE": 1, "ERROR": 0, "PC": len(pim.imem) - 1},
          program_cycles(pim, lanes, act, acc), [acc_after])], "PIM conv2d layer, passes of different windows")

    big = (1 << 31) - 1
    pending = [("pending", one(isa.encode(isa.RTL_PENDING[0])), 2)] if isa.RTL_PENDING else []
    for label, prog, code in (
            ("undefined opcode", one(isa.encode("CLMP") & ~0xF | 0xF), 1),
            *pending,
            ("DWC weight outside int8", dwc_bad_weight(), 3),
            ("REQ multiplier negative", req_const(m=-1), 3), ("REQ shift negative", req_const(s=-1), 3),
            (f"REQ shift past {SHIFT_MAX}", req_const(s=SHIFT_MAX + 1), 3),
            ("lo > hi", one(isa.encode("CLMP", desc=0, dst=10, src0=0), "CLMP", count=3, lo=5, hi=1), 3),
            *((f"CLMP of {n} elements", one(isa.encode("CLMP", desc=0, dst=10, src0=0), "CLMP", count=n, lo=-9, hi=9),
               3) for n in (0, 1 << SIMD_PIXEL_BITS, (1 << SIMD_PIXEL_BITS) + 1)),  # pixels: 1 .. 2**24 - 1
            ("past 16 bits", one(isa.encode("GAP", desc=0, dst=10, src0=0), "GAP", C=1, HW=4, m=big, s=0,
                                 lo=-big - 1, hi=big), 4),
            ("past ACT", one(isa.encode("CLMP", desc=0, dst=depths["ACT"] - 2, src0=0), "CLMP", count=3, lo=-9,
                             hi=9), 5),
            *((f"{op} reading past its buffer", read_past(op), 5) for op in ("REQ", "CLMP", "ADD", "DWC")),
            ("REQ multiplier read at CMEM's depth", req_const(m_addr=depths["CMEM"]), 5),
            ("PIM of zero groups", one(isa.encode("PIM", desc=0)), 6)):
        add(prog, [{"ACT": (0, np.full(8, 1000))}], [], [(f"error code {code} ({label})",
                                                           {"DONE": 1, "ERROR": 1, "ERROR_CODE": code, "PC": 0},
                                                           None, None)], label)
    # a reset after the last error stop: STATUS (code included) and CYCLES read 0
    lines += ["reset 4", f"read {regs:x} {status_reg.word:x} 1", f"read {regs:x} {isa.CHIP_REG['CYCLES'].word:x} 1"]
    expect.append(("STATUS after a reset that follows an error", [],
                   {"BUSY": 0, "DONE": 0, "ERROR": 0, "ERROR_CODE": 0}, 0, None))
    return ChipSuite(lines, expect, aborts)


def _zero_entries(prog) -> int:
    """The most zero entries (outputs the PIM controller fills with 0) of one layer of a program's WMEM image."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    return max(len(read_block(w, i).zeros) for i in range(int(w[0])))


def _header_word(prog, field: str, value: int):
    """``prog`` (one PIM layer) with its block header's word ``field`` (:data:`model.pim_image.PIM_HEADER`) set to
    ``value``."""
    from dbpim.model.pim_image import PIM_HEADER, read_block
    w = np.asarray(prog.wmem, np.int64).copy()
    w[read_block(w, 0).base + PIM_HEADER.index(field)] = value
    return dataclasses.replace(prog, wmem=w)


def _block_at_the_end(prog, words: int):
    """``prog`` (one PIM layer) with its block moved to end at WMEM word ``words - 1`` (the words before it 0)."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    assert int(w[0]) == 1, "one layer"
    blk = read_block(w, 0)
    base = words - blk.words
    wmem = np.zeros(words, np.int64)
    wmem[:2] = [1, base]
    wmem[base:] = w[blk.base:blk.base + blk.words]
    return dataclasses.replace(prog, wmem=wmem)


def _one_more_result_entry(prog):
    """``prog`` (a PIM instruction) with the first segment of its first layer's first band given one result entry
    more (a copy of its last; the block's word count with it, the later blocks moved): that segment's round ends
    with an entry left (error code 6)."""
    from dbpim.model.pim_image import BAND_HEADER, PIM_HEADER, SEGMENT_HEADER, read_block
    w = [int(v) for v in np.asarray(prog.wmem, np.int64)]
    blk = read_block(np.array(w, np.int64), 0)
    for i in range(1, w[0]):
        w[1 + i] += 1 if w[1 + i] > blk.base else 0
    seg = blk.bands[0].segments[0]
    head = blk.base + len(PIM_HEADER) + len(blk.zeros) + len(BAND_HEADER)
    end = head + len(SEGMENT_HEADER) + 2 * len(seg.writes) + len(seg.table) + 4 * len(seg.passes) + len(seg.results)
    w[head + SEGMENT_HEADER.index("results")] += 1
    w[blk.base + PIM_HEADER.index("words")] += 1
    w[end:end] = [w[end - 1]]
    return dataclasses.replace(prog, wmem=np.array(w, np.int64))


def _layer_past_the_table(prog):
    """``prog`` (one PIM layer) as the instruction of layer ``L``, one past a table of ``L`` layers, ``L`` the
    block's word count: every entry points at the block, which starts at word ``L``, so the table's last entry
    is the block's first word and WMEM word 0 (the table's length) the block's address. The PIM controller stops
    with error code 6; one that went on from LOOKUP (to BASE, which reads the word it presents, word 0) would run
    the layer."""
    from dbpim.model import isa
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    assert int(w[0]) == 1, "one layer"
    blk = read_block(w, 0)
    n = blk.words
    wmem = np.concatenate([[n] * n, w[blk.base:blk.base + n]]).astype(np.int64)
    assert wmem[n] == n  # the block's word count is the table's last entry
    d = dict(isa.unpack_descriptor("PIM", [int(v) for v in prog.dmem[:isa.DESC_WORDS]]), layer=n)
    return dataclasses.replace(prog, wmem=wmem, dmem=np.array(isa.pack_descriptor("PIM", d), np.int64))


def _table_past_the_end(prog, windows: int):
    """``prog`` (a PIM instruction) with the first segment of its first layer's window table grown to ``windows +
    1`` entries (the block's word count with it, the later blocks moved), the new entries copies of its first: the
    PIM controller stops at entry ``windows`` (error code 6); a controller that wrote on would wrap onto entry 0 with
    its own value and run the layer."""
    from dbpim.model.pim_image import BAND_HEADER, PIM_HEADER, SEGMENT_HEADER
    w = [int(v) for v in np.asarray(prog.wmem, np.int64)]
    base = w[1]
    zeros = w[base + PIM_HEADER.index("zeros")]
    seg = base + len(PIM_HEADER) + zeros + len(BAND_HEADER)  # the first band's first segment header
    n_writes, n_table = w[seg + SEGMENT_HEADER.index("writes")], w[seg + SEGMENT_HEADER.index("table")]
    first = seg + len(SEGMENT_HEADER) + 2 * n_writes
    extra = windows + 1 - n_table
    w[first + n_table:first + n_table] = [w[first]] * extra
    w[seg + SEGMENT_HEADER.index("table")] = windows + 1
    w[base + PIM_HEADER.index("words")] += extra
    for i in range(1, w[0]):
        w[1 + i] += extra if w[1 + i] > base else 0
    return dataclasses.replace(prog, wmem=np.array(w, np.int64))


def _golden_refuses(prog, lanes: int, act, acc, what: str):
    """Raise RuntimeError unless the golden chip (``lanes`` SIMD lanes) refuses ``prog`` (a ValueError) on copies of
    ``act`` and ``acc``: an image the chip suite expects an error stop from, ``what`` naming it."""
    from dbpim.model.chip import GoldenChip
    try:
        GoldenChip.from_program(prog, lanes).execute(np.asarray(act)[None].copy(), np.asarray(acc)[None].copy())
    except ValueError:
        return
    raise RuntimeError(f"the golden chip runs {what}")


def _distinct_pass_windows(prog) -> bool:
    """Some segment of a program's WMEM image has two pass descriptors that read different window table entries."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    return any(len({tuple(s.table[p[2]:p[2] + p[3]]) for p in s.passes}) > 1
               for i in range(int(w[0])) for b in read_block(w, i).bands for s in b.segments)


def _copy_ending_at(prog, src: int, end: int):
    """``prog`` (one PIM layer, its instruction's input at ACT ``src``) with its first band's ACT offset moved so
    that the band's copy reads its last element at ACT ``end``, every earlier one below it."""
    from dbpim.model.pim_image import BAND_HEADER, PIM_HEADER
    w = np.asarray(prog.wmem, np.int64).copy()
    base = int(w[1])
    band = base + len(PIM_HEADER) + int(w[base + PIM_HEADER.index("zeros")])
    f = {k: int(w[band + i]) for i, k in enumerate(BAND_HEADER)}
    assert f["outer"] >= 1 and f["inner"] >= 1 and f["outer_stride"] >= 0 and f["inner_stride"] >= 0, f
    last = (f["outer"] - 1) * f["outer_stride"] + (f["inner"] - 1) * f["inner_stride"]
    w[band + BAND_HEADER.index("act_off")] = end - src - last
    return dataclasses.replace(prog, wmem=w)


def _then_clamp(prog, *, count: int, dst: int):
    """``prog`` with a CLMP descriptor (``count`` elements from ACT 0 to ACT ``dst``, into [-100, 100]) after its
    own in DMEM, and the program its IMEM becomes when only its words are rewritten: that CLMP, then HALT."""
    from dbpim.model import isa
    dmem = [int(v) for v in np.asarray(prog.dmem, np.int64)]
    dmem += [0] * (-len(dmem) % isa.DESC_WORDS)
    d = len(dmem) // isa.DESC_WORDS
    dmem += isa.pack_descriptor("CLMP", {"count": count, "lo": -100, "hi": 100})
    first = dataclasses.replace(prog, dmem=np.array(dmem, np.int64))
    imem = np.array([isa.encode("CLMP", desc=d, dst=dst, src0=0), isa.encode("HALT")], np.uint64)
    return first, dataclasses.replace(first, imem=imem)


def _round_cores(prog) -> int:
    """The most PIM cores one round of a program's WMEM image runs (a band's segments, up to its ``cores``)."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    return max(min(len(b.segments), blk.cores) for i in range(int(w[0])) for blk in [read_block(w, i)]
               for b in blk.bands)


def _segment_chunks(prog):
    """Each band of each layer of a program's WMEM image as (its first segment's word, [each segment's words])."""
    from dbpim.model.pim_image import BAND_HEADER, PIM_HEADER, SEGMENT_HEADER, read_block
    w = np.asarray(prog.wmem, np.int64)
    out = []
    for i in range(int(w[0])):
        blk = read_block(w, i)
        at = blk.base + len(PIM_HEADER) + len(blk.zeros)
        for band in blk.bands:
            at += len(BAND_HEADER)
            first, chunks = at, []
            for seg in band.segments:
                n = len(SEGMENT_HEADER) + 2 * len(seg.writes) + len(seg.table) + 4 * len(seg.passes) + len(seg.results)
                chunks.append(w[at:at + n].copy())
                at += n
            out.append((first, chunks))
    return out


def _segments_reversed(prog):
    """``prog`` with each band's segments in the reverse order (the same words, so no address moves; each
    segment's result entries place its sums in ACC wherever it runs): a band of a long first segment and a short
    last one puts the long one on the round's last core, which reads its passes from its pass queue."""
    w = np.asarray(prog.wmem, np.int64).copy()
    for first, chunks in _segment_chunks(prog):
        if chunks:
            w[first:first + sum(len(c) for c in chunks)] = np.concatenate(chunks[::-1])
    return dataclasses.replace(prog, wmem=w)


def _queued_passes(prog) -> int:
    """The most passes of a segment that a PIM core other than core 0 runs (from its pass queue)."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    return max([len(s.passes) for i in range(int(w[0])) for blk in [read_block(w, i)] for b in blk.bands
                for k, s in enumerate(b.segments) if k % blk.cores], default=0)


def _segment_first(prog, writes: list):
    """``prog`` (a PIM instruction) with a segment of no passes, no table entry and no result entry before the
    first segment of its first layer's first band, its bus writes ``writes`` ((byte address, word) pairs; the
    block's word count with it, the later blocks moved): a round in which core 0 takes no pass descriptor."""
    from dbpim.model.pim_image import BAND_HEADER, PIM_HEADER
    w = [int(v) for v in np.asarray(prog.wmem, np.int64)]
    base = w[1]
    band = base + len(PIM_HEADER) + w[base + PIM_HEADER.index("zeros")]
    assert w[base + PIM_HEADER.index("bands")] >= 1, "a band"
    seg = [len(writes), 0, 0, 0] + [int(v) for pair in writes for v in pair]
    w[band + len(BAND_HEADER):band + len(BAND_HEADER)] = seg
    w[band + BAND_HEADER.index("segments")] += 1
    w[base + PIM_HEADER.index("words")] += len(seg)
    for i in range(1, w[0]):
        w[1 + i] += len(seg) if w[1 + i] > base else 0
    return dataclasses.replace(prog, wmem=np.array(w, np.int64))


def _empty_first_segment(prog, params):
    """:func:`_segment_first` of a segment whose one bus write sets the core's LAYER to no descriptors."""
    from dbpim.model.spec import CORE_REG
    return _segment_first(prog, [(params.map.regs["LAYER"], CORE_REG["LAYER"].value(N_DESC=0))])


def _core_error_first(prog, params):
    """:func:`_segment_first` of a segment that sets the core's LAYER to one descriptor and writes descriptor 0 all
    zero (``n_win`` 0): its core stops with an error at once (STATUS.ERROR_CODE 1), having taken no pass and owing
    no result."""
    from dbpim.model.spec import CORE_REG
    desc = params.map.regions["desc"]
    return _segment_first(prog, [(params.map.regs["LAYER"], CORE_REG["LAYER"].value(N_DESC=1))]
                          + [(desc.base + 4 * k, 0) for k in range(desc.words)])


def _passes_past_the_queue(prog, params, passes: int):
    """``prog`` (a PIM instruction whose first band's round runs on core 1) with that band's second segment (core
    1's) given ``passes`` pass descriptors (copies of its last appended) and its LAYER bus write set to ``passes``
    descriptors (the block's word count with it, the later blocks moved). With ``passes`` = ``core.descriptors`` +
    1 its pass queue (``4 core.descriptors`` words) takes every pass but the first, its last word at the queue's
    last; the core refuses the START (``N_DESC`` past its descriptors) and the chip stops with error code 6, as the
    golden chip refuses the image."""
    from dbpim.model.pim_image import PIM_HEADER, SEGMENT_HEADER, read_block
    from dbpim.model.spec import CORE_REG
    w = [int(v) for v in np.asarray(prog.wmem, np.int64)]
    blk = read_block(np.array(w, np.int64), 0)
    assert blk.cores >= 2 and len(blk.bands[0].segments) >= 2, "a round on core 1"
    first, chunks = _segment_chunks(prog)[0]
    at = first + len(chunks[0])  # core 1's segment
    n_w, n_t, n_p = (w[at + SEGMENT_HEADER.index(f)] for f in ("writes", "table", "passes"))
    layer = params.map.regs["LAYER"]
    for k in range(n_w):  # (address, word) pairs
        if w[at + len(SEGMENT_HEADER) + 2 * k] == layer:
            reg = CORE_REG["LAYER"]
            w[at + len(SEGMENT_HEADER) + 2 * k + 1] = reg.value(**{**reg.decode(w[at + len(SEGMENT_HEADER) + 2 * k + 1]),
                                                                   "N_DESC": passes})
    end = at + len(SEGMENT_HEADER) + 2 * n_w + n_t + 4 * n_p  # past its last pass descriptor
    extra = 4 * (passes - n_p)
    w[end:end] = w[end - 4:end] * (passes - n_p)
    w[at + SEGMENT_HEADER.index("passes")] = passes
    w[blk.base + PIM_HEADER.index("words")] += extra
    for i in range(1, w[0]):
        w[1 + i] += extra if w[1 + i] > blk.base else 0
    return dataclasses.replace(prog, wmem=np.array(w, np.int64))


def _segment_passes(prog) -> list:
    """The passes of each segment of a program's WMEM image (every layer, band after band)."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    return [len(s.passes) for i in range(int(w[0])) for b in read_block(w, i).bands for s in b.segments]


def _pim_segments(prog) -> int:
    """PIM core runs (segments) of every layer of a program's WMEM image."""
    from dbpim.model.pim_image import read_block
    w = np.asarray(prog.wmem, np.int64)
    return sum(len(read_block(w, i).segments) for i in range(int(w[0])))


def check_chip_suite(suite: ChipSuite, out_lines: list[str]) -> str | None:
    """Why the chip harness output differs from the suite's expectations (None: it passes)."""
    from dbpim.model import isa
    tok = [ln.split() for ln in out_lines if ln.strip()]
    if any(t[0] == "timeout" for t in tok):
        return "a run did not reach DONE"
    if sum(t[0] == "aborted" for t in tok) != suite.aborts:
        return "an abort did not happen"
    reads = [[int(x, 16) for x in t[1:]] for t in tok if t[0] == "r"]
    st = isa.CHIP_REG["STATUS"]
    k = 0
    for label, regions, fields, cycles, values in suite.expect:
        if k + 2 + len(regions) > len(reads):
            return f"{label}: no results"
        status, cyc = st.decode(reads[k][0]), reads[k + 1][0]
        bad = {f: status[f] for f, v in fields.items() if status[f] != v}
        if bad:
            return f"{label}: STATUS {bad}, expected {fields}"
        if cycles is not None and cyc != cycles:
            return f"{label}: CYCLES {cyc}, expected {cycles}"
        for name, got, want in zip(regions, reads[k + 2:k + 2 + len(regions)], values or []):
            if name == "DRAM":  # 32-bit words as read, little-endian: the region's bytes
                got = np.array(got, "<u4").view(np.uint8)[:len(want)]
            else:
                bits = isa.BUFFERS[name].elem_bits
                got = np.array(got, np.int64)
                got = np.where(got >= 1 << (bits - 1), got - (1 << bits), got)
            if not np.array_equal(got, want):
                return f"{label}: {name} differs at {np.flatnonzero(got != want)[:5].tolist()}"
        k += 2 + len(regions)
    if k != len(reads):
        return f"{len(reads)} reads, expected {k}"
    return None


def build_chip_harness(hw, mutants_dir: Path, count: int | None = None, seed: int = 0, pick=None,
                       only=None):
    """The native chip harness built from the schemata of ``count`` mutants of the chip unit (or those indexed by
    ``only``, :func:`select_mutants`, or those ``pick`` accepts) under ``mutants_dir``. Returns (executable, selected mutants, mutants generated, build seconds)."""
    from dbpim.verif.native import verilate_harness
    mutants_dir = Path(mutants_dir).resolve()
    mutants_dir.mkdir(parents=True, exist_ok=True)
    sources, names, _ = unit_sources("chip", hw, mutants_dir)
    allm = unit_mutants("chip", sources)
    chosen = [m for m in allm if pick(m)] if pick else select_mutants(allm, count, seed, only)
    sdir = mutants_dir / "schemata"
    sdir.mkdir(exist_ok=True)
    for n, text in schemata(sources, chosen).items():
        (sdir / n).write_text(text)
    t0 = time.perf_counter()
    exe = verilate_harness("chip", [sdir / n for n in names], mutants_dir, mutants_dir / "rtl", "mutants")
    return exe, chosen, len(allm), time.perf_counter() - t0


def run_chip_mutant(exe: Path, suite: ChipSuite, index: int, timeout: float = 120.0) -> str | None:
    """Run mutant ``index`` (0: the design as generated) through the chip suite: why it was killed, or None."""
    from dbpim.verif.native import NativeError, _run
    try:
        out = _run(exe, suite.lines, f"chip-mutant{index}", args=[f"+{MUTANT_PLUSARG}={index}"], timeout=timeout)
    except NativeError as e:
        return f"harness failed: {str(e).split(': ', 1)[-1][:120]}"
    except subprocess.TimeoutExpired:
        return f"hung (no end within {timeout:g} s)"
    try:
        return check_chip_suite(suite, out)
    except (ValueError, IndexError, KeyError) as e:
        return f"unreadable results ({e})"


# --------------------------------------------------------------------------- build and run

def core_sources(hw, bdir: Path) -> tuple[dict[str, str], list[str]]:
    """The generated Verilog of ``dbpim_core`` for ``hw`` (name -> text) and its file order."""
    from dbpim.hw.generate import generate
    man = generate(hw, bdir / "rtl", blocks=["core"])
    names = man["blocks"]["core"]["sources"]
    return {n: (bdir / "rtl" / n).read_text() for n in names}, names


def build_mutant_harness(hw, mutants_dir: Path, count: int | None = None, seed: int = 0, pick=None,
                         only=None):
    """Generate the core's Verilog, its mutants (``count`` of them or those indexed by ``only``,
    :func:`select_mutants`; all when None; or those for which ``pick(mutant)`` is true), the schemata sources under ``mutants_dir/schemata`` and the
    native harness built from them.

    Returns
    -------
    (executable, selected mutants, number of mutants generated, build seconds)
    """
    from dbpim.verif.native import verilate_harness
    mutants_dir = Path(mutants_dir).resolve()
    mutants_dir.mkdir(parents=True, exist_ok=True)
    sources, names = core_sources(hw, mutants_dir)
    allm = generate_mutants(sources)
    chosen = [m for m in allm if pick(m)] if pick else select_mutants(allm, count, seed, only)
    sch = schemata(sources, chosen)
    sdir = mutants_dir / "schemata"
    sdir.mkdir(exist_ok=True)
    for n, text in sch.items():
        (sdir / n).write_text(text)
    t0 = time.perf_counter()
    exe = verilate_harness("core", [sdir / n for n in names], mutants_dir, mutants_dir / "rtl", "mutants")
    return exe, chosen, len(allm), time.perf_counter() - t0


def run_mutant(exe: Path, suite: KillSuite, index: int, psum_bits: int, timeout: float = 60.0) -> str | None:
    """Run mutant ``index`` (0: the design as generated) through the kill suite: why it was killed, or None."""
    from dbpim.verif.native import NativeError, _run
    try:
        out = _run(exe, suite.lines, f"mutant{index}", args=[f"+{MUTANT_PLUSARG}={index}"], timeout=timeout)
    except NativeError as e:
        return f"harness failed: {str(e).split(': ', 1)[-1][:120]}"
    except subprocess.TimeoutExpired:
        return f"hung (no end within {timeout:g} s)"
    except (ValueError, IndexError) as e:
        return f"unreadable results ({e})"
    try:
        return check_suite(suite, out, psum_bits)
    except (ValueError, IndexError) as e:
        return f"unreadable results ({e})"


def generated_sources(mutants_dir: Path) -> dict[str, str]:
    """The generated (unmutated) Verilog a schemata build under ``mutants_dir`` was made from (name -> text)."""
    return {p.name: p.read_text() for p in sorted((Path(mutants_dir).resolve() / "rtl").glob("*.v"))}


@dataclass
class MutationReport:
    """Killed / total mutants, each unexplained survivor (to add a test for, or to justify), each survivor on the
    reviewed list of equivalents (with its reason), and the timings."""

    config: str
    generated: int
    killed: int
    total: int
    survivors: list
    killed_by: dict
    build_seconds: float
    run_seconds: float
    equivalent: list = None
    #: indices of killed mutants that the list of equivalents names (a wrong entry)
    listed_but_killed: list = None
    #: the unit (:data:`UNITS`)
    unit: str = "core"

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        eq = self.equivalent or []
        top = f"dbpim_{UNITS[self.unit].block if self.unit in UNITS else self.unit}"
        lines = [f"mutation of {top} ({self.config}): killed {self.killed} / {self.total} "
                 f"({len(eq)} equivalent, {len(self.survivors)} unexplained); {self.generated} mutants generated, "
                 f"build {self.build_seconds:.0f} s, runs {self.run_seconds:.0f} s", ""]
        if self.survivors:
            lines += ["unexplained survivors (add a test that kills each, or justify it in "
                      "verif/mutants_equivalent.yaml):", "",
                      "| # | file | line | kind | mutation | line after |", "|---|---|---|---|---|---|"]
            lines += [f"| {s['index']} | {s['file']} | {s['line']} | {s['kind']} | {s['what']} | "
                      f"`{s['mutated']}` |" for s in self.survivors]
        else:
            lines.append("no unexplained survivors")
        if eq:
            lines += ["", "equivalent (verif/mutants_equivalent.yaml):", "",
                      "| # | file | line | kind | mutation | why |", "|---|---|---|---|---|---|"]
            lines += [f"| {s['index']} | {s['file']} | {s['line']} | {s['kind']} | {s['what']} | {s['reason']} |"
                      for s in eq]
        if self.listed_but_killed:
            lines += ["", "on the list of equivalents but killed (remove the entry): "
                      + ", ".join(f"#{i}" for i in self.listed_but_killed)]
        return "\n".join(lines) + "\n"


def run_mutation(hw, out_dir: Path, count: int | None = 60, seed: int = 0, suite_seed: int = 1,
                 progress=None, equivalents: list | None = None, unit: str = "core",
                 only=None) -> MutationReport:
    """Build the schemata of ``count`` mutants of ``unit`` (:data:`UNITS`) for ``hw`` and run each through the
    unit's kill suite (the core: :func:`kill_suite` on the native harness; the others: their cocotb regression
    at seed ``suite_seed``). With ``only`` (mutant indices) just those mutants (:func:`select_mutants`).

    A survivor matching an entry of ``equivalents`` (default: :func:`load_equivalents` of
    :data:`EQUIVALENT_LIST`) is reported as equivalent, with its reason.

    Raises
    ------
    RuntimeError
        The design as generated (mutant 0) fails the kill suite: the suite is wrong, not the mutants.
    ValueError
        ``only`` names an index that no generated mutant has (before the build).
    """
    from dbpim.model.config import HwConfig
    if not isinstance(hw, HwConfig):
        raise TypeError(f"hw: must be an HwConfig, got {type(hw).__name__}")
    _unit(unit)
    if equivalents is None:
        equivalents = load_equivalents()
    if unit == "core":
        exe, chosen, generated, build_s = build_mutant_harness(hw, out_dir, count, seed, only=only)
        from dbpim.model.core import CoreParams
        psum = CoreParams.from_config(hw).psum_width
        suite = kill_suite(hw, suite_seed)

        def run(index):
            return run_mutant(exe, suite, index, psum)
    elif unit == "chip":
        exe, chosen, generated, build_s = build_chip_harness(hw, out_dir, count, seed, only=only)
        csuite = chip_suite(hw, suite_seed)

        def run(index):
            return run_chip_mutant(exe, csuite, index)
    else:
        build, chosen, generated, build_s = build_unit_harness(unit, hw, out_dir, count, seed, only=only)

        def run(index):
            return run_unit_mutant(build, unit, hw, index, suite_seed)
    facts = mutant_facts(generated_sources(out_dir), chosen, f"dbpim_{UNITS[unit].block}")
    t0 = time.perf_counter()
    base = run(0)
    if base is not None:
        raise RuntimeError(f"the unmutated {unit} fails the kill suite: {base}")
    survivors, equivalent, listed_but_killed, killed_by = [], [], [], {}
    for k, mu in enumerate(chosen):
        why = run(mu.index)
        eq = next((e for e in equivalents if e.matches(hw.name, mu, facts[mu])), None)
        if why is None and eq is not None:
            equivalent.append({**asdict(mu), "reason": eq.reason})
        elif why is None:
            survivors.append(asdict(mu))
        else:
            killed_by[str(mu.index)] = why
            if eq is not None:
                listed_but_killed.append(mu.index)
        if progress:
            progress(k + 1, len(chosen), mu, why)
    return MutationReport(config=hw.name, generated=generated,
                          killed=len(chosen) - len(survivors) - len(equivalent), total=len(chosen),
                          survivors=survivors, killed_by=killed_by, build_seconds=build_s,
                          run_seconds=time.perf_counter() - t0, equivalent=equivalent,
                          listed_but_killed=listed_but_killed, unit=unit)
