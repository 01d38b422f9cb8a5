"""Activation spilling (docs/design.md §15 "Activation spilling"): a network whose live activations do not fit
ACT (``compile_program(act_words=n)``, ``GoldenChip(artifact, act_words=n)``) runs with its values STOREd to a DRAM
spill region and LOADed back before their readers, a depthwise layer too large for ACT in channel tiles; its
outputs equal the resident program's and the torch integer path's, its cycles the performance model's
(``sim_bench.chip_cycles``, every instruction timed by ``model.chip_timing``). A program that fits is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from dbpim.model import artifact as gart
from dbpim.model import isa
from dbpim.model.chip import ChipError, GoldenChip, instruction_sources

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from dbpim.model.torch.intpath import IntegerNetwork  # noqa: E402


class _Residual(nn.Module):
    """A random inverted-residual network on 3 x 8 x 8 inputs: stem conv (4 ch), 1 x 1 expansion (16), depthwise
    3 x 3 with ReLU6, 1 x 1 projection (4), residual ADD with the stem, global average pooling, linear (10)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(4, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16),
                                nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(16, 4, 1, bias=False), nn.BatchNorm2d(4))
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        y = self.stem(x)
        y = y + self.project(self.dw(self.expand(y)))
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    """The :class:`_Residual` network frozen on random inputs and exported for the small configuration, with its
    resident program (``act_words=None``: it needs 2,304 ACT elements, the expansion's 1,024 outputs, the
    depthwise layer's 1,024 and the stem's 256 kept for the ADD; small's chip has 2,048)."""
    from dbpim.model.config import load_config
    from dbpim.model.torch.export import export
    from dbpim.model.torch.flow import Stages
    from dbpim.model.torch.graph import capture
    torch.manual_seed(0)
    net = _Residual()
    x = torch.randn(8, 3, 8, 8)
    net.train()
    with torch.no_grad():
        net(x)  # BatchNorm statistics
    net.eval()
    macro = load_config("small").macro
    st = Stages(capture(net, x), macro.group_size)
    st.prune(0.5)
    st.quantize(x, fta=True, phi_max=2)
    st.freeze()
    path = export(st.net, "residual", macro, tmp_path_factory.mktemp("spill") / "art", x)
    art = gart.load(path)
    return art, x.numpy()[:4], GoldenChip(art, act_words=None)


def _ops(p) -> list:
    return [isa.decode(int(w))["op"] for w in p.imem]


@pytest.mark.parametrize("act_words, tiled", [(2048, False), (1300, True)])
def test_spilled_program_equals_the_resident_one(residual, act_words, tiled):
    """2,048 ACT elements: the stem's output goes to DRAM and back for the ADD; 1,300: the depthwise layer's 2,048
    input and output elements run in two channel tiles (10 + 6 channels) as well. Outputs equal on the resident
    program, the spilled one and the torch integer path; cycles equal the performance model's and are the
    resident ones plus what each added or changed instruction costs in model.chip_timing."""
    from dbpim.model.chip_timing import instruction_cycles
    from dbpim.sim_bench.chip_cycles import chip_cycles
    art, x, _ = residual
    resident = GoldenChip(art)
    r = resident.program
    assert r.spill is None and r.dram is None and r.act_words > act_words
    want = resident.run(x)
    chip = GoldenChip(art, act_words=act_words)
    p = chip.program
    assert p.spill is not None and p.act_words <= act_words
    ops = _ops(p)
    assert ops.count("STORE") >= 1 and ops.count("LOAD") >= 1
    assert ops.count("DWC") == (2 if tiled else 1) and _ops(r).count("DWC") == 1
    assert p.spill["base"] == 0 and len(p.dram) == p.spill["bytes"] > 0
    assert all(0 <= a < len(p.dram) and a % isa.DMA_BEAT_BYTES == 0 for a in p.spill["values"].values())
    assert len(instruction_sources(chip.plan, p)) == len(ops) - 1
    got = chip.run(x)
    assert np.array_equal(got, want)
    assert np.array_equal(got, IntegerNetwork(chip.plan, art.layers)(torch.from_numpy(x)).numpy())
    perf = chip_cycles(art, x=x, act_words=act_words)
    assert perf.cycles == chip.cycles and chip.dma_cycles > 0

    def static(prog, op):
        out = 0
        for w in prog.imem:
            ins = isa.decode(int(w))
            if ins["op"] == op:
                base = ins["desc"] * isa.DESC_WORDS
                d = isa.unpack_descriptor(op, prog.dmem[base:base + isa.DESC_WORDS])
                out += instruction_cycles(op, d, chip.lanes)
        return out
    moved = sum(static(p, op) - static(r, op) for op in ("LOAD", "STORE", "DWC"))
    assert chip.cycles == resident.cycles + len(x) * moved
    print(f"act_words {act_words}: resident {r.act_words} ACT, {len(r.imem)} instructions; spilled {p.act_words} "
          f"ACT, {len(p.imem)} instructions ({ops.count('LOAD')} LOAD, {ops.count('STORE')} STORE, "
          f"{ops.count('DWC')} DWC), {p.spill['bytes']} DRAM bytes; cycles per inference "
          f"{resident.cycles / len(x):,.1f} -> {chip.cycles / len(x):,.1f}")


