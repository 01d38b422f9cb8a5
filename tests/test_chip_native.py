"""The chip top (``dbpim_chip``) on the native Verilator harness (verif.native_chip) against the golden chip.

* random programs of the SIMD instructions (:mod:`model.chip_programs`; and of DWC alone), several samples of
  random ``ACT`` / ``ACC`` contents each: ``ACT`` after HALT equals :meth:`model.chip.GoldenChip.execute`, ``CYCLES`` equals
  :func:`model.chip.program_cycles` and the golden chip's count, on the ``small`` configuration;
* random LOAD / STORE programs (:func:`model.chip_programs.random_dma_program`) on the harness's ideal DRAM: every
  DMA buffer and the DRAM equal the golden chip's, ``CYCLES`` its count (:func:`model.chip_timing.dma_cycles`);
* every error code of :data:`model.isa.CHIP_ERRORS` comes back as its one-line error naming the instruction;
  exactly the opcodes of :data:`model.isa.RTL_PENDING` stop with code 2;
* the demo SmallCNN's program on the RTL chip: logits equal to the golden chip's and the torch integer path's,
  ``CYCLES`` equal to ``program_cycles`` per sample (``model_cycles``) and to the performance model's end-to-end
  count (``sim_bench.chip_cycles``); and (slow) ``dbpim run --rtl`` on a small depthwise network;
* random PIM layers whose WMEM images run rounds of 2 segments on the ``small`` chip's 2 PIM cores (behind
  ``slow``: in row bands, and the shrunken core's multi-segment layers on a 3-core chip): ACC and ``CYCLES``
  equal the golden chip's; (slow) an image for more cores than the chip has stops it with ERROR_CODE 6.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth")
from dbpim.model import isa  # noqa: E402
from dbpim.model.chip import GoldenChip  # noqa: E402
from dbpim.model.chip import program_cycles  # noqa: E402
from dbpim.model.config import load_config  # noqa: E402
from dbpim.model import chip_programs  # noqa: E402
from dbpim.verif.native_chip import (ChipRunError, chip_depths, model_cycles, run_chip_native,  # noqa: E402
                                     run_program_native)

pytestmark = [pytest.mark.rtl, pytest.mark.timeout(900), pytest.mark.xdist_group("rtl-chip-native")]


@pytest.fixture(scope="module")
def hw():
    return load_config("small")


@pytest.mark.parametrize("seed", [0] + [pytest.param(s, marks=pytest.mark.slow) for s in (1, 2, 3)])
def test_random_simd_programs_equal_the_golden_chip(hw, seed):
    rng = np.random.default_rng(seed)
    depths = chip_depths(hw)
    lanes = hw.system.simd_lanes
    prog = chip_programs.random_program(rng, depths, extra=4)
    bufs = [chip_programs.random_buffers(rng, depths) for _ in range(3)]
    run = run_chip_native(prog, hw, [{"ACT": (0, a), "ACC": (0, c)} for a, c in bufs], [("ACT", 0, depths["ACT"])])
    for s, (act, acc) in enumerate(bufs):
        a, c = act[None].copy(), acc[None].copy()
        gold = GoldenChip.from_program(prog, lanes)
        gold.execute(a, c)
        assert run.error(s) is None, run.error(s)
        assert run.status[s]["DONE"] == 1 and run.status[s]["PC"] == len(prog.imem) - 1
        got = run.outputs[s][0]
        bad = np.flatnonzero(got != a[0])
        assert not bad.size, f"seed {seed} sample {s}: ACT differs at {bad[:10]}: rtl {got[bad[:10]]}, " \
                             f"golden {a[0][bad[:10]]}"
        assert run.cycles[s] == program_cycles(prog, lanes) == gold.simd_cycles, (run.cycles[s], gold.simd_cycles)
    assert run.run_clocks.min() >= run.cycles.min() and run.cycles_per_second > 0 and run.cycles_per_cpu_second > 0


@pytest.mark.parametrize("seed", [0] + [pytest.param(s, marks=pytest.mark.slow) for s in (1, 2, 3)])
def test_random_dma_programs_equal_the_golden_chip(hw, seed):
    """LOAD / STORE of every DMA buffer on the harness's ideal DRAM (model.chip_timing.DMA_LATENCY): ACT, ACC,
    WMEM, CMEM and the DRAM after HALT equal the golden chip's, ``CYCLES`` its count and program_cycles."""
    from dbpim.model.chip_timing import DMA_LATENCY
    rng = np.random.default_rng(seed)
    depths = chip_depths(hw)
    lanes = hw.system.simd_lanes
    prog, _, _, dram = chip_programs.random_dma_program(rng, depths)
    bufs = [chip_programs.random_buffers(rng, depths) for _ in range(2)]
    names = list(isa.DMA_BUFFERS)
    reads = [(n, 0, depths[n]) for n in names] + [("DRAM", 0, len(dram))]
    run = run_chip_native(prog, hw, [{"ACT": (0, a), "ACC": (0, c), "DRAM": (0, dram)} for a, c in bufs], reads,
                          dram=(len(dram), DMA_LATENCY))
    for s, (act, acc) in enumerate(bufs):
        a, c, d = act[None].copy(), acc[None].copy(), dram.copy()
        gold = GoldenChip.from_program(prog, lanes)
        gold.execute(a, c, d)
        assert run.error(s) is None, f"seed {seed}: {run.error(s)}"
        want = {"ACT": a[0], "ACC": c[0], "WMEM": gold._wmem, "CMEM": gold._cmem}
        for k, name in enumerate(names + ["DRAM"]):
            got, exp = run.outputs[s][k], (d if name == "DRAM" else want[name])
            bad = np.flatnonzero(got != exp)
            assert not bad.size, f"seed {seed} sample {s}: {name} differs at {bad[:10]}: rtl {got[bad[:10]]}, " \
                                 f"golden {np.asarray(exp)[bad[:10]]}"
        assert run.cycles[s] == gold.cycles == program_cycles(prog, lanes), \
            f"seed {seed}: CYCLES {run.cycles[s]}, golden {gold.cycles}"
    print(f"seed {seed}: {len(prog.imem)} instructions, CYCLES {run.cycles.tolist()} = the golden chip's")


