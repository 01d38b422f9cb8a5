"""The DB-PIM chip's integer-only network semantics, its compiler and its golden model (docs/design.md §13-§15).

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

:func:`compile_program` compiles the plan to the chip's program (the
instruction stream of :mod:`model.isa`, the WMEM / CMEM / DMEM images and
the ACT allocation, docs/design.md §15) and :class:`GoldenChip` executes that
program: PIM instructions from their WMEM image (:mod:`model.pim_image`:
the window generator's and the PIM core's twins on what the chip's
controller loads into them; the accumulators bit-exact with
:func:`model.layer.run_layer`, the RTL's cycles), SIMD instructions through
:mod:`model.simd_ops`. The torch twin of the plan is
:mod:`model.torch.intpath`.

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

from dbpim.model import chip_timing, isa, simd_ops
from dbpim.model.program import require_program
from dbpim.model.requant import ACC_LIMIT_BITS, RequantError, quantize_multiplier, quantize_multipliers, saturate
from dbpim.model.spec import input_range

__all__ = ["ChipError", "program_cycles", "Quant", "IntegerPlan", "integer_plan", "ChipProgram", "compile_program", "GoldenChip",
           "OUT_BITS", "CHIP_OPS", "OP_INSTRUCTIONS", "instruction_sources",
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
    "depthwise": "depthwise convolution on the SIMD core (int8 weights per channel), then requant",
}
#: The instructions (:data:`model.isa.OPCODES`) each op of :data:`CHIP_OPS` compiles to, in order
#: (:func:`compile_program`; :func:`instruction_sources` maps the program back to the ops).
OP_INSTRUCTIONS = {"input": (), "mapped": ("PIM", "REQ"), "clamp": ("CLMP",), "add": ("ADD",), "reshape": (),
                   "identity": (), "maxpool2d": ("MAXP",), "mean": ("GAP",), "depthwise": ("DWC",)}
assert set(OP_INSTRUCTIONS) == set(CHIP_OPS)
_REQUANTIZING = ("mapped", "add", "mean", "depthwise")
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
        between = []  # identity ops read by the next op alone (a BatchNorm folded into a depthwise op)
        while (by_name[src]["op"] == "identity" and len(readers[src]) == 1 and src not in writes.values()
               and src != out_name):
            between.append(src)
            src = by_name[src]["inputs"][0]
        p = next((q for q, w in writes.items() if w == src), src)
        if (by_name[p]["op"] in _REQUANTIZING and len(readers[src]) == 1 and src != out_name):
            writes[p] = op["name"]
            folded.update(between + [op["name"]])
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
        elif kind == "depthwise":
            step.update({k: list(op[k]) for k in ("kernel", "stride", "padding", "dilation")})
            step.update(_depthwise_constants(op, quants[src[0]], q))
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


def instruction_sources(plan: IntegerPlan, program=None) -> list:
    """``(op name, op kind)`` of each instruction :func:`compile_program` makes of ``plan``, in program order
    (HALT not included): the op of the network an instruction comes from (a ``program`` that streams its weights,
    ``program.dram`` holding them: a mapped op's LOAD before its PIM too; a spilled program, ``program.spill``:
    the LOADs / STOREs of activations before an op's instructions are the op's, those before HALT the last op's)."""
    spill = None if program is None else program.spill
    streamed = program is not None and program.dram is not None and (spill is None or spill["base"] > 0)
    extra = spill["instructions"] if spill is not None else [0] * (len(plan.steps) + 1)
    out = [(st["name"], st["op"]) for k, st in enumerate(plan.steps)
           for _ in ("SPILL",) * extra[k] + (("LOAD",) if streamed and st["op"] == "mapped" else ())
           + OP_INSTRUCTIONS[st["op"]]]
    return out + [(plan.steps[-1]["name"], plan.steps[-1]["op"])] * extra[-1]


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


def _depthwise_constants(op: dict, qi: Quant, qo: Quant) -> dict:
    """int8 weights (per channel symmetric: ``scale = max|w| / 127``, round half even), ``m``, ``s`` and the
    integer bias of a depthwise op (input ``qi``, output ``qo``)."""
    w = np.asarray(op["weight"], np.float32).astype(np.float64)
    amax = np.abs(w).reshape(len(w), -1).max(axis=1, initial=0.0)
    w_scale = np.where(amax > 0, (amax / 127).astype(np.float32), np.float32(1.0)).astype(np.float64)
    w_int = np.clip(np.rint(w / w_scale[:, None, None]), -127, 127).astype(np.int64)
    acc_scale = np.float64(qi.scale) * w_scale
    m, s = quantize_multipliers(acc_scale / np.float64(qo.scale), f"op {op['name']}: multiplier")
    bi = np.rint(np.asarray(op["bias"], np.float64) / acc_scale)
    if np.abs(bi).max(initial=0) >= 2.0 ** (ACC_LIMIT_BITS - 1):
        raise ChipError(f"op {op['name']!r}: an integer bias reaches {np.abs(bi).max():.3g}, beyond "
                        f"2**{ACC_LIMIT_BITS - 1} (a weight scale is too small)")
    return {"w": w_int, "w_scale": w_scale, "m": m, "s": s, "bias": bi.astype(np.int64)}


def quantize_input(x: np.ndarray, q: Quant) -> np.ndarray:
    """The host's quantization of the float input: ``clip(round_half_even(x / scale), lo, hi)`` in float32
    (``ActQuant.to_int``), int64."""
    xf = np.asarray(x, np.float32)
    return np.clip(np.rint(xf / np.float32(q.scale)), q.lo, q.hi).astype(np.int64)


# ----------------------------------------------------------------------------- the compiler


@dataclass
class ChipProgram:
    """The chip's program of one network (docs/design.md §15): what the host loads, all integers.

    Attributes
    ----------
    imem : ndarray of uint64
        The instruction stream (:mod:`model.isa`), ending with HALT.
    dmem, cmem, wmem : ndarray of int64
        Descriptor, constant and weight memories (signed 32-bit words).
    act_words, acc_words : int
        ``ACT`` / ``ACC`` elements the program uses (the buffer allocation).
    input, output : dict
        ``addr`` in ACT, per-sample ``shape``, ``scale``, ``lo``, ``hi`` of the network's input (which the host
        quantizes and writes) and output (which it reads when HALT is reached).
    macro : MacroConfig
        The macros the tiles in ``wmem`` are laid out for.
    values : dict
        Value name -> ACT address (the allocation, for listings and tests).
    core : model.core.CoreParams or None
        The PIM core the WMEM image (:mod:`model.pim_image`) is compiled for (None: a program without PIM).
    cores : int
        The PIM cores the image's rounds may use (``system.cores``; :func:`model.pim_image.layer_block`).
    result_words : int or None
        Words of each extra PIM core's result buffer (``system.result_buffer_words``; None: no bound).
    dram : ndarray of uint8 or None
        The DRAM image the host loads from byte 0 (weight streaming: the PIM instructions' WMEM blocks; None:
        the program reads no DRAM; a spilled program: its spill region after the streamed blocks, zeros).
    spill : dict or None
        A program whose activations spill to DRAM (:func:`compile_program` ``act_words``; None: every value lives
        in ACT): ``base`` (the spill region's first DRAM byte), ``bytes`` (its length), ``values`` (value name ->
        DRAM byte address of its slot), ``instructions`` (per plan step, then before HALT: its instructions beyond
        its own, the LOADs / STOREs of activations and a tiled depthwise step's extra DWCs;
        :func:`instruction_sources`).
    """

    imem: np.ndarray
    dmem: np.ndarray
    cmem: np.ndarray
    wmem: np.ndarray
    act_words: int
    acc_words: int
    input: dict
    output: dict
    macro: object
    values: dict
    core: object = None
    cores: int = 1
    result_words: int | None = None
    dram: np.ndarray | None = None
    spill: dict | None = None

    def summary(self) -> dict:
        """JSON-ready sizes and instruction counts."""
        from dbpim.model.isa import decode
        counts: dict[str, int] = {}
        for w in self.imem:
            op = decode(int(w))["op"]
            counts[op] = counts.get(op, 0) + 1
        return {"instructions": int(len(self.imem)), "by_opcode": counts, "act_words": int(self.act_words),
                "acc_words": int(self.acc_words), "dmem_words": int(len(self.dmem)),
                "cmem_words": int(len(self.cmem)), "wmem_words": int(len(self.wmem))}


def _core_params(macro, hw):
    """The PIM core (:class:`model.core.CoreParams`) of a configuration (None: the default system and core)."""
    from dbpim.model.config import CoreConfig, SystemConfig
    from dbpim.model.core import CoreParams
    if hw is not None:
        return CoreParams.from_config(hw)
    return CoreParams(macro=macro, macros=SystemConfig().macros_per_core, core=CoreConfig())


def _buffer_inputs(params, hw) -> int:
    """Inputs the chip's input buffer holds (:func:`model.window.buffer_words` of ``system.input_buffer_kib``,
    ``n_comp`` inputs a word; None: the default system)."""
    from dbpim.model.config import SystemConfig
    from dbpim.model.window import buffer_words
    kib = (hw.system if hw is not None else SystemConfig()).input_buffer_kib
    m = params.macro
    return buffer_words(kib, m.n_comp, m.in_bits) * m.n_comp


#: :func:`compile_program`'s default ``wmem_words``: the configuration's WMEM (:func:`config_wmem_words`)
CONFIG_WMEM = "config"
#: :func:`compile_program`'s default ``act_words``: the configuration's ACT (:func:`config_act_words`); the same
#: sentinel as :data:`CONFIG_WMEM`
CONFIG_ACT = CONFIG_WMEM


def config_wmem_words(hw) -> int | None:
    """The WMEM words of the configuration ``hw`` (``chip.wmem_words``; None without one: no bound), the bound
    :func:`compile_program` streams weights against by default."""
    return None if hw is None else int(hw.chip.wmem_words)


def config_act_words(hw) -> int | None:
    """The ACT elements of the configuration ``hw`` (:meth:`HwConfig.chip_words`; None without one: the ISA's
    65,536 addresses), the bound :func:`compile_program` spills activations against by default."""
    return None if hw is None else int(hw.chip_words()["ACT"])


def compile_program(plan: IntegerPlan, records, macro, hw=None, *, pim_images: bool = True,
                    wmem_words: int | None | str = CONFIG_WMEM,
                    act_words: int | None | str = CONFIG_ACT) -> ChipProgram:
    """The :class:`ChipProgram` of an :class:`IntegerPlan`: instructions, memory images, buffer allocation.

    ``ACT`` is allocated first fit: a value lives from the instruction that writes it to the last that reads
    it (the output to the end); ``reshape`` / ``identity`` alias their input (no instruction). Every mapped
    layer's sums go to ``ACC`` address 0 and are requantized by the next instruction. WMEM holds one
    block per mapped layer (a grouped convolution: one per group), the PIM cores' program for ``hw``'s core and
    ``system.cores`` (:func:`model.pim_image.layer_block`), in row bands whose inputs fit ``hw``'s input buffer.
    ``pim_images`` False leaves the blocks out (WMEM holds the layer table's length alone): the instructions,
    descriptors and constants are the same, for a caller that times the SIMD instructions only
    (``sim_bench.chip_cycles``). ``wmem_words`` (the chip's WMEM; None: no bound): when the WMEM image does
    not fit it, the weights are streamed (:func:`_stream_weights`: the blocks in ``ChipProgram.dram``, a LOAD
    before each PIM). The default, :data:`CONFIG_WMEM`, is ``hw``'s WMEM (:func:`config_wmem_words`) with
    :func:`_default_streaming`: a network whose image fits compiles as without a bound, one whose largest PIM
    instruction's blocks do not fit either stays resident (the RTL chip refuses it).
    ``act_words`` (the chip's ACT; None: the ISA's 65,536 addresses): when the first-fit
    allocation needs more, the activations spill (:func:`_spill_schedule`: each instruction's inputs and result
    in ACT, the values read later STOREd to a DRAM slot and LOADed back before their readers); a program that
    fits is the same either way. The default, :data:`CONFIG_ACT`, is ``hw``'s ACT (:func:`config_act_words`),
    with the fallback of the weights' default: a network that cannot spill into it (one instruction's inputs
    and result pass it) compiles against the ISA's 65,536 (the RTL chip refuses it: ``ACT`` in
    :func:`verif.native_chip.check_fits`' line).
    """
    from dbpim.model import isa
    from dbpim.model.core_timing import PlanError
    from dbpim.model.pim_image import PimImageError, layer_block
    from dbpim.model.window import WindowLayer
    from dbpim.model.config import SystemConfig
    if isinstance(wmem_words, str) and wmem_words != CONFIG_WMEM:
        raise ValueError(f"wmem_words: must be a word count, None (no bound) or {CONFIG_WMEM!r}, got {wmem_words!r}")
    act_default = isinstance(act_words, str)
    if act_default and act_words != CONFIG_ACT:
        raise ValueError(f"act_words: must be an element count, None (the ISA's) or {CONFIG_ACT!r}, got {act_words!r}")
    if act_default:
        act_words = config_act_words(hw)
    params = _core_params(macro, hw)
    system = hw.system if hw is not None else SystemConfig()
    cores, result_words = int(system.cores), int(system.result_buffer_words)
    buffer_inputs = _buffer_inputs(params, hw)
    recs = {r.name: r for r in records if r.mapped}
    steps = plan.steps
    root = {}
    for st in steps:
        root[st["dst"]] = root[st["src"][0]] if st["op"] in ("reshape", "identity") else st["dst"]
    last = {}
    for i, st in enumerate(steps):
        for a in st["src"]:
            last[root[a]] = i
    last[root[plan.output]] = len(steps)
    size = {st["dst"]: math.prod(plan.shapes[st["dst"]]) for st in steps}
    addr: dict[str, int] = {}
    placed, act_top = _first_fit(steps, size, last)
    limit = 1 << dict((f[0], f[1]) for f in isa.INSTR_FIELDS)["dst"]
    if act_words is not None and (isinstance(act_words, bool) or not isinstance(act_words, int)
                                  or not 1 <= act_words <= limit):
        raise ChipError(f"act_words: must be an integer from 1 to {limit} (the ISA's ACT addresses), "
                        f"got {act_words!r}")
    spill = _act_spill(steps, {v: plan.shapes[v] for v in size}, last, root, root[plan.output], act_top,
                       limit if act_words is None else act_words, limit if act_default else None)
    if spill is not None:
        act_top = spill.act_top
    spill_descs: dict = {}

    imem, dmem, cmem, wmem_blocks, table = [], [], [], [], []
    pims = []  # (instruction index, first layer, groups, op name) of each PIM instruction

    def desc(op: str, **values) -> int:
        dmem.extend(isa.pack_descriptor(op, values))
        return len(dmem) // isa.DESC_WORDS - 1

    def const(a) -> int:
        cmem.extend(int(v) for v in np.asarray(a).reshape(-1))
        return len(cmem) - len(np.asarray(a).reshape(-1))

    acc_words = 0
    try:
        for i, st in enumerate(steps):
            kind, dst = st["op"], st["dst"]
            if kind in ("reshape", "identity"):
                addr[dst] = addr[root[dst]]
                continue
            if spill is None:
                a = placed[dst]
                src = [addr[s] for s in st["src"]]
            else:
                _emit_spills(spill.before[i], imem, desc, spill_descs)
                a, src = spill.at[i][dst], [spill.at[i][root[s]] for s in st["src"]]
            addr[dst] = a
            shp_in = plan.shapes[st["src"][0]] if st["src"] else ()
            if kind == "mapped":
                rs = [recs[n] for n in st["layers"]]
                first = len(table)
                out = plan.shapes[dst]
                if st["kind"] == "linear":
                    T = math.prod(shp_in[:-1])
                    geo = dict(C=shp_in[-1], H=T, W=1, N=out[-1], Ho=T, Wo=1, kernel=isa.pack_pair(1, 1),
                               stride=isa.pack_pair(1, 1), padding=0, dilation=isa.pack_pair(1, 1))
                    C, inner, outer = out[-1], 1, T
                else:
                    c, h, w = (shp_in[0], 1, shp_in[1]) if st["kind"] == "conv1d" else shp_in
                    ho, wo = (1, out[1]) if st["kind"] == "conv1d" else out[1:]
                    r = rs[0]
                    geo = dict(C=c, H=h, W=w, N=out[0], Ho=ho, Wo=wo, kernel=isa.pack_pair(*r.kernel),
                               stride=isa.pack_pair(*r.stride), padding=isa.pack_pair(*r.padding),
                               dilation=isa.pack_pair(*r.dilation))
                    C, inner, outer = out[0], ho * wo, 1
                acc_words = max(acc_words, C * inner * outer)
                g = len(rs)
                for j, r in enumerate(rs):
                    table.append(r.name)
                    if not pim_images:
                        continue
                    if st["kind"] == "linear":
                        wl = WindowLayer.of(geo["C"], geo["H"], 1, 1, 1)
                    else:
                        cg = geo["C"] // g
                        wl = WindowLayer.of(cg, geo["H"], geo["W"], *isa.unpack_pair(geo["kernel"]),
                                            stride=isa.unpack_pair(geo["stride"]),
                                            padding=isa.unpack_pair(geo["padding"]),
                                            dilation=isa.unpack_pair(geo["dilation"]), base=j * cg * geo["H"] * geo["W"])
                    try:
                        wmem_blocks.append(layer_block(r.compiled, wl, params, bool(st["signed_input"]),
                                                       acc_base=j * r.compiled.N * (1 if st["kind"] == "linear" else
                                                                                    inner),
                                                       linear=st["kind"] == "linear", buffer_inputs=buffer_inputs,
                                                       name=r.name, cores=cores, result_words=result_words))
                    except (PlanError, PimImageError, ValueError) as e:
                        raise ChipError(f"op {st['name']!r}: {e}") from None
                d = desc("PIM", kind=isa.PIM_KINDS["linear" if st["kind"] == "linear" else "conv2d"],
                         groups=len(rs), layer=first, signed=int(st["signed_input"]), **geo)
                pims.append((len(imem), first, len(rs), st["name"]))
                imem.append(isa.encode("PIM", desc=d, dst=0, src0=src[0]))
                bias = st["bias"] if st["bias"] is not None else np.zeros(0, np.int64)
                d = desc("REQ", C=C, inner=inner, outer=outer, m_addr=const(st["m"]), s_addr=const(st["s"]),
                         bias_addr=const(bias), has_bias=int(st["bias"] is not None), lo=st["lo"], hi=st["hi"])
                imem.append(isa.encode("REQ", desc=d, dst=a, src0=0))
            elif kind == "add":
                d = desc("ADD", count=size[dst], ma=st["ma"], sa=st["sa"], mb=st["mb"], sb=st["sb"], lo=st["lo"],
                         hi=st["hi"])
                imem.append(isa.encode("ADD", desc=d, dst=a, src0=src[0], src1=src[1]))
            elif kind == "maxpool2d":
                c, h, w = shp_in
                d = desc("MAXP", C=c, H=h, W=w, Ho=plan.shapes[dst][1], Wo=plan.shapes[dst][2],
                         kernel=isa.pack_pair(*st["kernel"]), stride=isa.pack_pair(*st["stride"]),
                         padding=isa.pack_pair(*st["padding"]), dilation=isa.pack_pair(*st["dilation"]))
                imem.append(isa.encode("MAXP", desc=d, dst=a, src0=src[0]))
            elif kind == "depthwise":
                c, h, w = shp_in
                d = dict(C=c, H=h, W=w, Ho=plan.shapes[dst][1], Wo=plan.shapes[dst][2],
                         kernel=isa.pack_pair(*st["kernel"]), stride=isa.pack_pair(*st["stride"]),
                         padding=isa.pack_pair(*st["padding"]), dilation=isa.pack_pair(*st["dilation"]),
                         w_addr=const(st["w"]), m_addr=const(st["m"]), s_addr=const(st["s"]),
                         bias_addr=const(st["bias"]), lo=st["lo"], hi=st["hi"])
                if spill is not None and i in spill.tiles:
                    _emit_dwc_tiles(d, spill.tiles[i], imem, desc, spill_descs)
                else:
                    imem.append(isa.encode("DWC", desc=desc("DWC", **d), dst=a, src0=src[0]))
            elif kind == "mean":
                d = desc("GAP", C=shp_in[0], HW=math.prod(shp_in[1:]), m=st["m"], s=st["s"], lo=st["lo"],
                         hi=st["hi"])
                imem.append(isa.encode("GAP", desc=d, dst=a, src0=src[0]))
            elif kind == "clamp":
                d = desc("CLMP", count=size[dst], lo=st["lo"], hi=st["hi"])
                imem.append(isa.encode("CLMP", desc=d, dst=a, src0=src[0]))
            elif kind != "input":
                raise ChipError(f"op {st['name']!r}: {kind} has no instruction")
        out_addr = addr[plan.output]
        if spill is not None:
            _emit_spills(spill.tail, imem, desc, spill_descs)
            out_addr = spill.output_addr
        imem.append(isa.encode("HALT"))
    except isa.IsaError as e:
        raise ChipError(f"compile: {e}") from None
    base = 1 + len(table)
    dram = None
    streamed = _default_streaming(imem, dmem, wmem_blocks, pims, base, config_wmem_words(hw)) \
        if wmem_words == CONFIG_WMEM else None
    if streamed is not None:
        imem, dmem, wmem, dram = streamed
    elif (wmem_words not in (None, CONFIG_WMEM) and pim_images
          and base + sum(len(b) for b in wmem_blocks) > wmem_words):
        imem, dmem, wmem, dram = _stream_weights(imem, dmem, wmem_blocks, pims, base, int(wmem_words))
    else:
        wmem = [len(table)]
        for b in wmem_blocks:
            wmem.append(base)
            base += len(b)
        for b in wmem_blocks:
            wmem.extend(b)
    spilled = None
    if spill is not None:
        dram, spilled = _place_spill_region(spill, dram, dmem, spill_descs,
                                            instructions=[spill.extra(i) for i in range(len(steps) + 1)])
    qi, qo = plan.quants[plan.input], plan.quants[plan.output]
    return ChipProgram(imem=np.array(imem, np.uint64), dmem=np.array(dmem, np.int64), cmem=np.array(cmem, np.int64),
                       wmem=np.array(wmem, np.int64), act_words=act_top, acc_words=acc_words,
                       input={"addr": addr[plan.input], "shape": list(plan.input_shape), **qi.to_json()},
                       output={"addr": out_addr, "shape": list(plan.shapes[plan.output]), **qo.to_json()},
                       macro=macro, values=dict(addr), core=params, cores=cores,
                       result_words=result_words, dram=dram, spill=spilled)


def _first_fit(steps: list, size: dict, last: dict) -> tuple[dict, int]:
    """``(value -> ACT address, elements used)`` of :func:`compile_program`'s resident allocation: first fit in
    address order, a value held from the step that writes it to the last that reads it (``last``; ``reshape`` /
    ``identity`` write nothing)."""
    live: dict[str, tuple[int, int]] = {}
    placed, top = {}, 0
    for i, st in enumerate(steps):
        dst = st["dst"]
        if st["op"] in ("reshape", "identity"):
            continue
        a = _fit(size[dst], live.values())
        live[dst] = (a, a + size[dst])
        placed[dst] = a
        top = max(top, a + size[dst])
        for v in [k for k in live if last.get(k, -1) <= i and k != dst]:
            live.pop(v)
    return placed, top


def _fit(n: int, held) -> int:
    """The lowest ACT address of ``n`` free elements between the ``held`` ``(begin, end)`` ranges."""
    a = 0
    for b, e in sorted(held):
        if a + n <= b:
            break
        a = max(a, e)
    return a


@dataclass
class _SpillSchedule:
    """Where the activations of a spilled program are (:func:`_spill_schedule`).

    ``before[i]``: the LOADs / STOREs that run before plan step ``i``'s instructions, in order, each ``(op, value,
    ACT address, first element, elements)`` of the value; ``at[i]``: value -> ACT address of step ``i``'s inputs and
    result; ``tiles[i]`` (a depthwise step whose input and result do not fit ACT at once): its channel tiles, each
    ``(c0, c1, LOAD, STORE)``: the LOAD of input channels ``c0 .. c1 - 1`` to ``at[i]``'s input address, the DWC of
    those channels, the STORE of their result from ``at[i]``'s result address; ``tail``: the LOADs before HALT (the
    output back into ACT); ``slots``: value -> byte offset of its DRAM slot in the spill region (``bytes`` long);
    ``act_top``: the ACT elements used; ``output_addr``: the output's ACT address at HALT."""

    before: list
    at: list
    tiles: dict
    tail: list
    slots: dict
    bytes: int
    act_top: int
    output_addr: int

    def extra(self, i: int) -> int:
        """Instructions of plan step ``i`` beyond its own (:data:`OP_INSTRUCTIONS`): its LOADs / STOREs, and a
        tiled step's DWC per tile but one (``i`` = the steps' count: those before HALT)."""
        if i == len(self.before):
            return len(self.tail)
        return len(self.before[i]) + 3 * len(self.tiles.get(i, ())) - (1 if i in self.tiles else 0)


def _act_spill(steps: list, shapes: dict, last: dict, root: dict, out: str, act_top: int, act_words: int,
               fallback: int | None) -> "_SpillSchedule | None":
    """The spill schedule of a program whose first-fit allocation needs ``act_top`` ACT elements, against
    ``act_words`` elements; None when it fits them (no spill). ``fallback`` (the default ``act_words``' ISA
    bound; None: none): when spilling into ``act_words`` is refused, the schedule against that bound instead
    (None, the resident program, if ``act_top`` fits it)."""
    if act_top <= act_words:
        return None
    try:
        return _spill_schedule(steps, shapes, last, root, out, act_words)
    except ChipError:
        if fallback is None or fallback <= act_words:
            raise
    return None if act_top <= fallback else _spill_schedule(steps, shapes, last, root, out, fallback)


def _spill_schedule(steps: list, shapes: dict, last: dict, root: dict, out: str, act_words: int) -> _SpillSchedule:
    """Activation spilling (docs/design.md §15 "Activation spilling"): the schedule that keeps ACT within
    ``act_words`` elements.

    Step by step, its inputs and its result must be in ACT at once (more than ``act_words``: a depthwise step
    runs in channel tiles, :func:`_dwc_tiles`; another is refused in one line naming the op and the elements).
    A value missing from ACT is LOADed from its DRAM slot, placed first fit;
    when it does not fit, the value in ACT read again latest (Belady; the larger on a tie) that the step does not
    read leaves ACT, STOREd once to its own DRAM slot first (the values never change). When ACT is too fragmented
    to place the step's values, every value leaves (STOREd if read later) and the step's inputs are LOADed from
    address 0 on, its result after them. A value no later step reads leaves ACT after its last reader, like the
    resident allocation's (:func:`_first_fit`)."""
    from dbpim.model import isa
    size = {v: math.prod(s) for v, s in shapes.items()}
    uses: dict[str, list] = {}
    for i, st in enumerate(steps):
        for a in st["src"]:
            uses.setdefault(root[a], []).append(i)
    end = len(steps)
    resident: dict[str, tuple[int, int]] = {}
    slots: dict[str, int] = {}
    top = [0]
    before, at, tiles, act_top = [], [], {}, 0

    def next_use(v: str, i: int) -> int:
        return next((u for u in uses.get(v, ()) if u > i), end)

    def leave(v: str, acts: list, held: dict, i: int) -> None:
        """``v`` out of ACT: STOREd to its slot first unless it is there or no step from ``i`` reads it."""
        if v not in slots and last.get(v, -1) >= i:
            slots[v] = top[0]
            top[0] += isa.dma_beats("ACT", size[v]) * isa.DMA_BEAT_BYTES
            acts.append(("STORE", v, held[v][0], 0, size[v]))
        del held[v]

    for i, st in enumerate(steps):
        if st["op"] in ("reshape", "identity"):
            before.append([])
            at.append({})
            continue
        dst = st["dst"]
        srcs = list(dict.fromkeys(root[a] for a in st["src"]))
        need = sum(size[v] for v in srcs) + size[dst]
        if need > act_words and st["op"] == "depthwise":  # every value out, the channels in tiles
            acts = []
            for w in list(resident):
                leave(w, acts, resident, i)
            slots[dst] = top[0]
            top[0] += isa.dma_beats("ACT", size[dst]) * isa.DMA_BEAT_BYTES
            tiles[i], at_i, used = _dwc_tiles(st, shapes[srcs[0]], shapes[dst], srcs[0], act_words)
            before.append(acts)
            at.append(at_i)
            act_top = max(act_top, used)
            continue
        if need > act_words:
            raise ChipError(f"op {st['name']!r} ({st['op']}): its inputs and result need {need} ACT elements at "
                            f"once, more than the {act_words} ACT holds (activation spilling keeps one "
                            "instruction's values in ACT)")
        pinned = set(srcs) | {dst}
        held, acts, snapshot = dict(resident), [], (dict(slots), top[0])
        for v in srcs + [dst]:
            if v in held:
                continue
            while _fit(size[v], held.values()) + size[v] > act_words:
                victims = [w for w in held if w not in pinned]
                if not victims:
                    break
                leave(max(victims, key=lambda w: (next_use(w, i), size[w])), acts, held, i)
            a = _fit(size[v], held.values())
            if a + size[v] > act_words:  # fragmented: start the step again from an empty ACT
                break
            held[v] = (a, a + size[v])
            if v != dst:
                acts.append(("LOAD", v, a, 0, size[v]))
        else:
            resident = held
            snapshot = None
        if snapshot is not None:
            slots.clear()
            slots.update(snapshot[0])
            top[0], held, acts = snapshot[1], dict(resident), []
            for w in list(held):
                leave(w, acts, held, i)
            a = 0
            for v in srcs:
                held[v] = (a, a + size[v])
                acts.append(("LOAD", v, a, 0, size[v]))
                a += size[v]
            held[dst] = (a, a + size[dst])
            resident = held
        act_top = max(act_top, max(e for _, e in resident.values()))
        before.append(acts)
        at.append({v: resident[v][0] for v in pinned})
        for v in [k for k in resident if last.get(k, -1) <= i and k != dst]:
            del resident[v]
    tail = []
    if out not in resident:  # the output back into ACT for the host
        for w in list(resident):
            leave(w, tail, resident, end + 1)
        resident[out] = (0, size[out])
        tail.append(("LOAD", out, 0, 0, size[out]))
        act_top = max(act_top, size[out])
    return _SpillSchedule(before=before, at=at, tiles=tiles, tail=tail, slots=slots, bytes=top[0], act_top=act_top,
                          output_addr=resident[out][0])


def _emit_spills(actions: list, imem: list, desc, descs: dict) -> None:
    """The LOAD / STORE instructions of a spill schedule's ``actions`` (``(op, value, ACT address, first element,
    elements)``) appended to ``imem``: one descriptor per transfer (``descs``: ``(op, value, first, elements)`` ->
    descriptor index, made by ``desc`` with DRAM address 0; :func:`_place_spill_region` writes the slot's)."""
    from dbpim.model import isa
    for op, v, a, e0, n in actions:
        if (op, v, e0, n) not in descs:
            descs[(op, v, e0, n)] = desc(op, buffer=isa.DMA_BUFFERS["ACT"], addr=0, count=n)
        imem.append(isa.encode(op, desc=descs[(op, v, e0, n)], **({"dst": a} if op == "LOAD" else {"src0": a})))


def _dwc_tiles(st: dict, shape_in: tuple, shape_out: tuple, src: str, act_words: int) -> tuple[list, dict, int]:
    """``(tiles, addresses, ACT elements used)`` of a depthwise step run in channel tiles (:class:`_SpillSchedule`):
    each tile as many channels as ACT holds with their results (an even count when a channel's elements are odd,
    so that every slice starts on a DRAM word), the input at ACT address 0, the result after the largest tile's
    input."""
    C, per_in, per_out = shape_in[0], math.prod(shape_in[1:]), math.prod(shape_out[1:])
    odd = bool(per_in % 2 or per_out % 2)
    t = min(C, act_words // (per_in + per_out))
    if t < C and odd:
        t -= t % 2
    if t < 1:
        least = (per_in + per_out) * (2 if odd and act_words >= per_in + per_out else 1)
        raise ChipError(f"op {st['name']!r} (depthwise): its smallest channel tile's input and result need {least} "
                        f"ACT elements at once, more than the {act_words} ACT holds")
    tiles = [(c0, min(C, c0 + t), ("LOAD", src, 0, c0 * per_in, (min(C, c0 + t) - c0) * per_in),
              ("STORE", st["dst"], t * per_in, c0 * per_out, (min(C, c0 + t) - c0) * per_out))
             for c0 in range(0, C, t)]
    return tiles, {src: 0, st["dst"]: t * per_in}, t * (per_in + per_out)


def _emit_dwc_tiles(d: dict, tiles: list, imem: list, desc, descs: dict) -> None:
    """A tiled depthwise step's instructions (:func:`_dwc_tiles`): per tile the LOAD of its input channels, the DWC
    of those channels (descriptor ``d`` with ``C`` the tile's and its constants' addresses from channel ``c0``),
    the STORE of their result."""
    from dbpim.model import isa
    k = math.prod(isa.unpack_pair(d["kernel"]))
    for c0, c1, load, store in tiles:
        _emit_spills([load], imem, desc, descs)
        t = dict(d, C=c1 - c0, w_addr=d["w_addr"] + c0 * k, m_addr=d["m_addr"] + c0, s_addr=d["s_addr"] + c0,
                 bias_addr=d["bias_addr"] + c0)
        imem.append(isa.encode("DWC", desc=desc("DWC", **t), dst=store[2], src0=load[2]))
        _emit_spills([store], imem, desc, descs)


def _place_spill_region(spill: _SpillSchedule, dram, dmem: list, descs: dict, *, instructions: list) -> tuple:
    """``(dram, ChipProgram.spill)``: the spill region placed in DRAM after the program's own bytes (``dram``, the
    streamed weights, or None), zeros, and every spill descriptor (``descs``) pointed at its value's slot."""
    from dbpim.model import isa
    base = 0 if dram is None else -(-len(dram) // isa.DMA_BEAT_BYTES) * isa.DMA_BEAT_BYTES
    if base + spill.bytes > 1 << isa.DMA_ADDR_BITS:
        raise ChipError(f"compile: the spill region ends at DRAM byte {base + spill.bytes:#x}, past the "
                        f"{isa.DMA_ADDR_BITS}-bit address space")
    half = isa.BUFFERS["ACT"].elem_bits // 8
    for (op, v, e0, n), k in descs.items():
        dmem[k * isa.DESC_WORDS:(k + 1) * isa.DESC_WORDS] = isa.pack_descriptor(
            op, {"buffer": isa.DMA_BUFFERS["ACT"], "addr": base + spill.slots[v] + e0 * half, "count": n})
    image = np.zeros(base + spill.bytes, np.uint8)
    if dram is not None:
        image[:len(dram)] = dram
    return image, {"base": base, "bytes": spill.bytes, "values": {v: base + o for v, o in spill.slots.items()},
                   "instructions": list(instructions)}


def _default_streaming(imem: list, dmem: list, blocks: list, pims: list, resident: int, wmem_words: int | None):
    """:func:`compile_program`'s default weight streaming: :func:`_stream_weights`' ``(imem, dmem, wmem, dram)``
    when the WMEM image (``resident`` table words and the ``blocks``) passes ``wmem_words`` (the configuration's
    WMEM) and one PIM instruction's blocks at a time fit it; None (the resident program) when the image fits,
    there is no bound or no blocks, or streaming does not fit either."""
    if wmem_words is None or not blocks or resident + sum(len(b) for b in blocks) <= wmem_words:
        return None
    try:
        return _stream_weights(list(imem), list(dmem), blocks, pims, resident, int(wmem_words))
    except ChipError:
        return None


def weight_streaming(program: ChipProgram, hw=None) -> dict:
    """JSON-ready facts of ``program``'s weights against the configuration ``hw``'s WMEM
    (:func:`config_wmem_words`): ``streamed`` (its PIM instructions' blocks are LOADed from DRAM,
    :func:`_stream_weights`), ``loads`` (its LOADs into WMEM), ``image_words`` (the whole WMEM image: table and
    every block), ``resident_words`` (WMEM words the program holds), ``dram_bytes``, ``wmem_words`` (the
    configuration's; None: no bound) and ``fits`` (the resident words fit it: False only for a network whose
    largest PIM instruction's blocks pass WMEM, which the RTL chip refuses)."""
    from dbpim.model import isa
    counts = []
    for w in program.imem:
        ins = isa.decode(int(w))
        if ins["op"] == "LOAD":
            d = isa.unpack_descriptor("LOAD", program.dmem[ins["desc"] * isa.DESC_WORDS:
                                                           (ins["desc"] + 1) * isa.DESC_WORDS])
            if d["buffer"] == isa.DMA_BUFFERS["WMEM"]:
                counts.append(int(d["count"]))
    resident = int(len(program.wmem))
    bound = config_wmem_words(hw)
    layers = int(program.wmem[0]) if resident else 0
    return {"streamed": bool(counts), "loads": len(counts),
            "image_words": 1 + layers + sum(counts) if counts else resident, "resident_words": resident,
            "dram_bytes": 0 if program.dram is None else int(len(program.dram)), "wmem_words": bound,
            "fits": bound is None or resident <= bound}


def _stream_weights(imem: list, dmem: list, blocks: list, pims: list, resident: int, wmem_words: int):
    """Weight streaming (:func:`compile_program` with ``wmem_words``): ``(imem, dmem, wmem, dram)`` with each PIM
    instruction's blocks in DRAM and a LOAD of them into WMEM before it.

    WMEM holds the layer table (``resident`` words: its length, then one base per layer) and one *streaming
    region* from word ``resident``, as large as the largest PIM instruction's blocks (a grouped convolution's
    groups together); layer ``l``'s table entry is ``resident`` plus its block's offset among its instruction's
    blocks. DRAM holds every instruction's blocks in program order, packed as WMEM words (:func:`model.isa.to_dram`,
    from byte 0); the LOAD (``buffer`` WMEM, ``dst`` = ``resident``) copies them in right before the PIM."""
    table, region, images = [], 0, []
    for _, first, groups, _ in pims:
        words, off = [], 0
        for b in blocks[first:first + groups]:
            table.append(resident + off)
            off += len(b)
            words.extend(b)
        region = max(region, off)
        images.append(words)
    if resident + region > wmem_words:
        k = max(range(len(pims)), key=lambda i: len(images[i]))
        raise ChipError(f"op {pims[k][3]!r}: its WMEM blocks ({region} words) and the layer table ({resident}) do "
                        f"not fit WMEM's {wmem_words} words (weight streaming loads one PIM instruction's blocks)")
    if resident >= 1 << 16:
        raise ChipError(f"compile: the layer table ({resident} words) passes the 16-bit dst of a LOAD")
    out, dram, addrs = list(imem), [], [0]
    for words in images:  # the DRAM address of each instruction's blocks, in program order
        addrs.append(addrs[-1] + len(words) * isa.DMA_BEAT_BYTES)
    try:
        for k, (pc, _, _, _) in reversed(list(enumerate(pims))):
            dmem.extend(isa.pack_descriptor("LOAD", {"buffer": isa.DMA_BUFFERS["WMEM"], "addr": addrs[k],
                                                     "count": len(images[k])}))
            out.insert(pc, isa.encode("LOAD", desc=len(dmem) // isa.DESC_WORDS - 1, dst=resident))
        dram = [isa.to_dram("WMEM", words) for words in images]
    except isa.IsaError as e:
        raise ChipError(f"compile: weight streaming: {e}") from None
    wmem = [len(table)] + table + [0] * region
    return out, dmem, wmem, np.concatenate(dram) if dram else np.zeros(0, np.uint8)


# ----------------------------------------------------------------------------- the golden chip

class GoldenChip:
    """The chip running an artifact's network from its :class:`ChipProgram` (integer-only, §13, §15).

    ``run(x)`` quantizes the float input on the host (:func:`quantize_input`), writes it into ``ACT``,
    executes the instruction stream to HALT on every sample at once (each on a copy of ``program.dram``, the
    streamed weights and the spill region, when it has one; ``wmem_words`` (by default the configuration's
    WMEM), ``act_words`` (by default the configuration's ACT): :func:`compile_program`'s) and returns the output tensor's integers
    (int64, real value = ``v * output scale``). Cycles, summed over samples: ``pim_cycles`` the RTL chip's
    cycles of the PIM instructions (:func:`model.chip_timing.pim_cycles`, from the image and the core's
    :func:`model.core_timing.layer_cycles`), ``simd_cycles`` those of ``REQ``, ``ADD``, ``MAXP``, ``GAP``,
    ``CLMP`` and ``HALT`` (:func:`model.chip_timing.instruction_cycles` with ``lanes`` = the configuration's
    ``system.simd_lanes``; ``DWC`` included), ``dma_cycles`` those of ``LOAD`` and ``STORE``
    (:func:`model.chip_timing.dma_cycles`, the ideal DRAM); ``cycles`` is their sum, the RTL's ``CYCLES``, and
    ``by_instruction`` the same per instruction of ``program.imem`` (int64, summed over samples). ``macro_cycles``
    adds the mapped layers' DB-PIM macro-cycles (docs/design.md §7, as
    :func:`model.layer.run_layer` counts them, one macro running every tile): an extra figure.
    """

    def __init__(self, artifact, *, wmem_words: int | None | str = CONFIG_WMEM,
                 act_words: int | None | str = CONFIG_ACT):
        prog = require_program(artifact, error=ChipError)
        try:
            self.plan = integer_plan(prog, artifact.layers)
        except RequantError as e:
            raise ChipError(str(e)) from None
        self.program = compile_program(self.plan, artifact.layers, artifact.macro, artifact.hw,
                                       wmem_words=wmem_words, act_words=act_words)
        from dbpim.model.config import SystemConfig
        self.lanes = int(artifact.hw.system.simd_lanes if artifact.hw is not None else SystemConfig().simd_lanes)
        self.macro_cycles = 0
        self.simd_cycles = 0
        self.pim_cycles = 0
        self.dma_cycles = 0
        self.samples = 0
        self.by_instruction = np.zeros(len(self.program.imem), np.int64)

    @classmethod
    def from_program(cls, program: ChipProgram, lanes: int) -> "GoldenChip":
        """A golden chip that only :meth:`execute` s ``program`` (no artifact, no plan: for ISA-level tests)."""
        chip = cls.__new__(cls)
        chip.plan = None
        chip.program = program
        chip.lanes = int(lanes)
        chip.macro_cycles = chip.simd_cycles = chip.pim_cycles = chip.dma_cycles = chip.samples = 0
        chip.by_instruction = np.zeros(len(program.imem), np.int64)
        return chip

    @property
    def cycles(self) -> int:
        """The RTL chip's ``CYCLES`` summed over the samples run: ``pim_cycles + simd_cycles + dma_cycles``."""
        return self.pim_cycles + self.simd_cycles + self.dma_cycles

    @property
    def output_quant(self) -> Quant:
        return self.plan.quants[self.plan.output]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Output integers (S, *output shape) of the float input batch ``x`` (S, *input shape)."""
        x = np.asarray(x)
        p = self.program
        if x.ndim != len(self.plan.input_shape) + 1 or tuple(x.shape[1:]) != self.plan.input_shape:
            raise ChipError(f"x: shape must be (S, {', '.join(map(str, self.plan.input_shape))}), got "
                            f"{tuple(x.shape)}")
        S = len(x)
        act = np.zeros((S, max(1, p.act_words)), np.int64)
        acc = np.zeros((S, max(1, p.acc_words)), np.int64)
        q = quantize_input(x, self.plan.quants[self.plan.input]).reshape(S, -1)
        act[:, p.input["addr"]:p.input["addr"] + q.shape[1]] = q
        self.execute(act, acc, None if p.dram is None else np.tile(p.dram, (S, 1)))
        n = math.prod(p.output["shape"])
        self.samples += S
        return act[:, p.output["addr"]:p.output["addr"] + n].reshape((S,) + tuple(p.output["shape"])).copy()

    def execute(self, act: np.ndarray, acc: np.ndarray, dram: np.ndarray | None = None) -> None:
        """Run the instruction stream on the buffers ``act`` (S, ACT) and ``acc`` (S, ACC) until HALT.

        ``dram`` (uint8, (S, bytes): each sample its own DRAM, as if each ran on its own copy; or (bytes,) when S
        is 1) is the off-chip memory of LOAD / STORE (:mod:`model.isa`), written in place by STORE. WMEM and CMEM
        start as the program's images; a LOAD into them writes this run's copy (it must read the same bytes for
        every sample: the chip has one WMEM and one CMEM)."""
        from dbpim.model import isa
        from dbpim.model.chip_timing import HALT_CYCLES, instruction_cycles
        p = self.program
        S = act.shape[0]
        self._wmem, self._cmem = p.wmem, p.cmem
        if dram is not None:
            dram = np.asarray(dram)
            if dram.dtype != np.uint8 or not (dram.ndim == 2 and dram.shape[0] == S or dram.ndim == 1 and S == 1):
                raise ChipError(f"dram: must be a uint8 array of shape (S, bytes) with S = {S} (or (bytes,) for one "
                                f"sample), got {dram.dtype} {tuple(dram.shape)}")
            if dram.ndim == 1:
                dram = dram[None]
        lo16, hi16 = -(1 << (isa.BUFFERS["ACT"].elem_bits - 1)), (1 << (isa.BUFFERS["ACT"].elem_bits - 1)) - 1
        for pc, word in enumerate(p.imem):
            ins = isa.decode(int(word))
            op = ins["op"]
            if op == "HALT":
                self.simd_cycles += S * HALT_CYCLES
                self.by_instruction[pc] += S * HALT_CYCLES
                return
            d = isa.unpack_descriptor(op, p.dmem[ins["desc"] * isa.DESC_WORDS:(ins["desc"] + 1) * isa.DESC_WORDS])
            s0, dst = ins["src0"], ins["dst"]
            name = f"instruction {pc} ({op})"
            if op == "PIM":
                before = self.pim_cycles
                self._pim(d, act, s0, acc, dst, name)
                self.by_instruction[pc] += self.pim_cycles - before
                continue
            if op in ("LOAD", "STORE"):
                self._dma(op, d, dst if op == "LOAD" else s0, act, acc, dram, name)
                cyc = S * instruction_cycles(op, d, self.lanes)
                self.dma_cycles += cyc
                self.by_instruction[pc] += cyc
                continue
            self._check_extent(op, d, name)
            if op == "REQ":
                C, inner, outer = d["C"], d["inner"], d["outer"]
                n = C * inner * outer
                a = acc[:, s0:s0 + n].reshape(S * outer, C, inner, 1)
                bias = self._cmem[d["bias_addr"]:d["bias_addr"] + C] if d["has_bias"] else None
                y = simd_ops.requant(a, self._cmem[d["m_addr"]:d["m_addr"] + C], self._cmem[d["s_addr"]:d["s_addr"] + C],
                                     d["lo"], d["hi"], bias, name=name).reshape(S, n)
            elif op == "ADD":
                n = d["count"]
                y = simd_ops.add(act[:, s0:s0 + n], d["ma"], d["sa"], act[:, ins["src1"]:ins["src1"] + n], d["mb"],
                                 d["sb"], d["lo"], d["hi"], name=name)
            elif op == "MAXP":
                C, H, W = d["C"], d["H"], d["W"]
                k = isa.unpack_pair(d["kernel"])
                y = simd_ops.maxpool2d(act[:, s0:s0 + C * H * W].reshape(S, C, H, W), k,
                                       isa.unpack_pair(d["stride"]), isa.unpack_pair(d["padding"]),
                                       isa.unpack_pair(d["dilation"]), name=name).reshape(S, -1)
                n = y.shape[1]
            elif op == "DWC":
                C, H, W = d["C"], d["H"], d["W"]
                k = isa.unpack_pair(d["kernel"])
                w = self._cmem[d["w_addr"]:d["w_addr"] + C * k[0] * k[1]].reshape(C, k[0], k[1])
                self._check_dwc_weights(w, d, name)
                a = simd_ops.depthwise_conv2d(act[:, s0:s0 + C * H * W].reshape(S, C, H, W), w,
                                              isa.unpack_pair(d["stride"]), isa.unpack_pair(d["padding"]),
                                              isa.unpack_pair(d["dilation"]), name=name)
                y = simd_ops.requant(a, self._cmem[d["m_addr"]:d["m_addr"] + C], self._cmem[d["s_addr"]:d["s_addr"] + C],
                                     d["lo"], d["hi"], self._cmem[d["bias_addr"]:d["bias_addr"] + C],
                                     name=name).reshape(S, -1)
                n = y.shape[1]
            elif op == "GAP":
                C, HW = d["C"], d["HW"]
                y = simd_ops.global_avgpool(act[:, s0:s0 + C * HW].reshape(S, C, 1, HW), d["m"], d["s"], d["lo"],
                                            d["hi"], name=name)
                n = C
            elif op == "CLMP":
                n = d["count"]
                y = saturate(act[:, s0:s0 + n], d["lo"], d["hi"], name)
            else:
                raise ChipError(f"{name}: not an operation of the golden chip")
            cyc = S * instruction_cycles(op, d, self.lanes)
            self.simd_cycles += cyc
            self.by_instruction[pc] += cyc
            if y.size and (int(y.min()) < lo16 or int(y.max()) > hi16):
                raise ChipError(f"{name}: a result does not fit ACT's signed 16-bit elements")
            act[:, dst:dst + n] = y
        raise ChipError("IMEM: the program ends without HALT")

    def _dma(self, op: str, d: dict, base: int, act, acc, dram, name: str) -> None:
        """A LOAD / STORE (:mod:`model.isa`) between the buffer ``d["buffer"]`` at ``base`` and ``dram``; its
        errors in the RTL's order (STATUS.ERROR_CODE 7, 5, 7, then 8 for bytes past the DRAM)."""
        codes = {c: n for n, c in isa.DMA_BUFFERS.items()}
        if d["buffer"] not in codes:
            raise ChipError(f"{name}: buffer code {d['buffer']} is not one of model.isa.DMA_BUFFERS "
                            f"{isa.DMA_BUFFERS} (STATUS.ERROR_CODE 7)")
        buf, n, addr = codes[d["buffer"]], d["count"], d["addr"]
        if n < 0:
            raise ChipError(f"{name}: count {n} is negative (STATUS.ERROR_CODE 7)")
        if addr % isa.DMA_BEAT_BYTES:
            raise ChipError(f"{name}: DRAM address {addr:#x} is not a multiple of {isa.DMA_BEAT_BYTES} "
                            "(STATUS.ERROR_CODE 7)")
        mem = {"ACT": act, "ACC": acc, "WMEM": self._wmem[None], "CMEM": self._cmem[None]}[buf]
        if base + n > mem.shape[1]:
            raise ChipError(f"{name}: {buf} elements [{base}, {base + n}) pass its {mem.shape[1]} "
                            "(STATUS.ERROR_CODE 5)")
        span = isa.dma_beats(buf, n) * isa.DMA_BEAT_BYTES
        if addr + span > 1 << isa.DMA_ADDR_BITS:
            raise ChipError(f"{name}: DRAM bytes [{addr:#x}, {addr + span:#x}) pass the {isa.DMA_ADDR_BITS}-bit "
                            "address space (STATUS.ERROR_CODE 7)")
        if n == 0:
            return
        if dram is None or addr + span > dram.shape[1]:
            size = 0 if dram is None else dram.shape[1]
            raise ChipError(f"{name}: DRAM bytes [{addr:#x}, {addr + span:#x}) pass the {size:#x} bytes of DRAM "
                            "(the AXI4 slave's error response: STATUS.ERROR_CODE 8)")
        nbytes = n * isa.BUFFERS[buf].elem_bits // 8
        if op == "STORE":
            for s in range(len(dram)):
                dram[s, addr:addr + nbytes] = isa.to_dram(buf, mem[s if len(mem) > 1 else 0, base:base + n])
            return
        rows = np.stack([isa.from_dram(buf, dram[s, addr:addr + nbytes], n) for s in range(len(dram))])
        if buf in ("WMEM", "CMEM"):
            if (rows != rows[0]).any():
                raise ChipError(f"{name}: a LOAD into {buf} reads DRAM bytes that differ between the samples (the "
                                f"chip has one {buf}); run the samples one at a time")
            img = self._wmem if buf == "WMEM" else self._cmem
            img = np.array(img, np.int64)
            img[base:base + n] = rows[0]
            if buf == "WMEM":
                self._wmem = img
            else:
                self._cmem = img
        else:
            mem[:, base:base + n] = rows

    @staticmethod
    def _check_extent(op: str, d: dict, name: str) -> None:
        """The sizes the chip controller's CHECK refuses (STATUS.ERROR_CODE 3): a SIMD instruction runs 1 ..
        2**24 - 1 pixels, windows of 1 .. 2**16 - 1 taps and at least one channel
        (:func:`model.chip_timing.simd_extent`, :data:`model.spec.SIMD_PIXEL_BITS` / ``SIMD_WINDOW_BITS``)."""
        from dbpim.model.chip_timing import simd_extent
        from dbpim.model.spec import SIMD_PIXEL_BITS, SIMD_WINDOW_BITS
        pixels, window, channels = simd_extent(op, d)
        if not (1 <= pixels < 1 << SIMD_PIXEL_BITS and 1 <= window < 1 << SIMD_WINDOW_BITS and channels >= 1):
            raise ChipError(f"{name}: {pixels} pixels, a window of {window} and {channels} channels; the SIMD core "
                            f"runs 1 to {(1 << SIMD_PIXEL_BITS) - 1} pixels, windows of 1 to "
                            f"{(1 << SIMD_WINDOW_BITS) - 1} and at least one channel (STATUS.ERROR_CODE 3)")

    @staticmethod
    def _check_dwc_weights(w: np.ndarray, d: dict, name: str) -> None:
        """The DWC weights ``w`` (C, KH, KW) the RTL chip reads (every tap some output reads inside the input) must be
        int8: the SIMD core multiplies 8-bit weights (the RTL stops with STATUS.ERROR_CODE 3)."""
        from dbpim.model import isa
        from dbpim.model.spec import SIMD_DWC_W_BITS
        k = isa.unpack_pair(d["kernel"])
        inside = simd_ops.pool_windows(np.ones((1, 1, d["H"], d["W"]), np.int64), k, isa.unpack_pair(d["stride"]),
                                       isa.unpack_pair(d["padding"]), isa.unpack_pair(d["dilation"]), 0, name)
        read = w.reshape(len(w), -1)[:, inside.reshape(-1, k[0] * k[1]).any(axis=0)]
        top = 1 << (SIMD_DWC_W_BITS - 1)
        if read.size and (int(read.min()) < -top or int(read.max()) >= top):
            raise ChipError(f"{name}: a weight at CMEM w_addr is outside int8 [{-top}, {top - 1}]")

    def _pim(self, d: dict, act: np.ndarray, src: int, acc: np.ndarray, dst: int, name: str) -> None:
        """A PIM instruction from the WMEM image (:func:`model.pim_image.run_pim`): sums into ``acc`` at ``dst``,
        its cycles (per sample, :func:`model.chip_timing.pim_cycles`) into ``pim_cycles`` and the macro-cycles
        of its passes into ``macro_cycles``."""
        from dbpim.model import isa
        from dbpim.model.chip_timing import pim_cycles
        from dbpim.model.pim_image import PimImageError, run_pim
        p = self.program
        if p.core is None:
            raise ChipError(f"{name}: the program has no PIM core to run on")
        try:  # like ACT and ACC, the input buffer is as large as the program needs (the RTL's is sized)
            r = run_pim(self._wmem, d, act, src, acc, dst, p.core, cores=p.cores, result_words=p.result_words, name=name)
        except PimImageError as e:
            raise ChipError(str(e)) from None
        if d["kind"] != isa.PIM_KINDS["linear"]:
            P = d["Ho"] * d["Wo"]
            if d["N"] * P > acc.shape[1] - dst:
                raise ChipError(f"{name}: the descriptor's {d['N']} x {P} sums pass ACC")
        self.macro_cycles += int(r.macro_cycles.sum())
        self.pim_cycles += sum(pim_cycles(d, r.blocks, [c[s] for c in r.core_cycles],
                                          result_lanes=p.core.core.result_lanes) for s in range(act.shape[0]))


def program_cycles(program, lanes: int, act=None, acc=None, dram=None) -> int:
    """The chip's ``CYCLES`` after running ``program`` (a :class:`model.chip.ChipProgram`) to HALT.

    The sum of :func:`model.chip_timing.instruction_cycles` over the instructions run. A program with PIM
    instructions needs the buffers it starts from (``act``, ``acc``: one sample's ACT and
    ACC): its PIM cycles depend on the data (the core's :func:`model.core_timing.layer_cycles`); the golden
    chip runs it and counts every instruction the same way (from ``dram``, the DRAM bytes of its LOADs: a
    copy, which its STOREs write).
    """
    ops = [isa.decode(int(w))["op"] for w in program.imem]
    if "PIM" in ops:
        if act is None:
            raise ValueError("act: a program with PIM instructions needs the ACT (and ACC) it starts from")
        a = np.array(act, np.int64)[None].copy()
        c = (np.zeros((1, max(1, program.acc_words)), np.int64) if acc is None
             else np.array(acc, np.int64)[None].copy())
        chip = GoldenChip.from_program(program, lanes)
        dram = program.dram if dram is None else dram
        chip.execute(a, c, None if dram is None else np.array(dram, np.uint8))
        return int(chip.cycles)
    total = 0
    for word in program.imem:
        ins = isa.decode(int(word))
        op = ins["op"]
        if op == "HALT":
            return total + chip_timing.HALT_CYCLES
        base = ins["desc"] * isa.DESC_WORDS
        desc = isa.unpack_descriptor(op, program.dmem[base:base + isa.DESC_WORDS])
        total += chip_timing.instruction_cycles(op, desc, lanes)
    raise ValueError("program: ends without HALT")
