"""Every memory of the macro, the core and the chip, through one factory (docs/rtl.md, "Memories").

Each memory is one of :data:`MEMORIES` (its *kind*): a single-port memory
with synchronous read (``1rw``: the macro's cell array and metadata register
file), a memory with one write and one read port (``1r1w``: the core's tile
store, descriptors, masks, column maps and output register file, the macro's
input buffers, the DBMU's cells, the window generator's input buffer banks and
window table, the chip's buffers) or a dual-port memory (``2rw``: two ``1rw``
ports on one array, the chip's WMEM).
The kind fixes the ports and the read latency (1: the word read at a clock
edge is on ``rdata`` from the next cycle on; 0, which no kind has now:
``rdata`` follows ``raddr`` combinationally); a block asks for width and depth.

=========== ===== =====================================================================================
port        dir   meaning
=========== ===== =====================================================================================
``1rw``
clk         in    clock; everything happens on its rising edge
cs          in    chip select: a read (``we`` = 0) or write (``we`` = 1) this cycle
we          in    write enable
addr        in    word address (``ADDR_W`` bits)
wdata       in    write data (``WIDTH`` bits)
rdata       out   the word of the last read cycle, from the next cycle on; held while no read
``1r1w``
clk         in    clock
we          in    write enables (``WE_W`` bits: bit k writes bits ``k*WIDTH/WE_W`` up of ``wdata``)
waddr       in    write address
wdata       in    write data
re          in    read enable (read latency 1: a read at this edge; 0: ``rdata`` undefined while low)
raddr       in    read address
rdata       out   latency 1: the word of the last read, from the next cycle on, held while no read (a word
                  written at the read's edge reads its old value); latency 0: the word at ``raddr`` now
``2rw``
clk         in    clock
cs_a ..     in    port a: ``cs_a``, ``we_a``, ``addr_a``, ``wdata_a`` as ``cs`` .. ``wdata`` of ``1rw``
rdata_a     out   port a's ``rdata`` (a word the other port writes at the read's edge reads its old value)
cs_b ..     in/out port b: the same, ``_b``
=========== ===== =====================================================================================

:func:`sram_1rw` / :func:`sram_1r1w` / :func:`sram_2rw` build one inside a block: an Amaranth
``Memory`` (the default, ``behavioural``), or, when the Verilog generator runs
with ``--sram blackbox``, an instance of the wrapper module
``dbpim_sram_<kind>`` (:func:`wrapper_verilog`, parameters ``DEPTH``, ``WIDTH``,
``ADDR_W`` [, ``WE_W``]) whose body is the behavioural model
(:func:`model_verilog`) so that it simulates as is; a designer replaces the
wrapper's body with a compiled SRAM. The emitter records every instance; the
generator writes them as the memory list (:func:`memory_list`) a memory
compiler takes. A memory of read latency 0 cannot be a compiled SRAM without
a timing change: it is listed with ``sram_ready: false``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Instance, Signal
from amaranth.lib.memory import Memory

from dbpim.hw.common import Emitter

__all__ = ["MEMORIES", "MemoryKind", "SRAM_KINDS", "MODEL_MODULES", "MODEL_MODULE", "SramPorts", "WritePort",
           "ReadPort", "TwoPort", "sram_1rw", "sram_2rw", "sram_1r1w", "addr_width", "wrapper_verilog", "model_verilog",
           "memory_list", "MEMORY_LIST_FORMAT"]


@dataclass(frozen=True)
class MemoryKind:
    """One kind of memory: its ports (``1rw`` / ``1r1w``), read latency (cycles) and what a word holds."""

    ports: str
    read_latency: int
    block: str
    holds: str

    @property
    def sram_ready(self) -> bool:
        """A compiled SRAM (synchronous read) can replace it without a timing change."""
        return self.read_latency >= 1


#: memory kind -> its ports, read latency, block and contents (the wrapper module is ``dbpim_sram_<kind>``)
MEMORIES = {
    "cells": MemoryKind("1rw", 1, "macro", "the 6T cell array: one word = the n_comp x n_col cell bits Q of one "
                                           "cell row (bit c * n_col + j = compartment c, column j)"),
    "meta": MemoryKind("1rw", 1, "macro", "the metadata register file: one word = the n_comp x n_col (idx, sign) "
                                          "triples of one cell row (bits 3k..3k+2 = idx (2 bits), sign of cell "
                                          "k = c * n_col + j)"),
    "xbuf": MemoryKind("1r1w", 1, "macro", "the two input buffers: word (buffer, row) = the n_comp inputs of one "
                                           "cell row of an input vector; read in the cycle the IPU takes the row, "
                                           "held on its read data while the IPU issues the row's bit columns"),
    "tile": MemoryKind("1r1w", 1, "pim_core", "the tile store: word slot * n_row + row = one cell row of a tile "
                                              "(model.spec.tile_entry_fields), written from the register bus"),
    "desc": MemoryKind("1r1w", 1, "pim_core", "the descriptors: one word per pass (model.spec.core_map region "
                                              "desc), written from the register bus"),
    "map": MemoryKind("1r1w", 1, "pim_core", "the column maps: one word per tile slot "
                                             "(model.spec.map_entry_fields), written from the register bus"),
    "mask": MemoryKind("1r1w", 1, "pim_core", "the mask register file: one word per input window "
                                              "(model.spec.mask_entry_fields), written from the register bus; "
                                              "the next window's mask is read the cycle before"),
    "orf": MemoryKind("1r1w", 1, "pim_core", "one bank of the output register file: word (row, slot) = one "
                                             "partial sum; read in the cycle a macro result drains and written "
                                             "back in the next, read the cycle before a result streams out"),
    "wbuf": MemoryKind("1r1w", 1, "window", "one bank of the window generator's input buffer, a full copy (bank "
                                            "e serves lane e of a beat: n_comp banks, no bank conflict): one word "
                                            "= n_comp inputs, written to every bank at once; read in the cycle "
                                            "before its beat"),
    "wtable": MemoryKind("1r1w", 1, "window", "the window generator's window table: one entry per window "
                                              "(model.spec WINDOW_ENTRY), read in the cycle before its beat"),
    "pim_queue": MemoryKind("1r1w", 1, "pim_ctrl", "the pass queue of a PIM core after the first (cores 1 ..): "
                                                 "one word of its segment's pass descriptors after the first "
                                                 "(model.spec WINDOW_PASS), written while the core is programmed, "
                                                 "read while it runs"),
    "pim_result": MemoryKind("1r1w", 1, "pim_ctrl", "the result buffer of a PIM core after the first (cores 1 "
                                                  "..): one result (a signed ACC element) per word in stream "
                                                  "order, written while the core runs, drained into ACC after "
                                                  "its round"),
    "simd_const": MemoryKind("1r1w", 1, "simd", "the SIMD core's per-channel constants of one lane: one word "
                                                "per channel group (model.spec.simd_const_fields), read with the "
                                                "beat's group"),
    "dbmu": MemoryKind("1r1w", 1, "dbmu", "the cells of one DBMU (the stand-alone block): one bit per row, "
                                          "read at each clock edge by the row select"),
    # the chip top's buffers (model.isa.BUFFERS): one word = one element; written by the host while the chip is
    # idle (ACT / ACC also by the controllers), read by the controllers while it is busy and by the host otherwise
    "imem": MemoryKind("1r1w", 1, "chip", "IMEM: one instruction per word"),
    "dmem": MemoryKind("1r1w", 1, "chip", "DMEM: one descriptor word per word"),
    "cmem": MemoryKind("1r1w", 1, "chip", "CMEM: one per-channel constant per word"),
    "act": MemoryKind("1r1w", 1, "chip", "ACT: one activation per word (read and written by the controllers)"),
    "acc": MemoryKind("1r1w", 1, "chip", "ACC: one PIM accumulator per word (written by the PIM controller)"),
    "wmem": MemoryKind("2rw", 1, "chip", "WMEM: one word of the mapped layers per word; port a: the host's "
                                         "writes and reads and the PIM controller's stream, port b: its result "
                                         "entries (read only)"),
}
#: kind -> what one word holds (the wrapper module is ``dbpim_sram_<kind>``)
SRAM_KINDS = {k: v.holds for k, v in MEMORIES.items()}
#: ports -> the behavioural model module the wrappers instantiate
MODEL_MODULES = {"1rw": "dbpim_sram_1rw_model", "1r1w": "dbpim_sram_1r1w_model", "2rw": "dbpim_sram_2rw_model"}
MODEL_MODULE = MODEL_MODULES["1rw"]
MEMORY_LIST_FORMAT = "dbpim-memories"


def addr_width(depth: int) -> int:
    """Address bits of a ``depth``-word memory (at least 1)."""
    return max(1, (int(depth) - 1).bit_length())


@dataclass
class SramPorts:
    """The signals a block drives (``cs``, ``we``, ``addr``, ``wdata``) and reads (``rdata``) of a ``1rw``."""

    cs: Signal
    we: Signal
    addr: Signal
    wdata: Signal
    rdata: Signal


@dataclass
class WritePort:
    """A ``1r1w`` memory's write port as a block drives it: ``en`` (one bit per write-enable group), addr, data."""

    en: Signal
    addr: Signal
    data: Signal