def test_a_program_that_fits_is_unchanged_and_spilling_streams_with_weights(residual):
    """act_words at the resident program's need: the same program, no DRAM. With the weights streamed too
    (wmem_words below the image): the spill region after the streamed blocks, the outputs unchanged."""
    art, x, resident = residual
    r = resident.program
    same = GoldenChip(art, act_words=r.act_words).program
    for f in ("imem", "dmem", "cmem", "wmem"):
        assert np.array_equal(getattr(same, f), getattr(r, f)), f
    assert same.dram is None and same.spill is None and same.act_words == r.act_words
    chip = GoldenChip(art, act_words=1300, wmem_words=len(r.wmem) - 1)
    p = chip.program
    assert 0 < p.spill["base"] and len(p.dram) == p.spill["base"] + p.spill["bytes"]
    assert len(instruction_sources(chip.plan, p)) == len(p.imem) - 1
    assert np.array_equal(chip.run(x), resident.run(x))


def test_the_default_spills_into_the_configurations_act(residual):
    """By default the program spills into the configuration's ACT (small: 2,048 elements, the resident program
    needs 2,304); a configuration whose ACT cannot hold one step gets the program against the ISA's 65,536 (here
    the resident one), which the RTL chip refuses by its ACT depth. (The fixture's artifact records no
    configuration: the ISA's bound, the resident program.)"""
    import dataclasses

    from dbpim.model.config import load_config
    art, x, resident = residual
    assert art.hw is None and np.array_equal(GoldenChip(art).program.imem, resident.program.imem)
    art = dataclasses.replace(art, hw=load_config("small"))
    assert art.hw.chip_words()["ACT"] == 2048 < resident.program.act_words
    default = GoldenChip(art).program
    spilled = GoldenChip(art, act_words=2048).program
    assert default.spill is not None and default.act_words <= 2048
    for f in ("imem", "dmem", "cmem", "wmem", "dram"):
        assert np.array_equal(getattr(default, f), getattr(spilled, f)), f
    tiny = dataclasses.replace(art, hw=art.hw.replace(chip={"act_words": 1000}))
    fallback = GoldenChip(tiny).program
    assert fallback.spill is None and fallback.act_words == resident.program.act_words
    assert np.array_equal(fallback.imem, resident.program.imem)
    with pytest.raises(ChipError, match="more than the 1000 ACT holds"):
        GoldenChip(tiny, act_words=1000)


def test_refuses_a_layer_whose_values_do_not_fit(residual):
    art, _, _ = residual
    with pytest.raises(ChipError, match=r"^op '.*' \(\w+\): its inputs and result need \d+ ACT elements at once, "
                                        r"more than the 1000 ACT holds"):
        GoldenChip(art, act_words=1000)
    with pytest.raises(ChipError, match=r"^act_words: must be an integer from 1 to 65536"):
        GoldenChip(art, act_words=0)
