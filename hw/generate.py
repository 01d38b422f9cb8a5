"""Verilog generator: every DB-PIM block plus the macro top for one hardware YAML.

Usage::

    python -m hw.generate --hw hw/configs/paper.yaml --out build/verilog
    dbpim verilog --hw small --out build/verilog-small

writes ``dbpim_<block>.v`` for each block (one top module per file, named like
the file) and ``manifest.json``: the parameters, each block's ports (name,
direction, width) and latency in cycles. Output is deterministic
(``emit_src=False``, sorted JSON), byte-identical across runs. A bad YAML stops
with one line (file, key, what is allowed) before anything is written. The
folder is written through :func:`model.outdir.output_dir`: the files are moved in
only on success, our own ``.v`` files of blocks not generated this time are
removed (so ``manifest.json`` always lists exactly the ``.v`` files present),
and a folder holding files we did not write is refused.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["BLOCKS", "build_block", "generate", "main", "ports_of_verilog"]

#: Block names in generation order; file ``dbpim_<name>.v``, top module ``dbpim_<name>``.
BLOCKS = ("lpu", "dbmu", "adder_tree", "accumulator", "ipu", "switch", "macro")
MANIFEST_FORMAT = "dbpim-verilog"
MANIFEST_VERSION = 1


def _components() -> dict:
    from hw.accumulator import ShiftAddAccumulator
    from hw.adder_tree import CSDAdderTree
    from hw.dbmu import DBMU
    from hw.ipu import IPU
    from hw.lpu import LPU
    from hw.macro import PIMMacro
    from hw.switch import SparseSwitch
    return {"lpu": LPU, "dbmu": DBMU, "adder_tree": CSDAdderTree, "accumulator": ShiftAddAccumulator,
            "ipu": IPU, "switch": SparseSwitch, "macro": PIMMacro}


def build_block(name: str, macro):
    """The component of block ``name`` for a :class:`model.config.MacroConfig`.

    Returns
    -------
    hw.common.Block
        Built with ``from_config``; its ``parameters``, ``latency`` and
        ``latency_note`` go into the manifest.
    """
    comps = _components()
    if name not in comps:
        raise ValueError(f"block: must be one of {', '.join(BLOCKS)}, got {name!r}")
    return comps[name].from_config(macro)


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(signed\s+)?(?:\[(\d+):(\d+)\]\s+)?([^\s;]+)\s*;")


def ports_of_verilog(text: str, top: str) -> list[dict]:
    """Port list (name, dir, width) of module ``top`` in Verilog ``text``, in declaration order."""
    m = re.search(rf"^module {re.escape(top)}\(", text, re.M)
    if m is None:
        raise ValueError(f"module {top} not found")
    end = text.index("endmodule", m.end())
    ports = []
    for line in text[m.end():end].splitlines():
        pm = _PORT_RE.match(line)
        if pm:
            width = int(pm.group(3)) - int(pm.group(4)) + 1 if pm.group(3) else 1
            ports.append({"name": pm.group(5), "dir": pm.group(1), "width": width})
    return ports


def generate(config, out_dir, blocks=BLOCKS) -> dict:
    """Write the Verilog of ``blocks`` and ``manifest.json`` into ``out_dir``.

    Parameters
    ----------
    config : HwConfig, MacroConfig, str or Path
        A loaded configuration, or a YAML path / shipped name for
        :func:`model.config.load_config`.
    out_dir : str or Path
    blocks : sequence of str
        Subset of :data:`BLOCKS`.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    model.config.ConfigError
        On a bad configuration (nothing is written).
    ValueError
        On an unknown block name (nothing is written).
    model.outdir.OutputError
        On an ``out_dir`` that cannot be written without losing data (nothing is written).
    """
    from amaranth.back import verilog

    from model.config import HwConfig, MacroConfig, load_config
    from model.outdir import check_output, output_dir

    if isinstance(config, (str, Path)):
        config = load_config(config)
    if isinstance(config, HwConfig):
        name, mc = config.name, config.macro
    elif isinstance(config, MacroConfig):
        name, mc = "custom", config
    else:
        raise TypeError(f"config: must be an HwConfig, MacroConfig or YAML path, got {type(config).__name__}")
    for b in blocks:
        if b not in BLOCKS:
            raise ValueError(f"block: must be one of {', '.join(BLOCKS)}, got {b!r}")
    inputs = [config.path] if isinstance(config, HwConfig) else []
    check_output(out_dir, "dbpim verilog", inputs, adopt=_manifest_files)  # before the slow part
    texts, entries = {}, {}
    for b in blocks:
        comp = build_block(b, mc)
        top = f"dbpim_{b}"
        text = verilog.convert(comp, name=top, emit_src=False)
        texts[f"{top}.v"] = text
        entries[b] = {"file": f"{top}.v", "top": top, "parameters": comp.parameters, "latency": comp.latency,
                      "latency_note": comp.latency_note, "ports": ports_of_verilog(text, top)}
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "config": name,
                "macro": mc.to_dict(), "blocks": entries}
    texts["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    with output_dir(out_dir, "dbpim verilog", inputs, adopt=_manifest_files) as stage:
        for fname, text in texts.items():
            (stage / fname).write_text(text)
    return manifest


def _manifest_files(folder: Path) -> set[str]:
    """The files a ``manifest.json`` of ours (written before output markers existed) lists, with itself."""
    try:
        man = json.loads((folder / "manifest.json").read_text())
        if man.get("format") != MANIFEST_FORMAT:
            return set()
        return {"manifest.json"} | {str(e["file"]) for e in man["blocks"].values()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return set()


def main(argv=None) -> int:
    """``dbpim verilog`` / ``python -m hw.generate``: returns the exit status."""
    from model.config import ConfigError
    from model.outdir import OUT_HELP

    ap = argparse.ArgumentParser(prog="dbpim verilog", description="Generate the DB-PIM Verilog and a manifest.")
    ap.add_argument("--hw", default="paper", help="hardware YAML or shipped name (default: paper)")
    ap.add_argument("--out", default="build/verilog", help=OUT_HELP + " (default: build/verilog)")
    ap.add_argument("--blocks", default=",".join(BLOCKS),
                    help=f"comma-separated subset of {','.join(BLOCKS)} (default: all)")
    a = ap.parse_args(argv)
    blocks = [b.strip() for b in a.blocks.split(",") if b.strip()]
    try:
        man = generate(a.hw, a.out, blocks)
    except (ConfigError, ValueError) as e:
        print(f"dbpim verilog: {e}", file=sys.stderr)
        return 2
    for b, e in man["blocks"].items():
        print(f"{a.out}/{e['file']}: {len(e['ports'])} ports, latency {e['latency']}")
    print(f"{a.out}/manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
