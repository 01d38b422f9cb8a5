"""``make mutate``'s generator (verif/mutate.py): enough mutants, each a real change that elaborates, and a few of
them run end to end through the kill suite (killed), the unmutated design passing it."""

import dataclasses
import subprocess

import pytest

pytest.importorskip("amaranth")


@pytest.fixture(scope="module")
def small_core(tmp_path_factory):
    from dbpim.model.config import load_config
    from dbpim.verif.mutate import core_sources
    d = tmp_path_factory.mktemp("mutate")
    sources, names = core_sources(load_config("small"), d)
    return sources, names, d


def test_at_least_30_mutants_of_every_kind_each_a_change(small_core):
    from dbpim.verif.mutate import KINDS, UnknownMutantError, apply_mutant, generate_mutants, select_mutants
    sources, _, _ = small_core
    mutants = generate_mutants(sources)
    assert len(mutants) >= 30
    assert {m.kind for m in mutants} == set(KINDS)
    assert len({(m.file, m.line, m.mutated) for m in mutants}) == len(mutants), "two mutants are the same"
    for m in mutants:
        assert m.mutated != m.original, m
        assert apply_mutant(sources, m)[m.file] != sources[m.file], m
    chosen = select_mutants(mutants, 30, seed=0)
    assert len(chosen) == 30 and {m.kind for m in chosen} == set(KINDS)
    assert select_mutants(mutants, 30, seed=0) == chosen  # the same choice for the same seed
    # --only: those indices, whatever count and seed; an index no mutant has is refused, naming it
    assert [m.index for m in select_mutants(mutants, 30, seed=3, only=[7, 2])] == [2, 7]
    with pytest.raises(UnknownMutantError, match=f"only: no mutant #{len(mutants) + 1} among the {len(mutants)} "
                                                 "generated"):
        select_mutants(mutants, None, only=[1, len(mutants) + 1])


def test_only_takes_a_list_of_mutant_indices():
    """``dbpim mutate --only``: a malformed list is a one-line usage error, before any build."""
    from click.testing import CliRunner

    from dbpim.commands.mutate import command
    for bad in ("0", "3,,4", "x"):
        r = CliRunner().invoke(command, ["--only", bad, "--out", "unused"])
        assert r.exit_code == 2 and "--only" in r.output and "Traceback" not in r.output, (bad, r.output)


def test_stuck_at_of_an_unread_alias_is_left_out():
    from dbpim.verif.mutate import generate_mutants
    text = ("module dbpim_t(a, b, y);\n  input a;\n  input b;\n  output y;\n  wire alias_only;\n  wire used;\n"
            "  wire p;\n  sub u (\n    .p(a)\n  );\n  assign p = a;\n"
            "  assign alias_only = a & b;\n  assign used = a | b;\n  assign y = used;\nendmodule\n")
    stuck = {m.what for m in generate_mutants({"t.v": text}) if m.kind == "stuck"}
    assert stuck == {"used stuck at 0", "used stuck at 1 (bit 0)", "y stuck at 0", "y stuck at 1 (bit 0)"}


