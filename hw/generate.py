"""Verilog generator: every DB-PIM block plus the macro top for one hardware YAML.

Usage::

    dbpim verilog --hw hw/configs/paper.yaml --out build/verilog
    dbpim verilog --hw small --out build/verilog-small

writes ``dbpim_<name>.v`` for each block and for every module a block
instantiates (one module per file, named like the file: the macro's ``n_col``
adder trees are instances of the one module ``dbpim_adder_tree``), and
``manifest.json``: the configuration, and per block its parameters, ports (name,
direction, width), latency in cycles and ``sources`` (the files that define it,
sub-modules first: what a simulator or a synthesis tool reads).

``--sram blackbox`` emits every memory of the macro, the core and the DBMU as an
instance of a wrapper module ``dbpim_sram_<kind>`` (:mod:`hw.sram`: one file
each, whose body is a behavioural model ``dbpim_sram_1rw_model.v`` /
``dbpim_sram_1r1w_model.v``, to be replaced by a compiled memory) and writes the
memory list ``dbpim_memories.json`` (manifest ``files.memory_list``); the
default ``behavioural`` keeps them as memories inside their blocks. Either way
no module has an ``initial`` block or a register initial value
(:func:`hw.common.strip_initial_values`).

``dbpim_simd.v`` is the SIMD core (:class:`hw.simd.SIMDCore`, ``system.simd_lanes`` lanes).
``dbpim_chip.v`` is the chip top (:class:`hw.chip.DBPIMChip`: the controller ``dbpim_chip_ctrl``, the SIMD
core, the PIM controller ``dbpim_pim_ctrl``, ``system.cores`` PIM cores with their window generators and the buffers, sized from the
configuration; docs/rtl.md "The chip top").
``dbpim_chip_axi.v`` is the chip behind an AXI4-Lite target (:class:`hw.chip_axi.DBPIMChipAXI`); its manifest
entry adds the chip's address map (:func:`model.isa.chip_map`) and its register description files, named after
the chip (``dbpim_chip.rdl`` / ``.h`` / ``.xml`` / ``_regs.md``: the ``addrmap`` / C struct ``dbpim_chip``).
``dbpim_window.v`` is the input buffer and window generator (:class:`hw.window.WindowGenerator`).
``dbpim_core.v`` is the PIM core with its AXI ports (:class:`hw.core.PIMCoreAXI`); its
manifest entry adds the register map (:func:`model.spec.core_map`) and ``dbpim_core_regs.md`` holds it as
tables.

Output is deterministic (``emit_src=False``, sorted JSON), byte-identical
across runs. A bad YAML stops with one line (file, key, what is allowed)
before anything is written. The folder is written through :func:`model.outdir.output_dir`: the files are moved in
only on success, our own ``.v`` files of blocks not generated this time are
removed (so ``manifest.json`` always lists exactly the ``.v`` files present),
and a folder holding files we did not write is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from dbpim.hw.common import SRAM_MODES, ports_of_verilog

from dbpim.model import jsonio

__all__ = ["BLOCKS", "SRAM_MODES", "build_block", "generate", "ports_of_verilog"]

#: Block names in generation order; file ``dbpim_<name>.v``, top module ``dbpim_<name>``.
BLOCKS = ("lpu", "dbmu", "adder_tree", "accumulator", "ipu", "switch", "macro", "core", "simd", "window", "chip",
          "chip_axi")
MANIFEST_FORMAT = "dbpim-verilog"
MANIFEST_VERSION = 3
#: the register description files of the core and the chip (manifest ``register_files``): kind -> suffix after the
#: ``addrmap`` name (``dbpim_core``, ``dbpim_chip``)
REGISTER_FILES = {"systemrdl": ".rdl", "c_header": ".h", "ip_xact": ".xml", "markdown": "_regs.md"}


def _components() -> dict:
    from dbpim.hw.accumulator import ShiftAddAccumulator
    from dbpim.hw.adder_tree import CSDAdderTree
    from dbpim.hw.chip import DBPIMChip
    from dbpim.hw.chip_axi import DBPIMChipAXI
    from dbpim.hw.core import PIMCoreAXI
    from dbpim.hw.dbmu import DBMU
    from dbpim.hw.ipu import IPU
    from dbpim.hw.lpu import LPU
    from dbpim.hw.macro import PIMMacro
    from dbpim.hw.simd import SIMDCore
    from dbpim.hw.switch import SparseSwitch
    from dbpim.hw.window import WindowGenerator
    return {"lpu": LPU, "dbmu": DBMU, "adder_tree": CSDAdderTree, "accumulator": ShiftAddAccumulator,
            "ipu": IPU, "switch": SparseSwitch, "macro": PIMMacro, "core": PIMCoreAXI, "simd": SIMDCore,
            "window": WindowGenerator, "chip": DBPIMChip, "chip_axi": DBPIMChipAXI}


def build_block(name: str, hw, clock_gate: bool = False):
    """The component of block ``name`` for a :class:`model.config.HwConfig`.

    The core reads the whole configuration (macro, ``system.macros_per_core``,
    ``core``), the SIMD core ``system.simd_lanes``, the window generator its macro, ``system.input_buffer_kib``
    and ``core.mask_windows``, the chip tops their ``system`` section; the other blocks the macro section.

    Returns
    -------
    hw.common.Block
        Built with ``from_config``; its ``parameters``, ``latency`` and
        ``latency_note`` go into the manifest. ``clock_gate``: the chip's gated PIM cores
        (:class:`hw.chip.DBPIMChip`; the other blocks have none: a ValueError).
    """
    from dbpim.model.config import HwConfig, MacroConfig

    comps = _components()
    if name not in comps:
        raise ValueError(f"block: must be one of {', '.join(BLOCKS)}, got {name!r}")
    if isinstance(hw, MacroConfig):
        hw = HwConfig(name="custom", macro=hw)
    if clock_gate:
        if name != "chip":
            raise ValueError(f"clock_gate: only the chip (block chip) gates its cores' clocks, not block {name}")
        return comps[name].from_config(hw, clock_gate=True)
    return comps[name].from_config(hw if name in ("core", "simd", "window", "chip", "chip_axi") else hw.macro)


def generate(config, out_dir, blocks=BLOCKS, sram: str = "behavioural", prefix: str = "",
             clock_gate: bool = False) -> dict:
    """Write the Verilog of ``blocks`` (and of the modules they instantiate) and ``manifest.json`` into ``out_dir``.

    Parameters
    ----------
    config : HwConfig or MacroConfig
        A loaded configuration (:func:`model.config.load_config` reads a YAML).
    out_dir : str or Path
    blocks : sequence of str
        Subset of :data:`BLOCKS` (None: all).
    sram : str
        One of :data:`SRAM_MODES` (how the macro's memories are emitted).
    prefix : str
        Module (and file) name prefix: ``<prefix>_dbpim_<block>``; empty (default) keeps ``dbpim_<block>``.
        Two design points with different prefixes elaborate together in one simulation or netlist.
    clock_gate : bool
        The chip with its PIM cores' clocks gated (:class:`hw.chip.DBPIMChip`, ``blocks`` ``["chip"]``; the
        native chip harness's): default False.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    model.config.ConfigError
        On a bad configuration (nothing is written).
    ValueError
        On an empty ``blocks``, an unknown block name, SRAM mode or a bad prefix (nothing is written).
    model.outdir.OutputError
        On an ``out_dir`` that cannot be written without losing data (nothing is written).
    """
    from dbpim.hw.common import Emitter
    from dbpim.hw.sram import MEMORIES, MODEL_MODULES, memory_list, model_verilog, wrapper_verilog
    from dbpim.model.config import HwConfig, MacroConfig
    from dbpim.model.outdir import check_output, output_dir

    if isinstance(config, MacroConfig):
        config = HwConfig(name="custom", macro=config)
    if isinstance(config, HwConfig):
        name, mc = config.name, config.macro
    else:
        raise TypeError(f"config: must be an HwConfig or MacroConfig, got {type(config).__name__}")
    blocks = BLOCKS if blocks is None else blocks
    if isinstance(blocks, str) or not hasattr(blocks, "__iter__"):
        raise TypeError(f"blocks: must be a sequence of block names, got {type(blocks).__name__}")
    blocks = list(blocks)
    if not blocks:  # writing nothing and exiting 0 would pass for success
        raise ValueError(f"blocks: must name at least one of {', '.join(BLOCKS)}")
    for b in blocks:
        if b not in BLOCKS:
            raise ValueError(f"block: must be one of {', '.join(BLOCKS)}, got {b!r}")
    emitter = Emitter(sram=sram, prefix=prefix)  # checks sram and prefix
    inputs = [config.path] if isinstance(config, HwConfig) else []
    check_output(out_dir, "dbpim verilog", inputs, adopt=_manifest_files)  # before the slow part
    comps = {b: build_block(b, config, clock_gate) for b in blocks}
    for comp in comps.values():
        emitter.convert(comp)
    texts = {f"{n}.v": mod.text for n, mod in emitter.modules.items()}
    for n, params in emitter.blackboxes.items():
        kind = n.removeprefix(emitter.module_name("dbpim_sram_"))
        assert kind in MEMORIES, n
        texts[f"{n}.v"] = wrapper_verilog(kind, params, prefix)
        model_module = emitter.module_name(MODEL_MODULES[MEMORIES[kind].ports])
        emitter.deps[n] = [model_module]
        texts[f"{model_module}.v"] = model_verilog(MEMORIES[kind].ports, prefix)
    entries = {}
    for b, comp in comps.items():
        top = emitter.module_name(f"dbpim_{b}")
        entries[b] = {"file": f"{top}.v", "top": top, "parameters": comp.parameters, "latency": comp.latency,
                      "latency_note": comp.latency_note, "ports": emitter.modules[top].ports,
                      "sources": [f"{n}.v" for n in emitter.sources(top)]}
        if b in ("core", "chip_axi"):
            rdl_top = top if b == "core" else emitter.module_name("dbpim_chip")  # the chip's map: struct dbpim_chip_t
            texts.update(_register_files(comp, rdl_top, name, config))
            entries[b].update({"register_map": comp.map.describe(), "addr_width": comp.map.addr_width,
                               "register_map_file": f"{rdl_top}_regs.md",
                               "register_files": {k: f"{rdl_top}{suffix}" for k, suffix in REGISTER_FILES.items()}})
        if b == "core":
            entries[b].update({"psum_width": comp.psum_width, "digest": config.digest(),
                               "digest_word": comp.parameters["digest"]})
    core_file, texts[core_file] = _fusesoc_core(entries, name, prefix, texts)
    files = {"fusesoc_core": core_file}
    if emitter.blackboxes:  # the memories a memory compiler makes (hw.sram.memory_list)
        files["memory_list"] = f"{emitter.module_name('dbpim_memories')}.json"
        texts[files["memory_list"]] = jsonio.dumps(memory_list(emitter, name), what=files["memory_list"],
                                                   sort_keys=True, newline=True)
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "config": name, "sram": sram,
                "prefix": prefix, "macro": mc.to_dict(), "blocks": entries, "files": files}
    texts["manifest.json"] = jsonio.dumps(manifest, what="manifest.json", sort_keys=True, newline=True)
    with output_dir(out_dir, "dbpim verilog", inputs, adopt=_manifest_files) as stage:
        for fname, text in texts.items():
            (stage / fname).write_text(text)
    return manifest


#: Verilator warning categories the FuseSoC ``lint`` target does not report: the shapes Amaranth and Yosys write
#: (incomplete ``casez`` of an FSM, width changes of their temporaries), reviewed pattern by pattern and counted by
#: ``dbpim lint`` (:mod:`hw.lint`); any other warning fails the target
FUSESOC_LINT_WAIVED = ("CASEINCOMPLETE", "WIDTHEXPAND", "WIDTHTRUNC")


def _fusesoc_core(entries: dict, name: str, prefix: str, texts: dict) -> tuple[str, str]:
    """``(file name, text)`` of a FuseSoC CAPI2 core file of the generated Verilog.

    Its ``rtl`` fileset lists every ``.v`` file, sub-modules first; ``toplevel`` is the core's module when it was
    generated (else the last block's). Targets: ``lint`` (Verilator ``--lint-only``) and ``sim`` (a Verilator
    ``--binary`` build of the top); the register description files are the ``regs`` fileset.
    """
    import re

    import yaml

    top = entries["core"]["top"] if "core" in entries else list(entries.values())[-1]["top"]
    files = list(dict.fromkeys(f for e in entries.values() for f in e["sources"]))
    regs = [f for e in entries.values() for f in e.get("register_files", {}).values()]
    lib = re.sub(r"[^A-Za-z0-9_]", "_", name) or "custom"
    def base():
        return {"filesets": ["rtl"], "toplevel": top}

    core = {
        "name": f"dbpim:{lib}:{top}:1.0.0",
        "description": f"DB-PIM {top} ({name} configuration), generated by dbpim verilog",
        "filesets": {"rtl": {"files": files, "file_type": "verilogSource"}}
        | ({"regs": {"files": [{f: {"file_type": "user"}} for f in regs]}} if regs else {}),
        "targets": {
            "default": base(),
            "lint": base() | {"default_tool": "verilator", "tools": {"verilator": {
                "mode": "lint-only", "verilator_options": [f"-Wno-{w}" for w in FUSESOC_LINT_WAIVED]}}},
            "sim": base() | {"default_tool": "verilator", "tools": {"verilator": {
                "mode": "binary", "verilator_options": [f"-Wno-{w}" for w in FUSESOC_LINT_WAIVED]}}},
        },
    }
    return f"{top}.core", "CAPI=2:\n" + yaml.safe_dump(core, sort_keys=False, default_flow_style=False)


def _register_files(comp, top: str, name: str, config) -> dict:
    """File name -> text of a register description (the core's or the chip's map): SystemRDL and its PeakRDL
    exports (:mod:`hw.regs`), the ``addrmap`` named ``top``."""
    import tempfile

    from dbpim.hw.regs import export, rdl_text
    from dbpim.model.spec import core_constants

    p = comp.parameters
    if comp.NAME == "core":
        constants = core_constants(n_comp=p["n_comp"], n_col=p["n_col"], n_row=p["n_row"], lanes=p["lanes"],
                                   macros=p["macros"], tile_slots=p["tile_slots"], descriptors=p["descriptors"],
                                   mask_windows=p["mask_windows"], out_pixels=p["out_pixels"],
                                   max_row_tiles=p["max_row_tiles"], psum_bits=comp.psum_width, digest=p["digest"])
        what = "DB-PIM core"
    else:
        constants, what = {}, "DB-PIM chip (dbpim_chip_axi)"
    title = (f"{what} ({name}, configuration digest {config.digest()[:16]}...): AXI4-Lite, 32-bit words, "
             f"byte addresses, {comp.map.addr_width} address bits")
    with tempfile.TemporaryDirectory(prefix="dbpim-rdl-") as tmp:
        return export(rdl_text(comp.map, top=top, constants=constants, title=title), tmp, top=top)


def _manifest_files(folder: Path) -> set[str]:
    """The files a ``manifest.json`` of ours (written before output markers existed) lists, with itself."""
    try:
        man = json.loads((folder / "manifest.json").read_text())
        if man.get("format") != MANIFEST_FORMAT:
            return set()
        return ({"manifest.json"} | {str(e["file"]) for e in man["blocks"].values()}
                | {str(f) for e in man["blocks"].values() for f in e.get("sources", [])}
                | {str(e["register_map_file"]) for e in man["blocks"].values() if "register_map_file" in e}
                | {str(f) for e in man["blocks"].values() for f in e.get("register_files", {}).values()}
                | {str(f) for f in man.get("files", {}).values()})
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return set()