@dataclass
class ReadPort:
    """A ``1r1w`` memory's read port: ``en`` (default high), ``addr`` driven by the block, ``data`` read."""

    en: Signal
    addr: Signal
    data: Signal


@dataclass
class TwoPort:
    """The ports of a ``1r1w`` memory: ``w`` (:class:`WritePort`) and ``r`` (:class:`ReadPort`)."""

    w: WritePort
    r: ReadPort


def _kind(kind: str, ports: str) -> MemoryKind:
    if kind not in MEMORIES or MEMORIES[kind].ports != ports:
        have = ", ".join(k for k, v in MEMORIES.items() if v.ports == ports)
        raise ValueError(f"kind: must be one of {have} ({ports} memories), got {kind!r}")
    return MEMORIES[kind]


def _blackbox(m, platform, kind: str, name: str, params: dict, conns: dict) -> bool:
    """Instantiate the wrapper of ``kind`` when ``platform`` is a black-box emitter; whether it did."""
    if not (isinstance(platform, Emitter) and platform.sram == "blackbox"):
        return False
    module = platform.module_name(f"dbpim_sram_{kind}")
    platform.blackbox(module, params, instance=name)
    m.submodules[name] = Instance(module, **{f"p_{k}": v for k, v in params.items()},
                                  i_clk=ClockSignal(), **conns)
    return True


