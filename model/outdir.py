"""Output folders that never lose data (docs/design.md §10).

Every command that writes a folder (``dbpim demo``, ``verilog``, ``compile``,
``bench``, ``bench-paper``, ``sweep``, ``make bench``, :func:`model.artifact.save`)
writes it through :func:`output_dir`:

* the files are staged in a temporary folder next to ``--out``
  (``.<out>.dbpim-stage-*``), which then holds the complete new ``--out``;
  on success it replaces ``--out`` as a whole folder: a new ``--out`` by one
  rename, an existing one by one atomic swap (Linux ``renameat2`` with
  ``RENAME_EXCHANGE``; elsewhere ``--out`` is renamed to a backup
  ``.<out>.dbpim-old-*``, the stage renamed to ``--out`` and the backup
  removed). ``--out`` is therefore always exactly the old or the new folder;
* on any failure (an exception, ``KeyboardInterrupt``, SIGTERM or SIGHUP,
  which raise :class:`Interrupted` while the folder is staged) the temporary
  folder is removed and ``--out`` is untouched; no space left on the device
  is one :class:`OutputError` line;
* a run killed outright (SIGKILL) can leave a stage or a backup
  behind: the next :func:`output_dir` on that ``--out`` restores a missing
  ``--out`` from its backup and removes such leftovers (:func:`recover`);
* ``--out`` records what the command wrote in a marker file :data:`MARKER`
  (JSON: the command and the relative path of every file); a later run of the
  same command replaces those files and removes the ones it no longer writes,
  and nothing else;
* ``--out`` is refused, with one line and before anything is written, when it
  is a regular file, the current folder (or contains it), equal to, inside or
  containing one of the command's inputs, written by another command, or holds
  any file the command did not write;
* created folders and files get the permissions the umask allows.

Pure standard library; errors are :class:`OutputError`, one line each.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: leftovers of killed runs are not recovered
    fcntl = None

__all__ = ["MARKER", "OUT_HELP", "OutputError", "Interrupted", "output_dir", "check_output", "recover",
           "write_file", "owned_files", "umask", "STAGE_TAG", "BACKUP_TAG"]

#: The file recording what a command wrote into its output folder.
MARKER = ".dbpim-outputs"
_FORMAT = "dbpim-outputs"

#: Help text of every command's ``--out`` folder option (the command line shows the default).
OUT_HELP = ("output folder: new, empty, or written before by this same command; it is replaced as a whole "
            "only on success, and a folder holding any other file is refused")


#: Staging folders are named ``.<out name>.dbpim-stage-<random>``, next to ``--out``.
STAGE_TAG = "dbpim-stage"
#: The previous ``--out`` during a commit without ``renameat2``: ``.<out name>.dbpim-old-<random>``.
BACKUP_TAG = "dbpim-old"
_NO_SPACE = {errno.ENOSPC: "no space left on device", getattr(errno, "EDQUOT", -1): "disk quota exceeded"}


class OutputError(ValueError):
    """An output folder that cannot be written without losing data; the message is one line."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP while :func:`output_dir` staged a folder (the staging folder is removed).

    A ``KeyboardInterrupt`` so that whatever handles Ctrl-C handles it too;
    ``signum`` is the signal (exit status ``128 + signum`` by convention).
    """

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = int(signum)


def umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    old = os.umask(0o022)
    os.umask(old)
    return old


def _tree(root: Path) -> set[str]:
    """Relative POSIX paths of every non-directory entry under ``root`` (symlinks are not followed)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            found.add((base / name).relative_to(root).as_posix())
    return found


def _read_marker(out: Path) -> dict | None:
    """The marker of ``out`` as ``{"command": str, "files": set}``, or None if absent or not ours."""
    try:
        doc = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not (isinstance(doc, dict) and doc.get("format") == _FORMAT and isinstance(doc.get("command"), str)
            and isinstance(doc.get("files"), list) and all(isinstance(f, str) for f in doc["files"])):
        return None
    return {"command": doc["command"], "files": set(doc["files"]), "staging": doc.get("staging") is True}


