"""The chip's integer-only inference (docs/design.md §13): the golden chip (model.chip) and the torch integer path
(model.torch.intpath) agree bit for bit on real compiled networks; constants and refusals."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dbpim.model import artifact as gart
from dbpim.model import simd_ops
from dbpim.model.chip import OUT_BITS, ChipError, GoldenChip, integer_plan, quantize_input
from dbpim.model.layer import run_conv2d
from dbpim.model.requant import MULT_BITS, SHIFT_MAX, rescale
from dbpim.model.spec import input_range

torch = pytest.importorskip("torch")
from dbpim.model.torch.data import load_data  # noqa: E402
from dbpim.model.torch.intpath import IntegerNetwork  # noqa: E402
from dbpim.model.torch.intpath import rescale as trescale  # noqa: E402

DATA = {"smallcnn": "digits", "resnet18": "digits32"}


@pytest.fixture(scope="module")
def nets(real_artifacts):
    out = {}
    for path in real_artifacts:
        art = gart.load(path)
        name = "smallcnn" if "smallcnn" in str(path) else "resnet18"
        ds = load_data(DATA[name], 0)
        out[name] = (art, ds.x_test.numpy()[:32], ds.y_test.numpy()[:32])
    return out


@pytest.mark.parametrize("name", ["smallcnn", "resnet18"])
def test_golden_chip_equals_torch_integer_path(nets, name):
    art, x, y = nets[name]
    chip = GoldenChip(art)
    got = chip.run(x)
    want = IntegerNetwork(chip.plan, art.layers)(torch.from_numpy(x)).numpy()
    assert got.dtype == np.int64 and got.shape == (len(x), 10)
    assert np.array_equal(got, want)
    q = chip.output_quant
    assert (q.lo, q.hi) == (-(1 << (OUT_BITS - 1)), (1 << (OUT_BITS - 1)) - 1)
    assert got.min() >= q.lo and got.max() <= q.hi and np.abs(got).max() > 100  # the logits use the range
    assert chip.macro_cycles > 0 and chip.samples == len(x)
    # the integer-only network decides like the float-requant reference (model.predict) on nearly every sample
    ref = art.predict(x)
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    print(f"{name}: argmax agreement integer-only vs float requant {agree:.3f}")
    assert agree >= 0.9


def test_plan_constants_and_folding(nets):
    art, _, _ = nets["smallcnn"]
    plan = integer_plan(art.program, art.layers)
    kinds = [st["op"] for st in plan.steps]
    assert "clamp" not in kinds  # every ReLU folded into its layer's requant
    mapped = [st for st in plan.steps if st["op"] == "mapped"]
    prog = {op["name"]: op for op in art.program["ops"]}
    for st in mapped:
        q = plan.quants[st["src"][0]]
        assert q.scale == float(np.float32(prog[st["name"]]["x_scale"]))  # rule 1: the reader's x_scale
        assert (q.lo, q.hi) == input_range(st["signed_input"]) or (q.lo, q.hi) == (0, 255)
        assert st["m"].dtype == np.int64 and 0 <= st["m"].min() and st["m"].max() < 1 << MULT_BITS
        assert 0 <= st["s"].min() and st["s"].max() <= SHIFT_MAX
    assert [(st["lo"], st["hi"]) for st in mapped[:-1]] == [(0, 255)] * (len(mapped) - 1)  # ReLU -> [0, 255]


def test_requant_is_the_float_rescale_within_one_step(nets):
    """The first layer's integer output = round((acc + bias) * x_scale * w_scale / out_scale) within 1."""
    art, x, _ = nets["smallcnn"]
    plan = integer_plan(art.program, art.layers)
    st = next(s for s in plan.steps if s["op"] == "mapped")
    (rec,) = [r for r in art.layers if r.name in st["layers"]]
    q_in = quantize_input(x, plan.quants[plan.input])
    acc, _ = run_conv2d(q_in, rec.compiled, rec.kernel, rec.stride, rec.padding, st["signed_input"], rec.dilation)
    got = simd_ops.requant(acc, st["m"], st["s"], st["lo"], st["hi"], st["bias"])
    r = plan.quants[st["src"][0]].scale * np.asarray(rec.scale, np.float64) / plan.quants[st["dst"]].scale
    want = np.clip(np.rint((acc + st["bias"][None, :, None, None]) * r[None, :, None, None]), st["lo"], st["hi"])
    assert np.abs(got - want).max() <= 1 and np.mean(got != want) < 0.01


