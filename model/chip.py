"""The DB-PIM chip's integer-only network semantics and its golden model (docs/design.md §13, §14).

An artifact's network program (:mod:`model.program`) describes the frozen
network as the front-end runs it: integer conv / linear on the macros, then a
FLOAT requantization and float ops between the layers (:mod:`model.predict`).
The chip has no floating point: every tensor between two ops is a vector of
integers ``v`` standing for ``v * scale`` (zero point 0), and every op is an
integer op of the SIMD core (:mod:`model.simd_ops`, with the one rescaling of
:mod:`model.requant`). :func:`integer_plan` derives, once, from the program
and the layer records:

* per tensor a :class:`Quant` (its scale and the integer range it holds);
* per op its integer constants (per-channel fixed-point multiplier ``m`` and
  shift ``s``, integer bias, the clamp of a folded ReLU / ReLU6 as the
  requantization's ``lo`` / ``hi``);

and :class:`GoldenChip` runs the plan: mapped layers through the golden layer
model (:func:`model.layer.run_layer`: the accumulators bit-exact with the
macros, and their macro-cycles), everything else through
:mod:`model.simd_ops`.

The scale rule (docs/design.md §13 "Tensor scales"), in one place:

1. a tensor read by a mapped op takes that op's ``x_scale`` and input range
   (the first such reader in program order, looking through the ops that do
   not rescale: ``identity``, ``reshape``, ``maxpool2d``, an unfolded
   ``clamp``, which pass their input's scale on);
2. the network output (the logits) is a signed 16-bit tensor, scale
   ``max|range| / 32767``;
3. any other tensor (a residual operand, a global-average-pooling input, ...)
   takes its scale from the ``range`` (``[min, max]``) the compiler recorded
   for its op on calibration inputs (:data:`model.torch.flow.CALIBRATION_SAMPLES`
   training samples through the frozen network): unsigned ``max / 255`` when
   ``min >= 0``, else signed ``max(|min|, |max|) / 127``.

Every scale is a float32 value (like ``x_scale``); constants are made from
them in float64 by :func:`model.requant.quantize_multiplier`, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dbpim.model import simd_ops
from dbpim.model.layer import run_conv2d, run_layer
from dbpim.model.program import PROGRAM_SINCE
from dbpim.model.requant import ACC_LIMIT_BITS, RequantError, quantize_multiplier, quantize_multipliers, saturate
from dbpim.model.spec import input_range

__all__ = ["ChipError", "Quant", "IntegerPlan", "integer_plan", "GoldenChip", "OUT_BITS", "CHIP_OPS",
           "SCALE_MIN", "quantize_input"]

#: Width of the network output (logits): signed, two's complement.
OUT_BITS = 16
#: Smallest scale a calibrated tensor gets (a tensor that is always 0), like ``ActQuant.scale``.
SCALE_MIN = 1e-8
#: The program ops the chip runs, and what each becomes.
CHIP_OPS = {
    "input": "host quantization of the float input: clip(round_half_even(x / scale))",
    "mapped": "integer conv / linear on the macros, then requant (folded bias, ReLU / clamp)",
    "clamp": "integer clamp (folded into the producer's requant when that is its only reader)",
    "add": "residual add: saturate(rescale(a) + rescale(b))",
    "reshape": "none (row-major view)",
    "identity": "none",
    "maxpool2d": "window maximum",
    "mean": "global average pooling: saturate(rescale(sum))",
}
_REQUANTIZING = ("mapped", "add", "mean")
_PASSING = ("identity", "reshape", "maxpool2d", "clamp")


class ChipError(ValueError):
    """An artifact whose network the chip cannot run, or bad inputs; one line naming it."""


@dataclass(frozen=True)
class Quant:
    """A tensor's quantization: real value = ``v * scale``, ``lo <= v <= hi`` (zero point 0)."""

    scale: float
    lo: int
    hi: int

    @property
    def signed(self) -> bool:
        return self.lo < 0

    def to_json(self) -> dict:
        return {"scale": float(self.scale), "lo": int(self.lo), "hi": int(self.hi)}


def _f32(v: float) -> float:
    return float(np.float32(max(float(v), SCALE_MIN)))