@pytest.mark.parametrize("seed", [0] + [pytest.param(s, marks=pytest.mark.slow) for s in (1, 2, 3)])
def test_random_dwc_programs_equal_the_golden_chip(hw, seed):
    """Programs of DWC instructions only (random channels, kernel, stride, padding up to a window, dilation, int8
    weights, biases, signed or unsigned output ranges) on signed and unsigned (non-negative) activations: ACT and
    CYCLES equal the golden chip's (lanes 1, 3, 16: tests/test_hw_chip.py on the Amaranth simulator)."""
    rng = np.random.default_rng(seed)
    depths = chip_depths(hw)
    lanes = hw.system.simd_lanes
    asm = chip_programs.Asm(rng, depths)
    for _ in range(6):
        asm.random("DWC")
    prog = asm.program()
    assert sum(isa.decode(int(w))["op"] == "DWC" for w in prog.imem) >= 4
    bufs = [chip_programs.random_buffers(rng, depths) for _ in range(2)]
    bufs.append((np.abs(bufs[0][0]), bufs[0][1]))  # unsigned activations
    run = run_chip_native(prog, hw, [{"ACT": (0, a)} for a, _ in bufs], [("ACT", 0, depths["ACT"])])
    for s, (act, acc) in enumerate(bufs):
        a, c = act[None].copy(), acc[None].copy()
        gold = GoldenChip.from_program(prog, lanes)
        gold.execute(a, c)
        assert run.error(s) is None, run.error(s)
        changed = a[0] != act
        assert len(np.unique(a[0][changed])) > 10, "test programs mostly saturated"
        bad = np.flatnonzero(run.outputs[s][0] != a[0])
        assert not bad.size, f"seed {seed} sample {s}: ACT differs at {bad[:10]}"
        assert run.cycles[s] == program_cycles(prog, lanes) == gold.simd_cycles, (run.cycles[s], gold.simd_cycles)


def _one(word, **desc):
    """A program of one instruction (its descriptor ``desc`` at index 0), then HALT."""
    asm = chip_programs.Asm(np.random.default_rng(0), {"ACT": 64, "ACC": 64})
    if desc:
        asm.desc(desc.pop("op"), **desc)
    asm.imem.append(word)
    return asm.program(64, 64)


