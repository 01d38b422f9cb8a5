"""Output folders that never lose data (docs/design.md §10).

Every command that writes a folder (``dbpim demo``, ``verilog``, ``compile``,
``bench``, ``bench-paper``, ``sweep``, ``make bench``, :func:`model.artifact.save`)
writes it through :func:`output_dir`:

* the files are staged in a temporary folder next to ``--out`` and moved in
  only when the command succeeded; on any failure (an exception,
  ``KeyboardInterrupt``) the temporary folder is removed and ``--out`` is
  untouched;
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

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

__all__ = ["MARKER", "OUT_HELP", "OutputError", "output_dir", "check_output", "write_file", "owned_files", "umask"]

#: The file recording what a command wrote into its output folder.
MARKER = ".dbpim-outputs"
_FORMAT = "dbpim-outputs"

#: Help text of every command's ``--out`` folder option (the command line shows the default).
OUT_HELP = ("output folder: new, empty, or written before by this same command; the files are moved in "
            "only on success, and a folder holding any other file is refused")


class OutputError(ValueError):
    """An output folder that cannot be written without losing data; the message is one line."""


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
    return {"command": doc["command"], "files": set(doc["files"])}


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


def _write_marker(folder: Path, command: str, files: Iterable[str]) -> None:
    doc = {"format": _FORMAT, "version": 1, "command": command, "files": sorted(files)}
    write_file(folder / MARKER, json.dumps(doc, indent=1) + "\n")


def _remove_stale(out: Path, stale: Iterable[str]) -> None:
    """Delete files we wrote last time and not this time, then their emptied folders."""
    for rel in sorted(stale):
        p = out / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
        parent = p.parent
        while parent != out:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _move_in(stage: Path, out: Path, files: set[str]) -> None:
    """Move every staged file into ``out`` with ``os.replace``, deepest first (indexes last)."""
    for rel in sorted(files, key=lambda r: (-r.count("/"), r)):
        dst = out / rel
        _mkdirs(dst.parent)
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)  # only our own files can be below it (checked before)
        os.replace(stage / rel, dst)


def _commit(stage: Path, out: Path, command: str, adopt) -> None:
    new = _tree(stage)
    if not out.exists():
        _write_marker(stage, command, new)
        try:
            os.rename(stage, out)  # a new folder appears whole
            return
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        (stage / MARKER).unlink()  # another process created ``out`` meanwhile: join it file by file
    old = owned_files(out, command, adopt)  # as it is now: another run of ours may have written it meanwhile
    _write_marker(out, command, old | new)  # a crash below leaves every file accounted for
    _remove_stale(out, old - new)
    _move_in(stage, out, new)
    _write_marker(out, command, new)


@contextmanager
def output_dir(out, command: str, inputs: Iterable = (),
               adopt: Callable[[Path], Iterable[str]] | None = None) -> Iterator[Path]:
    """Stage a command's output folder; move it into ``out`` when the block succeeds.

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
        An empty temporary folder next to ``out``; write the outputs there.

    Raises
    ------
    OutputError
        Before anything is written, if ``out`` is refused (:func:`check_output`),
        or if a folder cannot be created.
    """
    check_output(out, command, inputs, adopt)
    out = Path(out).resolve()
    created: list[Path] = []
    try:
        created = _mkdirs(out.parent)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        os.chmod(stage, 0o777 & ~umask())
    except OSError as e:
        _rmdirs(created)
        raise OutputError(f"{out}: cannot create ({e.strerror or type(e).__name__})") from None
    try:
        yield stage
        try:
            _commit(stage, out, command, adopt)
        except OSError as e:
            raise OutputError(f"{out}: cannot write ({e.strerror or type(e).__name__}: "
                              f"{e.filename or out})") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _rmdirs(created)
        raise
    shutil.rmtree(stage, ignore_errors=True)


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