def test_refuses_an_op_it_cannot_run(nets):
    art, _, _ = nets["smallcnn"]
    prog = copy.deepcopy(art.program)
    i = next(i for i, op in enumerate(prog["ops"]) if op["op"] == "maxpool2d")
    prog["ops"][i] = {**prog["ops"][i], "op": "unsupported", "what": "features.2: Softmax"}
    with pytest.raises(ChipError, match=r"op 'features_2' \(features.2: Softmax\) cannot run on the chip"):
        integer_plan(prog, art.layers)
    prog = copy.deepcopy(art.program)
    for op in prog["ops"]:
        op.pop("range", None)
    with pytest.raises(ChipError, match="no recorded value range.*recompile"):
        integer_plan(prog, art.layers)


def test_residual_scales_come_from_calibration(nets):
    """ResNet-18: an add's operands keep their producers' scales; the add output feeding the next block
    takes its readers' x_scale, the last one (read by the global pooling) its recorded range."""
    art, _, _ = nets["resnet18"]
    plan = integer_plan(art.program, art.layers)
    prog = {op["name"]: op for op in art.program["ops"]}
    adds = [st for st in plan.steps if st["op"] == "add"]
    assert adds and all((st["lo"], st["hi"]) == (0, 255) for st in adds)  # the ReLU after the add is folded
    last = adds[-1]
    lo, hi = prog[last["dst"]]["range"]
    assert lo >= 0 and plan.quants[last["dst"]].scale == float(np.float32(hi / 255))
    mean = next(st for st in plan.steps if st["op"] == "mean")
    assert plan.quants[mean["dst"]].scale == float(np.float32(prog["fc"]["x_scale"]))


def test_torch_rescale_is_model_requant(rng):
    v = rng.integers(-(1 << 30), 1 << 30, size=4000)
    m = rng.integers(0, 1 << MULT_BITS, size=4000)
    s = rng.integers(0, SHIFT_MAX + 1, size=4000)
    v[:8] = [-5, -3, -1, 1, 3, 5, -(1 << 30) + 1, (1 << 30) - 1]  # ties round half up: -2.5 -> -2
    m[:8], s[:8] = 1, 1
    want = rescale(v, m, s)
    got = trescale(torch.from_numpy(v), torch.from_numpy(m), torch.from_numpy(s)).numpy()
    assert np.array_equal(got, want)
    assert list(want[:6]) == [-2, -1, 0, 1, 2, 3]


def test_flow_records_integer_only_accuracy(nets):
    art, _, _ = nets["smallcnn"]
    acc = art.meta["accuracy"]
    assert 0.0 <= acc["integer_only"] <= 1.0
    print(f"smallcnn (tiny schedule): float-requant {acc['final']:.4f}, integer-only {acc['integer_only']:.4f}")
    assert abs(acc["integer_only"] - acc["final"]) <= 0.05


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """MobileNetV2 at width 1/8 (depthwise convolutions with folded BatchNorm, ReLU6, residual adds, global
    pooling), frozen on random 3x32x32 inputs and exported with its program for the small configuration."""
    from dbpim.model.config import load_config
    from dbpim.model.torch.export import export
    from dbpim.model.torch.flow import Stages
    from dbpim.model.torch.graph import capture
    from dbpim.model.torch.zoo import get_model
    torch.manual_seed(0)
    macro = load_config("small").macro
    net = get_model("mobilenetv2", 10, width=0.125)
    x = torch.randn(6, 3, 32, 32)
    net.train()
    with torch.no_grad():
        net(x)  # BatchNorm statistics
    net.eval()
    st = Stages(capture(net, x), macro.group_size)
    st.prune(0.5)
    st.quantize(x, fta=True, phi_max=2)
    st.freeze()
    path = export(st.net, "mobilenetv2", macro, tmp_path_factory.mktemp("mbv2") / "art", x)
    with torch.no_grad():
        ref = st.net(x).numpy()
    return gart.load(path), x.numpy(), ref