def _clmp(lo, hi, dst):
    return _one(isa.encode("CLMP", desc=0, dst=dst, src0=0), op="CLMP", count=3, lo=lo, hi=hi)


def _gap_overflow():
    return _one(isa.encode("GAP", desc=0, dst=10, src0=0), op="GAP", C=1, HW=4, m=(1 << 31) - 1, s=0,
                lo=-(1 << 31), hi=(1 << 31) - 1)


@pytest.mark.parametrize("name, make, code", [
    ("undefined", lambda d: _one(isa.encode("CLMP") | 0xF), 1),
    ("lo>hi", lambda d: _clmp(5, 1, 10), 3),
    ("past 16 bits", lambda d: _gap_overflow(), 4),
    ("past ACT", lambda d: _clmp(-9, 9, d["ACT"] - 2), 5),
    ("DMA buffer code", lambda d: _one(isa.encode("LOAD", desc=0), op="LOAD", buffer=7, addr=0, count=1), 7),
    ("DMA past the DRAM", lambda d: _one(isa.encode("STORE", desc=0), op="STORE", buffer=0, addr=4092, count=4), 8),
])
def test_error_codes_come_back_as_one_line(hw, name, make, code):
    prog = make(chip_depths(hw))
    run = run_chip_native(prog, hw, [{"ACT": (0, np.full(8, 1000))}], [], dram=(4096, 8))
    assert run.status[0]["ERROR"] == 1 and run.status[0]["ERROR_CODE"] == code, run.status[0]
    op = "opcode 15" if code == 1 else isa.decode(int(prog.imem[0]))["op"]
    want = f"RTL chip: sample 0: instruction 0 ({op}) stopped the run with STATUS.ERROR_CODE {code}: " \
           f"{isa.CHIP_ERRORS[code]}"
    assert run.error(0) == want
    with pytest.raises(ChipRunError, match="ERROR_CODE") as e:
        run.check()
    assert "\n" not in str(e.value)


def test_exactly_the_pending_opcodes_stop_with_code_2(hw):
    """Each opcode on a zero descriptor, after one good instruction: code 2 iff it is in model.isa.RTL_PENDING
    (the RTL and the refusal of ``dbpim run --rtl`` read one list)."""
    codes = {}
    for op in isa.OPCODES:
        if op == "HALT":
            continue
        asm = chip_programs.Asm(np.random.default_rng(0), {"ACT": 64, "ACC": 64})
        asm.desc("CLMP", count=1, lo=0, hi=0)
        asm.dmem.extend([0] * isa.DESC_WORDS)
        asm.imem += [isa.encode("CLMP", desc=0, dst=5, src0=0), isa.encode(op, desc=1)]
        st = run_chip_native(asm.program(64, 64), hw, [{}], [], limit=100_000).status[0]
        if op in ("LOAD", "STORE"):  # a zero descriptor moves no element of ACT: a good instruction
            assert st["ERROR"] == 0 and st["PC"] == 2, (op, st)
            codes[op] = 0
            continue
        assert st["ERROR"] == 1 and st["PC"] == 1, (op, st)
        codes[op] = st["ERROR_CODE"]
    assert {op for op, c in codes.items() if c == 2} == set(isa.RTL_PENDING), codes


def test_a_program_larger_than_a_buffer_is_refused_before_the_build(hw):
    depths = chip_depths(hw)
    prog = _one(isa.encode("HALT"))
    prog.imem = np.full(depths["IMEM"] + 1, isa.encode("HALT"), np.uint64)
    with pytest.raises(ChipRunError, match=rf"program IMEM image: IMEM words \[0, {depths['IMEM'] + 1}\) do not fit "
                                           rf"the chip's {depths['IMEM']} words"):
        run_chip_native(prog, hw, [{}], [])
    with pytest.raises(ChipRunError, match=r"sample 0 ACT words: ACT holds signed 16-bit elements"):
        run_chip_native(_one(isa.encode("HALT")), hw, [{"ACT": (0, np.array([1 << 15]))}], [])
    from dbpim.verif.native_chip import check_fits
    prog.act_words, prog.acc_words = depths["ACT"] + 2, depths["ACC"] + 3  # every buffer past its depth named
    with pytest.raises(ChipRunError, match=rf"^program: needs {depths['IMEM'] + 1} IMEM words, the chip has "
                                           rf"{depths['IMEM']}; needs {depths['ACT'] + 2} ACT words, the chip has "
                                           rf"{depths['ACT']}; needs {depths['ACC'] + 3} ACC words, the chip has "
                                           rf"{depths['ACC']}$"):
        check_fits(prog, depths)


