"""The chip's DRAM for the Amaranth simulator: an AXI4 slave on ``m_axi_*`` (docs/rtl.md "Off-chip memory").

:class:`AxiDram` answers the chip's AXI4 master (:mod:`hw.dma`) from a byte
array. With ``stall`` 0 it is the ideal DRAM of :data:`model.chip_timing.DMA_LATENCY`
(the condition under which ``CYCLES`` equals :func:`model.chip_timing.dma_cycles`):
``ARREADY``, ``AWREADY`` and ``WREADY`` high, a burst's first R beat valid
``latency`` cycles after its AR handshake and each next one from the cycle after
the last one's handshake, ``BVALID`` ``latency`` cycles after the WLAST handshake.
With ``stall`` > 0 each of them waits a random cycle with that probability
(a ``VALID`` once raised stays high until its handshake). A beat at an address
past the array, or in one of ``error_ranges``, is answered DECERR / SLVERR (a
read beat's data 0, a write beat not made). It is reset with the chip (``rst``,
or ``aresetn`` of an AXI top): a burst in flight is dropped. The twin of the native
harness's DRAM (verif/native/chip_main.cpp).
"""

from __future__ import annotations

import numpy as np

from dbpim.model.chip_timing import DMA_LATENCY
from dbpim.model.isa import DMA_BOUNDARY, DMA_MAX_BURST

__all__ = ["AxiDram", "OKAY", "SLVERR", "DECERR"]

OKAY, SLVERR, DECERR = 0, 2, 3
_IN = ("arvalid", "araddr", "arlen", "rready", "awvalid", "awaddr", "awlen", "wvalid", "wdata", "wstrb", "wlast",
       "bready")


class AxiDram:
    """An AXI4 slave holding ``data`` (uint8, written in place) for the chip's ``m_axi_*`` ports.

    Parameters
    ----------
    data : ndarray of uint8
        The DRAM's bytes from address 0.
    latency : int
        Cycles from an AR (WLAST) handshake to the first R beat (B), at least 1.
    stall : float
        Probability that a ready / the next valid waits a cycle (0: the ideal DRAM).
    seed : int
        Seed of the stalls.
    error_ranges : list of (lo, hi)
        Byte ranges answered SLVERR.
    prefix : str
        The ports' prefix.
    """

    def __init__(self, data, *, latency: int = DMA_LATENCY, stall: float = 0.0, seed: int = 0, error_ranges=(),
                 prefix: str = "m_axi_"):
        self.data = data
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
            raise ValueError(f"data: must be a 1-D uint8 array, got {type(data).__name__}")
        if int(latency) < 1:
            raise ValueError(f"latency: must be at least 1, got {latency}")
        self.latency, self.stall, self.prefix = int(latency), float(stall), prefix
        self.rng = np.random.default_rng(seed)
        self.errors = [(int(a), int(b)) for a, b in error_ranges]
        self.bursts = {"read": 0, "write": 0}

    def _resp(self, addr: int) -> int:
        if addr + 4 > len(self.data):
            return DECERR
        return SLVERR if any(a <= addr < b for a, b in self.errors) else OKAY

    def _go(self) -> bool:
        return not (self.stall and self.rng.random() < self.stall)

    async def run(self, ctx, values) -> None:
        """The slave's process (``values``: port name -> signal, :func:`verif.tb.run_amaranth`'s ``agents``)."""
        p = self.prefix
        sig = {n: values[p + n] for n in _IN}
        out = {n: values[p + n] for n in ("arready", "rvalid", "rdata", "rresp", "rlast", "awready", "wready",
                                          "bvalid", "bresp")}
        rst = values["rst"] if "rst" in values else values["aresetn"]
        active = 1 if "rst" in values else 0  # the chip's reset level: the slave is reset with it (AXI4)
        now = 0
        reads = []          # beats of the read burst: byte addresses
        r_due = None        # first cycle the next R beat may be valid
        r_shown = False
        waddr, wleft = None, 0
        b_due, b_resp, b_shown = None, OKAY, False
        while True:
            arready = not reads and self._go()
            awready = waddr is None and b_due is None and self._go()
            wready = waddr is not None and self._go()
            rvalid = bool(reads) and now >= r_due and (r_shown or self._go())
            bvalid = b_due is not None and now >= b_due and (b_shown or self._go())
            ctx.set(out["arready"], arready)
            ctx.set(out["awready"], awready)
            ctx.set(out["wready"], wready)
            ctx.set(out["rvalid"], rvalid)
            ctx.set(out["bvalid"], bvalid)
            if rvalid:
                a = reads[0]
                resp = self._resp(a)
                ctx.set(out["rdata"], int.from_bytes(self.data[a:a + 4].tobytes(), "little") if resp != DECERR else 0)
                ctx.set(out["rresp"], resp)
                ctx.set(out["rlast"], len(reads) == 1)
            if bvalid:
                ctx.set(out["bresp"], b_resp)
            _, _, in_reset, *v = await ctx.tick().sample(rst, *sig.values())
            s = dict(zip(sig, (int(x) for x in v)))
            if int(in_reset) == active:  # reset with the chip: every burst in flight dropped
                reads, waddr, b_due = [], None, None
                now += 1
                continue
            for ch in ("ar", "aw"):
                if (arready if ch == "ar" else awready) and s[f"{ch}valid"]:
                    a, n = s[f"{ch}addr"], s[f"{ch}len"] + 1
                    if n > DMA_MAX_BURST or a // DMA_BOUNDARY != (a + 4 * n - 1) // DMA_BOUNDARY:
                        raise AssertionError(f"AXI4 {ch.upper()} burst of {n} beats at {a:#x} (cycle {now}): past "
                                             f"{DMA_MAX_BURST} beats or across a {DMA_BOUNDARY}-byte boundary")
            if arready and s["arvalid"]:
                reads = [s["araddr"] + 4 * k for k in range(s["arlen"] + 1)]
                r_due, r_shown = now + self.latency, False
                self.bursts["read"] += 1
            elif rvalid and s["rready"]:
                reads.pop(0)
                r_due, r_shown = now + 1, False
            elif rvalid:
                r_shown = True
            if awready and s["awvalid"]:
                waddr, wleft, b_resp = s["awaddr"], s["awlen"] + 1, OKAY
                self.bursts["write"] += 1
            elif wready and s["wvalid"]:
                resp = self._resp(waddr)
                if resp == OKAY:
                    for k in range(4):
                        if s["wstrb"] >> k & 1:
                            self.data[waddr + k] = s["wdata"] >> (8 * k) & 0xFF
                b_resp = max(b_resp, resp)
                waddr, wleft = waddr + 4, wleft - 1
                if wleft == 0:
                    if not s["wlast"]:
                        raise AssertionError(f"AXI4 write burst: WLAST low on its last beat (cycle {now})")
                    waddr, b_due, b_shown = None, now + self.latency, False
                elif s["wlast"]:
                    raise AssertionError(f"AXI4 write burst: WLAST high with {wleft} beats left (cycle {now})")
            if bvalid and s["bready"]:
                b_due = None
            elif bvalid:
                b_shown = True
            now += 1
