"""model.outdir commits --out as a whole folder, recovers killed runs, and turns SIGTERM and a full disk
into a clean failure (docs/design.md §10)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dbpim.model import outdir
from dbpim.model.outdir import BACKUP_TAG, MARKER, STAGE_TAG, Interrupted, OutputError, output_dir, recover, write_file

OLD = {"a.txt": "old a", "gone.txt": "only in the old run", "d/b.txt": "old b", "d/e/deep.txt": "old deep"}
NEW = {"a.txt": "new a", "d/c.txt": "new c", "n/m.txt": "new m"}
ROOT = Path(__file__).resolve().parent.parent


def _write(folder: Path, files: dict) -> None:
    for rel, text in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _snap(root: Path) -> dict:
    """Every file under ``root`` (marker included) with its bytes; None when ``root`` is missing."""
    if not root.exists():
        return None
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _trees(tmp: Path):
    """The old and the new ``--out`` as a successful run writes them (in a twin folder)."""
    twin = tmp / "twin" / "out"
    with output_dir(twin, "cmd") as stage:
        _write(stage, OLD)
    old = _snap(twin)
    with output_dir(twin, "cmd") as stage:
        _write(stage, NEW)
    return old, _snap(twin)


class _Steps:
    """Counts the renames of a commit (os.rename, os.replace, the atomic exchange) and fails chosen ones."""

    def __init__(self, monkeypatch, fail=lambda i: False):
        self.calls, self.active, self.fail = [], False, fail
        for name in ("rename", "replace"):
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name), f"os.{name}"))
        monkeypatch.setattr(outdir, "_exchange", self._wrap(outdir._exchange, "exchange"))

    def _wrap(self, real, what):
        def step(*a, **k):
            if self.active:
                i = len(self.calls)
                self.calls.append(what)
                if self.fail(i):
                    raise OSError(errno.EIO, f"injected failure of step {i} ({what})")
            return real(*a, **k)
        return step


def _commit_new(out: Path, steps: _Steps) -> None:
    with output_dir(out, "cmd") as stage:
        _write(stage, NEW)
        steps.active = True  # count from here: the commit


@pytest.fixture(params=["exchange", "fallback"])
def path_kind(request, monkeypatch):
    """Run each test with Linux's atomic exchange and with the rename-to-backup fallback."""
    if request.param == "fallback":
        monkeypatch.setattr(outdir, "_renameat2", None)
    elif outdir._renameat2 is None:
        pytest.skip("renameat2 is not available here")
    return request.param


def _n_steps(tmp: Path, monkeypatch) -> list[str]:
    out = tmp / "count" / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    with monkeypatch.context() as m:
        steps = _Steps(m)
        _commit_new(out, steps)
    return steps.calls


def test_commit_is_one_step_or_two_renames(tmp_path, monkeypatch, path_kind):
    calls = _n_steps(tmp_path, monkeypatch)
    # marker into the stage, rename onto --out (refused: it holds files), then the swap
    if path_kind == "exchange":
        assert calls == ["os.replace", "os.rename", "exchange"]
    else:
        assert calls == ["os.replace", "os.rename", "exchange", "os.rename", "os.rename"]


@pytest.mark.parametrize("crash", [False, True], ids=["one-failure", "crash"])
@pytest.mark.parametrize("step", range(5))
def test_failure_at_every_step_leaves_exactly_old_or_new(tmp_path, monkeypatch, path_kind, step, crash):
    """A rename failing at any step of the commit (and, for ``crash``, every rename after it too, as when the
    process dies there) leaves --out exactly the old or the new tree; the next output_dir cleans up."""
    n = len(_n_steps(tmp_path, monkeypatch))
    if step >= n:
        pytest.skip(f"the {path_kind} commit has {n} steps")
    old, new = _trees(tmp_path)
    out = tmp_path / "w" / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    assert _snap(out) == old
    with monkeypatch.context() as m:
        steps = _Steps(m, fail=(lambda i: i >= step) if crash else (lambda i: i == step))
        with pytest.raises(OutputError) as e:
            _commit_new(out, steps)
    assert "\n" not in str(e.value) and str(out) in str(e.value)
    left = sorted(p.name for p in out.parent.iterdir())
    if not crash:
        assert _snap(out) == old  # the commit failed: rolled back
        assert left == ["out"]
    elif _snap(out) is None:  # died between the two renames of the fallback: the backup holds the old tree
        assert path_kind == "fallback" and [n for n in left if BACKUP_TAG in n]
    else:
        assert _snap(out) in (old, new)
    # the next run on that --out, even one that fails, first puts everything right
    with pytest.raises(RuntimeError):
        with output_dir(out, "cmd"):
            raise RuntimeError("boom")
    assert _snap(out) in (old, new)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    with output_dir(out, "cmd") as stage:
        _write(stage, NEW)
    assert _snap(out) == new


