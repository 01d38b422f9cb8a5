"""Stream helpers for Amaranth-simulator testbenches (``sim.add_testbench``).

``stream_put`` / ``stream_get`` follow the Glasgow style; both take an optional
``rng`` that inserts random idle cycles (valid gaps / ready back-pressure).
"""

from __future__ import annotations

__all__ = ["stream_put", "stream_get"]


async def _idle(ctx, rng, p):
    while rng is not None and rng.random() < p:
        await ctx.tick()


async def stream_put(ctx, stream, payload: int, rng=None, p_idle: float = 0.3, sample=()):
    """Offer ``payload`` (an int) until accepted; returns the ``sample`` signals' values at acceptance."""
    await _idle(ctx, rng, p_idle)
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload.as_value(), payload)
    res = await ctx.tick().sample(stream.ready, *sample).until(stream.ready)
    ctx.set(stream.valid, 0)
    return res[1:]


async def stream_get(ctx, stream, rng=None, p_idle: float = 0.3) -> int:
    """Accept one beat, returning its payload as an int."""
    await _idle(ctx, rng, p_idle)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload.as_value()).until(stream.valid)
    ctx.set(stream.ready, 0)
    return int(payload)
