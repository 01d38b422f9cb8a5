"""A conformance set: test vectors of the golden model in plain NPZ/JSON (docs/rtl.md, "Conformance set").

:func:`generate` writes, for one hardware configuration, the tiles, inputs,
expected accumulators and cycles of the macro (:func:`model.macro.run_macro`,
:func:`model.cycles.macro_schedule`) and, for a few whole layers, the PIM
core's bus writes, input stream, result stream and ``CYCLES``
(:mod:`model.core`) and, for a few chip programs (drawn by
:mod:`model.chip_programs` and :mod:`model.pim_programs`), the buffer images,
the expected ``ACT`` / ``ACC`` after HALT and ``CYCLES``
(:class:`model.chip.GoldenChip`), with a ``manifest.json`` and a ``README.md``
describing every array; :func:`check` re-runs the golden model against such a folder and
lists every disagreement. Another simulator or RTL is checked by reading the
same files. Pure NumPy; deterministic (two generations are byte-identical).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import yaml

from dbpim.model import csd, jsonio
from dbpim.model.compile import TILE_ARRAYS, CompiledLayer, Tile, compile_layer
from dbpim.model.config import HwConfig, MacroConfig, load_config
from dbpim.model.core import CoreParams, bus_writes, compile_program, input_windows, run_core
from dbpim.model.cycles import macro_schedule
from dbpim.model.macro import run_macro
from dbpim.model.prune import n_groups
from dbpim.model.quant import prune_quantize
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN, input_range

__all__ = ["FORMAT", "VERSION", "SEED", "ConformanceError", "build", "generate", "write", "check"]

#: Format name and version written to ``manifest.json``; the version changes with any change of a file's layout.
FORMAT = "dbpim-conformance"
VERSION = 2
#: Seed of every random tile, weight and input of the set.
SEED = 2024


class ConformanceError(ValueError):
    """A folder that is not a conformance set this version can check (one line)."""


# --------------------------------------------------------------------------- weights with a given phi

def _values_with_nnz(p: int) -> np.ndarray:
    """int8 values with exactly ``p`` non-zero CSD digits."""
    v = np.arange(WEIGHT_MIN, WEIGHT_MAX + 1)
    return v[csd.nnz(v) == p]


def _weights(rng, K: int, phi, mask, G: int) -> np.ndarray:
    """Random FTA weights (K, N): kept weights of filter f have phi[f] digits, pruned ones are 0."""
    phi = np.asarray(phi)
    w = np.zeros((K, phi.size), np.int64)
    for f, p in enumerate(phi.tolist()):
        if p:
            w[:, f] = rng.choice(_values_with_nnz(p), K)
    keep = np.repeat(np.asarray(mask, bool), G, axis=1)[:, :phi.size]
    return np.where(keep, w, 0)


def _layer(rng, m: MacroConfig, K: int, phi, mask=None, w=None) -> tuple[CompiledLayer, np.ndarray]:
    G = m.group_size
    phi = np.asarray(phi, np.int64)
    mask = np.ones((K, n_groups(phi.size, G)), bool) if mask is None else np.asarray(mask, bool)
    w = _weights(rng, K, phi, mask, G) if w is None else np.asarray(w, np.int64)
    return compile_layer(w, phi, mask, m, G), w


def _macro_layers(m: MacroConfig, rng, real) -> list[tuple[str, str, CompiledLayer, bool]]:
    """(case name, what it covers, compiled layer, signed inputs) of the macro cases (``real``: a RealLayer or None)."""
    G, cap, pm = m.group_size, m.capacity_rows, m.phi_max
    out = []
    comp, _ = _layer(rng, m, cap, np.full(G, pm))
    out.append(("full_tile", f"every cell row and column used: K = {cap} rows, {G} filters of phi = {pm}", comp, False))
    phi = np.arange(2 * G) % (pm + 1)
    comp, _ = _layer(rng, m, cap // 2 + 1, phi)
    out.append(("phi_0_1_2", "filters of phi 0, 1 and 2 side by side (phi 0 takes no column); a partly used tile",
                comp, False))
    K = 2 * m.n_comp + 1
    mask = np.zeros((K, 2), bool)
    mask[::2, 1] = True  # group 0 keeps no row: no tile; group 1 keeps every other row
    comp, _ = _layer(rng, m, K, np.full(2 * G, 1), mask)
    out.append(("zero_group", "a group with no kept row (no tile) next to a group keeping every other row",
                comp, True))
    w = np.array([[WEIGHT_MIN, 1 << 6, -1, 1]])
    comp, _ = _layer(rng, m, 1, np.ones(4, np.int64)[:min(4, G)], w=w[:, :min(4, G)])
    out.append(("lone_msb", "K = 1; weights -128, 64, -1, 1 (one CSD digit); inputs with only the MSB set",
                comp, True))
    comp, _ = _layer(rng, m, 1, np.full(G, pm))
    out.append(("k1", "K = 1: one cell row, one compartment", comp, False))
    for signed in (False, True):
        K = int(rng.integers(cap + 1, 3 * cap))
        N = int(rng.integers(G + 1, 3 * G))
        u = rng.normal(0, 1, (K, N)) * rng.choice([0.5, 4.0, 30.0, 90.0], N)
        q = prune_quantize(u, m, 0.5, scale=1.0)
        comp = compile_layer(q.w, q.phi, q.mask, m, q.group_size)
        out.append((f"random_{'signed' if signed else 'unsigned'}",
                    f"random block-pruned FTA layer K = {K}, N = {N} (several row and column tiles), seed {SEED}",
                    comp, signed))
    if real is not None:
        out.append(("real_fc1", "first layer of the NumPy-trained digits MLP (model/examples.py), 50 % block "
                    "sparsity, FTA-quantized", real.compiled, False))
    return out


def _vectors(rng, tile: Tile, m: MacroConfig, signed: bool, n_random: int) -> np.ndarray:
    """Gathered inputs (V, n_row, n_comp) int16 for one tile; 0 where the cell is unused."""
    lo, hi = input_range(signed)
    used = tile.rows >= 0
    msb = lo if signed else 1 << (m.in_bits - 1)
    vs = [np.zeros(used.shape, np.int64), np.full(used.shape, hi), np.full(used.shape, lo if signed else 1),
          np.full(used.shape, msb)]
    one = np.zeros(used.shape, np.int64)
    one[np.unravel_index(int(np.argmax(used)), used.shape)] = msb
    vs.append(one)  # a lone MSB in one cell
    for k in range(n_random):
        v = rng.integers(lo, hi + 1, used.shape)
        v[rng.random(used.shape) < 0.3] = 0
        if k == 0 and tile.n_rows_used > 1:
            v[0] = 0  # an all-zero cell row: skipped, no cycle
        vs.append(v)
    return np.stack([np.where(used, v, 0) for v in vs]).astype(np.int16)


def _macro_case(rng, comp: CompiledLayer, m: MacroConfig, signed: bool) -> dict[str, np.ndarray]:
    arrays = {k: np.stack([t.to_arrays()[k] for t in comp.tiles]) for k in TILE_ARRAYS}
    xs, tile_of, acc, cyc, comp_c, start, done, in_acc, out_acc = ([] for _ in range(9))
    for i, t in enumerate(comp.tiles):
        x = _vectors(rng, t, m, signed, n_random=4)
        res = [run_macro(t, v, m, signed=signed, gathered=True) for v in x]
        tl = macro_schedule([r.cycles for r in res], t.n_rows_used, m.n_col)
        ia = np.full((x.shape[0], m.n_row), -1, np.int64)
        ia[:, :tl.in_accept.shape[1]] = tl.in_accept
        xs.append(x)
        tile_of.append(np.full(x.shape[0], i, np.int32))
        acc.append(np.stack([r.acc for r in res]))
        cyc.append([r.cycles for r in res])
        comp_c.append([r.compute_cycles for r in res])
        start.append(tl.start)
        done.append(tl.done)
        in_acc.append(ia)
        out_acc.append(tl.out_accept)
    arrays.update(x=np.concatenate(xs), tile_of=np.concatenate(tile_of), acc=np.concatenate(acc).astype(np.int64),
                  cycles=np.concatenate(cyc).astype(np.int64), compute_cycles=np.concatenate(comp_c).astype(np.int64),
                  start=np.concatenate(start), done=np.concatenate(done), in_accept=np.concatenate(in_acc),
                  out_accept=np.concatenate(out_acc), signed=np.array(signed))
    return arrays


# --------------------------------------------------------------------------- core cases

def _core_layers(hw: HwConfig, rng, real) -> list[tuple]:
    """(name, covers, w, phi, mask, inputs (P, K) or None for random ones, signed) of the core cases."""
    m = hw.macro
    out = []
    for name, K, N, P, signed in (("conv_unsigned", 2 * m.capacity_rows + 3, 2 * m.group_size + 1, 5, False),
                                  ("conv_signed", m.capacity_rows + 1, m.group_size + 2, 3, True)):
        u = rng.normal(0, 1, (K, N)) * rng.choice([0.5, 4.0, 30.0, 90.0], N)
        q = prune_quantize(u, m, 0.5, scale=1.0)
        lo, hi = input_range(signed)
        x = rng.integers(lo, hi + 1, (P, K))
        x[rng.random(x.shape) < 0.3] = 0
        out.append((name, f"random block-pruned FTA layer K = {K}, N = {N} over {P} pixels, "
                    f"{'signed' if signed else 'unsigned'} inputs", q.w, q.phi, q.mask, x, signed))
    if real is not None:
        out.append(("real_fc1", f"first layer of the NumPy-trained digits MLP, {len(real.x)} test digits as "
                    "pixels", real.w_fta, real.phi, real.mask, real.x.astype(np.int64), False))
    return out


def _core_run(hw: HwConfig, w, phi, mask, x, signed: bool) -> dict[str, np.ndarray]:
    """What the core does with the layer and inputs: the expected arrays of a core case."""
    m = hw.macro
    comp = compile_layer(w, phi, mask, m, m.group_size)
    prog = compile_program(comp, int(x.shape[0]), CoreParams.from_config(hw), signed)
    res = run_core(prog, x)
    writes, win, seg_w, seg_i, seg_b = [], [], [0], [0], [0]
    for seg, beats in zip(prog.segments, res.beats):
        bw = np.array(bus_writes(prog, seg), np.int64).reshape(-1, 2)
        iw = input_windows(prog, seg, x)
        writes.append(bw)
        win.append(iw)
        seg_w.append(seg_w[-1] + len(bw))
        seg_i.append(seg_i[-1] + len(iw))
        seg_b.append(seg_b[-1] + len(beats))
    return {"bus_writes": np.concatenate(writes).astype(np.uint32), "seg_writes": np.array(seg_w, np.int64),
            "in_stream": np.concatenate(win).astype(np.uint8), "seg_inputs": np.array(seg_i, np.int64),
            "out_stream": np.concatenate(res.beats).astype(np.int64), "seg_outputs": np.array(seg_b, np.int64),
            "cycles": np.asarray(res.cycles, np.int64), "out": res.out.astype(np.int64)}


# --------------------------------------------------------------------------- chip cases

#: ``ACT`` / ``ACC`` words of the random SIMD program's buffers (within every configuration's chip buffers).
CHIP_SIMD_WORDS = {"ACT": 256, "ACC": 128}


def _pim_conv(rng, hw: HwConfig, *, C: int, H: int, N: int, signed: bool, samples: int):
    """A 3x3 / stride 1 / padding 1 convolution (C -> N channels, H x H) as one PIM instruction: its program."""
    from dbpim.model import isa
    from dbpim.model.pim_programs import PimCase, pim_program
    m = hw.macro
    q = prune_quantize(rng.normal(0, 1, (9 * C, N)) * 30, m, 0.5, scale=1.0)
    comp = compile_layer(q.w, q.phi, q.mask, m, q.group_size)
    one = isa.pack_pair(1, 1)
    d = dict(kind=isa.PIM_KINDS["conv2d"], groups=1, layer=0, signed=int(signed), C=C, H=H, W=H, N=N, Ho=H, Wo=H,
             kernel=isa.pack_pair(3, 3), stride=one, padding=one, dilation=one)
    lo, hi = input_range(signed)
    x = rng.integers(lo, hi + 1, (samples, C * H * H))
    case = PimCase(desc=d, layers=[comp], x=x, want=np.zeros((samples, N * H * H), np.int64), linear=False)
    return pim_program(case, CoreParams.from_config(hw), src=0, dst=0), x


def _chip_cases(hw: HwConfig, rng) -> list[tuple]:
    """(name, covers, program, ACT (S, A), ACC (S, C)) of the chip cases: the buffers written before each START."""
    from dbpim.model.chip_programs import random_buffers, random_program
    out = []
    prog = random_program(rng, CHIP_SIMD_WORDS, extra=4)
    bufs = [random_buffers(rng, CHIP_SIMD_WORDS) for _ in range(2)]
    out.append(("simd_random", f"a random program of REQ, ADD, MAXP, GAP, CLMP (one of each, then 4 more), seed "
                f"{SEED}, on random ACT and ACC", prog, np.stack([a for a, _ in bufs]), np.stack([c for _, c in bufs])))
    for name, C, H, N, signed in (("pim_conv_segments", 16, 4, 32, False), ("pim_conv_signed", 3, 5, 6, True)):
        prog, x = _pim_conv(rng, hw, C=C, H=H, N=N, signed=signed, samples=2)
        act = np.zeros((2, prog.act_words), np.int64)
        act[:, :x.shape[1]] = x
        from dbpim.model.pim_image import read_block
        segs = sum(len(read_block(prog.wmem, j).segments) for j in range(int(prog.wmem[0])))
        out.append((name, f"one PIM instruction: a 3x3 convolution {C} -> {N} channels on {H} x {H}, "
                    f"{'signed' if signed else 'unsigned'} inputs, {segs} segment(s) (STARTs of the PIM core)",
                    prog, act, np.zeros((2, prog.acc_words), np.int64)))
    out.append(("pim_cnn", "a small CNN: PIM 3x3 convolution 3 -> 6 channels on 6 x 6 (padding 1) into ACC, REQ "
                "to ACT (clamped to [0, 127], with bias), MAXP 2x2 stride 2, GAP, HALT", *_pim_cnn(rng, hw)))
    return out


def _pim_cnn(rng, hw: HwConfig):
    """A convolution, requantization, max pooling and global average pooling: the program and its buffers."""
    from dbpim.model import isa
    C, H, N = 3, 6, 6
    prog, x = _pim_conv(rng, hw, C=C, H=H, N=N, signed=False, samples=2)
    P, Hp = H * H, H // 2
    req, pool, gap = C * P, C * P + N * P, C * P + N * P + N * Hp * Hp
    cmem = [int(v) for v in rng.integers(1 << 29, 1 << 31, N)] + [int(v) for v in rng.integers(41, 44, N)] \
        + [int(v) for v in rng.integers(-3000, 3000, N)]
    dmem = list(prog.dmem)
    for op, v in (("REQ", dict(C=N, inner=P, outer=1, m_addr=0, s_addr=N, bias_addr=2 * N, has_bias=1, lo=0, hi=127)),
                  ("MAXP", dict(C=N, H=H, W=H, Ho=Hp, Wo=Hp, kernel=isa.pack_pair(2, 2), stride=isa.pack_pair(2, 2),
                                padding=isa.pack_pair(0, 0), dilation=isa.pack_pair(1, 1))),
                  ("GAP", dict(C=N, HW=Hp * Hp, m=1 << 30, s=32, lo=-128, hi=127))):
        dmem.extend(isa.pack_descriptor(op, v))
    imem = [int(prog.imem[0]), isa.encode("REQ", desc=1, dst=req, src0=0),
            isa.encode("MAXP", desc=2, dst=pool, src0=req), isa.encode("GAP", desc=3, dst=gap, src0=pool),
            isa.encode("HALT")]
    prog.imem, prog.dmem, prog.cmem = np.array(imem, np.uint64), np.array(dmem, np.int64), np.array(cmem, np.int64)
    prog.act_words = gap + N
    act = np.zeros((2, prog.act_words), np.int64)
    act[:, :x.shape[1]] = x
    return prog, act, np.zeros((2, prog.acc_words), np.int64)


#: Test digits of the demo network's chip case.
DEMO_SAMPLES = 2


def _check_demo(hw: HwConfig, art) -> None:
    if art.hw is None or art.hw.digest() != hw.digest():
        raise ConformanceError(f"demo: the artifact was compiled for {getattr(art.hw, 'name', 'no configuration')}, "
                               f"not for {hw.name} (digests differ)")


def _demo_case(hw: HwConfig, art, x: np.ndarray) -> tuple:
    """(name, covers, program, ACT (S, A), ACC (S, C)) of the demo network (``art``: the SmallCNN artifact that
    ``dbpim demo`` / the front-end compiles, for ``hw``): its whole chip program on ``x`` (the first
    :data:`DEMO_SAMPLES` test digits, loaded by the caller), quantized as the host does
    (:func:`model.chip.quantize_input`)."""
    from dbpim.model import isa
    from dbpim.model.chip import GoldenChip, quantize_input
    _check_demo(hw, art)
    chip = GoldenChip(art)
    prog, plan = chip.program, chip.plan
    x = np.asarray(x)[:DEMO_SAMPLES]
    if tuple(x.shape[1:]) != tuple(plan.input_shape):
        raise ConformanceError(f"demo: the artifact's input shape {tuple(plan.input_shape)} is not the 8 x 8 digits'")
    q = quantize_input(x, plan.quants[plan.input]).reshape(len(x), -1)
    act = np.zeros((len(x), prog.act_words), np.int64)
    act[:, prog.input["addr"]:prog.input["addr"] + q.shape[1]] = q
    ops = sorted({isa.decode(int(w))["op"] for w in prog.imem} - {"HALT"})
    return ("demo_cnn", f"the demo network ({art.network}: its trained, pruned, quantized layers, compiled for "
            f"{hw.name}) as one chip program of {len(prog.imem)} instructions ({', '.join(ops)}) on the first "
            f"{len(x)} test digits; its output (logits) is ACT {prog.output['addr']}.."
            f"{prog.output['addr'] + int(np.prod(prog.output['shape'])) - 1}",
            prog, act, np.zeros((len(x), prog.acc_words), np.int64))


def _chip_run(hw: HwConfig, arrays: dict) -> dict[str, np.ndarray]:
    """What the golden chip does with a chip case's images and buffers: ACT, ACC after HALT and CYCLES."""
    from dbpim.model.chip import ChipProgram, GoldenChip
    prog = ChipProgram(imem=arrays["imem"].astype(np.uint64), dmem=arrays["dmem"].astype(np.int64),
                       cmem=arrays["cmem"].astype(np.int64), wmem=arrays["wmem"].astype(np.int64),
                       act_words=int(arrays["act_in"].shape[1]), acc_words=int(arrays["acc_in"].shape[1]),
                       input={}, output={}, macro=hw.macro, values={}, core=CoreParams.from_config(hw),
                       cores=hw.system.cores, result_words=hw.system.result_buffer_words)
    act, acc = arrays["act_in"].astype(np.int64).copy(), arrays["acc_in"].astype(np.int64).copy()
    cycles = []
    for s in range(act.shape[0]):
        chip = GoldenChip.from_program(prog, hw.system.simd_lanes)
        a, c = act[s:s + 1], acc[s:s + 1]
        chip.execute(a, c)
        act[s], acc[s] = a[0], c[0]
        cycles.append(chip.cycles)
    return {"act": act.astype(np.int16), "acc": acc.astype(np.int32), "cycles": np.array(cycles, np.int64)}


