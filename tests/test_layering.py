"""The dependency rules between the project's layers, read from every import statement.

Layers, bottom to top: the core (``model`` without ``model.torch``: pure
NumPy), the front-end (``model.torch``), the RTL (``hw``), the performance
model (``sim_bench``), the testbenches (``verif``) and the application
(``dbpim``: CLI, demo, benchmark harnesses), which alone may import everything.
Lazy imports inside functions count like top-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "hw", "verif", "sim_bench", "dbpim")


def _layer(module: str) -> str:
    top = module.split(".")[0]
    if module == "model.torch" or module.startswith("model.torch."):
        return "front-end"
    return {"model": "core"}.get(top, top)


#: layer -> project layers and third-party top-level packages it must not import
FORBIDDEN = {
    "core": {"front-end", "hw", "verif", "sim_bench", "dbpim", "torch", "amaranth", "cocotb"},
    "front-end": {"hw", "verif", "sim_bench", "dbpim"},
    "hw": {"front-end", "verif", "sim_bench", "dbpim", "torch", "cocotb"},
    "sim_bench": {"front-end", "hw", "verif", "dbpim", "torch", "amaranth", "cocotb"},
    "verif": {"front-end", "sim_bench", "dbpim", "torch"},
    "dbpim": set(),
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _canonical(name: str) -> str:
    """A library module by its folder name: ``dbpim.model.spec`` (its installed import name) is ``model.spec``."""
    parts = name.split(".")
    return ".".join(parts[1:]) if len(parts) > 1 and parts[0] == "dbpim" and parts[1] in PACKAGES[:-1] else name


def _imports(module: str, path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (relative imports resolved), by folder name."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {_canonical(n) for n in out}


MODULES = _modules()
GRAPH = {m: {i for i in _imports(m, p) if i in MODULES and i != m} for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_respects_its_layer(module):
    forbidden = FORBIDDEN[_layer(module)]
    bad = sorted(i for i in _imports(module, MODULES[module])
                 if (_layer(i) if i.split(".")[0] in PACKAGES else i.split(".")[0]) in forbidden)
    assert not bad, f"{module} ({_layer(module)}) imports {', '.join(bad)}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_rules_see_a_violation(tmp_path):
    """The checker itself: a core module importing torch is caught."""
    f = tmp_path / "bad.py"
    f.write_text("def f():\n    import torch\n    from dbpim.sim_bench import perf\n")
    assert {"torch", "sim_bench", "sim_bench.perf"} <= _imports("model.bad", f)
