#!/usr/bin/env python3
"""Verilator's runtime library compiled once per flag set, not once per build: make's ``OBJCACHE``.

Verilator's generated makefile puts ``$(OBJCACHE)`` before every C++ compile. Every cocotb and native build of
:mod:`verif.rtl` and :mod:`verif.native` compiles the same runtime files (``verilated.cpp``,
``verilated_vpi.cpp``, ``verilated_threads.cpp``, ``verilated_dpi.cpp``: about 16 s of CPU at ``-O0``) with the
same flags; with ``OBJCACHE`` set to this script (:func:`verif.rtl.use_objcache`) the first build stores
their objects in a cache folder and the later ones copy them (byte-identical to compiling them again).

Usage: ``objcache.py CXX ARG...`` (the compile command make would run). A compile of a source under
``$VERILATOR_ROOT/include`` is looked up by the key of :func:`key`: the compiler, the command line less its
``-I`` folders and the source as the preprocessor sees it (``CXX -E``: every header it includes, with its
path, and every macro applied), so a changed flag, define, header or Verilator gives another key. On a miss
the compile runs as given and its object and dependency file (``-MMD``: the object's name with ``.d``) are
stored under that key. Any other compile (the model's files, cocotb's ``verilator.cpp``, the harness) runs
as given. The cache folder is ``DBPIM_OBJCACHE_DIR`` (set by :func:`verif.rtl.use_objcache`); without it
every compile runs as given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _runtime_source(argv: list[str]) -> Path | None:
    """The compiled source when it is one of Verilator's runtime files, else None."""
    root = os.environ.get("VERILATOR_ROOT")
    if not root or "-c" not in argv:
        return None
    include = Path(root).resolve() / "include"
    srcs = [Path(a) for a in argv[1:] if a.endswith((".cpp", ".c")) and not a.startswith("-")]
    if len(srcs) != 1:
        return None
    src = srcs[0].resolve()
    return src if src.parent == include else None


def _preprocess_command(argv: list[str]) -> list[str]:
    """The compile command ``argv`` as a preprocessor run to stdout (``-E`` for ``-c``, no object or
    dependency file)."""
    out, skip = [], 0
    for a in argv:
        if skip:
            skip -= 1
        elif a in ("-o", "-MF", "-MT", "-MQ"):
            skip = 1
        elif a not in ("-MMD", "-MD"):
            out.append("-E" if a == "-c" else a)
    return out


def key(argv: list[str]) -> str | None:
    """The cache key of a compile (None when its preprocessor run fails): the compiler (its resolved path,
    size and modification time), the command line less its ``-I`` options and the preprocessed source."""
    cxx = shutil.which(argv[0])
    pre = subprocess.run(_preprocess_command(argv), capture_output=True) if cxx else None
    if pre is None or pre.returncode != 0:
        return None
    cxx = Path(cxx).resolve()
    st = cxx.stat()
    h = hashlib.sha256(f"{cxx}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    skip = False
    for a in argv[1:]:
        if skip or a.startswith("-I"):
            skip = a == "-I"
            continue
        h.update(a.encode() + b"\0")
    h.update(pre.stdout)
    return h.hexdigest()


def main(argv: list[str]) -> int:
    src = _runtime_source(argv)
    cache = os.environ.get("DBPIM_OBJCACHE_DIR")
    if src is None or not cache or "-o" not in argv:
        return subprocess.call(argv)
    obj = Path(argv[argv.index("-o") + 1])
    dep = obj.with_suffix(".d")
    k = key(argv)
    if k is None:
        return subprocess.call(argv)
    entry = Path(cache) / k
    if (entry / "ok").is_file():
        shutil.copyfile(entry / "obj", obj)
        if (entry / "dep").is_file():
            shutil.copyfile(entry / "dep", dep)
        return 0
    rc = subprocess.call(argv)
    if rc == 0 and obj.is_file():  # store: a private folder renamed into place (two builds may race)
        tmp = Path(cache) / f".{entry.name}.{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(obj, tmp / "obj")
        if dep.is_file():
            shutil.copyfile(dep, tmp / "dep")
        (tmp / "ok").write_text(" ".join(argv) + "\n")
        try:
            tmp.rename(entry)
        except OSError:  # another build stored it first
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
