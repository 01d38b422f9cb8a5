"""The dbpim command line: one click group, the error contract (one line, exit 2), Ctrl-C, logging, help."""

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from dbpim import cli


def _dbpim(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "dbpim", *argv], capture_output=True, text=True, **kw)


def test_help_lists_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out


def test_no_command_is_a_usage_error():
    r = _dbpim()
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("Usage: dbpim") and "Commands:" in r.stderr


def test_help_does_not_import_torch():
    r = subprocess.run([sys.executable, "-c", "import sys; from dbpim.cli import main; main(['--help']); "
                        "assert 'torch' not in sys.modules and 'amaranth' not in sys.modules"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_unknown_command_is_a_clear_error():
    r = _dbpim("frobnicate")
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


#: Each is a bad number (or list) that must be refused by the option's type: one line, exit 2, no traceback.
BAD_NUMBERS = [
    (["compile", "--epochs", "inf"], "--epochs"),
    (["compile", "--width", "inf"], "--width"),
    (["compile", "--width", "1e6"], "--width"),
    (["compile", "--seed", "-1"], "--seed"),
    (["compile", "--lr", "inf"], "--lr"),
    (["compile", "--lr", "nan"], "--lr"),
    (["compile", "--sparsity", "1"], "--sparsity"),
    (["compile", "--phi-max", "1.5"], "--phi-max"),
    (["sweep", "--phi-max", "nan"], "--phi-max"),
    (["sweep", "--phi-max", "1.5"], "--phi-max"),
    (["sweep", "--sparsity", "0,,0.5"], "--sparsity"),
    (["sweep", "--geometry", "16x16"], "--geometry"),
    (["bench-paper", "x", "--fig11-sparsity", "1.5"], "--fig11-sparsity"),
    (["bench-paper", "x", "--core", "out_banks=3"], "--core"),
    (["bench-paper", "x", "--core", "banks=2"], "--core"),
    (["bench-paper", "x", "--core", "tile_banks=two"], "--core"),
    (["paper-nets", "--record", "0"], "--record"),
    (["paper-nets", "--names", "lenet"], "--names"),
    (["verilog", "--core", "out_banks=3"], "--core"),
    (["verilog", "--core", "in_windows=3"], "--core"),  # does not divide small's macros_per_core = 2
    (["verilog", "--core", "result_lanes=3"], "--core"),  # does not divide small's macros_per_core = 2
    (["verilog", "--blocks", ""], "--blocks"),
    (["verilog", "--blocks", "lpu,,macro"], "--blocks"),
    (["demo", "--sparsity", "1.5"], "--sparsity"),
    (["demo", "--stages", "1,9"], "--stages"),
    (["minilm", "--sparsity", "0.5,1"], "--sparsity"),
    (["compare", "x", "--finetune-epochs", "-1"], "--finetune-epochs"),
    (["verify", "--vectors", "0"], "--vectors"),
    (["verify", "--tiles", "0"], "--tiles"),
]


@pytest.mark.parametrize("argv, flag", BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_bad_numbers_are_one_line_usage_errors(argv, flag, tmp_path, capsys):
    assert cli.main(argv + ["--out", str(tmp_path / "o")] if argv[0] not in ("verify",) else argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"dbpim {argv[0]}: {flag}: ") and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_bad_number_in_a_subprocess_has_no_traceback():
    r = _dbpim("compile", "--epochs", "inf")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "dbpim compile: --epochs: must be a finite number in [0, 10000], got inf (see 'dbpim compile --help')"]


def test_library_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["demo", "--hw", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dbpim demo: --hw: ") and "file not found" in err


def test_demo_golden_stages(tmp_path, capsys):
    assert cli.main(["demo", "--stages", "1,2", "--hw", "small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "outputs == integer matmul  : True" in out and "False" not in out


def test_version(capsys):
    from dbpim import __version__
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"dbpim {__version__}\n"


def _command(name):
    return cli.cli.get_command(None, name)


MARKUP = ("``", ":func:", ":class:", ":mod:", ":data:", ":meth:", "**")


@pytest.mark.parametrize("name", list(cli.SUBCOMMANDS))
def test_every_option_has_help_and_no_markup(name):
    if name in ("compile", "paper-nets"):
        pytest.importorskip("torch")
    cmd = _command(name)
    assert cmd.help and not any(m in cmd.help for m in MARKUP), cmd.help
    for p in cmd.params:
        if isinstance(p, click.Option):
            assert p.help and p.help.strip(), f"dbpim {name} {p.opts}: no help text"
            assert not any(m in p.help for m in MARKUP), p.help
    opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
    assert {"-v", "--verbose", "-q", "--quiet", "--help"} <= opts | {"--help"}, opts


def test_verify_is_one_command_with_both_checks():
    r = _dbpim("verify", "--help")
    assert r.returncode == 0
    assert "layer check" in r.stdout and "macro check" in r.stdout and "--macro" in r.stdout
    for opt in ("--artifact", "--layer", "--samples", "--vectors", "--tiles", "--hw"):
        assert opt in r.stdout


def test_verify_options_of_the_other_check_are_refused(tmp_path, capsys):
    assert cli.main(["verify", "--artifact", str(tmp_path), "--vectors", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dbpim verify: --vectors: only for the macro check (add --macro)"
    assert cli.main(["verify", "--macro", "--samples", "2"]) == 2
    assert "--samples: only for the layer check" in capsys.readouterr().err
    assert cli.main(["verify", "--layer", "fc1"]) == 2
    assert "--layer: needs --artifact" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_130(tmp_path, monkeypatch, capsys):
    from dbpim import demo

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(demo, "run_stages", interrupted)
    assert cli.main(["demo", "--stages", "2", "--hw", "small", "--out", str(tmp_path / "o")]) == 130
    captured = capsys.readouterr()
    assert captured.err == "dbpim demo: interrupted; --out unchanged\n"
    assert not (tmp_path / "o").exists()


def test_ctrl_c_without_out(monkeypatch, capsys):
    import dbpim.verify as V

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(V, "verify_macro", interrupted)
    assert cli.main(["verify", "--hw", "small"]) == 130
    assert capsys.readouterr().err == "dbpim verify: interrupted\n"


def test_a_bug_still_shows_its_traceback(tmp_path, monkeypatch):
    from dbpim import demo

    def bug(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(demo, "run_stages", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["demo", "--stages", "2", "--hw", "small", "--out", str(tmp_path / "o")])


def test_closed_pipe_is_quiet(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "dbpim", "demo", "--stages", "2", "--hw", "small", "--out",
                          str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader goes away before the first line
    err = p.stderr.read().decode()
    lines = [ln for ln in err.splitlines() if not re.match(r"^\d{4}-\d\d-\d\dT", ln)]  # log lines are fine
    assert lines == [] and p.wait() == 141  # 128 + SIGPIPE, as a shell reports it
    assert not (tmp_path / "o").exists()  # nothing half-written either


def test_log_lines_with_timestamps_off_a_terminal(tmp_path):
    """Stage 1 (about 1 s; dbpim.demo logs every stage's start and end alike; test_demo_golden_stages runs
    stage 2)."""
    r = _dbpim("demo", "--stages", "1", "--hw", "small", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    logs = r.stderr.strip().splitlines()
    stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ dbpim demo: "
    assert any(re.match(stamp + r"stage 1 .* started$", ln) for ln in logs), logs
    assert any(re.match(stamp + r"stage 1 .* done in [\d.]+ s$", ln) for ln in logs), logs
    q = _dbpim("demo", "-q", "--stages", "1", "--hw", "small", "--out", str(tmp_path / "q"))
    assert q.returncode == 0 and q.stderr == ""


def test_training_logs_every_epoch(caplog):
    torch = pytest.importorskip("torch")
    import logging

    from dbpim.model.torch.train import train
    from dbpim.model.torch.zoo import get_model
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    with caplog.at_level(logging.INFO, logger="dbpim.model.torch.train"):
        train(get_model("smallcnn", 10, width=0.25), x, y, epochs=2, batch_size=8, desc="t")
    lines = [r.getMessage() for r in caplog.records]
    assert [ln.split(",")[0] for ln in lines] == ["t: epoch 1/2", "t: epoch 2/2"], lines


def test_demo_sparsity_reaches_every_stage(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from dbpim.model.torch import flow
    seen = {}

    def fake_demo(hw, out, sparsity, **k):
        seen["sparsity"] = sparsity
        seen["hw"] = hw
        Path(out).mkdir(parents=True)  # the flow writes its report.json there; the demo's summary reads it
        (Path(out) / "report.json").write_text(json.dumps({"sparsity": sparsity, "epochs": {"float": 15}}))
        return tmp_path / "none", {"float": 1.0}
    monkeypatch.setattr(flow, "demo", fake_demo)
    assert cli.main(["demo", "--stages", "1,2,3", "--hw", "small", "--sparsity", "0.75",
                     "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert seen["sparsity"] == 0.75 and seen["hw"].name == "small"
    assert out.count("75% block sparsity") == 3, out
    if "skipped: package" not in out:  # MiniLM installed: stage 1 pruned it
        assert "25.0 % of the weights kept" in out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["sparsity"] == 0.75 and summary["smallcnn"]["schedule"]["sparsity"] == 0.75


def test_sigterm_is_one_line_and_143(tmp_path, monkeypatch, capsys):
    import signal

    from dbpim import demo
    from dbpim.model.outdir import Interrupted

    def terminated(*a, **k):
        raise Interrupted(signal.SIGTERM)
    monkeypatch.setattr(demo, "run_stages", terminated)
    assert cli.main(["demo", "--stages", "2", "--hw", "small", "--out", str(tmp_path / "o")]) == 143
    assert capsys.readouterr().err == "dbpim demo: terminated by SIGTERM; --out unchanged\n"


def test_bench_reads_the_hardware_recorded_in_the_artifact(tmp_path, capsys):
    """No --hw: the artifact's own configuration (small here; the default used to be paper, a wrong macro)."""
    from dbpim.model import artifact
    from dbpim.model.config import load_config
    from dbpim.model.examples import real_layers, to_records
    hw = load_config("small")
    art = artifact.save(tmp_path / "art", "digits", hw.macro, to_records(real_layers(hw.macro)), hw=hw)
    assert cli.main(["bench", "--artifact", str(art), "--no-plots", "--out", str(tmp_path / "b")]) == 0
    assert " on small: speedup " in capsys.readouterr().out
    assert cli.main(["bench", "--artifact", str(art), "--hw", "paper", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dbpim bench: --hw paper: its macro must match") and len(err.splitlines()) == 1


@pytest.mark.parametrize("module, name", sorted(cli.USER_ERRORS))
def test_every_user_error_type_exists_where_named(module, name):
    """The one-line error types are matched by module and name: each must be defined there (no drift)."""
    import importlib
    if module.startswith("dbpim.model.torch"):
        pytest.importorskip("torch")
    cls = getattr(importlib.import_module(module), name)
    assert cls.__module__ == module and issubclass(cls, ValueError)


def test_verilog_core_option_names_the_design_point(tmp_path, capsys):
    """`dbpim verilog --core KEY=N` (bench-paper's option): the configuration's core changed, its name tagged."""
    import json
    pytest.importorskip("amaranth")
    assert cli.main(["verilog", "--hw", "small", "--blocks", "lpu", "--core", "tile_banks=2", "--core",
                     "in_windows=2", "--out", str(tmp_path / "v")]) == 0
    man = json.loads((tmp_path / "v" / "manifest.json").read_text())
    assert man["config"] == "small+tile_banks=2+in_windows=2"
    assert (tmp_path / "v" / "small_tile_banks_2_in_windows_2_dbpim_lpu.v").is_file()


def test_regress_validates_hw_and_runs_pytest_on_it(tmp_path, monkeypatch, capsys):
    """``dbpim regress --hw``: a bad YAML is one line before anything runs; a relative YAML reaches pytest as an
    absolute DBPIM_HW (the simulators run in their build folders), with the regression's markers; pytest's exit
    status is the command's."""
    import subprocess as sp

    from dbpim.commands import regress
    calls = []
    monkeypatch.setattr(sp, "call", lambda cmd, cwd, env: calls.append((cmd, cwd, env)) or 3)
    assert cli.main(["regress", "--hw", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dbpim regress: --hw: ") and calls == []
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    assert cli.main(["regress", "--hw", "tests/odd.yaml", "--jobs", "1", "--junit", str(tmp_path / "j.xml")]) == 3
    (cmd, cwd, env), = calls
    assert env["DBPIM_HW"] == str(Path("tests/odd.yaml").resolve())
    assert cmd[cmd.index("-m", 3) + 1] == regress.MARKERS and cmd[cmd.index("-n") + 1] == "1"
    assert f"--junitxml={tmp_path / 'j.xml'}" in cmd
