"""The dbpim command line and the demo's golden-model stages."""

import subprocess
import sys

from dbpim import cli


def test_help_lists_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "verilog", "compile", "bench", "sweep", "verify"):
        assert name in out


def test_unknown_command_is_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "dbpim", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr


def test_demo_golden_stages(tmp_path, capsys):
    assert cli.main(["demo", "--stages", "1,2", "--hw", "small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "outputs == integer matmul  : True" in out and "False" not in out


def test_demo_bad_config(tmp_path, capsys):
    assert cli.main(["demo", "--hw", str(tmp_path / "none.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
