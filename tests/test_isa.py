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