def _lint(files, top="dbpim_core"):
    from dbpim.hw.tools import verilator_env
    r = subprocess.run([verilator_env(), "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", top,
                        *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.rtl
@pytest.mark.timeout(300)
def test_every_mutant_elaborates(small_core):
    """The schemata (every mutant in one design, each behind its select) and three standalone mutants elaborate."""
    from dbpim.verif.mutate import apply_mutant, generate_mutants, schemata
    sources, names, d = small_core
    mutants = generate_mutants(sources)
    for tag, srcs in [("all", schemata(sources, mutants))] + [
            (f"m{m.index}", apply_mutant(sources, m)) for m in (mutants[0], mutants[len(mutants) // 2], mutants[-1])]:
        out = d / tag
        out.mkdir()
        for n, text in srcs.items():
            (out / n).write_text(text)
        _lint([out / n for n in names])


def _killable(m) -> bool:
    """Three mutants the kill suite must kill: the descriptor count compare, a stuck stream valid, a dropped
    controller reset."""
    return ((m.file == "dbpim_pim_core.v" and m.kind == "cmp" and "desc_idx != n_desc" in m.mutated)
            or (m.file == "dbpim_switch.v" and m.what == "o__valid stuck at 0")
            or (m.file == "dbpim_pim_core.v" and m.what == "reset of fsm_state dropped"))


@pytest.mark.rtl
@pytest.mark.timeout(600)
def test_three_mutants_are_killed_end_to_end(tmp_path):
    from dbpim.model.config import load_config
    from dbpim.model.core import CoreParams
    from dbpim.verif.mutate import build_mutant_harness, kill_suite, run_mutant
    hw = load_config("small")
    exe, chosen, generated, _ = build_mutant_harness(hw, tmp_path / "m", pick=_killable)
    assert {m.kind for m in chosen} == {"cmp", "stuck", "reset"}, [m.what for m in chosen]  # the compare twice
    suite = kill_suite(hw, seed=1)
    psum = CoreParams.from_config(hw).psum_width
    assert run_mutant(exe, suite, 0, psum) is None, "the design as generated fails the kill suite"
    for m in chosen:
        why = run_mutant(exe, suite, m.index, psum)
        assert why is not None, f"mutant {m.index} ({m.file}:{m.line} {m.what}) survived"


@pytest.mark.rtl
@pytest.mark.timeout(600)
@pytest.mark.parametrize("unit,killable", [pytest.param("simd", ("d__ready stuck at 1 (bit 0)", "en stuck at 1 (bit 0)"),
                                                        marks=pytest.mark.slow),
                                           pytest.param("window", ("tap0_ok stuck at 1 (bit 0)", "tap0_dy stuck at 0"),
                                                        marks=pytest.mark.slow)])
def test_two_unit_mutants_are_killed_by_their_cocotb_regression(unit, killable, tmp_path):
    """``dbpim mutate --unit simd|window``: the schemata's cocotb build passes the unit's regression unmutated
    (mutant 0) and fails it with ``d.ready`` stuck high (a descriptor taken while busy) or the pipeline enable
    stuck high (back-pressure ignored) in the SIMD core, a tap always inside the map or its row offset stuck at 0
    in the window generator."""
    from dbpim.model.config import load_config
    from dbpim.verif.mutate import build_unit_harness, run_unit_mutant
    hw = load_config("small")
    build, chosen, generated, _ = build_unit_harness(unit, hw, tmp_path / "m", pick=lambda m: m.what in killable)
    assert sorted(m.what for m in chosen) == sorted(killable) and generated > 100
    assert run_unit_mutant(build, unit, hw, 0) is None, f"the {unit} as generated fails its regression"
    for m in chosen:
        assert run_unit_mutant(build, unit, hw, m.index) is not None, f"{unit} mutant {m.index} ({m.what}) survived"


def test_every_listed_equivalent_names_its_real_mutants(small_core):
    """verif/mutants_equivalent.yaml: each entry names as many generated mutants of its configuration as it must
    (one, ``count``, at least one for a pattern or a class: a stale entry fails), and an entry whose mutated text
    no longer matches is found stale."""
    from dataclasses import replace

    from dbpim.model.config import load_config
    from dbpim.verif.mutate import (UNITS, core_sources, generate_mutants, load_equivalents, mutant_facts,
                                    stale_equivalents, unit_mutants, unit_sources)
    entries = load_equivalents()
    assert entries, "the reviewed list of equivalent mutants is empty"
    sources, _, d = small_core

    def unit_of(e):
        return next((u for u, spec in UNITS.items() if spec.files and e.file in spec.files), "core")

    assert {unit_of(e) for e in entries} >= {"core", "simd", "window"}, "each unit has reviewed equivalents"
    assert any(e.cls == "dead" for e in entries) and any(e.match for e in entries)
    core = generate_mutants(sources)
    by_config = {"small": (core, mutant_facts(sources, core, "dbpim_core"))}
    for cfg in sorted({e.config for e in entries} - set(by_config)):
        src = core_sources(load_config(cfg), d / cfg)[0]
        ms = generate_mutants(src)
        by_config[cfg] = (ms, mutant_facts(src, ms, "dbpim_core"))
    for cfg, unit in sorted({(e.config, unit_of(e)) for e in entries if unit_of(e) not in ("core", "chip")}):
        src = unit_sources(unit, load_config(cfg), d / f"{cfg}-{unit}")[0]
        ms = unit_mutants(unit, src)
        by_config[cfg] = (by_config[cfg][0] + ms, {**by_config[cfg][1],
                                                   **mutant_facts(src, ms, f"dbpim_{UNITS[unit].block}")})
    for cfg, (mutants, facts) in by_config.items():  # the chip's entries: the slow test below
        assert stale_equivalents([e for e in entries if unit_of(e) != "chip"], cfg, mutants, facts) == [], \
            f"stale entries for {cfg}"
    e = next(e for e in entries if not e.match and not e.cls)
    mutants, facts = by_config[e.config]
    moved = replace(e, mutated=e.mutated + " ")
    assert stale_equivalents([moved], e.config, mutants, facts) == [moved]
    assert stale_equivalents([replace(e, what="reset of nothing dropped")], e.config, mutants, facts)
    assert stale_equivalents([replace(e, count=2)], e.config, mutants, facts)
    assert stale_equivalents([replace(e, drives=("nothing",))], e.config, mutants, facts)


def test_liveness_and_drives_of_a_small_module():
    """verif.mutate.mutant_facts: a signal with no path to an output is dead (also through an instance whose
    output is left unconnected); ``drives`` names the signals reached through Yosys's temporaries."""
    from dbpim.verif.mutate import generate_mutants, mutant_facts
    sub = ("module dbpim_s(a, y, z);\n  input a;\n  output y;\n  output z;\n  assign y = a & a;\n"
           "  assign z = a | a;\nendmodule\n")
    top = ("module dbpim_t(a, b, o);\n  input a;\n  input b;\n  output o;\n  wire u;\n  wire v;\n  wire \\$1 ;\n"
           "  wire \\$2 ;\n  assign \\$1  = a & b;\n  assign \\$2  = a | b;\n  assign o = \\$1  | v;\n"
           "  dbpim_s s (\n    .a(a),\n    .y(v),\n    .z(u)\n  );\nendmodule\n")
    src = {"s.v": sub, "t.v": top}
    facts = mutant_facts(src, generate_mutants(src), "dbpim_t")
    dead = {(m.file, m.original) for m, f in facts.items() if f.dead}
    assert ("s.v", "assign z = a | a;") in dead  # the instance's z drives u, which nothing reads
    assert ("t.v", "assign \\$2  = a | b;") in dead
    assert ("t.v", "assign \\$1  = a & b;") not in dead and ("s.v", "assign y = a & a;") not in dead
    one = next(f for m, f in facts.items() if m.original == "assign \\$1  = a & b;")
    assert one.drives == ("o",)


def test_an_instance_port_named_by_a_keyword_is_connected():
    """verif.mutate.live_signals follows an instance connection whose port Yosys escapes (a Verilog keyword,
    ``.\\signed (...)``, like the PIM controller's input): what drives it is live."""
    from dbpim.verif.mutate import generate_mutants, mutant_facts
    sub = "module dbpim_s(\\signed , y);\n  input \\signed ;\n  output y;\n  assign y = \\signed ;\nendmodule\n"
    top = ("module dbpim_t(a, b, o);\n  input a;\n  input b;\n  output o;\n  wire \\signed ;\n"
           "  assign \\signed  = a & b;\n  dbpim_s s (\n    .\\signed (\\signed ),\n    .y(o)\n  );\nendmodule\n")
    src = {"s.v": sub, "t.v": top}
    facts = mutant_facts(src, generate_mutants(src), "dbpim_t")
    live = [m.original for m, f in facts.items() if not f.dead]
    assert "assign \\signed  = a & b;" in live, facts


def test_an_entry_names_one_of_two_copies_of_the_same_text_by_its_occurrence():
    """Two copies of one expression with the same text and ``drives`` (Yosys's temporaries, renumbered): an entry
    with ``occurrence`` names the k-th in line order alone, one past the copies names none (stale), and a copy
    that drives another signal is ranked apart."""
    from dbpim.verif.mutate import Equivalent, generate_mutants, mutant_facts, stale_equivalents
    top = ("module dbpim_t(a, b, o, p);\n  input [1:0] a;\n  input b;\n  output o;\n  output p;\n  wire \\$1 ;\n"
           "  wire \\$2 ;\n  wire \\$3 ;\n  assign \\$3  = a == 2'h1;\n  assign \\$1  = a == 2'h1;\n"
           "  assign \\$2  = a == 2'h1;\n  assign o = \\$1  & \\$2 ;\n  assign p = \\$3  | b;\nendmodule\n")
    src = {"t.v": top}
    other, *ms = [m for m in generate_mutants(src) if m.what == "`==` -> `!=`"]
    facts = mutant_facts(src, [other, *ms], "dbpim_t")
    assert len(ms) == 2 and facts[ms[0]].drives == facts[ms[1]].drives == ("o",) and facts[other].drives == ("p",)
    assert [facts[m].occurrence for m in (other, *ms)] == [1, 1, 2]  # the copy that drives p ranked apart
    assert mutant_facts(src, ms[1:], "dbpim_t")[ms[1]].occurrence == 2  # ranked among every mutant of the file
    e = Equivalent(config="small", reason="r", file="t.v", kind="cmp", what="`==` -> `!=`",
                   original="assign \\$7  = a == 2'h1;", mutated="assign \\$7  = a != 2'h1;", drives=("o",))
    assert [e.matches("small", m, facts[m]) for m in (other, *ms)] == [False, True, True]
    assert stale_equivalents([e], "small", ms, facts) == [e]  # one mutant expected, two named
    for k in (1, 2):
        one = dataclasses.replace(e, occurrence=k)
        assert [one.matches("small", m, facts[m]) for m in (other, *ms)] == [False, k == 1, k == 2]
        assert stale_equivalents([one], "small", [other, *ms], facts) == []
    assert stale_equivalents([dataclasses.replace(e, occurrence=3)], "small", ms, facts)


@pytest.mark.parametrize("text, msg", [
    ("- 1\n", "exactly the fields"),
    ("{}\n", "must be a list"),
    ("- {config: small, file: a.v, kind: cmp, what: w, original: o, mutated: m}\n", "exactly the fields"),
    ("- {config: small, file: a.v, kind: cmp, what: w, original: o, mutated: m, reason: ''}\n", "field reason"),
    ("- {config: small, file: a.v, kind: typo, what: w, original: o, mutated: m, reason: r}\n", "field kind"),
    ("- [unclosed\n", "unreadable"),
    ("- {config: small, class: alive, reason: r}\n", "field class"),
    ("- {config: small, class: dead, drives: [x], reason: r}\n", "exactly the fields"),
    ("- {config: small, file: a.v, kind: cmp, match: {what: '('}, reason: r}\n", "not a regular expression"),
    ("- {config: small, file: a.v, kind: cmp, match: {line: x}, reason: r}\n", "field match"),
    ("- {config: small, class: dead, count: 0, reason: r}\n", "field count"),
    ("- {config: small, file: a.v, kind: cmp, what: w, original: o, mutated: m, drives: x, reason: r}\n",
     "field drives"),
    ("- {config: small, file: a.v, kind: cmp, what: w, original: o, mutated: m, drives: [x], occurrence: 0, "
     "reason: r}\n", "field occurrence"),
    ("- {config: small, file: a.v, kind: cmp, what: w, original: o, mutated: m, occurrence: 1, reason: r}\n",
     "needs drives"),
    ("- {config: small, file: a.v, kind: cmp, match: {what: w}, occurrence: 1, reason: r}\n", "exactly the fields"),
])
def test_a_bad_list_of_equivalents_is_refused(tmp_path, text, msg):
    from dbpim.verif.mutate import load_equivalents
    p = tmp_path / "eq.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=msg):
        load_equivalents(p)


def test_the_score_line_counts_equivalent_and_unexplained_survivors():
    from dbpim.verif.mutate import MutationReport
    s = {"index": 3, "file": "a.v", "line": 7, "kind": "cmp", "what": "`<` -> `<=`", "original": "o", "mutated": "m"}
    rep = MutationReport(config="small", generated=10, killed=7, total=10, survivors=[s], killed_by={},
                         build_seconds=1.0, run_seconds=1.0, equivalent=[{**s, "index": 4, "reason": "why"}] * 2,
                         listed_but_killed=[5])
    text = rep.text()
    assert text.startswith("mutation of dbpim_core (small): killed 7 / 10 (2 equivalent, 1 unexplained)")
    assert "| 4 | a.v | 7 | cmp | `<` -> `<=` | why |" in text and "remove the entry): #5" in text


def test_the_chip_kill_suite_check_reads_status_cycles_and_buffers():
    """verif.mutate.check_chip_suite on hand-written harness output: the expected output passes; a wrong STATUS
    field, CYCLES, buffer word, a missing abort or a timeout each kill, naming it."""
    import numpy as np

    from dbpim.model import isa
    from dbpim.verif.mutate import ChipSuite, check_chip_suite
    done = isa.CHIP_REG["STATUS"].value(DONE=1, PC=3)
    suite = ChipSuite([], [("program", ["ACT"], {"DONE": 1, "ERROR": 0, "PC": 3}, 10, [np.array([1, -2])]),
                           ("error", [], {"ERROR": 1, "ERROR_CODE": 5}, None, None)], aborts=1)
    err = isa.CHIP_REG["STATUS"].value(DONE=1, ERROR=1, ERROR_CODE=5)
    good = ["aborted 7", f"r {done:x}", "r a", "r 1 fffe", "run 10 0 0", f"r {err:x}", "r 4"]
    assert check_chip_suite(suite, good) is None
    assert "STATUS" in check_chip_suite(suite, [f"r {err:x}" if ln == f"r {done:x}" else ln for ln in good])
    assert "CYCLES 11" in check_chip_suite(suite, [("r b" if ln == "r a" else ln) for ln in good])
    assert "ACT differs at [1]" in check_chip_suite(suite, [("r 1 fffd" if ln == "r 1 fffe" else ln) for ln in good])
    assert "abort" in check_chip_suite(suite, good[1:])
    assert "DONE" in check_chip_suite(suite, good + ["timeout 99"])


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_chip_mutants_are_killed_end_to_end(tmp_path):
    """``dbpim mutate --unit chip``: the schemata's native chip harness passes the chip suite unmutated and fails
    it with the controller's ACC read address stuck at 0 (REQ reads the wrong sums), the PIM controller's core
    write strobe stuck at 1 (the core's bus writes lose bytes) or either of Yosys's copies of WINDOW_TABLE's bound
    ``ti >= 512`` made ``>`` (the copy of ``busy`` and the next state: the PIM controller runs on after error 6
    and a CLMP started at once reads ACT through its port; the copy of the error: no error 6, the chip hangs)."""
    from dbpim.model.config import load_config
    from dbpim.verif.mutate import build_chip_harness, chip_suite, run_chip_mutant
    hw = load_config("small")

    def pick(m):
        table_bound = m.file == "dbpim_pim_ctrl.v" and m.mutated.endswith(f"= ti > 10'h{hw.core.mask_windows:x};")
        return table_bound or (m.file, m.what) in (("dbpim_chip_ctrl.v", "acc_raddr stuck at 0"),
                                                   ("dbpim_pim_ctrl.v", "core_w_strb stuck at 1 (bit 0)"))
    exe, chosen, generated, _ = build_chip_harness(hw, tmp_path / "m", pick=pick)
    assert len(chosen) == 4 and generated > 100, [m.what for m in chosen]
    suite = chip_suite(hw, 1)
    assert run_chip_mutant(exe, suite, 0) is None, "the chip as generated fails the chip suite"
    for m in chosen:
        assert run_chip_mutant(exe, suite, m.index) is not None, f"chip mutant {m.index} ({m.what}) survived"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_listed_chip_equivalent_names_its_real_mutants(tmp_path):
    """The chip unit's entries of verif/mutants_equivalent.yaml (the chip's Verilog takes a minute to generate:
    behind slow) name their mutants, the class ``dead`` included."""
    from dbpim.model.config import load_config
    from dbpim.verif.mutate import UNITS, load_equivalents, mutant_facts, stale_equivalents, unit_mutants, unit_sources
    entries = [e for e in load_equivalents() if e.file in UNITS["chip"].files or e.cls]
    assert any(e.file for e in entries)
    src = unit_sources("chip", load_config("small"), tmp_path)[0]
    ms = unit_mutants("chip", src)
    assert stale_equivalents(entries, "small", ms, mutant_facts(src, ms, "dbpim_chip")) == []


@pytest.mark.parametrize("cfg", ["tests/odd.yaml", "tests/coverage_core.yaml"])
def test_the_kill_suite_is_made_for_any_design_point(cfg):
    """The core's kill suite builds on a register map other than small's (a check that needs small's aliasing of
    a mask word onto descriptor 0's upper word is left out there, not asserted): `dbpim mutate --hw` of any
    configuration runs."""
    from dbpim.model.config import load_config
    from dbpim.verif.mutate import kill_suite
    from pathlib import Path
    suite = kill_suite(load_config(Path(__file__).resolve().parent.parent / cfg), seed=1)
    assert suite.lines and suite.expect