def _calibrated(op: dict, output: bool) -> Quant:
    """Rule 2 / 3 of the module docstring from the op's recorded ``range``."""
    rng = op.get("range")
    if rng is None:
        raise ChipError(f"op {op['name']!r} ({op['op']}): no recorded value range to take its scale from "
                        "(the artifact predates integer-only inference); recompile it (dbpim compile)")
    lo, hi = rng
    amax = max(abs(lo), abs(hi))
    if output:
        top = (1 << (OUT_BITS - 1)) - 1
        return Quant(_f32(amax / top), -top - 1, top)
    if lo >= 0:
        a, b = input_range(False)
        return Quant(_f32(hi / b), a, b)
    a, b = input_range(True)
    return Quant(_f32(amax / b), a, b)


@dataclass
class IntegerPlan:
    """The integer network: ``steps`` in order, each a dict (``op``, ``name`` of the op, ``src`` value names,
    ``dst`` value name, and its integer constants), and the :class:`Quant` of every value."""

    steps: list
    quants: dict
    input: str
    output: str
    input_shape: tuple
    shapes: dict = field(default_factory=dict)


def integer_plan(program: dict, records) -> IntegerPlan:
    """The :class:`IntegerPlan` of an artifact's ``program`` with layer ``records`` (see the module docstring).

    Raises
    ------
    ChipError
        An op the chip cannot run (named), a tensor with no scale, or a constant outside what the
        integer arithmetic represents.
    """
    if program is None:
        raise ChipError("artifact has no network program; recompile it (dbpim compile)")
    ops = program["ops"]
    for op in ops:
        if op["op"] not in CHIP_OPS:
            raise ChipError(f"op {op['name']!r} ({op.get('what', op['op'])}) cannot run on the chip; it runs "
                            f"{', '.join(k for k in CHIP_OPS if k != 'input')}")
    by_name = {op["name"]: op for op in ops}
    out_name = program["output"]
    readers: dict[str, list] = {op["name"]: [] for op in ops}
    for op in ops:
        for a in op["inputs"]:
            readers[a].append(op)
    # fold a clamp into the requantizing op it alone reads (chains of clamps too): writes[p] = the clamp it writes
    writes, folded, clamps = {}, set(), {}
    for op in ops:
        if op["op"] != "clamp":
            continue
        src = op["inputs"][0]
        p = next((q for q, w in writes.items() if w == src), src)
        if (by_name[p]["op"] in _REQUANTIZING and len(readers[src]) == 1 and src != out_name):
            writes[p] = op["name"]
            folded.add(op["name"])
            clamps.setdefault(p, []).append((op["lo"], op["hi"]))

    def value_of(name: str) -> str:
        return writes.get(name, name)

    def preferred(v: str) -> Quant | None:
        """Rule 1 (and 2 for the output) for the tensor named ``v``."""
        if v == out_name:
            return _calibrated(by_name[v], output=True)
        for r in readers[v]:
            if r["name"] in folded:
                continue
            if r["op"] == "mapped":
                return Quant(float(np.float32(r["x_scale"])), *input_range(bool(r["signed_input"])))
            if r["op"] in _PASSING:
                q = preferred(r["name"])
                if q is not None:
                    return q
        return None

    recs = {r.name: r for r in records if r.mapped}
    quants: dict[str, Quant] = {}
    steps = []
    shapes = {}
    for op in ops:
        name, kind = op["name"], op["op"]
        if name in folded:
            continue
        dst = value_of(name)
        shapes[dst] = tuple(by_name[dst]["shape"])
        src = op["inputs"]
        step = {"op": kind, "name": name, "src": list(src), "dst": dst}
        if kind in ("input",) + _REQUANTIZING:
            q = preferred(dst) or _calibrated(by_name[dst], output=False)
            lo, hi = q.lo, q.hi
            for clo, chi in clamps.get(name, []):
                lo, hi = _clamp_bounds(clo, chi, q.scale, lo, hi)
            q = Quant(q.scale, lo, hi)
        else:
            q = quants[src[0]]
        if kind == "mapped":
            step.update(_mapped_constants(op, [recs[n] for n in op["layers"]], quants[src[0]], q))
        elif kind == "add":
            qa, qb = quants[src[0]], quants[src[1]]
            step["ma"], step["sa"] = quantize_multiplier(qa.scale / q.scale, f"op {name}: scale of {src[0]}")
            step["mb"], step["sb"] = quantize_multiplier(qb.scale / q.scale, f"op {name}: scale of {src[1]}")
        elif kind == "mean":
            ins = tuple(by_name[src[0]]["shape"])
            if sorted(op["axes"]) != list(range(1, len(ins))):
                raise ChipError(f"op {name!r} (mean over axes {op['axes']} of {list(ins)}): the chip averages "
                                "over every axis after the channels only (global average pooling)")
            count = math.prod(ins[1:])
            step["m"], step["s"] = quantize_multiplier(quants[src[0]].scale / (count * q.scale),
                                                       f"op {name}: scale")
        elif kind == "clamp":
            lo, hi = _clamp_bounds(op["lo"], op["hi"], q.scale, q.lo, q.hi)
            step["lo"], step["hi"] = lo, hi
            q = Quant(q.scale, lo, hi)
        elif kind == "maxpool2d":
            step.update({k: list(op[k]) for k in ("kernel", "stride", "padding", "dilation")})
        elif kind == "reshape":
            step["shape"] = list(op["shape"])
        if kind in ("input",) + _REQUANTIZING:
            step["lo"], step["hi"] = q.lo, q.hi
        step["scale"] = q.scale
        quants[dst] = q
        steps.append(step)
    for step in steps:  # every macro input in the range its layer was compiled for
        if step["op"] == "mapped":
            q = quants[step["src"][0]]
            lo, hi = input_range(step["signed_input"])
            if q.lo < lo or q.hi > hi:
                raise ChipError(f"op {step['name']!r}: its input {step['src'][0]!r} holds [{q.lo}, {q.hi}] but the "
                                f"layer takes {'signed' if step['signed_input'] else 'unsigned'} inputs [{lo}, {hi}]")
    return IntegerPlan(steps=steps, quants=quants, input=ops[0]["name"], output=value_of(out_name),
                       input_shape=tuple(program["input"]["shape"]), shapes=shapes)


