"""Every command writes only its own files, refuses an unsafe --out with one line, and honours the umask.

docs/design.md §10. Each test runs the command the way a person would and
checks that nothing it did not write was deleted or changed.
"""

from __future__ import annotations

import json
import shutil
import tempfile

import pytest

from dbpim import cli
from dbpim.model import artifact, examples
from dbpim.model.config import load_config
from dbpim.model.outdir import MARKER
from dbpim.sim_bench import synth


@pytest.fixture(scope="module")
def art(tmp_path_factory, save_digits_artifact):
    """A compiled artifact inside a folder that also holds a person's files (like `dbpim compile --out X`)."""
    x = tmp_path_factory.mktemp("X")
    save_digits_artifact(x / "artifact")
    (x / "report.md").write_text("# my compile report\n")
    (x / "phi_hist.png").write_bytes(b"\x89PNG not really")
    return x / "artifact"


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(capsys, argv, *needles):
    """Run ``dbpim argv``: exit status 2 and one line on stderr holding every needle."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_bench_out_containing_the_artifact_is_refused(art, capsys):
    x = art.parent
    before = _snapshot(x)
    _refused(capsys, ["bench", "--artifact", str(art), "--out", str(x)], "contains the input")
    _refused(capsys, ["bench", "--artifact", str(art), "--out", str(art)], "is the input")
    _refused(capsys, ["bench", "--artifact", str(art), "--out", str(art / "layers")], "is inside the input")
    assert _snapshot(x) == before
    artifact.load(art)


@pytest.mark.parametrize("cmd", ["bench", "sweep", "bench-paper"])
def test_out_with_a_persons_files_is_refused(art, tmp_path, capsys, cmd):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = {"bench": ["bench", "--artifact", str(art)],
            "sweep": ["sweep", "--workload", str(art), "--sparsity", "0.5", "--phi-max", "2", "--workers", "1"],
            "bench-paper": ["bench-paper", "--artifacts", str(art)]}[cmd]
    _refused(capsys, argv + ["--out", str(out), "--no-plots"], "notes.txt", "not written by")
    assert _snapshot(out) == {"notes.txt": b"mine"}


def test_bench_rerun_replaces_its_own_files_only(art, tmp_path, capsys):
    out = tmp_path / "rep"
    assert cli.main(["bench", "--artifact", str(art), "--out", str(out)]) == 0
    assert (out / "mechanisms.png").is_file()
    assert cli.main(["bench", "--artifact", str(art), "--out", str(out), "--no-plots"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "layers.csv", "summary.json", "summary.md"])
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]
    _refused(capsys, ["sweep", "--workload", "digits", "--sparsity", "0", "--phi-max", "2", "--workers", "1",
                      "--out", str(out)], "written by `dbpim bench`")


@pytest.mark.parametrize("cmd", [["bench", "--artifact", "ART"], ["sweep"], ["demo", "--stages", "2"],
                                 ["verilog", "--blocks", "lpu"], ["compile"], ["bench-paper", "--artifacts", "ART"]])
def test_out_that_is_a_file_or_the_current_folder(art, tmp_path, capsys, monkeypatch, cmd):
    cmd = [str(art) if a == "ART" else a for a in cmd]
    f = tmp_path / "f.txt"
    f.write_text("keep")
    _refused(capsys, cmd + ["--out", str(f)], "is a file")
    monkeypatch.chdir(tmp_path)
    _refused(capsys, cmd + ["--out", "."], "current folder")
    assert f.read_text() == "keep"


def test_unwritable_out_is_one_line(art, tmp_path, capsys, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)

    def refuse(*a, **k):  # what the OS answers (root ignores the mode bits)
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    try:
        _refused(capsys, ["bench", "--artifact", str(art), "--out", str(parent / "out")], "Permission denied")
    finally:
        parent.chmod(0o755)


def test_make_bench_refuses_foreign_out(tmp_path, capsys):
    out = tmp_path / "speed"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert cli.main(["speed", "--out", str(out), "--quick"]) == 2
    assert "results.json" in capsys.readouterr().err
    assert _snapshot(out) == {"results.json": b"{}"}


def test_compile_refuses_foreign_out_before_training(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from dbpim.model.torch import flow

    def no_training(*a, **k):
        raise AssertionError("trained before checking --out")
    monkeypatch.setattr(flow, "train", no_training)
    out = tmp_path / "c"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    _refused(capsys, ["compile", "--hw", "small", "--out", str(out), "--quiet"], "thesis.tex")
    model = tmp_path / "m" / "net.pt"
    model.parent.mkdir()
    model.write_bytes(b"")
    _refused(capsys, ["compile", "--model", str(model), "--model-class", "smallcnn", "--hw", "small",
                      "--out", str(model.parent), "--quiet"], "contains the input")


def test_demo_refuses_foreign_out_and_bad_stages(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    _refused(capsys, ["demo", "--stages", "2", "--hw", "small", "--out", str(out)], "keep.txt")
    for bad in ("9", "0", "1,9", "", "two", "2;3"):
        _refused(capsys, ["demo", "--stages", bad, "--out", str(tmp_path / "d")], "--stages")
    assert not (tmp_path / "d").exists()
    assert _snapshot(out) == {"keep.txt": b"x"}


def test_artifact_save_overwrite_keeps_foreign_files(tmp_path):
    macro = load_config("paper").macro
    recs = examples.to_records(synth.digits_real_layers(macro, n_samples=4))
    path = artifact.save(tmp_path / "a", "net", macro, recs)
    artifact.save(path, "net", macro, recs[:2], overwrite=True)  # our own: replaced, stale layer file removed
    assert sorted(p.name for p in (path / "layers").iterdir()) == ["000_fc1.npz"]
    artifact.load(path)
    (path / "README").write_text("mine")
    with pytest.raises(ValueError, match="holds README"):
        artifact.save(path, "net", macro, recs, overwrite=True)
    assert (path / "README").read_text() == "mine"
    legacy = tmp_path / "legacy"  # an artifact written before output markers existed
    shutil.copytree(path, legacy)
    (legacy / MARKER).unlink()
    (legacy / "README").unlink()
    artifact.save(legacy, "net", macro, recs, overwrite=True)
    assert len(artifact.load(legacy).layers) == 4


def test_verilog_manifest_always_matches_the_folder(tmp_path, capsys):
    pytest.importorskip("amaranth")
    from dbpim.hw.generate import generate
    out = tmp_path / "v"
    generate(load_config("small"), out, blocks=["lpu", "dbmu"])
    (out / MARKER).unlink()  # as a previous version left it: adopted through its manifest
    man = generate(load_config("paper"), out, blocks=["lpu"])
    on_disk = sorted(p.name for p in out.glob("*.v"))
    assert on_disk == ["dbpim_lpu.v"] == [e["file"] for e in man["blocks"].values()]
    assert json.loads((out / "manifest.json").read_text())["config"] == "paper"
    (out / "dbpim_extra.v").write_text("module extra; endmodule\n")
    _refused(capsys, ["verilog", "--hw", "small", "--blocks", "lpu", "--out", str(out)], "dbpim_extra.v")
    assert sorted(p.name for p in out.glob("*.v")) == ["dbpim_extra.v", "dbpim_lpu.v"]


SUBCOMMANDS_WITH_HW = [["demo", "--stages", "2"], ["verilog"], ["compile", "--quiet"], ["bench", "--artifact", "ART"],
                       ["bench-paper", "--artifacts", "ART"], ["sweep"], ["verify"],
                       ["conformance"]]


@pytest.mark.parametrize("cmd", SUBCOMMANDS_WITH_HW, ids=lambda c: c[0])
@pytest.mark.parametrize("content", [b"\x00\x01\x02\xff" * 40, b"macro: [unclosed\n", b"- 1\n- 2\n"],
                         ids=["binary", "bad-yaml", "not-a-mapping"])
def test_bad_hw_yaml_is_one_line_in_every_subcommand(art, tmp_path, capsys, cmd, content):
    y = tmp_path / "hw.yaml"
    y.write_bytes(content)
    cmd = [str(art) if a == "ART" else a for a in cmd]
    out = [] if cmd[0] == "verify" else ["--out", str(tmp_path / "o")]
    _refused(capsys, cmd + ["--hw", str(y)] + out, str(y))
    assert not (tmp_path / "o").exists()


def test_compile_all_zoo_writes_through_the_helper(tmp_path):
    pytest.importorskip("torch")
    from dbpim.model.torch import flow
    out = tmp_path / "zoo"
    assert flow.run_all_zoo(load_config("small"), out=out, names=()) == {}
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "summary.json"]
    assert json.loads((out / MARKER).read_text())["command"] == "dbpim compile --all-zoo"
    (out / "mine.txt").write_text("x")
    with pytest.raises(flow.FlowError, match="mine.txt"):
        flow.run_all_zoo(load_config("small"), out=out, names=())