@pytest.mark.parametrize("seed", [0] + [pytest.param(s, marks=pytest.mark.slow) for s in (1, 2, 3)])
def test_banded_pim_layers_equal_the_golden_chip(hw, seed):
    """Random PIM layers (stride, padding, dilation, groups, signed inputs, linear) compiled in 2+ row bands (for
    an input buffer smaller than the chip's), several samples: ACC equals the golden chip's and model.layer's,
    CYCLES the golden chip's per sample."""
    from dbpim.model.core import CoreParams
    from dbpim.model.pim_programs import pim_program, random_banded
    rng = np.random.default_rng(seed)
    depths = chip_depths(hw)
    params = CoreParams.from_config(hw)
    for kind in ("conv2d", "linear", None):
        case, buf, bands = random_banded(rng, hw.macro, samples=2, kind=kind)
        src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
        prog = pim_program(case, params, src=src, dst=dst, buffer_inputs=buf)
        n = case.want.shape[1]
        samples, want, cyc = [], [], []
        for s in range(2):
            act = np.zeros((1, depths["ACT"]), np.int64)
            act[0, src:src + case.x.shape[1]] = case.x[s]
            acc = np.zeros((1, depths["ACC"]), np.int64)
            gold = GoldenChip.from_program(prog, hw.system.simd_lanes)
            samples.append({"ACT": (0, act[0].copy())})
            gold.execute(act, acc)
            want.append(acc[0, dst:dst + n])
            cyc.append(gold.cycles)
        np.testing.assert_array_equal(np.stack(want), case.want)
        run = run_chip_native(prog, hw, samples, [("ACC", dst, n)])
        run.check()
        np.testing.assert_array_equal(np.stack([o[0] for o in run.outputs]), case.want, err_msg=f"{kind} {bands}")
        np.testing.assert_array_equal(run.cycles, cyc)


def test_demo_smallcnn_on_the_rtl_chip(real_artifacts):
    """The demo network's program end to end on the RTL chip (16 digits): outputs equal the golden chip's and the
    torch integer path's, CYCLES the model's per sample."""
    torch = pytest.importorskip("torch")
    from dbpim.model.artifact import load
    from dbpim.model.chip import quantize_input
    from dbpim.model.torch.data import load_data
    from dbpim.model.torch.intpath import IntegerNetwork
    from dbpim.model.chip import ChipError
    art = load(real_artifacts[0])
    try:
        chip = GoldenChip(art)
    except ChipError as e:  # DBPIM_HW names a design point whose core cannot hold the demo network
        pytest.skip(f"the demo network does not fit {art.hw.name}'s PIM core: {e}")
    x = load_data("digits", 0).x_test.numpy()[:16]
    want = chip.run(x)
    torch_int = IntegerNetwork(chip.plan, art.layers)(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    np.testing.assert_array_equal(want, torch_int)
    q = quantize_input(x, chip.plan.quants[chip.plan.input])
    got, run = run_program_native(chip.program, q, art.hw)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, torch_int)
    np.testing.assert_array_equal(run.cycles, model_cycles(chip.program, q, art.hw.system.simd_lanes))
    from dbpim.sim_bench.chip_cycles import chip_cycles
    assert chip_cycles(art, x=x).cycles == int(run.cycles.sum())  # the performance model end to end