def sram_1rw(m, kind: str, width: int, depth: int, platform, name: str | None = None) -> SramPorts:
    """Add one single-port synchronous-read memory of ``kind`` to module ``m``; returns its ports.

    ``name`` (default ``kind``) names the instance and its signals: a macro with two tile banks has
    ``cells0`` and ``cells1``, both of kind ``cells``.
    """
    _kind(kind, "1rw")
    name = name or kind
    p = SramPorts(cs=Signal(name=f"{name}_cs"), we=Signal(name=f"{name}_we"),
                  addr=Signal(addr_width(depth), name=f"{name}_addr"), wdata=Signal(width, name=f"{name}_wdata"),
                  rdata=Signal(width, name=f"{name}_rdata"))
    params = {"DEPTH": depth, "WIDTH": width, "ADDR_W": addr_width(depth)}
    if _blackbox(m, platform, kind, name, params,
                 dict(i_cs=p.cs, i_we=p.we, i_addr=p.addr, i_wdata=p.wdata, o_rdata=p.rdata)):
        return p
    m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[])
    wp = mem.write_port()
    rp = mem.read_port(domain="sync", transparent_for=())
    m.d.comb += [
        wp.en.eq(p.cs & p.we), wp.addr.eq(p.addr), wp.data.eq(p.wdata),
        rp.en.eq(p.cs & ~p.we), rp.addr.eq(p.addr), p.rdata.eq(rp.data),
    ]
    return p