def test_mobilenetv2_depthwise_golden_chip_equals_torch_integer_path(mobilenet):
    art, x, ref = mobilenet
    ops = [op["op"] for op in art.program["ops"]]
    assert "unsupported" not in ops and ops.count("depthwise") == 17
    chip = GoldenChip(art)
    kinds = [st["op"] for st in chip.plan.steps]
    assert "clamp" not in kinds  # every ReLU6 folded (through the BatchNorm folded into its depthwise op)
    got = chip.run(x)
    assert np.array_equal(got, IntegerNetwork(chip.plan, art.layers)(torch.from_numpy(x)).numpy())
    # and close to the frozen float network: the same decision, logits within 5 % of their range
    real = got * chip.output_quant.scale
    assert (real.argmax(1) == ref.argmax(1)).all()
    assert np.abs(real - ref).max() <= 0.05 * np.abs(ref).max()
    dw = next(st for st in chip.plan.steps if st["op"] == "depthwise")
    assert dw["w"].dtype == np.int64 and np.abs(dw["w"]).max() == 127


def test_mobilenetv2_depthwise_cycles_are_the_rtl_chips_everywhere(mobilenet):
    """One DWC timing: the golden chip counts each DWC as model.chip_timing.instruction_cycles (the RTL's), and
    the performance model times each depthwise layer with model.chip_timing.dwc_cycles, the same count."""
    from dbpim.model import isa
    from dbpim.model.chip_timing import HALT_CYCLES, instruction_cycles
    from dbpim.model.config import load_config
    from dbpim.sim_bench.perf import evaluate_layer, specs_from_artifact
    art, x, _ = mobilenet
    chip = GoldenChip(art)
    hw = load_config("small")
    hw = hw.replace(system={"simd_lanes": chip.lanes}) if hw.system.simd_lanes != chip.lanes else hw
    p = chip.program
    cycles = {"DWC": [], "other": []}
    for w in p.imem:
        ins = isa.decode(int(w))
        if ins["op"] not in ("PIM", "HALT"):
            base = ins["desc"] * isa.DESC_WORDS
            d = isa.unpack_descriptor(ins["op"], p.dmem[base:base + isa.DESC_WORDS])
            cycles["DWC" if ins["op"] == "DWC" else "other"].append(instruction_cycles(ins["op"], d, chip.lanes))
    specs = [s for s in specs_from_artifact(art) if s.op == "depthwise"]
    assert len(specs) == len(cycles["DWC"]) == 17 and all(s.dwc is not None for s in specs)
    assert [evaluate_layer(s, hw).simd_cycles for s in specs] == cycles["DWC"]
    chip.run(x[:1])
    assert chip.simd_cycles == sum(cycles["DWC"]) + sum(cycles["other"]) + HALT_CYCLES


def test_mobilenetv2_predict_equals_the_frozen_integer_network(mobilenet):
    """model.predict runs the depthwise ops as torch does (unfolded weights, BatchNorm): bit for bit."""
    art, x, ref = mobilenet
    assert np.array_equal(art.predict(x), ref)


