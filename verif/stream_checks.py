"""Checks shared by the stream blocks' tests (IPU, sparse allocation switch), on either back end."""

from __future__ import annotations

__all__ = ["expect_stream", "reset_mid_stream"]


async def expect_stream(tb, seed, payloads, expected, unpack, extra=("empty",)) -> list:
    """Send ``payloads`` on ``i``, receive ``len(expected)`` beats on ``o`` and compare them in order.

    Returns the ``extra`` ports' values at each input acceptance. Fails at
    the first wrong beat (as it arrives, naming it) or on a beat more than expected.
    """
    src, snk = tb.source("i"), tb.sink("o")
    i0 = len(src.seen)
    src.send(payloads, extra=extra)
    await snk.recv(tb, len(expected), expect=list(expected), unpack=unpack,
                         where=f"seed {seed} stall {tb.stall}: ")  # the first wrong beat fails at once
    await src.wait(tb)
    await tb.settle()
    assert tb.get("o__valid") == 0 and snk.pending == 0, f"seed {seed} stall {tb.stall}: extra output beat"
    await tb.tick()
    return src.seen[i0:]


async def reset_mid_stream(tb, payload) -> None:
    """Offer one payload, let exactly one output beat out, then reset with the stream busy: no stale beat after."""
    src, snk = tb.source("i"), tb.sink("o")
    n0 = snk.pending
    snk.limit(1)
    src.send([payload])
    while snk.pending == n0:
        await tb.tick()
    await tb.reset()
    await tb.settle()
    assert tb.get("o__valid") == 0, "reset left a beat pending"
    await tb.tick()
    snk.beats.clear()
    snk.resume()