def test_killed_after_the_swap_leaves_the_old_folder_which_the_next_run_removes(tmp_path, monkeypatch, path_kind):
    old, new = _trees(tmp_path)
    out = tmp_path / "w" / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    with monkeypatch.context() as m:
        m.setattr(outdir, "_remove_ours", lambda folder, files: False)  # dies before removing the old folder
        with output_dir(out, "cmd") as stage:
            _write(stage, NEW)
    assert _snap(out) == new
    left = [p for p in out.parent.iterdir() if p.name != "out"]
    assert len(left) == 1 and (STAGE_TAG if path_kind == "exchange" else BACKUP_TAG) in left[0].name
    assert _snap(left[0]) == old
    assert recover(out) == [f"removed {left[0].name}"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"] and _snap(out) == new


def test_swap_keeps_the_folders_permissions(tmp_path, path_kind):
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    out.chmod(0o700)
    with output_dir(out, "cmd") as stage:
        _write(stage, NEW)
    assert (out.stat().st_mode & 0o777) == 0o700
    empty = tmp_path / "empty"  # a person's new empty folder is replaced by one rename: its mode stays too
    empty.mkdir(mode=0o711)
    with output_dir(empty, "cmd") as stage:
        _write(stage, NEW)
    assert (empty.stat().st_mode & 0o777) == 0o711 and (empty / "a.txt").read_text() == "new a"


def test_recover_touches_only_what_the_protocol_made(tmp_path):
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    keep = {
        f".out.{BACKUP_TAG}-nomarker": {"x.txt": "a person's folder with a look-alike name"},
        f".out.{BACKUP_TAG}-foreign": {MARKER: json.dumps({"format": "dbpim-outputs", "version": 1,
                                                           "command": "cmd", "files": ["a.txt"]}),
                                       "a.txt": "ours", "thesis.tex": "not listed: never deleted"},
        ".out.tmp-123": {"y": "an old-style temporary: not recognised"},
        "other": {"z": "unrelated"},
    }
    for name, files in keep.items():
        _write(tmp_path / name, files)
    live = tmp_path / f".out.{STAGE_TAG}-live"
    _write(live, {MARKER: json.dumps({"format": "dbpim-outputs", "version": 1, "command": "cmd", "files": [],
                                      "staging": True}), "part.txt": "being written"})
    fd = outdir._lock(live)  # a run that is still alive holds its stage
    try:
        recover(out)
    finally:
        os.close(fd)
    for name, files in keep.items():
        assert _snap(tmp_path / name) == {k: v.encode() for k, v in files.items()}
    assert (live / "part.txt").exists()
    assert recover(out) == [f"removed {live.name}"]  # its run is gone now
    assert not live.exists()


def test_sigterm_in_process_removes_the_stage_and_restores_the_handler(tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers live in the main thread; SIGTERM would end this test process")
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    before = _snap(out)
    prev = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as e:
        with output_dir(out, "cmd") as stage:
            _write(stage, NEW)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert e.value.signum == signal.SIGTERM and isinstance(e.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is prev
    assert _snap(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


_CHILD = """
import sys, time
from pathlib import Path
from dbpim.model.outdir import output_dir
with output_dir(sys.argv[1], "cmd") as stage:
    (stage / "a.txt").write_text("new a")
    (stage / "big").mkdir()
    (stage / "big" / "part.bin").write_bytes(b"0" * 1000)
    print(stage, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGKILL"])
def test_a_killed_command_leaves_out_untouched(tmp_path, sig):
    """A process killed inside output_dir: SIGTERM/SIGHUP/SIGINT remove the stage at once; after SIGKILL
    (no handler can run) the next output_dir on that --out removes it."""
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    before = _snap(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a shell's background job starts with SIGINT ignored, a job under nohup with SIGHUP ignored, and an ignored
    # signal stays ignored (output_dir installs no handler over it): the child gets the default dispositions
    # whatever the test runner inherited
    def default_dispositions():
        for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
            signal.signal(s, signal.SIG_DFL)

    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
                             preexec_fn=default_dispositions)
    try:
        stage = Path(child.stdout.readline().strip())
        assert stage.is_dir() and STAGE_TAG in stage.name
        child.send_signal(sig)
        child.wait(timeout=60)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode != 0
    assert _snap(out) == before
    if sig == signal.SIGKILL:
        assert stage.exists()  # nothing could run; the next call recovers
        with pytest.raises(RuntimeError):
            with output_dir(out, "cmd"):
                raise RuntimeError("boom")
    assert not stage.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and _snap(out) == before


class _FullFile:
    def __init__(self, fh, code):
        self.fh, self.code = fh, code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def write(self, data):
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on device"),
                                         (errno.EDQUOT, "disk quota exceeded")])
@pytest.mark.parametrize("when", ["body", "commit"])
def test_full_disk_is_one_line_and_leaves_out_untouched(tmp_path, monkeypatch, code, words, when):
    out = tmp_path / "out"
    with output_dir(out, "cmd") as stage:
        _write(stage, OLD)
    before = _snap(out)
    real = os.fdopen
    with pytest.raises(OutputError) as e:
        with output_dir(out, "cmd") as stage:
            _write(stage, NEW)
            monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullFile(real(fd, *a, **k), code))
            if when == "body":
                write_file(stage / "report.json", "{}")  # the device fills up while the command writes
            # else: the marker written at the commit is the write that fails
    monkeypatch.undo()
    assert str(e.value) == f"{words} writing {out}; --out unchanged"
    assert _snap(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