def sram_2rw(m, kind: str, width: int, depth: int, platform, name: str | None = None) -> tuple:
    """Add one dual-port synchronous-read memory of ``kind`` (two ``1rw`` ports on one array) to ``m``.

    Returns the ports ``(a, b)`` (:class:`SramPorts` each); a write on both ports to one address in one cycle
    is not allowed (the block never does it).
    """
    _kind(kind, "2rw")
    name = name or kind
    aw = addr_width(depth)
    ports = tuple(SramPorts(cs=Signal(name=f"{name}_cs_{x}"), we=Signal(name=f"{name}_we_{x}"),
                            addr=Signal(aw, name=f"{name}_addr_{x}"), wdata=Signal(width, name=f"{name}_wdata_{x}"),
                            rdata=Signal(width, name=f"{name}_rdata_{x}")) for x in "ab")
    params = {"DEPTH": depth, "WIDTH": width, "ADDR_W": aw}
    conns = {}
    for x, p in zip("ab", ports):
        conns |= {f"i_cs_{x}": p.cs, f"i_we_{x}": p.we, f"i_addr_{x}": p.addr, f"i_wdata_{x}": p.wdata,
                  f"o_rdata_{x}": p.rdata}
    if _blackbox(m, platform, kind, name, params, conns):
        return ports
    m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[])
    for p in ports:
        wp = mem.write_port()
        rp = mem.read_port(domain="sync", transparent_for=())
        m.d.comb += [
            wp.en.eq(p.cs & p.we), wp.addr.eq(p.addr), wp.data.eq(p.wdata),
            rp.en.eq(p.cs & ~p.we), rp.addr.eq(p.addr), p.rdata.eq(rp.data),
        ]
    return ports