def test_demo_smallcnn_with_streamed_weights_on_the_rtl_chip(real_artifacts):
    """The demo network compiled for a WMEM one word smaller than its image (weight streaming: its blocks in
    DRAM, a LOAD before each PIM) on the RTL chip with the harness's ideal DRAM (8 digits): outputs equal the
    resident program's, CYCLES the model's per sample (the resident cycles plus the LOADs')."""
    from dbpim.model.artifact import load
    from dbpim.model.chip import quantize_input
    from dbpim.model.chip import ChipError
    from dbpim.model.torch.data import load_data
    art = load(real_artifacts[0])
    try:
        resident = GoldenChip(art)
    except ChipError as e:  # DBPIM_HW names a design point whose core cannot hold the demo network
        pytest.skip(f"the demo network does not fit {art.hw.name}'s PIM core: {e}")
    chip = GoldenChip(art, wmem_words=len(resident.program.wmem) - 1)
    assert chip.program.dram is not None
    x = load_data("digits", 0).x_test.numpy()[:8]
    want = resident.run(x)
    q = quantize_input(x, chip.plan.quants[chip.plan.input])
    got, run = run_program_native(chip.program, q, art.hw)
    np.testing.assert_array_equal(got, want)
    cyc = model_cycles(chip.program, q, art.hw.system.simd_lanes)
    np.testing.assert_array_equal(run.cycles, cyc)
    assert chip.run(x).tolist() == want.tolist() and chip.cycles == int(cyc.sum())
    print(f"streamed smallcnn on the RTL chip: CYCLES {run.cycles.tolist()} = model")


