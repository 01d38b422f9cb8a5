"""The dbpim command line and the demo's golden-model stages."""

import subprocess
import sys

import pytest

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


def test_version(capsys):
    from dbpim import __version__
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"dbpim {__version__}\n"


class _Parsed(Exception):
    """Raised instead of parsing: carries the parser a subcommand built."""


def _subcommand_parser(name, monkeypatch):
    import argparse
    import importlib

    def grab(self, *a, **k):
        raise _Parsed(self)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    mod, fn, _ = cli.SUBCOMMANDS[name]
    with pytest.raises(_Parsed) as e:
        getattr(importlib.import_module(mod), fn)([])
    return e.value.args[0]


MARKUP = ("``", ":func:", ":class:", ":mod:", ":data:", ":meth:", "**")


@pytest.mark.parametrize("name", list(cli.SUBCOMMANDS))
def test_every_option_has_help_and_no_markup(name, monkeypatch):
    if name == "compile":
        pytest.importorskip("torch")
    p = _subcommand_parser(name, monkeypatch)
    assert p.description and not any(m in p.description for m in MARKUP), p.description
    for action in p._actions:
        assert action.help and action.help.strip(), f"dbpim {name} {action.option_strings}: no help text"
        assert not any(m in action.help for m in MARKUP), action.help


def test_closed_pipe_is_quiet(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "dbpim", "demo", "--stages", "2", "--hw", "small", "--out",
                          str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader goes away before the first line
    err = p.stderr.read().decode()
    assert err == "" and p.wait() == 141  # 128 + SIGPIPE, as a shell reports it
    assert not (tmp_path / "o").exists()  # nothing half-written either


def test_demo_sparsity_reaches_every_stage(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from model.torch import flow
    seen = {}

    def fake_flow(model, data, sparsity, *a, **k):
        seen["sparsity"] = sparsity
        return {"artifact": str(tmp_path / "none"), "accuracy": {"float": 1.0}}
    monkeypatch.setattr(flow, "run_flow", fake_flow)
    assert cli.main(["demo", "--stages", "1,2,3", "--hw", "small", "--sparsity", "0.75",
                     "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert seen["sparsity"] == 0.75
    assert out.count("75% block sparsity") == 3, out
    if "skipped: package" not in out:  # MiniLM installed: stage 1 pruned it
        assert "25.0 % of the weights kept" in out
