"""A register map as SystemRDL, and what PeakRDL makes of it (docs/rtl.md).

:func:`rdl_text` renders ONE register description, a :class:`model.spec.RegisterMap`
(the PIM core's: :data:`model.spec.CORE_REGISTERS` and the memories of
:func:`model.spec.core_map`; the chip's: :data:`model.isa.CHIP_REGISTERS` and
the buffers of :func:`model.isa.chip_map`): its registers (fields, bit
positions, access, reset) and memory regions, as a SystemRDL 2.0 ``addrmap``;
:func:`export` compiles it with ``systemrdl-compiler`` and writes, with
PeakRDL:

* ``<top>.h`` - C header (``peakrdl-cheader``): ``<TOP>__<REG>__<FIELD>_bm``
  / ``_bp`` / ``_bw`` / ``_reset`` macros and a ``<top>_t`` struct whose
  member offsets (``offsetof``) are the register addresses;
* ``<top>.xml`` - IP-XACT (IEEE 1685-2014, ``peakrdl-ipxact``);
* ``<top>_regs.md`` - Markdown (``peakrdl-markdown``).

The memories (the core's descriptors, masks, column maps, tile store; the
chip's buffers) are external register-file arrays (write-only, or read-write as
the region's ``access`` says): entry ``e`` word ``w`` is ``<REGION>[e].WORD[w]``,
``stride`` words per entry (words past an entry's ``words`` are padding).

Needs the ``hw`` extra (systemrdl-compiler, peakrdl-*).
"""

from __future__ import annotations

from pathlib import Path

from dbpim.model.spec import BUS_BITS, RegisterMap

__all__ = ["rdl_text", "export", "EXPORTS"]

#: file suffix (after the top name) -> what it is; written by :func:`export`
EXPORTS = {".rdl": "SystemRDL 2.0", ".h": "C header (PeakRDL-cheader)", ".xml": "IP-XACT 2014 (PeakRDL-ipxact)",
           "_regs.md": "Markdown (PeakRDL-markdown)"}

_SW = {"R": "r", "W": "w", "RW": "rw"}
_HW = {"R": "w", "W": "r", "RW": "r"}


def _str(text: str) -> str:
    """A SystemRDL string literal."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def rdl_text(cmap: RegisterMap, *, top: str, constants: dict, title: str = "") -> str:
    """SystemRDL source of a register map.

    Parameters
    ----------
    cmap : RegisterMap
        The address map: its ``registers`` and ``regions`` (:func:`model.spec.core_map`,
        :func:`model.isa.chip_map`).
    top : str
        The ``addrmap`` name (``dbpim_core`` / ``dbpim_chip``, or with a ``<prefix>_``).
    constants : dict
        Register name -> value of the design-point constants (:func:`model.spec.core_constants`), their reset;
        empty when the map has none.
    title : str
        The map's ``desc`` (the configuration it was built for).
    """
    out = [f"// {top}: generated from {cmap.origin}; do not edit",
           f"addrmap {top} {{", f"    name = {_str(top)};", f"    desc = {_str(title or top)};",
           f"    default regwidth = {BUS_BITS};", f"    default accesswidth = {BUS_BITS};", ""]
    for r in cmap.registers:
        out.append(f"    reg {{ name = {_str(r.name)}; desc = {_str(r.desc)};")
        for f in r.fields:
            if f.reset is None:
                if r.name not in constants:
                    raise ValueError(f"constants: missing the value of register {r.name}")
                props, reset = "sw = r; hw = na;", int(constants[r.name])
            else:
                props, reset = f"sw = {_SW[f.access]}; hw = {_HW[f.access]};", f.reset
                if f.access == "W":
                    props += " singlepulse;"
            out.append(f"        field {{ {props} desc = {_str(f.desc)}; }} {f.name}[{f.msb}:{f.lsb}] = "
                       f"0x{reset:X};")
        out.append(f"    }} {r.name} @ 0x{r.address:X};")
    out.append("")
    for reg in cmap.regions.values():
        fields = ", ".join(f"{n}: {w}" + (f" x {c}" if c is not None else "") + (" signed" if sg else "")
                           for n, w, c, sg in reg.fields)
        desc = (f"{reg.entries} entries of {reg.words} words ({reg.stride} word stride), "
                f"{'write-only' if reg.access == 'W' else 'read-write'}; entry fields, LSB first: {fields}"
                + (f"; {reg.desc}" if reg.desc else ""))
        out += [f"    external regfile {{ name = {_str(reg.name.upper())}; desc = {_str(desc)};",
                f"        reg {{ field {{ sw = {_SW[reg.access]}; hw = r; }} DATA[{BUS_BITS - 1}:0] = 0; }} "
                f"WORD[{reg.stride}];",
                f"    }} {reg.name.upper()}[{reg.entries}] @ 0x{reg.base:X} += 0x{reg.stride * BUS_BITS // 8:X};"]
    out.append("};")
    return "\n".join(out) + "\n"


def export(rdl: str, folder, *, top: str) -> dict:
    """Compile SystemRDL source ``rdl`` and write ``<top>.rdl``, ``.h``, ``.xml`` and ``_regs.md`` into ``folder``.

    Returns
    -------
    dict
        File name -> text of each written file (keys ``top`` + :data:`EXPORTS` suffixes).

    Raises
    ------
    ValueError
        When the SystemRDL does not compile (one line, the compiler's first error).
    """
    from peakrdl_cheader.exporter import CHeaderExporter
    from peakrdl_ipxact import IPXACTExporter
    from peakrdl_markdown import MarkdownExporter
    from systemrdl import RDLCompileError, RDLCompiler
    from systemrdl.messages import MessagePrinter, Severity

    class _Quiet(MessagePrinter):
        def __init__(self):
            super().__init__()
            self.errors = []

        def print_message(self, severity, text, src_ref):
            if severity >= Severity.ERROR:
                self.errors.append(text)

    folder = Path(folder)
    files = {f"{top}{suffix}": folder / f"{top}{suffix}" for suffix in EXPORTS}
    files[f"{top}.rdl"].write_text(rdl)
    printer = _Quiet()
    rdlc = RDLCompiler(message_printer=printer)
    try:
        rdlc.compile_file(str(files[f"{top}.rdl"]))
        root = rdlc.elaborate(top_def_name=top)
    except RDLCompileError:
        raise ValueError(f"{top}.rdl: does not compile: {printer.errors[0] if printer.errors else '?'}") from None
    CHeaderExporter().export(root, str(files[f"{top}.h"]))
    IPXACTExporter().export(root, str(files[f"{top}.xml"]))
    # the Markdown lists a memory region once, not entry by entry (PeakRDL-markdown unrolls regfile arrays)
    node = root.top
    children = node.children

    def regions_once(unroll=False, skip_not_present=True):
        for child in children(unroll=False, skip_not_present=skip_not_present):
            if child.is_array:
                child.current_idx = [0]  # listed at its first entry, with its dimensions and stride
            yield child

    node.children = regions_once
    MarkdownExporter().export(node, str(files[f"{top}_regs.md"]))
    return {name: path.read_text() for name, path in files.items()}