def _clamp_bounds(lo, hi, scale: float, qlo: int, qhi: int) -> tuple[int, int]:
    """A real clamp ``[lo, hi]`` (None: unbounded) on the integer grid of ``scale``, within ``[qlo, qhi]``."""
    a = qlo if lo is None else max(qlo, int(np.rint(np.float64(lo) / scale)))
    b = qhi if hi is None else min(qhi, int(np.rint(np.float64(hi) / scale)))
    return a, max(a, b)


def _mapped_constants(op: dict, recs: list, qi: Quant, qo: Quant) -> dict:
    """Per output channel ``m``, ``s`` and integer ``bias`` of a mapped op (input ``qi``, output ``qo``)."""
    w_scale = np.concatenate([np.asarray(r.scale, np.float32) for r in recs]).astype(np.float64)
    acc_scale = np.float64(qi.scale) * w_scale
    m, s = quantize_multipliers(acc_scale / np.float64(qo.scale), f"op {op['name']}: multiplier")
    bias = None
    if op["bias"] is not None:
        b = np.asarray(op["bias"], np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            bi = np.where(acc_scale > 0, np.rint(b / np.where(acc_scale > 0, acc_scale, 1.0)), 0.0)
        if np.abs(bi).max(initial=0) >= 2.0 ** (ACC_LIMIT_BITS - 1):
            raise ChipError(f"op {op['name']!r}: an integer bias reaches {np.abs(bi).max():.3g}, beyond "
                            f"2**{ACC_LIMIT_BITS - 1} (a weight scale is too small)")
        bias = bi.astype(np.int64)
    return {"kind": op["kind"], "layers": list(op["layers"]), "signed_input": bool(op["signed_input"]),
            "m": m, "s": s, "bias": bias}


def quantize_input(x: np.ndarray, q: Quant) -> np.ndarray:
    """The host's quantization of the float input: ``clip(round_half_even(x / scale), lo, hi)`` in float32
    (``ActQuant.to_int``), int64."""
    xf = np.asarray(x, np.float32)
    return np.clip(np.rint(xf / np.float32(q.scale)), q.lo, q.hi).astype(np.int64)


class GoldenChip:
    """Runs an artifact's network on the chip's integer arithmetic (:func:`integer_plan`).

    ``run(x)`` returns the output tensor's integers (int64; real value = ``v * output scale``) and adds the
    macro-cycles of the mapped layers (:func:`model.layer.run_layer`, docs/design.md §7) to ``macro_cycles``.
    """

    def __init__(self, artifact):
        prog = artifact.program
        if prog is None:
            where = f"artifact {artifact.path or artifact.network}"
            if artifact.version < PROGRAM_SINCE:
                raise ChipError(f"{where}: format version {artifact.version} has no network program; recompile "
                                "it (dbpim compile)")
            raise ChipError(f"{where}: has no network program; recompile it (dbpim compile)")
        self.records = {r.name: r for r in artifact.layers if r.mapped}
        try:
            self.plan = integer_plan(prog, artifact.layers)
        except RequantError as e:
            raise ChipError(str(e)) from None
        self.macro_cycles = 0
        self.samples = 0

    @property
    def output_quant(self) -> Quant:
        return self.plan.quants[self.plan.output]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Output integers of the float input batch ``x`` (S, *input shape)."""
        x = np.asarray(x)
        if x.ndim != len(self.plan.input_shape) + 1 or tuple(x.shape[1:]) != self.plan.input_shape:
            raise ChipError(f"x: shape must be (S, {', '.join(map(str, self.plan.input_shape))}), got "
                            f"{tuple(x.shape)}")
        vals = {}
        for step in self.plan.steps:
            vals[step["dst"]] = self._step(step, [vals[a] for a in step["src"]], x)
        self.samples += len(x)
        return vals[self.plan.output]

    def _step(self, st: dict, a: list, x: np.ndarray) -> np.ndarray:
        kind = st["op"]
        if kind == "input":
            return quantize_input(x, self.plan.quants[st["dst"]])
        if kind == "mapped":
            acc = self._accumulate(st, a[0])
            if st["kind"] == "linear":
                flat = simd_ops.requant(acc.reshape(-1, acc.shape[-1]), st["m"], st["s"], st["lo"], st["hi"],
                                        st["bias"], name=st["name"])
                return flat.reshape(acc.shape)
            if st["kind"] == "conv1d":
                return simd_ops.requant(acc, st["m"], st["s"], st["lo"], st["hi"], st["bias"],
                                        name=st["name"])[:, :, 0, :]
            return simd_ops.requant(acc, st["m"], st["s"], st["lo"], st["hi"], st["bias"], name=st["name"])
        if kind == "clamp":
            return saturate(a[0], st["lo"], st["hi"], st["name"])
        if kind == "add":
            S = len(a[0])
            y = simd_ops.add(a[0].reshape(S, -1), st["ma"], st["sa"], a[1].reshape(S, -1), st["mb"], st["sb"],
                             st["lo"], st["hi"], name=st["name"])
            return y.reshape(a[0].shape)
        if kind == "reshape":
            return a[0].reshape((len(a[0]),) + tuple(st["shape"]))
        if kind == "identity":
            return a[0]
        if kind == "maxpool2d":
            return simd_ops.maxpool2d(a[0], st["kernel"], st["stride"], st["padding"], st["dilation"],
                                      name=st["name"])
        if kind == "mean":
            v = a[0]
            y = simd_ops.global_avgpool(v.reshape(len(v), v.shape[1], 1, -1), st["m"], st["s"], st["lo"], st["hi"],
                                        name=st["name"])
            return y.reshape((len(v),) + self.plan.shapes[st["dst"]])
        raise ChipError(f"op {st['name']!r}: {kind} cannot run on the chip")

    def _accumulate(self, st: dict, q: np.ndarray) -> np.ndarray:
        """The macros' int64 accumulators of a mapped op (the golden layer model), channels on axis 1
        (last axis for linear); adds the layers' DB-PIM macro-cycles."""
        recs = [self.records[n] for n in st["layers"]]
        signed = st["signed_input"]
        if st["kind"] == "linear":
            r = recs[0]
            res = run_layer(q.reshape(-1, q.shape[-1]), r.compiled, signed)
            self.macro_cycles += res.cycles_dbpim
            return res.out.reshape(q.shape[:-1] + (-1,))
        if st["kind"] == "conv1d":
            q = q[:, :, None, :]
        g = len(recs)
        cg = q.shape[1] // g
        outs = []
        for j, r in enumerate(recs):
            out, res = run_conv2d(q[:, j * cg:(j + 1) * cg], r.compiled, r.kernel, r.stride, r.padding, signed,
                                  r.dilation)
            self.macro_cycles += res.cycles_dbpim
            outs.append(out)
        return outs[0] if g == 1 else np.concatenate(outs, axis=1)
