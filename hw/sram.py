"""The macro's memories: single-port SRAMs with synchronous read (docs/rtl.md, "SRAM").

The cell array (one word = the ``n_comp * n_col`` 6T cells of one cell row)
and the metadata register file (one word = their ``n_comp * n_col`` (idx,
sign) triples) are each one single-port memory of ``n_row`` words:

======= ===== ============================================================
port    dir   meaning
======= ===== ============================================================
clk     in    clock; everything happens on its rising edge
cs      in    chip select: a read (``we`` = 0) or write (``we`` = 1) this cycle
we      in    write enable
addr    in    word address (``ADDR_W`` bits)
wdata   in    write data (``WIDTH`` bits)
rdata   out   the word of the last read cycle, from the next cycle on; held while no read
======= ===== ============================================================

:func:`sram_1rw` builds one inside a block: an Amaranth ``Memory`` (the
default, ``behavioural``), or, when the Verilog generator runs with
``--sram blackbox``, an instance of the wrapper module ``dbpim_sram_<kind>``
(parameters ``DEPTH``, ``WIDTH``, ``ADDR_W``), whose Verilog
(:func:`wrapper_verilog`) instantiates the behavioural model
``dbpim_sram_1rw_model`` (:func:`model_verilog`) so that it simulates as is;
a designer replaces the wrapper's body with a compiled SRAM.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Instance, Signal
from amaranth.lib.memory import Memory

from dbpim.hw.common import Emitter

__all__ = ["SRAM_KINDS", "MODEL_MODULE", "SramPorts", "sram_1rw", "addr_width", "wrapper_verilog", "model_verilog"]

#: memory kind -> what one word holds (the wrapper module is ``dbpim_sram_<kind>``)
SRAM_KINDS = {
    "cells": "the 6T cell array: one word = the n_comp x n_col cell bits Q of one cell row "
             "(bit c * n_col + j = compartment c, column j)",
    "meta": "the metadata register file: one word = the n_comp x n_col (idx, sign) triples of one cell row "
            "(bits 3k..3k+2 = idx (2 bits), sign of cell k = c * n_col + j)",
}
MODEL_MODULE = "dbpim_sram_1rw_model"


def addr_width(depth: int) -> int:
    """Address bits of a ``depth``-word memory (at least 1)."""
    return max(1, (int(depth) - 1).bit_length())


@dataclass
class SramPorts:
    """The signals a block drives (``cs``, ``we``, ``addr``, ``wdata``) and reads (``rdata``)."""

    cs: Signal
    we: Signal
    addr: Signal
    wdata: Signal
    rdata: Signal


def sram_1rw(m, kind: str, width: int, depth: int, platform, name: str | None = None) -> SramPorts:
    """Add one single-port synchronous-read memory of ``kind`` to module ``m``; returns its ports.

    ``name`` (default ``kind``) names the instance and its signals: a macro with two tile banks has
    ``cells0`` and ``cells1``, both of kind ``cells``.
    """
    if kind not in SRAM_KINDS:
        raise ValueError(f"kind: must be one of {', '.join(SRAM_KINDS)}, got {kind!r}")
    name = name or kind
    p = SramPorts(cs=Signal(name=f"{name}_cs"), we=Signal(name=f"{name}_we"),
                  addr=Signal(addr_width(depth), name=f"{name}_addr"), wdata=Signal(width, name=f"{name}_wdata"),
                  rdata=Signal(width, name=f"{name}_rdata"))
    if isinstance(platform, Emitter) and platform.sram == "blackbox":
        module = platform.module_name(f"dbpim_sram_{kind}")
        platform.blackbox(module, {"DEPTH": depth, "WIDTH": width, "ADDR_W": addr_width(depth)})
        m.submodules[name] = Instance(module, p_DEPTH=depth, p_WIDTH=width,
                                      p_ADDR_W=addr_width(depth), i_clk=ClockSignal(), i_cs=p.cs, i_we=p.we,
                                      i_addr=p.addr, i_wdata=p.wdata, o_rdata=p.rdata)
        return p
    m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[])
    wp = mem.write_port()
    rp = mem.read_port(domain="sync", transparent_for=())
    m.d.comb += [
        wp.en.eq(p.cs & p.we), wp.addr.eq(p.addr), wp.data.eq(p.wdata),
        rp.en.eq(p.cs & ~p.we), rp.addr.eq(p.addr), p.rdata.eq(rp.data),
    ]
    return p


_PORTS = """  input  wire              clk,
  input  wire              cs,     // chip select: a read (we = 0) or a write (we = 1) this cycle
  input  wire              we,     // write enable
  input  wire [ADDR_W-1:0] addr,   // word address
  input  wire [WIDTH-1:0]  wdata,  // write data
  output wire [WIDTH-1:0]  rdata   // word of the last read cycle, from the next cycle on; held otherwise"""


def wrapper_verilog(kind: str, depth: int, width: int, prefix: str = "") -> str:
    """Verilog of the wrapper module ``[<prefix>_]dbpim_sram_<kind>`` (defaults = this configuration's size)."""
    pre = f"{prefix}_" if prefix else ""
    return f"""// {pre}dbpim_sram_{kind}: {SRAM_KINDS[kind]}.
// Single port, synchronous read: {depth} words x {width} bits for this configuration.
// The body instantiates the behavioural model {pre}{MODEL_MODULE} ({pre}{MODEL_MODULE}.v) so that
// the macro simulates as generated; replace it with a compiled SRAM of the same behaviour.
// The macro writes only while it is idle and never reads and writes in one cycle.
module {pre}dbpim_sram_{kind} #(
  parameter DEPTH = {depth},
  parameter WIDTH = {width},
  parameter ADDR_W = {addr_width(depth)}
) (
{_PORTS}
);
  {pre}{MODEL_MODULE} #(.DEPTH(DEPTH), .WIDTH(WIDTH), .ADDR_W(ADDR_W)) model (
    .clk(clk), .cs(cs), .we(we), .addr(addr), .wdata(wdata), .rdata(rdata)
  );
endmodule
"""


def model_verilog(prefix: str = "") -> str:
    """Verilog of the behavioural model ``[<prefix>_]dbpim_sram_1rw_model`` (simulation only)."""
    pre = f"{prefix}_" if prefix else ""
    return f"""// {pre}{MODEL_MODULE}: behavioural single-port SRAM with synchronous read, for simulation.
// On a rising clock edge with cs: we = 1 writes wdata to addr; we = 0 reads addr into rdata.
// rdata holds its value while no read happens.
module {pre}{MODEL_MODULE} #(
  parameter DEPTH = 16,
  parameter WIDTH = 8,
  parameter ADDR_W = 4
) (
{_PORTS}
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