def sram_1r1w(m, kind: str, *, width: int, depth: int, platform, name: str | None = None,
              granularity: int | None = None) -> TwoPort:
    """Add one memory of ``kind`` with a write and a read port to module ``m``; returns its ports.

    The read latency is the kind's (:data:`MEMORIES`). ``granularity`` (bits per write enable, dividing
    ``width``; default ``width``: one enable) gives the write port byte enables. ``name`` (default
    ``kind``) names the instance (``orf0``, ``orf1``, ...).
    """
    k = _kind(kind, "1r1w")
    gran = width if granularity is None else granularity
    if not isinstance(gran, int) or gran < 1 or width % gran:
        raise ValueError(f"granularity: must divide width {width}, got {granularity!r}")
    name = name or kind
    aw = addr_width(depth)
    p = TwoPort(w=WritePort(en=Signal(width // gran, name=f"{name}_we"), addr=Signal(aw, name=f"{name}_waddr"),
                            data=Signal(width, name=f"{name}_wdata")),
                r=ReadPort(en=Signal(init=1, name=f"{name}_re"), addr=Signal(aw, name=f"{name}_raddr"),
                           data=Signal(width, name=f"{name}_rdata")))
    params = {"DEPTH": depth, "WIDTH": width, "ADDR_W": aw, "WE_W": width // gran}
    if _blackbox(m, platform, kind, name, params,
                 dict(i_we=p.w.en, i_waddr=p.w.addr, i_wdata=p.w.data, i_re=p.r.en, i_raddr=p.r.addr,
                      o_rdata=p.r.data)):
        return p
    m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[])
    wp = mem.write_port(granularity=None if granularity is None else gran)
    m.d.comb += [wp.en.eq(p.w.en), wp.addr.eq(p.w.addr), wp.data.eq(p.w.data)]
    if k.read_latency:
        rp = mem.read_port(domain="sync", transparent_for=())
        m.d.comb += rp.en.eq(p.r.en)
    else:
        rp = mem.read_port(domain="comb")
    m.d.comb += [rp.addr.eq(p.r.addr), p.r.data.eq(rp.data)]
    return p


_PORTS = {
    "1rw": """  input  wire              clk,
  input  wire              cs,     // chip select: a read (we = 0) or a write (we = 1) this cycle
  input  wire              we,     // write enable
  input  wire [ADDR_W-1:0] addr,   // word address
  input  wire [WIDTH-1:0]  wdata,  // write data
  output wire [WIDTH-1:0]  rdata   // word of the last read cycle, from the next cycle on; held otherwise""",
    "1r1w": """  input  wire              clk,
  input  wire [WE_W-1:0]   we,     // write enables: bit k writes bits k*WIDTH/WE_W .. of wdata
  input  wire [ADDR_W-1:0] waddr,  // write address
  input  wire [WIDTH-1:0]  wdata,  // write data
  input  wire              re,     // read enable (latency 0: rdata undefined while low)
  input  wire [ADDR_W-1:0] raddr,  // read address
  output wire [WIDTH-1:0]  rdata   // read data (read latency 1: from the next cycle on, held; 0: now)""",
}
_PORTS["2rw"] = "  input  wire              clk,\n" + ",\n".join(
    f"""  input  wire              cs_{x},     // port {x}: chip select: a read (we_{x} = 0) or a write (we_{x} = 1)
  input  wire              we_{x},     // port {x}: write enable
  input  wire [ADDR_W-1:0] addr_{x},   // port {x}: word address
  input  wire [WIDTH-1:0]  wdata_{x}""" for x in "ab") + ",\n" + ",\n".join(
    f"  output wire [WIDTH-1:0]  rdata_{x}" for x in "ab") + "  // word of the port's last read, from the next cycle on"
_CONNS = {"2rw": ".clk(clk), " + ", ".join(f".{s}_{x}({s}_{x})" for x in "ab" for s in ("cs", "we", "addr", "wdata",
                                                                                            "rdata")),
          "1rw": ".clk(clk), .cs(cs), .we(we), .addr(addr), .wdata(wdata), .rdata(rdata)",
          "1r1w": ".clk(clk), .we(we), .waddr(waddr), .wdata(wdata), .re(re), .raddr(raddr), .rdata(rdata)"}


def wrapper_verilog(kind: str, params: dict, prefix: str = "") -> str:
    """Verilog of the wrapper module ``[<prefix>_]dbpim_sram_<kind>`` (defaults = this configuration's size)."""
    k = MEMORIES[kind]
    pre = f"{prefix}_" if prefix else ""
    model = f"{pre}{MODEL_MODULES[k.ports]}"
    names = ["DEPTH", "WIDTH", "ADDR_W"] + (["WE_W"] if k.ports == "1r1w" else [])
    decl = ",\n".join(f"  parameter {n} = {params[n]}" for n in names)
    over = ", ".join(f".{n}({n})" for n in names) + (f", .READ_LATENCY({k.read_latency})" if k.ports == "1r1w"
                                                       else "")
    timing = ("single port, synchronous read" if k.ports == "1rw" else
              "two ports (each a read or a write per cycle), synchronous read" if k.ports == "2rw" else
              f"one write port, one read port, read latency {k.read_latency}"
              + ("" if k.sram_ready else " (combinational read: not replaceable by a compiled SRAM as is)"))
    return f"""// {pre}dbpim_sram_{kind}: {k.holds}.
// {timing[0].upper() + timing[1:]}: {params['DEPTH']} words x {params['WIDTH']} bits for this configuration.
// The body instantiates the behavioural model {model} ({model}.v) so that
// the design simulates as generated; replace it with a compiled memory of the same behaviour.
module {pre}dbpim_sram_{kind} #(
{decl}
) (
{_PORTS[k.ports]}
);
  {model} #({over}) model (
    {_CONNS[k.ports]}
  );
endmodule
"""


def model_verilog(ports: str = "1rw", prefix: str = "") -> str:
    """Verilog of the behavioural model ``[<prefix>_]dbpim_sram_<ports>_model`` (simulation only).

    No ``initial`` block: a word never written reads whatever the simulator starts it with (Verilator's
    ``--x-initial unique``: random), as a real SRAM does.
    """
    pre = f"{prefix}_" if prefix else ""
    name = f"{pre}{MODEL_MODULES[ports]}"
    if ports == "2rw":
        return f"""// {name}: behavioural dual-port SRAM with synchronous read, for simulation.
// Two ports on one array; on a rising clock edge each port with cs_x: we_x = 1 writes wdata_x to addr_x,
// we_x = 0 reads addr_x into rdata_x (the old word when the other port writes it at that edge), held while
// that port does not read. Both ports writing one address at one edge is not allowed.
module {name} #(
  parameter DEPTH = 16,
  parameter WIDTH = 8,
  parameter ADDR_W = 4
) (
{_PORTS['2rw']}
);
  reg [WIDTH-1:0] words [0:DEPTH-1];
  reg [WIDTH-1:0] qa;
  reg [WIDTH-1:0] qb;
  always @(posedge clk) begin
    if (cs_a & ~we_a) qa <= words[addr_a];
    if (cs_b & ~we_b) qb <= words[addr_b];
    if (cs_a & we_a) words[addr_a] <= wdata_a;
    if (cs_b & we_b) words[addr_b] <= wdata_b;
  end
  assign rdata_a = qa;
  assign rdata_b = qb;
endmodule
"""
    if ports == "1rw":
        return f"""// {name}: behavioural single-port SRAM with synchronous read, for simulation.
// On a rising clock edge with cs: we = 1 writes wdata to addr; we = 0 reads addr into rdata.
// rdata holds its value while no read happens.
module {name} #(
  parameter DEPTH = 16,
  parameter WIDTH = 8,
  parameter ADDR_W = 4
) (
{_PORTS['1rw']}
);
  reg [WIDTH-1:0] words [0:DEPTH-1];
  reg [WIDTH-1:0] q;
  always @(posedge clk) begin
    if (cs) begin
      if (we) words[addr] <= wdata;
      else q <= words[addr];
    end
  end
  assign rdata = q;
endmodule
"""
    return f"""// {name}: behavioural memory with one write and one read port, for simulation.
// On a rising clock edge: each set bit k of we writes its WIDTH/WE_W bits of wdata to waddr.
// READ_LATENCY 1: with re, the edge also reads raddr (the old word when waddr = raddr) into rdata,
// which holds its value while no read happens. READ_LATENCY 0: rdata is the word at raddr while re
// (undefined otherwise).
module {name} #(
  parameter DEPTH = 16,
  parameter WIDTH = 8,
  parameter ADDR_W = 4,
  parameter WE_W = 1,
  parameter READ_LATENCY = 1
) (
{_PORTS['1r1w']}
);
  localparam GRAN = WIDTH / WE_W;
  reg [WIDTH-1:0] words [0:DEPTH-1];
  integer k;
  always @(posedge clk) begin
    for (k = 0; k < WE_W; k = k + 1)
      if (we[k]) words[waddr][k * GRAN +: GRAN] <= wdata[k * GRAN +: GRAN];
  end
  generate
    if (READ_LATENCY == 0) begin : comb_read
      assign rdata = re ? words[raddr] : {{WIDTH{{1'bx}}}};
    end else begin : sync_read
      reg [WIDTH-1:0] q;
      always @(posedge clk) begin
        if (re) q <= words[raddr];
      end
      assign rdata = q;
    end
  endgenerate
endmodule
"""


def memory_list(emitter: Emitter, config: str) -> dict:
    """The memory list of an emitter's black boxes: what a memory compiler takes (``<top>_memories.json``).

    One entry per wrapper module: ``module``, ``kind``, ``depth``, ``width``, ``addr_width``, ``ports``
    (``1rw`` / ``1r1w``), ``write_enables`` (``1r1w``: enables per word), ``read_latency``, ``sram_ready``
    (false: read combinationally, see docs/rtl.md), ``contents`` and ``instances`` (``<module>.<instance>``
    of every place it is instantiated, each instantiating module once however often it is itself instantiated).
    """
    base = emitter.module_name("dbpim_sram_")
    out = []
    for module, params in sorted(emitter.blackboxes.items()):
        kind = module.removeprefix(base)
        k = MEMORIES[kind]
        out.append({"module": module, "kind": kind, "depth": params["DEPTH"], "width": params["WIDTH"],
                    "addr_width": params["ADDR_W"], "ports": k.ports,
                    "write_enables": params.get("WE_W", 1), "read_latency": k.read_latency,
                    "sram_ready": k.sram_ready, "contents": k.holds,
                    "instances": sorted(emitter.blackbox_instances.get(module, []))})
    return {"format": MEMORY_LIST_FORMAT, "version": 1, "config": config, "memories": out}
