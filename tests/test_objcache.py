"""verif/objcache.py (make's OBJCACHE in every Verilator build): a runtime compile runs once per key and is copied
byte for byte after; a changed flag, define or header compiles again; any other source is compiled as given."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "verif" / "objcache.py"
CXX = shutil.which("c++")


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A fake ``$VERILATOR_ROOT/include`` (one source, one header), a cache folder and a compiler wrapper that
    logs each compile (``-c``) it runs."""
    if CXX is None:
        pytest.skip("no C++ compiler")
    inc = tmp_path / "root" / "include"
    inc.mkdir(parents=True)
    (inc / "rt.h").write_text("#define RT_VALUE 41\n")
    (inc / "rt.cpp").write_text('#include <rt.h>\nint rt_value() { return RT_VALUE + EXTRA; }\n')
    log = tmp_path / "compiles.log"
    cc = tmp_path / "cc"
    cc.write_text(f'#!/bin/sh\ncase " $* " in *" -c "*) echo "$*" >> {log};; esac\nexec {CXX} "$@"\n')
    cc.chmod(0o755)
    monkeypatch.setenv("VERILATOR_ROOT", str(inc.parent))
    monkeypatch.setenv("DBPIM_OBJCACHE_DIR", str(tmp_path / "cache"))
    return inc, cc, log


def _compile(cc, src, folder, *flags):
    """Compile ``src`` in ``folder`` as Verilator's makefile does (``-I.`` and the include folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    inc = Path(os.environ["VERILATOR_ROOT"]) / "include"
    r = subprocess.run([sys.executable, str(SCRIPT), str(cc), "-MMD", "-O0", "-I.", f"-I{inc}", *flags, "-c", "-o", "rt.o",
                        str(src)], cwd=folder, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return (folder / "rt.o").read_bytes()


def _compiles(log):
    return len(log.read_text().splitlines()) if log.is_file() else 0


def test_a_runtime_compile_runs_once_and_is_copied_after(tree, tmp_path):
    inc, cc, log = tree
    first = _compile(cc, inc / "rt.cpp", tmp_path / "a", "-DEXTRA=1")
    assert _compiles(log) == 1 and len(os.listdir(tmp_path / "cache")) == 1
    again = _compile(cc, inc / "rt.cpp", tmp_path / "b", "-DEXTRA=1", f"-I{tmp_path}")  # another -I: same key
    assert _compiles(log) == 1, "the second build compiled the runtime again"
    assert again == first and (tmp_path / "b" / "rt.d").read_text() == (tmp_path / "a" / "rt.d").read_text()


def test_a_changed_define_or_header_compiles_again(tree, tmp_path):
    inc, cc, log = tree
    one = _compile(cc, inc / "rt.cpp", tmp_path / "a", "-DEXTRA=1")
    two = _compile(cc, inc / "rt.cpp", tmp_path / "b", "-DEXTRA=2")
    assert _compiles(log) == 2 and one != two
    (inc / "rt.h").write_text("#define RT_VALUE 50\n")
    three = _compile(cc, inc / "rt.cpp", tmp_path / "c", "-DEXTRA=1")
    assert _compiles(log) == 3 and three not in (one, two)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "rt.h").write_text("#define RT_VALUE 7\n")  # a header in the build folder (-I.) shadows it
    four = _compile(cc, inc / "rt.cpp", tmp_path / "d", "-DEXTRA=1")
    assert _compiles(log) == 4 and four not in (one, two, three)


def test_other_sources_and_no_cache_folder_compile_as_given(tree, tmp_path, monkeypatch):
    inc, cc, log = tree
    own = tmp_path / "own.cpp"
    shutil.copy(inc / "rt.cpp", own)
    for folder in ("a", "b"):
        _compile(cc, own, tmp_path / folder, "-DEXTRA=1")
    assert _compiles(log) == 2 and not (tmp_path / "cache").exists()
    monkeypatch.setenv("DBPIM_OBJCACHE_DIR", "")
    for folder in ("c", "d"):
        _compile(cc, inc / "rt.cpp", tmp_path / folder, "-DEXTRA=1")
    assert _compiles(log) == 4 and not (tmp_path / "cache").exists()
