"""``make mutate``'s generator (verif/mutate.py): enough mutants, each a real change that elaborates, and a few of
them run end to end through the kill suite (killed), the unmutated design passing it."""

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
    from dbpim.verif.mutate import KINDS, apply_mutant, generate_mutants, select_mutants
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
@pytest.mark.parametrize("unit,killable", [("simd", ("d__ready stuck at 1 (bit 0)", "en stuck at 1 (bit 0)")),
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


def test_every_listed_equivalent_names_one_real_mutant(small_core):
    """verif/mutants_equivalent.yaml: each entry names exactly one generated mutant of its configuration (a
    stale entry fails), and an entry whose mutated text no longer matches is found stale."""
    from dataclasses import replace

    from dbpim.model.config import load_config
    from dbpim.verif.mutate import (UNITS, core_sources, generate_mutants, load_equivalents, stale_equivalents,
                                    unit_mutants, unit_sources)
    entries = load_equivalents()
    assert entries, "the reviewed list of equivalent mutants is empty"
    sources, _, d = small_core

    def unit_of(e):
        return next((u for u, spec in UNITS.items() if spec.files and e.file in spec.files), "core")

    assert {unit_of(e) for e in entries} == set(UNITS), "each unit has reviewed equivalents"
    by_config = {"small": generate_mutants(sources)}
    for cfg in sorted({e.config for e in entries} - set(by_config)):
        by_config[cfg] = generate_mutants(core_sources(load_config(cfg), d / cfg)[0])
    for cfg, unit in sorted({(e.config, unit_of(e)) for e in entries if unit_of(e) != "core"}):
        by_config[cfg] += unit_mutants(unit, unit_sources(unit, load_config(cfg), d / f"{cfg}-{unit}")[0])
    for cfg, mutants in by_config.items():
        assert stale_equivalents(entries, cfg, mutants) == [], f"stale entries for {cfg}"
    e = entries[0]
    moved = replace(e, mutated=e.mutated + " ")
    assert stale_equivalents([moved], e.config, by_config[e.config]) == [moved]
    assert stale_equivalents([replace(e, what="reset of nothing dropped")], e.config, by_config[e.config])


@pytest.mark.parametrize("text, msg", [
    ("- 1\n", "exactly the fields"),
    ("{}\n", "must be a list"),
    ("- {config: small, file: a.v, kind: cmp, what: w, original: o, mutated: m}\n", "exactly the fields"),
    ("- {config: small, file: a.v, kind: cmp, what: w, original: o, mutated: m, reason: ''}\n", "field reason"),
    ("- {config: small, file: a.v, kind: typo, what: w, original: o, mutated: m, reason: r}\n", "field kind"),
    ("- [unclosed\n", "unreadable"),
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