def owned_files(out, command: str, adopt: Callable[[Path], Iterable[str]] | None = None) -> set[str]:
    """Files of the existing folder ``out`` that ``command`` wrote (relative POSIX paths).

    Parameters
    ----------
    out : str or Path
        An existing folder.
    command : str
        The command about to write it.
    adopt : callable, optional
        For a folder without a marker: ``adopt(out)`` names the files a previous
        version of the tool wrote there (e.g. the files its manifest lists).

    Raises
    ------
    OutputError
        ``out`` was written by another command, or holds a file ``command``
        did not write.
    """
    out = Path(out)
    present = _tree(out)
    marker = _read_marker(out)
    if marker is not None and marker["command"] != command:
        raise OutputError(f"{out}: written by `{marker['command']}`, not `{command}`; choose another out folder")
    if marker is not None:
        ours = marker["files"] | {MARKER}
    else:
        ours = set(adopt(out)) if adopt is not None and present else set()
    foreign = sorted(present - ours)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise OutputError(f"{out}: holds {foreign[0]}{more}, not written by `{command}`; choose a new or empty "
                          f"out folder, or remove them")
    return present & ours - {MARKER}


def _overlap(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if out in inp.parents:
        return "contains"
    if inp in out.parents:
        return "is inside"
    return None


def check_output(out, command: str, inputs: Iterable = (),
                 adopt: Callable[[Path], Iterable[str]] | None = None) -> set[str]:
    """Refuse an output folder that cannot be written safely; return the files of it that are ours.

    Parameters
    ----------
    out : str or Path
        The output folder (need not exist).
    command : str
        The command's name as the marker records it (``dbpim bench``).
    inputs : iterable of str or Path
        The command's input files and folders; ``out`` must be apart from each.
    adopt : callable, optional
        See :func:`owned_files`.

    Raises
    ------
    OutputError
        One line naming ``out`` and why.
    """
    if str(out) == "":
        raise OutputError("out: must name a folder, got an empty path")
    res = Path(out).resolve()
    if res.exists() and not res.is_dir():
        raise OutputError(f"{out}: is a file; out must be a folder (new, empty or written by `{command}`)")
    cwd = Path.cwd().resolve()
    if res == cwd or res in cwd.parents:
        raise OutputError(f"{out}: is the current folder or contains it; choose a new sub-folder for out")
    for i in inputs:
        if i is None:
            continue
        how = _overlap(res, Path(i).resolve())
        if how:
            raise OutputError(f"{out}: {how} the input {i}; out must be apart from every input")
    return owned_files(Path(out), command, adopt) if res.is_dir() else set()


def _mkdirs(path: Path) -> list[Path]:
    """Create ``path`` and missing parents; return the folders created, outermost first."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    created: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
    except OSError:
        _rmdirs(created)
        raise
    return created


def _rmdirs(created: list[Path]) -> None:
    """Remove folders :func:`_mkdirs` created, innermost first, while they are empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            return


def _write_marker(folder: Path, command: str, files: Iterable[str], staging: bool = False) -> None:
    """Write :data:`MARKER`; ``staging`` marks a stage still being written (removed whole by :func:`recover`)."""
    doc = {"format": _FORMAT, "version": 1, "command": command, "files": sorted(files)}
    if staging:
        doc["staging"] = True
    write_file(folder / MARKER, json.dumps(doc, indent=1, allow_nan=False) + "\n")  # strings only; stdlib


def _remove_ours(folder: Path, files: Iterable[str]) -> bool:
    """Delete ``files`` and :data:`MARKER` under ``folder``, then its emptied sub-folders and ``folder``.

    Never deletes anything else, and never raises: returns False when
    something is left (a file another process put there, an OS error).
    """
    try:
        for rel in sorted(set(files) | {MARKER}):
            p = folder / rel
            if p.is_symlink() or p.is_file():
                p.unlink()
        for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
            for d in dirnames:
                sub = Path(dirpath) / d
                if not sub.is_symlink():
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
        folder.rmdir()
        return True
    except OSError:
        return False


def _load_renameat2():
    """libc's ``renameat2`` (Linux, glibc 2.28+), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one atomic step; False where the system or file system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), str(b))


def _lock(folder: Path, wait: float = 0.0) -> int | None:
    """An open descriptor of ``folder`` holding an exclusive ``flock`` (released when closed or at exit).

    None when another run holds it after ``wait`` seconds (that run is alive), or without ``fcntl``.
    """
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)
        except OSError:
            os.close(fd)
            raise


def _unlock(*fds) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _leftovers(out: Path) -> list[tuple[Path, str, dict]]:
    """(folder, tag, marker) of every stage and backup of ``out`` a run of this protocol left behind.

    Only real folders next to ``out`` named ``.<out name>.<tag>-*`` that hold a
    valid :data:`MARKER` count; anything else is never touched.
    """
    found = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return found
    for e in entries:
        for tag in (STAGE_TAG, BACKUP_TAG):
            if e.name.startswith(f".{out.name}.{tag}-") and e.is_dir(follow_symlinks=False):
                marker = _read_marker(Path(e.path))
                if marker is not None:
                    found.append((Path(e.path), tag, marker))
    return found


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return -1


def recover(out) -> list[str]:
    """Finish what a killed run of :func:`output_dir` left next to ``out``; return what was done.

    A missing ``out`` with a backup (the run was killed between its two
    renames) gets the backup back; every other leftover stage or backup whose
    run is not alive any more (its ``flock`` is free) is removed: a stage
    still being written (marker ``staging: true``) as a whole, any other
    leftover only by the files its marker lists. Called by :func:`output_dir`
    before anything else; needs ``fcntl`` (POSIX), else does nothing.

    Raises
    ------
    OutputError
        The backup cannot be renamed back to ``out``.
    """
    out = Path(out)
    done: list[str] = []
    if fcntl is None or str(out) == "":
        return done
    out = out.resolve()
    held = []
    try:
        live = []
        for folder, tag, marker in _leftovers(out):
            try:
                fd = _lock(folder)
            except OSError:
                continue
            if fd is not None:  # no live run holds it
                held.append(fd)
                live.append((folder, tag, marker))
        backups = sorted((f for f, tag, _ in live if tag == BACKUP_TAG), key=_mtime)
        if backups and not os.path.lexists(out):
            try:
                os.rename(backups[-1], out)
            except OSError as e:
                raise OutputError(f"{out}: missing after an interrupted run; its previous contents are in "
                                  f"{backups[-1].name} and cannot be restored ({e.strerror})") from None
            done.append(f"restored {out.name} from {backups[-1].name}")
        for folder, tag, marker in live:
            if not folder.exists():
                continue
            if marker["staging"]:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                try:
                    ours = owned_files(folder, marker["command"])
                except OutputError:
                    continue  # something we did not write is in there: leave it
                _remove_ours(folder, ours)
            done.append(f"removed {folder.name}")
    finally:
        _unlock(*held)
    return done


def _swap(stage: Path, out: Path, old: set[str]) -> None:
    """Put the complete folder ``stage`` in place of ``out`` (whose own files are ``old``) atomically."""
    if _exchange(stage, out):
        _remove_ours(stage, old)  # ``stage`` now names the previous folder
        return
    backup = out.parent / f".{out.name}.{BACKUP_TAG}-{secrets.token_hex(6)}"
    os.rename(out, backup)
    try:
        os.rename(stage, out)
    except BaseException:
        try:
            os.rename(backup, out)
        except OSError as e:
            raise OutputError(f"{out}: cannot write ({e.strerror or type(e).__name__}); its previous contents "
                              f"are in {backup.name}, put back by the next run on this --out") from None
        raise
    _remove_ours(backup, old)


def _commit(stage: Path, out: Path, command: str, adopt) -> None:
    """Make the staged folder ``out``: by one rename when ``out`` is new or empty, else by :func:`_swap`."""
    new = _tree(stage) - {MARKER}
    _write_marker(stage, command, new)  # the stage is now exactly the new ``out``
    if out.is_dir():
        os.chmod(stage, stat.S_IMODE(out.stat().st_mode))  # ``out`` keeps its permissions
    try:
        os.rename(stage, out)  # a new (or empty) folder appears whole
        return
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    fd = _lock(out, wait=30.0)  # another run's commit to the same ``out`` takes milliseconds
    if fd is None and fcntl is not None:
        raise OutputError(f"{out}: another run is writing it; try again")
    added = False
    try:
        old = owned_files(out, command, adopt)  # as it is now: another run of ours may have written it meanwhile
        added = _read_marker(out) is None  # a folder of a previous version: mark it, so a leftover is recognised
        if added:
            _write_marker(out, command, old)
        _swap(stage, out, old)
    except BaseException:
        if added:  # ``out`` is the old folder again (or missing, its backup keeping the marker): as it was
            (out / MARKER).unlink(missing_ok=True)
        raise
    finally:
        _unlock(fd)


def _no_space(e: BaseException, out) -> str | None:
    """The one-line message of a full device or quota, or None."""
    if isinstance(e, OSError) and e.errno in _NO_SPACE:
        return f"{_NO_SPACE[e.errno]} writing {out}; --out unchanged"
    return None


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


_HANDLED = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
_HELD = _HANDLED + (signal.SIGINT,)


def _install_handlers() -> dict:
    """SIGTERM and SIGHUP raise :class:`Interrupted` (main thread only; an ignored signal stays ignored)."""
    saved = {}
    if threading.current_thread() is not threading.main_thread():
        return saved
    for sig in _HANDLED:
        prev = signal.getsignal(sig)
        if prev is None or prev == signal.SIG_IGN:
            continue
        signal.signal(sig, _raise_interrupted)
        saved[sig] = prev
    return saved


def _hold_signals():
    """Block SIGINT, SIGTERM, SIGHUP (main thread); return the mask to restore, or None."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)


@contextmanager
def output_dir(out, command: str, inputs: Iterable = (),
               adopt: Callable[[Path], Iterable[str]] | None = None) -> Iterator[Path]:
    """Stage a command's output folder; make it ``out`` when the block succeeds.

    Parameters
    ----------
    out : str or Path
        The output folder (``--out``).
    command : str
        The command's name, recorded in :data:`MARKER`.
    inputs : iterable of str or Path
        The command's inputs; ``out`` must be apart from each.
    adopt : callable, optional
        See :func:`owned_files`.

    Yields
    ------
    Path
        A new staging folder next to ``out`` holding only :data:`MARKER`;
        write the outputs there. On success it becomes ``out`` as a whole
        (by one rename, or one atomic swap with an existing ``out``), so
        ``out`` is always exactly the old or the new folder.

    Raises
    ------
    OutputError
        Before anything is written, if ``out`` is refused (:func:`check_output`),
        or if a folder cannot be created; when the device is full or the
        quota exceeded (``no space left on device writing <out>``); when the
        commit cannot be done. ``out`` is then unchanged.
    Interrupted
        SIGTERM or SIGHUP arrived while the block ran (main thread only);
        the staging folder is removed and ``out`` is unchanged. A
        ``KeyboardInterrupt`` is treated the same way and passed on.

    Notes
    -----
    The commit runs with SIGINT, SIGTERM and SIGHUP blocked; one arriving
    then is delivered after it, to the handler that was in place before
    this call (``out`` is then complete).
    """
    if str(out) != "":
        recover(out)
    check_output(out, command, inputs, adopt)
    shown, out = out, Path(out).resolve()
    saved = _install_handlers()
    mask = None
    stage_fd = None
    try:
        created: list[Path] = []
        try:
            created = _mkdirs(out.parent)
            stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.{STAGE_TAG}-", dir=out.parent))
        except OSError as e:
            _rmdirs(created)
            raise OutputError(_no_space(e, shown) or
                              f"{out}: cannot create ({e.strerror or type(e).__name__})") from None
        committing = False
        try:
            os.chmod(stage, 0o777 & ~umask())
            stage_fd = _lock(stage)  # a run that is alive: recover() leaves its stage alone
            _write_marker(stage, command, (), staging=True)
            yield stage
            mask = _hold_signals()
            committing = True
            _commit(stage, out, command, adopt)
        except BaseException as e:
            shutil.rmtree(stage, ignore_errors=True)
            _rmdirs(created)
            full = _no_space(e, shown)
            if full:
                raise OutputError(full) from None
            if committing and isinstance(e, OSError):
                raise OutputError(f"{out}: cannot write ({e.strerror or type(e).__name__}: "
                                  f"{e.filename or out})") from None
            raise
    finally:
        _unlock(stage_fd)
        for sig, prev in saved.items():
            signal.signal(sig, prev)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def write_file(path, data: str | bytes) -> Path:
    """Write one file atomically (temporary sibling, then ``os.replace``) with the umask's permissions.

    Raises
    ------
    OutputError
        ``path`` is a folder or cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; a file name is expected")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        _mkdirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
