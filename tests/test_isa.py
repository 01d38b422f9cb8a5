"""The chip's ISA (model.isa, docs/design.md §15) and its compiler (model.chip.compile_program)."""

from __future__ import annotations

import numpy as np
import pytest

from dbpim.model import artifact as gart
from dbpim.model import isa
from dbpim.model.chip import ChipError, GoldenChip, compile_program, integer_plan
from dbpim.model.pim_image import RESULT_ENTRY, read_block
from dbpim.model.spec import unpack


def test_instruction_round_trip(rng):
    for _ in range(200):
        op = rng.choice(list(isa.OPCODES))
        f = {"desc": int(rng.integers(0, 1 << 12)), "dst": int(rng.integers(0, 1 << 16)),
             "src0": int(rng.integers(0, 1 << 16)), "src1": int(rng.integers(0, 1 << 16))}
        w = isa.encode(op, **f)
        assert 0 <= w < 1 << isa.INSTR_BITS
        assert isa.decode(w) == {"op": op, "opcode": isa.OPCODES[op].code, **f}
    # the layout is the documented one: opcode in bits 3..0, desc 15..4, dst 31..16, src0 47..32, src1 63..48
    assert isa.encode("ADD", desc=1, dst=2, src0=3, src1=4) == 3 | 1 << 4 | 2 << 16 | 3 << 32 | 4 << 48


def test_fields_that_do_not_fit_are_named():
    with pytest.raises(isa.IsaError, match="dst: 65536 does not fit unsigned"):
        isa.encode("REQ", dst=1 << 16)
    with pytest.raises(isa.IsaError, match="opcode: must be one of"):
        isa.encode("NOP")
    with pytest.raises(isa.IsaError, match="opcode 15 is not defined"):
        isa.decode(15)
    with pytest.raises(isa.IsaError, match="'lo' = -2147483649 does not fit"):
        isa.pack_descriptor("CLMP", {"count": 1, "lo": -(1 << 31) - 1, "hi": 0})
    with pytest.raises(isa.IsaError, match="field 'hi' missing"):
        isa.pack_descriptor("CLMP", {"count": 1, "lo": 0})
    d = isa.pack_descriptor("GAP", {"C": 3, "HW": 16, "m": (1 << 31) - 1, "s": 35, "lo": 0, "hi": 255})
    assert len(d) == isa.DESC_WORDS and isa.unpack_descriptor("GAP", d)["m"] == (1 << 31) - 1
    assert isa.unpack_pair(isa.pack_pair(3, 65535)) == (3, 65535)


@pytest.fixture(scope="module")
def programs(real_artifacts):
    out = []
    for path in real_artifacts:
        art = gart.load(path)
        plan = integer_plan(art.program, art.layers)
        out.append((art, plan, compile_program(plan, art.layers, art.macro)))
    return out


def test_wmem_holds_every_layer_exactly(programs):
    """One PIM block per mapped layer; its zero and result entries write each of the layer's N x P sums once."""
    for art, _, prog in programs:
        recs = [r for r in art.layers if r.mapped]
        w = prog.wmem
        assert int(w[0]) == len(recs)
        for i, r in enumerate(recs):
            blk = read_block(w, i)
            P, ps = blk.pixels, blk.pixel_stride
            at = [z + q * ps for z in blk.zeros for q in range(P)]
            for seg in blk.segments:
                for word in seg.results:
                    e = unpack(RESULT_ENTRY, word)
                    at += [e["off"] + q * ps for q in range(e["pixels"])]
            base = min(at)
            assert sorted(a - base for a in at) == list(range(r.compiled.N * P)), r.name


def test_program_shape_and_allocation(programs):
    for art, plan, prog in programs:
        ops = [isa.decode(int(w))["op"] for w in prog.imem]
        assert ops[-1] == "HALT" and ops.count("HALT") == 1
        assert ops.count("PIM") == ops.count("REQ") == sum(st["op"] == "mapped" for st in plan.steps)
        assert ops.count("ADD") == sum(st["op"] == "add" for st in plan.steps)
        for i, w in enumerate(prog.imem):  # every PIM is followed by the REQ of its sums
            if isa.decode(int(w))["op"] == "PIM":
                assert isa.decode(int(prog.imem[i + 1]))["op"] == "REQ"
        # ACT reuse: less than the sum of all tensors, at least the largest
        sizes = {st["dst"]: int(np.prod(plan.shapes[st["dst"]])) for st in plan.steps}
        assert max(sizes.values()) <= prog.act_words < sum(sizes.values())
        s = prog.summary()
        assert s["instructions"] == len(prog.imem) and s["by_opcode"]["PIM"] == ops.count("PIM")


def test_golden_chip_runs_the_instruction_stream(programs):
    """Corrupting one REQ's clamp in DMEM changes the output: the chip reads the program, not the plan."""
    art, _, _ = programs[0]
    chip = GoldenChip(art)
    x = np.random.default_rng(0).random((4,) + chip.plan.input_shape).astype(np.float32)
    before = chip.run(x)
    i = next(i for i, w in enumerate(chip.program.imem) if isa.decode(int(w))["op"] == "REQ")
    d = isa.decode(int(chip.program.imem[i]))["desc"]
    hi = d * isa.DESC_WORDS + isa.OPCODES["REQ"].desc.index("hi")
    chip.program.dmem[hi] = 1
    assert not np.array_equal(chip.run(x), before)
    chip.program.imem = chip.program.imem[:-1]
    with pytest.raises(ChipError, match="without HALT"):
        chip.run(x)


