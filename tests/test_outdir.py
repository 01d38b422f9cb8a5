"""model.outdir: output folders that never lose data (docs/design.md §10)."""

from __future__ import annotations

import json
import os
import stat
import tempfile

import pytest

from dbpim.model.outdir import MARKER, OutputError, check_output, output_dir, write_file


def _write(folder, files: dict):
    for rel, text in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_new_folder_gets_files_and_marker(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, {"x.txt": "1", "sub/y.txt": "2"})
    assert _tree(out) == {"x.txt": "1", "sub/y.txt": "2", MARKER: (out / MARKER).read_text()}
    doc = json.loads((out / MARKER).read_text())
    assert doc["command"] == "cmd" and doc["files"] == ["sub/y.txt", "x.txt"]
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no temporary left behind


def test_rerun_replaces_own_files_and_removes_only_own_stale_ones(tmp_path):
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, {"keep.txt": "old", "stale.txt": "s", "d/stale.txt": "s"})
    with output_dir(out, "cmd") as stage:
        _write(stage, {"keep.txt": "new", "d/new.txt": "n"})
    files = _tree(out)
    files.pop(MARKER)
    assert files == {"keep.txt": "new", "d/new.txt": "n"}
    assert json.loads((out / MARKER).read_text())["files"] == ["d/new.txt", "keep.txt"]


@pytest.mark.parametrize("rel", ["notes.txt", "sub/notes.txt"])
def test_foreign_file_is_refused_and_nothing_changes(tmp_path, rel):
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, {"r.txt": "1"})
    _write(out, {rel: "mine"})
    before = _tree(out)
    with pytest.raises(OutputError, match=f"holds {rel}, not written by `cmd`"):
        with output_dir(out, "cmd") as stage:
            _write(stage, {"r.txt": "2"})
    assert _tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_folder_without_marker_is_refused_unless_empty(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with output_dir(out, "cmd") as stage:  # empty: fine
        _write(stage, {"r.txt": "1"})
    other = tmp_path / "other"
    _write(other, {"data.csv": "precious"})
    with pytest.raises(OutputError) as e:
        check_output(other, "cmd")
    assert "data.csv" in _one_line(e)
    assert (other / "data.csv").read_text() == "precious"


def test_other_commands_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    with output_dir(out, "dbpim sweep") as stage:
        _write(stage, {"sweep.csv": "1"})
    with pytest.raises(OutputError, match="written by `dbpim sweep`, not `dbpim bench`"):
        check_output(out, "dbpim bench")


def test_adopt_names_files_of_a_previous_version(tmp_path):
    out = tmp_path / "out"
    _write(out, {"manifest.json": "{}", "a.v": "module", "b.v": "module"})
    with output_dir(out, "cmd", adopt=lambda d: {"manifest.json", "a.v", "b.v"}) as stage:
        _write(stage, {"manifest.json": "{}", "a.v": "new"})
    assert sorted(_tree(out)) == sorted([MARKER, "manifest.json", "a.v"])
    _write(out, {"c.v": "foreign"})
    with pytest.raises(OutputError, match="holds c.v"):
        check_output(out, "cmd", adopt=lambda d: {"manifest.json", "a.v"})


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_leaves_out_untouched_and_no_temporary(tmp_path, exc):
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, {"r.txt": "1"})
    before = _tree(out)
    with pytest.raises(type(exc)):
        with output_dir(out, "cmd") as stage:
            _write(stage, {"r.txt": "2", "s.txt": "3"})
            raise exc
    assert _tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    fresh = tmp_path / "new" / "deeper"
    with pytest.raises(RuntimeError):
        with output_dir(fresh, "cmd"):
            raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # folders it created are gone too


def test_inputs_cwd_and_files_are_refused(tmp_path, monkeypatch):
    art = tmp_path / "X" / "artifact"
    _write(art, {"manifest.yaml": "format: dbpim-artifact"})
    cases = [(tmp_path / "X", "contains the input"), (art, "is the input"), (art / "sub", "is inside the input")]
    for out, needle in cases:
        with pytest.raises(OutputError) as e:
            check_output(out, "cmd", inputs=[art])
        assert needle in _one_line(e)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output(tmp_path / "f.txt", "cmd")
    monkeypatch.chdir(art)
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(OutputError, match="current folder"):
            check_output(out, "cmd")
    assert _tree(tmp_path / "X") == {"artifact/manifest.yaml": "format: dbpim-artifact"}


def test_unwritable_parent_is_one_line(tmp_path, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    if os.geteuid() == 0:  # root ignores the mode: make the OS refusal happen anyway
        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    try:
        with pytest.raises(OutputError, match="cannot create .*Permission denied") as e:
            with output_dir(parent / "out", "cmd"):
                pass
        _one_line(e)
    finally:
        parent.chmod(0o755)
    (tmp_path / "plain").write_text("x")  # a parent that is a file
    with pytest.raises(OutputError, match="cannot create"):
        with output_dir(tmp_path / "plain" / "out", "cmd"):
            pass


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out = tmp_path / "new" / "out"
        with output_dir(out, "cmd") as stage:
            _write(stage, {"f.txt": "1", "sub/g.txt": "2"})
        write_file(tmp_path / "single.json", "{}")
    finally:
        os.umask(old)
    for d in (tmp_path / "new", out, out / "sub"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o750, d
    for f in (out / "f.txt", out / MARKER, tmp_path / "single.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f


def test_out_created_meanwhile_by_the_same_command_is_joined(tmp_path):
    """Two runs of one command racing to create ``out`` (parallel test workers): both succeed."""
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, {"a.txt": "1"})
        with output_dir(out, "cmd") as other:  # finishes first and creates ``out``
            _write(other, {"a.txt": "1", "b.txt": "2"})
    files = _tree(out)
    files.pop(MARKER)
    assert files == {"a.txt": "1"}  # the last run's files; b.txt was that command's own stale file
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