def _chip_arrays(prog, act, acc) -> dict[str, np.ndarray]:
    return {"imem": np.asarray(prog.imem, np.uint64), "dmem": np.asarray(prog.dmem, np.int32),
            "cmem": np.asarray(prog.cmem, np.int32), "wmem": np.asarray(prog.wmem, np.int32),
            "act_in": np.asarray(act, np.int16), "acc_in": np.asarray(acc, np.int32)}


# --------------------------------------------------------------------------- writing

def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Uncompressed NPZ with fixed member order and timestamps (byte-identical for equal arrays)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k in sorted(arrays):
            b = io.BytesIO()
            np.lib.format.write_array(b, np.ascontiguousarray(arrays[k]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, b.getvalue())
    return buf.getvalue()


def build(hw: HwConfig, real: bool = True, demo=None, demo_x=None) -> dict[str, bytes]:
    """The files of the set for ``hw``: file name -> contents (manifest.json, README.md, config.yaml, NPZs);
    ``demo`` (a :class:`model.artifact.Artifact` of the demo network compiled for ``hw``, optional) adds its chip
    case ``demo_cnn`` on ``demo_x`` (its first :data:`DEMO_SAMPLES` test digits, float, as
    :func:`model.torch.data.load_digits` gives them: loaded by the caller, this layer reads no data set)."""
    if demo is not None:
        _check_demo(hw, demo)
        if demo_x is None:
            raise ConformanceError(f"demo_x: the demo case needs its {DEMO_SAMPLES} test digits, got none")
    rng = np.random.default_rng(SEED)
    m = hw.macro
    if real:
        from dbpim.model.examples import real_layers
        real = real_layers(m, n_samples=4, seed=0)[0]
    else:
        real = None
    files: dict[str, bytes] = {}
    cases = []
    for name, covers, comp, signed in _macro_layers(m, rng, real):
        arrays = _macro_case(rng, comp, m, signed)
        fn = f"macro_{name}.npz"
        files[fn] = _npz_bytes(arrays)
        cases.append({"kind": "macro", "name": name, "file": fn, "covers": covers, "seed": SEED,
                      "signed": signed, "tiles": len(comp.tiles), "vectors": int(arrays["x"].shape[0])})
    for name, covers, w, phi, mask, x, signed in _core_layers(hw, rng, real):
        P = int(x.shape[0])
        arrays = {"w": np.asarray(w, np.int8), "phi": np.asarray(phi, np.uint8), "mask": np.asarray(mask, bool),
                  "x": x.astype(np.int16), "signed": np.array(signed)}
        arrays.update(_core_run(hw, w, phi, mask, x, signed))
        fn = f"core_{name}.npz"
        files[fn] = _npz_bytes(arrays)
        cases.append({"kind": "core", "name": name, "file": fn, "covers": covers, "seed": SEED, "signed": signed,
                      "pixels": P, "K": int(w.shape[0]), "N": int(w.shape[1]),
                      "segments": int(arrays["cycles"].size)})
    demo_cases = [_demo_case(hw, demo, demo_x)] if demo is not None else []
    for name, covers, prog, act, acc in _chip_cases(hw, rng) + demo_cases:
        arrays = _chip_arrays(prog, act, acc)
        arrays.update(_chip_run(hw, arrays))
        fn = f"chip_{name}.npz"
        files[fn] = _npz_bytes(arrays)
        cases.append({"kind": "chip", "name": name, "file": fn, "covers": covers, "seed": SEED,
                      "samples": int(arrays["cycles"].size), "instructions": int(arrays["imem"].size),
                      "act_words": int(arrays["act_in"].shape[1]), "acc_words": int(arrays["acc_in"].shape[1])})
    manifest = {"format": FORMAT, "version": VERSION, "config": hw.name, "config_digest": hw.digest(),
                "config_file": "config.yaml", "macro": m.to_dict(), "seed": SEED, "cases": cases}
    files["manifest.json"] = jsonio.dumps(manifest, what="manifest.json", newline=True).encode()
    files["config.yaml"] = yaml.safe_dump(_yaml_doc(hw), sort_keys=False).encode()
    files["README.md"] = _readme(hw).encode()
    return files


def _yaml_doc(hw: HwConfig) -> dict:
    d = hw.to_dict()
    return {"name": d["name"], "macro": d["macro"], "system": d["system"], "energy": d["energy"], "core": d["core"]}


def write(out, hw: HwConfig, real: bool = True, command: str = "dbpim conformance", demo=None,
          demo_x=None) -> list[str]:
    """Write the set for ``hw`` (``demo``: as :func:`build`) to the folder ``out`` atomically
    (:func:`model.outdir.output_dir`); its file names."""
    from dbpim.model.outdir import output_dir
    files = build(hw, real, demo, demo_x)
    with output_dir(out, command) as stage:
        for name, data in files.items():
            (stage / name).write_bytes(data)
    return sorted(files)


generate = write


# --------------------------------------------------------------------------- checking

def _diff(where: str, name: str, want, got, out: list[str], limit: int = 5) -> None:
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape:
        out.append(f"{where}: {name} has shape {want.shape}, the golden model gives {got.shape}")
        return
    bad = np.argwhere(want != got)
    for ix in bad[:limit]:
        i = tuple(int(j) for j in ix)
        out.append(f"{where}: {name}[{', '.join(map(str, i))}] expected {want[i].item()}, "
                   f"the golden model gives {got[i].item()}")
    if len(bad) > limit:
        out.append(f"{where}: {name}: {len(bad) - limit} more mismatches")


def _load(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConformanceError(f"{path}: not a readable NPZ file ({e})") from None


def check(folder, hw: HwConfig | None = None) -> list[str]:
    """Re-run the golden model against a conformance set; one line per mismatch (empty: it agrees).

    Parameters
    ----------
    folder : str or Path
        A folder written by :func:`write` (or by another tool in the same format).
    hw : HwConfig, optional
        The configuration; default the folder's ``config.yaml``. Its digest must equal the manifest's.

    Raises
    ------
    ConformanceError
        The folder has no readable manifest of this format and version, or a case file is missing or unreadable.
    """
    folder = Path(folder)
    try:
        import json
        man = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise ConformanceError(f"{folder / 'manifest.json'}: cannot be read ({e})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT or man.get("version") != VERSION:
        raise ConformanceError(f"{folder / 'manifest.json'}: format must be {FORMAT!r} version {VERSION}")
    hw = load_config(folder / str(man.get("config_file", "config.yaml"))) if hw is None else hw
    out: list[str] = []
    if hw.digest() != man.get("config_digest"):
        out.append(f"manifest: config_digest {man.get('config_digest')} differs from the configuration's "
                   f"{hw.digest()}")
        return out
    for case in man.get("cases", []):
        where = f"{case.get('kind')}/{case.get('name')}"
        fn = str(case.get("file"))
        if Path(fn).name != fn:
            raise ConformanceError(f"{folder / 'manifest.json'}: {where}: file must be a name inside the folder, "
                                   f"got {fn!r}")
        a = _load(folder / fn)
        try:
            _check_case(where, case, a, hw, out)
        except KeyError as e:
            raise ConformanceError(f"{folder / fn}: no array {e.args[0]!r}") from None
        except (ValueError, IndexError) as e:  # arrays the golden model refuses (shapes, ranges)
            raise ConformanceError(f"{folder / fn}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
                from None
    if not man.get("cases"):
        out.append("manifest: no cases")
    return out


def _check_case(where: str, case: dict, a: dict, hw: HwConfig, out: list[str]) -> None:
    """Append the mismatches of one case (its arrays ``a``) to ``out``."""
    m = hw.macro
    signed = case.get("kind") != "chip" and bool(a["signed"])  # chip cases carry signedness in their descriptors
    if case.get("kind") == "macro":
        tiles = [Tile.from_arrays(a, index=i) for i in range(len(a["meta"]))]
        x, tile_of = a["x"].astype(np.int64), a["tile_of"].astype(np.int64)
        res = [run_macro(tiles[int(t)], v, m, signed=signed, gathered=True) for v, t in zip(x, tile_of)]
        _diff(where, "acc", a["acc"], np.stack([r.acc for r in res]), out)
        _diff(where, "cycles", a["cycles"], [r.cycles for r in res], out)
        _diff(where, "compute_cycles", a["compute_cycles"], [r.compute_cycles for r in res], out)
        for i, t in enumerate(tiles):
            sel = np.nonzero(tile_of == i)[0]
            tl = macro_schedule([res[v].cycles for v in sel], t.n_rows_used, m.n_col)
            ia = np.full((sel.size, m.n_row), -1, np.int64)
            ia[:, :tl.in_accept.shape[1]] = tl.in_accept
            for name, got in (("start", tl.start), ("done", tl.done), ("in_accept", ia),
                              ("out_accept", tl.out_accept)):
                want = a[name][sel]
                bad = np.argwhere(want != got) if want.shape == got.shape else [None]
                for ix in list(bad)[:5]:
                    if ix is None:
                        out.append(f"{where}: {name} of tile {i} has shape {want.shape}, expected {got.shape}")
                        continue
                    j = (int(sel[ix[0]]),) + tuple(int(k) for k in ix[1:])
                    out.append(f"{where}: {name}[{', '.join(map(str, j))}] expected {a[name][j].item()}, "
                               f"the golden model gives {got[tuple(ix)].item()}")
    elif case.get("kind") == "core":
        got = _core_run(hw, a["w"].astype(np.int64), a["phi"], a["mask"], a["x"].astype(np.int64), signed)
        for name in ("bus_writes", "seg_writes", "in_stream", "seg_inputs", "out_stream", "seg_outputs",
                     "cycles", "out"):
            _diff(where, name, a[name], got[name], out)
    elif case.get("kind") == "chip":
        got = _chip_run(hw, a)
        for name in ("act", "acc", "cycles"):
            _diff(where, name, a[name], got[name], out)
    else:
        out.append(f"{where}: unknown kind {case.get('kind')!r} (macro, core or chip)")


# --------------------------------------------------------------------------- README

def _readme(hw: HwConfig) -> str:
    m = hw.macro
    return README.format(fmt=FORMAT, version=VERSION, name=hw.name, digest=hw.digest(), n_row=m.n_row,
                         n_comp=m.n_comp, n_col=m.n_col, in_bits=m.in_bits, phi_max=m.phi_max,
                         pipeline=str(m.pipeline).lower(), seed=SEED)


README = """# DB-PIM conformance set ({fmt}, version {version})

Test vectors of the DB-PIM golden model (bit-exact NumPy, `model/`) for the hardware configuration
`{name}` (configuration digest `{digest}`, the SHA-256 of its canonical JSON; the configuration itself is
`config.yaml`). Macro geometry: n_row = {n_row} cell rows, n_comp = {n_comp} compartments, n_col = {n_col}
columns, in_bits = {in_bits}, phi_max = {phi_max}, pipeline = {pipeline}. Every random tile, weight and input
comes from NumPy's `default_rng({seed})`; two generations are byte-identical.

`manifest.json` lists the cases: `kind` (`macro`, `core` or `chip`), `name`, `file`, `covers` (what the
case exercises), `seed`, `signed` (macro and core cases) and sizes. Every array file is an NPZ (`numpy.load(path, allow_pickle=False)`;
each member a plain `.npy`, little-endian, C order). An index `[v, c]` below is 0-based. "Bit b" counts from
the least significant bit (bit 0 = LSB). Re-run our model on the folder with `dbpim conformance --check DIR`.

## Macro cases (`macro_<name>.npz`)

T tiles, V input vectors in all. A tile is one macro's stored contents (docs/design.md §6):

| array | dtype | shape | meaning |
|---|---|---|---|
| `cells` | uint8 | (T, n_row, n_comp, n_col) | 6T cell bit Q of each cell: the position (0 or 1) of the CSD digit inside its dyadic block; 0 if unused |
| `idx` | uint8 | (T, n_row, n_comp, n_col) | dyadic block index 0..3 of the digit (block k holds digit positions 2k+1, 2k) |
| `sign` | uint8 | (T, n_row, n_comp, n_col) | 1 = the digit is -1, 0 = +1 |
| `rows` | int32 | (T, n_row, n_comp) | im2col row feeding the cell row/compartment; -1 = unused (its input is 0) |
| `col_filter` | int16 | (T, n_col) | filter slot owning each column; -1 = unused column |
| `filters` | int32 | (T, n_col) | output channel of each filter slot; -1 = unused slot |
| `meta` | int32 | (T, 4) | (group, row_tile, col_tile, n_rows_used); only cell rows 0 .. n_rows_used - 1 are read |
| `x` | int16 | (V, n_row, n_comp) | the inputs the macro sees (gathered), value of each input; 0 at unused cells |
| `signed` | bool | () | inputs are two's complement (bit in_bits-1 weighs -2**(in_bits-1)); otherwise unsigned |
| `tile_of` | int32 | (V,) | the tile vector v runs on; vectors of one tile are consecutive, in order |
| `acc` | int64 | (V, n_col) | expected accumulator of each filter slot s (index s, not column); 0 for unused slots |
| `compute_cycles` | int64 | (V,) | bit columns issued: over cell rows r < n_rows_used, popcount of the OR of row r's input bit patterns (8-bit two's complement patterns when signed) |
| `cycles` | int64 | (V,) | compute_cycles + the pipeline latency (docs/design.md §7) |
| `start`, `done` | int64 | (V,) | first and last compute cycle of the vector when the tile's vectors stream back to back at full rate from cycle 0 (docs/design.md §7, `model.cycles.macro_schedule`) |
| `in_accept` | int64 | (V, n_row) | cycle each input beat (one per used cell row, at least one) is accepted; -1 past the tile's beats |
| `out_accept` | int64 | (V, n_col) | cycle each of the n_col output beats (accumulator slot 0 first) is accepted |

The value of a stored digit is `(-1)**sign * 2**(2*idx + cells)`. A column's digits belong to the filter
slot `col_filter[c]`; that slot's weight on the input at (r, k) is the sum over its columns c of the digit at
`[r, k, c]`, so `acc[v, s] = sum over r, k, c with col_filter[c] = s of x[v, r, k] * digit[r, k, c]`
(exact in int64). The bit-serial order (LSB first, skipping input bit columns that are zero in every
compartment of a cell row) changes the cycles, never the result.

## Core cases (`core_<name>.npz`)

A whole layer on one PIM core (docs/design.md §11): the host's register/memory program, the input stream,
the expected result stream and the `CYCLES` register, for each START (segment) of the layer.

| array | dtype | shape | meaning |
|---|---|---|---|
| `w` | int8 | (K, N) | FTA weights (pruned weights 0) |
| `phi` | uint8 | (N,) | per-filter non-zero digit count |
| `mask` | bool | (K, ceil(N / G)) | block pruning mask, G = n_col / phi_max filters per group |
| `x` | int16 | (P, K) | im2col inputs of one sample, P pixels |
| `signed` | bool | () | as for macro cases |
| `bus_writes` | uint32 | (W, 2) | AXI4-Lite writes (byte address, 32-bit word) of every segment, in order, before its START |
| `seg_writes` | int64 | (S + 1,) | segment s's writes are rows `seg_writes[s] .. seg_writes[s+1] - 1` of `bus_writes` |
| `in_stream` | uint8 | (B, W n_comp) | input beats of every segment (`model.core.input_windows`): row b is one beat, W = `core.in_windows` (1 by default) windows of n_comp consecutive im2col inputs as 8-bit patterns (two's complement when signed), column `s n_comp + k` = compartment k of window s; packed into one stream word, column 0 is the lowest byte (`model.spec.window_fields`) |
| `seg_inputs` | int64 | (S + 1,) | segment offsets into `in_stream` |
| `out_stream` | int64 | (R,) | result beats (signed partial sums) of every segment, in stream order |
| `seg_outputs` | int64 | (S + 1,) | segment offsets into `out_stream` |
| `cycles` | int64 | (S,) | expected `CYCLES` register after each segment's START |
| `out` | int64 | (P, N) | the results placed at (pixel, output channel); equals `x @ w` |

## Chip cases (`chip_<name>.npz`)

A program of the whole chip (docs/design.md §15: the buffers, the instruction set, the WMEM image of the PIM
instructions, `CYCLES`) with the buffers it starts from, run by the golden chip (`model.chip.GoldenChip.execute`).
The host loads `imem`, `dmem`, `cmem` and `wmem` into IMEM, DMEM, CMEM and WMEM from element 0, once; then, per
sample s, writes `act_in[s]` into ACT and `acc_in[s]` into ACC from element 0, sets `CTRL.START`, waits for
`STATUS.DONE` (HALT reached, `STATUS.ERROR` clear) and reads ACT and ACC from element 0 and the `CYCLES` register.
Elements are two's complement in their buffer's width (IMEM words unsigned 64-bit). Buffers past the
arrays' lengths are not read by the program; the chip's buffers must be at least as deep.

| array | dtype | shape | meaning |
|---|---|---|---|
| `imem` | uint64 | (I,) | the instructions (`model.isa`), ending with HALT |
| `dmem` | int32 | (D,) | descriptors (32 words each; descriptor i is words 32 i .. 32 i + 31) |
| `cmem` | int32 | (M,) | per-channel constants (requantization multipliers, shifts, biases) |
| `wmem` | int32 | (Wm,) | the layer table and PIM blocks of the PIM instructions (`model.pim_image`) |
| `act_in` | int16 | (S, A) | ACT elements 0 .. A - 1 written before each sample's START |
| `acc_in` | int32 | (S, C) | ACC elements 0 .. C - 1 written before each sample's START |
| `act` | int16 | (S, A) | expected ACT elements 0 .. A - 1 after HALT |
| `acc` | int32 | (S, C) | expected ACC elements 0 .. C - 1 after HALT (a PIM instruction's sums) |
| `cycles` | int64 | (S,) | expected `CYCLES` register after each sample's HALT (`model.chip_timing`) |

Cases: `simd_random`, a random program of the SIMD instructions (`model.chip_programs.random_program`)
on random ACT and ACC; `pim_conv_segments`, one PIM instruction whose convolution takes more than one segment
(START of the PIM core) on this configuration's core; `pim_conv_signed`, a PIM instruction on signed inputs;
`pim_cnn`, a small CNN (PIM convolution, REQ from ACC to ACT, MAXP, GAP): the instructions hand their results
on through ACC and ACT.

## Cycle conventions

Cycles follow the one timing function of each unit (`model/cycles.py` for the macro, `model/core_timing.py`
for the core, `model/chip_timing.py` for the chip). A simulator whose macro counts a vector by the same rule
but with another fixed latency differs from `cycles` by that constant; compare `compute_cycles` then.
"""