# ----------------------------------------------------------------------------- off-chip memory (LOAD / STORE)

def test_dram_layout_is_packed_little_endian():
    """ACT: two 16-bit elements a 32-bit word, element 2k in bits 15:0; the 32-bit buffers one a word."""
    assert isa.to_dram("ACT", [1, -2, 0x1234]).tolist() == [1, 0, 0xFE, 0xFF, 0x34, 0x12]
    assert isa.to_dram("WMEM", [-1, 0x01020304]).tolist() == [255] * 4 + [4, 3, 2, 1]
    rng = np.random.default_rng(7)
    for name in isa.DMA_BUFFERS:
        bits = isa.BUFFERS[name].elem_bits
        v = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), 37)
        assert isa.from_dram(name, isa.to_dram(name, v), len(v)).tolist() == v.tolist(), name
        assert isa.dma_beats(name, len(v)) * isa.DMA_BEAT_BYTES >= len(isa.to_dram(name, v))
    with pytest.raises(isa.IsaError, match="ACT values"):
        isa.to_dram("ACT", [1 << 15])


@pytest.mark.parametrize("seed", range(3))
def test_dma_bursts_cover_the_transfer_and_never_cross_4k(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        addr = int(rng.integers(0, 1 << 14)) * isa.DMA_BEAT_BYTES
        beats = int(rng.integers(0, 300))
        bursts = isa.dma_bursts(addr, beats)
        assert sum(bursts) == beats, f"seed {seed}: {addr:#x} {beats}"
        a = addr
        for n in bursts:
            assert 1 <= n <= isa.DMA_MAX_BURST, f"seed {seed}: {addr:#x} {beats}: {bursts}"
            assert a // isa.DMA_BOUNDARY == (a + n * isa.DMA_BEAT_BYTES - 1) // isa.DMA_BOUNDARY, \
                f"seed {seed}: burst at {a:#x} of {n} beats crosses 4 KiB"
            a += n * isa.DMA_BEAT_BYTES


def test_dma_descriptor_address_is_unsigned():
    words = isa.pack_descriptor("LOAD", {"buffer": 2, "addr": 0xFFFFFFFC, "count": 3})
    assert words[1] == -4 and isa.unpack_descriptor("LOAD", words)["addr"] == 0xFFFFFFFC
    with pytest.raises(isa.IsaError, match="unsigned 32-bit"):
        isa.pack_descriptor("STORE", {"buffer": 0, "addr": 1 << 32, "count": 1})


@pytest.mark.parametrize("seed", range(4))
def test_golden_load_store_equal_a_byte_copy(seed):
    """The golden chip's LOAD / STORE of every DMA buffer against a plain element copy through the DRAM layout,
    on random vectors (each sample its own DRAM), and its cycles the timing model's."""
    from dbpim.model import chip_programs
    from dbpim.model.chip import GoldenChip
    from dbpim.model.chip_timing import dma_cycles
    rng = np.random.default_rng(seed)
    depths = {"ACT": 300, "ACC": 200, "WMEM": 100, "CMEM": 80}
    for name, code in isa.DMA_BUFFERS.items():
        asm = chip_programs.Asm(rng, depths)
        n = int(rng.integers(0, 60))
        base, back = int(rng.integers(0, depths[name] - n + 1)), int(rng.integers(0, depths[name] - n + 1))
        src, dst = int(rng.integers(0, 100)) * 4, 4096 + int(rng.integers(0, 100)) * 4
        ld = {"buffer": code, "addr": src, "count": n}
        st = {"buffer": code, "addr": dst, "count": n}
        asm.imem += [isa.encode("LOAD", desc=asm.desc("LOAD", **ld), dst=base),
                     isa.encode("STORE", desc=asm.desc("STORE", **st), src0=back)]
        prog = asm.program()
        prog.wmem = rng.integers(-(1 << 31), 1 << 31, depths["WMEM"])
        prog.cmem = rng.integers(-(1 << 31), 1 << 31, depths["CMEM"])
        S = 1 if name in ("WMEM", "CMEM") else 2
        act, acc = rng.integers(-300, 300, (S, depths["ACT"])), rng.integers(-9, 9, (S, depths["ACC"]))
        dram = rng.integers(0, 256, (S, 8192), dtype=np.uint8)
        chip = GoldenChip.from_program(prog, 4)
        a, c, d = act.copy(), acc.copy(), dram.copy()
        chip.execute(a, c, d)
        for s in range(S):
            mem = {"ACT": act[s], "ACC": acc[s], "WMEM": prog.wmem, "CMEM": prog.cmem}[name].copy()
            mem[base:base + n] = isa.from_dram(name, dram[s, src:], n)
            got = {"ACT": a[s], "ACC": c[s], "WMEM": chip._wmem, "CMEM": chip._cmem}[name]
            assert np.array_equal(got, mem), f"seed {seed}: {name} after LOAD, sample {s}"
            want = dram[s].copy()
            nb = len(isa.to_dram(name, mem[back:back + n]))
            want[dst:dst + nb] = isa.to_dram(name, mem[back:back + n])
            assert np.array_equal(d[s], want), f"seed {seed}: DRAM after STORE of {name}, sample {s}"
        assert chip.dma_cycles == S * (dma_cycles("LOAD", ld) + dma_cycles("STORE", st)), f"seed {seed}: {name}"