def _tiny_depthwise_net():
    """A MobileNetV2-style network small enough for the ``small`` chip's buffers (the zoo MobileNetV2 is not):
    the zoo's blocks (an inverted residual with its add, a stride-2 one) and a dilated depthwise convolution."""
    from torch import nn

    from dbpim.model.torch.zoo import ConvBNAct, InvertedResidual

    class TinyDW(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = ConvBNAct(3, 4, 3, 1, act="relu6")
            self.b1 = InvertedResidual(4, 4, 1, 2)
            self.b2 = InvertedResidual(4, 8, 2, 2)
            self.dw = nn.Conv2d(8, 8, 3, 1, padding=2, dilation=2, groups=8, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.act = nn.ReLU6()
            self.head = ConvBNAct(8, 16, 1, act="relu6")
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.head(self.act(self.bn(self.dw(self.b2(self.b1(self.stem(x)))))))
            return self.fc(self.pool(x).flatten(1))
    return TinyDW()


def _tiny_depthwise_artifact(hw, out, *, seed: int, samples: int):
    """:func:`_tiny_depthwise_net` pruned to 50 %, quantized with FTA (phi_max 2), frozen and exported for ``hw``
    into ``out``: (the artifact's folder, the ``samples`` random 3 x 9 x 9 inputs it was calibrated on)."""
    import torch

    from dbpim.model.torch.export import export
    from dbpim.model.torch.flow import Stages
    from dbpim.model.torch.graph import capture
    torch.manual_seed(seed)
    net, x = _tiny_depthwise_net(), torch.randn(samples, 3, 9, 9)
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()
    st = Stages(capture(net, x), hw.macro.group_size)
    st.prune(0.5)
    st.quantize(x, fta=True, phi_max=2)
    st.freeze()
    return export(st.net, "tinydw", hw.macro, out, x, hw=hw), x.numpy()


@pytest.mark.slow
def test_depthwise_network_runs_on_the_rtl_chip(hw, tmp_path):
    """``dbpim run --rtl`` on a network with three DWC instructions (stride 1, stride 2, dilation 2) and a residual
    add: the RTL chip's logits equal the golden chip's and the torch integer path's, CYCLES the model's."""
    pytest.importorskip("torch")
    import json

    from dbpim import cli
    art, x = _tiny_depthwise_artifact(hw, tmp_path / "art", seed=0, samples=4)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(4))
    assert cli.main(["run", "--artifact", str(art), "--data", str(tmp_path / "d.npz"), "--rtl",
                     "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["program"]["by_opcode"]["DWC"] == 3 and r["program"]["by_opcode"]["ADD"] == 1
    assert r["logits_equal"] is True and r["logits_equal_to_golden"] == {"torch_int": True, "rtl": True}
    assert r["cycles_rtl"]["equal_model"] is True
    assert r["cycles_perf_model"]["per_inference"] == r["cycles_rtl"]["per_inference"]


@pytest.mark.slow
def test_demo_smallcnn_in_row_bands_on_the_rtl_chip(real_artifacts):
    """The demo network compiled for a 0.2 KiB input buffer (two of its convolutions run in 6 and 2 row bands)
    on the RTL chip (whose buffer is larger: the bands fit it): logits equal the golden chip's, which equal the
    unbanded program's, CYCLES the model's per sample."""
    import dataclasses

    from dbpim.model.artifact import load
    from dbpim.model.chip import quantize_input
    from dbpim.model.pim_image import read_block
    from dbpim.model.torch.data import load_data
    art = load(real_artifacts[0])
    banded = dataclasses.replace(art, hw=dataclasses.replace(
        art.hw, system=dataclasses.replace(art.hw.system, input_buffer_kib=0.2)))
    chip = GoldenChip(banded)
    p = chip.program
    assert max(len(read_block(p.wmem, i).bands) for i in range(int(p.wmem[0]))) >= 2
    x = load_data("digits", 0).x_test.numpy()[:4]
    want = chip.run(x)
    np.testing.assert_array_equal(want, GoldenChip(art).run(x))
    q = quantize_input(x, chip.plan.quants[chip.plan.input])
    got, run = run_program_native(p, q, art.hw)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(run.cycles, model_cycles(p, q, art.hw.system.simd_lanes))


def test_a_chip_the_generator_refuses_is_one_line(hw, monkeypatch):
    """A generator parameter out of its range for the configuration (the generator raises ValueError) comes back
    as one ChipRunError line naming the configuration."""
    from dbpim.verif import native_chip

    def refuse(block, cfg, **options):
        raise ValueError("psum_bits: must be an integer in [1, 32], got 33")
    monkeypatch.setattr(native_chip, "build_native", refuse)
    with pytest.raises(ChipRunError, match=r"^configuration small: the chip cannot be generated: psum_bits: "):
        run_chip_native(_one(isa.encode("HALT")), hw, [{}], [])


def test_only_a_chip_of_several_cores_is_built_hierarchically(hw):
    """The chip harness of HIER_MIN_CORES cores or more marks the PIM core (hw.core.PIMCore's module) as a
    hierarchical block; fewer cores, and the core and macro harnesses, build flat."""
    import dataclasses

    from dbpim.verif.native import HIER_MIN_CORES, hier_blocks
    paper = load_config("paper")
    assert paper.system.cores >= HIER_MIN_CORES > hw.system.cores
    assert hier_blocks("chip", paper) == ("dbpim_pim_core",)
    assert hier_blocks("chip", hw) == ()
    assert hier_blocks("core", paper) == hier_blocks("macro", paper) == ()
    three = dataclasses.replace(hw, system=dataclasses.replace(hw.system, cores=HIER_MIN_CORES))
    assert hier_blocks("chip", three) == ("dbpim_pim_core",)


def _pim_cases_on_cores(hw, cores: int, rng, n: int, banded: bool = False):
    """``n`` random PIM layers (model.pim_programs; ``banded``: in row bands) with images for ``cores`` PIM cores
    on the chip of ``hw``: ACC after the run and CYCLES equal the golden chip's; returns the largest round run
    and whether a drained result buffer held results."""
    from dbpim.model.core import CoreParams
    from dbpim.model.pim_image import read_block
    from dbpim.model.pim_programs import pim_program, random_banded, random_pim
    params = CoreParams.from_config(hw)
    depths = chip_depths(hw)
    widest, drained = 0, False
    for _ in range(n):
        if banded:
            case, buf, _bands = random_banded(rng, hw.macro, samples=2)
        else:
            case, buf = random_pim(rng, hw.macro, samples=2), None
        src, dst = int(rng.integers(0, 40)), int(rng.integers(0, 20))
        prog = pim_program(case, params, src=src, dst=dst, table_pad=int(rng.integers(0, 2)), buffer_inputs=buf,
                           cores=cores, result_words=hw.system.result_buffer_words)
        d = isa.unpack_descriptor("PIM", prog.dmem)
        blocks = [read_block(prog.wmem, d["layer"] + j) for j in range(d["groups"])]
        rounds = [[bd.segments[i] for i in r] for b in blocks for bd in b.bands for r in bd.rounds]
        widest = max([widest] + [len(r) for r in rounds])
        drained |= any(seg.beats for r in rounds for seg in r[1:])
        n_acc = dst + case.want.shape[1] + 8
        accs = [rng.integers(-(1 << 20), 1 << 20, n_acc) for _ in range(2)]
        run = run_chip_native(prog, hw, [{"ACT": (src, case.x[s]), "ACC": (0, accs[s])} for s in range(2)],
                              [("ACC", 0, n_acc)])
        for s in range(2):
            act = np.zeros((1, depths["ACT"]), np.int64)
            act[0, src:src + case.x.shape[1]] = case.x[s]
            acc = np.zeros((1, depths["ACC"]), np.int64)
            acc[0, :n_acc] = accs[s]
            gold = GoldenChip.from_program(prog, hw.system.simd_lanes)
            gold.execute(act, acc)
            assert run.error(s) is None, (case.desc, run.error(s))
            np.testing.assert_array_equal(run.outputs[s][0], acc[0, :n_acc], err_msg=str(case.desc))
            np.testing.assert_array_equal(acc[0, dst:dst + case.want.shape[1]], case.want[s])
            assert run.cycles[s] == gold.cycles, (case.desc, run.cycles[s], gold.cycles)
    return widest, drained


def test_random_pim_layers_on_two_cores_equal_the_golden_chip(hw):
    """Random PIM layers whose images run rounds of 2 segments on the ``small`` chip's 2 PIM cores (core 1's
    results through its result buffer, drained into ACC after the round): ACC and CYCLES equal the golden
    chip's."""
    assert hw.system.cores == 2
    rng = np.random.default_rng(7)
    widest, drained = 0, False
    for _ in range(6):  # until a round of two cores ran and core 1's results were drained
        w, dr = _pim_cases_on_cores(hw, 2, rng, 1)
        widest, drained = max(widest, w), drained or dr
        if widest == 2 and drained:
            break
    assert widest == 2 and drained


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_random_banded_pim_layers_on_two_cores(hw, seed):
    """Random PIM layers in row bands with images for the ``small`` chip's 2 PIM cores: ACC and CYCLES equal the
    golden chip's."""
    rng = np.random.default_rng(seed)
    widest, _ = _pim_cases_on_cores(hw, 2, rng, 3, banded=True)
    assert widest >= 1


@pytest.mark.slow
def test_random_multi_segment_layers_on_three_cores():
    """The shrunken core (model.pim_programs.core_config: layers take several STARTs) on a chip of 3 PIM cores,
    its result buffers of 64 words: images for 3 cores, ACC and CYCLES equal the golden chip's."""
    import dataclasses

    from dbpim.model.pim_programs import core_config
    h = core_config(load_config("small"))
    h = dataclasses.replace(h, system=dataclasses.replace(h.system, cores=3, result_buffer_words=64))
    rng = np.random.default_rng(3)
    widest = 0
    for _ in range(4):
        widest = max(widest, _pim_cases_on_cores(h, 3, rng, 3)[0])
        if widest == 3:
            break
    assert widest == 3


@pytest.mark.slow
def test_an_image_for_more_cores_than_the_chip_has_is_error_6(hw):
    """A block whose rounds run 3 segments at once on the 2-core chip: ERROR_CODE 6 at the PIM, where the golden
    chip raises naming the cores."""
    import dataclasses

    from dbpim.model.chip import ChipError
    from dbpim.model.core import CoreParams
    from dbpim.model.pim_image import read_block
    from dbpim.model.pim_programs import pim_program, random_pim
    rng = np.random.default_rng(5)
    for _ in range(50):
        case = random_pim(rng, hw.macro, kind="linear")
        prog = pim_program(case, CoreParams.from_config(hw), src=0, dst=0, cores=3)
        if read_block(prog.wmem, 0).cores == 3:
            break
    else:
        pytest.fail("no drawn layer has three filter tiles")
    with pytest.raises(ChipError, match=r"its rounds run 3 segments at once, the chip has 2 PIM cores"):
        GoldenChip.from_program(dataclasses.replace(prog, cores=hw.system.cores), 4).execute(
            case.x.astype(np.int64), np.zeros((1, case.want.shape[1]), np.int64))
    st = run_chip_native(prog, hw, [{"ACT": (0, case.x[0])}], []).status[0]
    assert (st["ERROR"], st["ERROR_CODE"], st["PC"]) == (1, 6, 0), st