def test_predict_refuses_a_depthwise_op_without_its_unfolded_weights(mobilenet, tmp_path):
    """A program written before depthwise ops kept dw_weight / bn_*: predict refuses it in one line, the chip
    runs it."""
    import shutil

    import yaml
    art, x, _ = mobilenet
    d = tmp_path / "old"
    shutil.copytree(art.path, d)
    doc = yaml.safe_load((d / "manifest.yaml").read_text())
    for op in doc["program"]["ops"]:
        for k in ("dw_weight", "dw_bias", "bn_mean", "bn_var", "bn_weight", "bn_bias", "bn_eps"):
            op.pop(k, None)
    (d / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    old = gart.load(d, check_tiles=False)
    from dbpim.model.predict import PredictError
    with pytest.raises(PredictError) as e:
        old.predict(x[:1])
    msg = str(e.value)
    assert "\n" not in msg and "cannot be run by model.predict: it was written without the unfolded weights" in msg
    assert "recompile" in msg
    assert np.array_equal(GoldenChip(old).run(x[:2]), GoldenChip(art).run(x[:2]))
    from dbpim import cli  # dbpim run: the chip and the torch integer path, the float-requant reference skipped
    np.savez(tmp_path / "d.npz", x=x[:2], y=np.arange(2))
    assert cli.main(["run", "--artifact", str(d), "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "o")]) == 0
    import json
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["logits_equal"] is True and "unfolded weights" in r["paths_skipped"]["float_requant"]
    assert r["paths_run"] == ["chip", "torch_int"] and set(r["accuracy"]) == {"chip", "torch_int"}


def test_run_cli_on_mobilenetv2(mobilenet, tmp_path, capsys):
    from dbpim import cli
    art, x, _ = mobilenet
    np.savez(tmp_path / "d.npz", x=x[:4], y=np.arange(4))
    assert cli.main(["run", "--artifact", str(art.path), "--data", str(tmp_path / "d.npz"),
                     "--out", str(tmp_path / "o")]) == 0
    import json
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["logits_equal"] is True and set(r["accuracy"]) == {"chip", "torch_int", "float_requant"}
    assert r["paths_skipped"] == {} and r["program"]["by_opcode"]["DWC"] == 17


@pytest.mark.parametrize("name", ["smallcnn", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_weight_streaming_equals_the_resident_program(nets, name):
    """compile_program(wmem_words=...) below the WMEM image (smallcnn: one word less; the zoo ResNet-18 on small:
    WMEM's 65536 words, its image needs more): the PIM instructions' blocks in ChipProgram.dram, a LOAD before
    each PIM; the golden chip's outputs equal the resident program's and its cycles are the resident ones plus
    the LOADs' (model.chip_timing.dma_cycles)."""
    from dbpim.model import isa
    from dbpim.model.chip import instruction_sources
    from dbpim.model.chip_timing import dma_cycles
    art, x, _ = nets[name]
    x = x[:4]
    resident = GoldenChip(art, wmem_words=None)  # no bound (the default streams past the configuration's WMEM)
    want = resident.run(x)
    total = len(resident.program.wmem)
    words = 65536 if total > 65536 else total - 1
    chip = GoldenChip(art, wmem_words=words)
    p = chip.program
    assert p.dram is not None and len(p.wmem) <= words < total
    ops = [isa.decode(int(w)) for w in p.imem]
    loads = [o for o in ops if o["op"] == "LOAD"]
    assert len(loads) == sum(o["op"] == "PIM" for o in ops) > 0
    srcs = instruction_sources(chip.plan, p)
    assert len(srcs) == len(ops) - 1
    assert all(src[1] == "mapped" for o, src in zip(ops, srcs) if o["op"] in ("LOAD", "PIM"))
    assert all(ops[k + 1]["op"] == "PIM" for k, o in enumerate(ops) if o["op"] == "LOAD")
    got = chip.run(x)
    assert np.array_equal(got, want), f"{name}: streamed outputs differ from the resident program's"
    extra = sum(dma_cycles("LOAD", isa.unpack_descriptor("LOAD", p.dmem[o["desc"] * isa.DESC_WORDS:
                                                                      (o["desc"] + 1) * isa.DESC_WORDS]))
                for o in loads)
    assert chip.cycles == resident.cycles + len(x) * extra
    print(f"{name}: WMEM image {total} words; streamed: {len(p.wmem)} resident, {len(p.dram)} DRAM bytes, "
          f"{len(loads)} LOADs; cycles {resident.cycles} -> {chip.cycles} ({len(x)} samples)")
    with pytest.raises(ChipError, match="do not fit WMEM's"):
        GoldenChip(art, wmem_words=len(p.wmem) - 1)


@pytest.mark.parametrize("count", [0, 1 << 24, (1 << 24) + 1])
def test_golden_chip_refuses_a_simd_size_the_controller_refuses(count):
    """A CLMP of 0 or 2**24 and more elements: the chip controller's CHECK stops it with STATUS.ERROR_CODE 3; the
    golden chip raises one line naming the instruction and the sizes allowed (not a traceback, not a run)."""
    from dbpim.model import chip_programs, isa
    from dbpim.model.config import load_config
    depths = load_config("small").chip_words()
    asm = chip_programs.Asm(np.random.default_rng(0), depths)
    asm.desc("CLMP", count=count, lo=-9, hi=9)
    asm.dmem.extend([0] * (isa.DESC_WORDS - len(asm.dmem)))
    asm.imem.append(isa.encode("CLMP", desc=0, dst=10, src0=0))
    chip = GoldenChip.from_program(asm.program(), 4)
    with pytest.raises(ChipError, match=r"instruction 0 \(CLMP\): .*pixels.*ERROR_CODE 3\)$"):
        chip.execute(np.zeros((1, depths["ACT"]), np.int64), np.zeros((1, depths["ACC"]), np.int64))
