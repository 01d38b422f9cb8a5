"""The performance model's cycles of an inference on the chip (docs/perf_model.md "The chip end to end").

An artifact with a network program that the chip runs (:class:`model.chip.GoldenChip` compiles it) runs on the
chip as the instruction stream of :func:`model.chip.compile_program`. Every instruction costs what
:func:`model.chip_timing.instruction_cycles` counts for it, the one timing function of the RTL chip's
controller that its twin (the golden chip) and the RTL test read:

* a SIMD instruction (``REQ``, ``ADD``, ``MAXP``, ``GAP``, ``CLMP``, ``DWC``), ``LOAD`` / ``STORE`` (the ideal
  DRAM's :func:`model.chip_timing.dma_cycles`: a streamed program's weight LOADs) and ``HALT``: from its
  descriptor alone (:func:`simd_instruction_cycles`, no data needed);
* a ``PIM`` instruction: :func:`model.chip_timing.pim_cycles` of its WMEM image (bands, segments, bus writes,
  window table) and the PIM core's cycles of each START on the instruction's input
  (:func:`model.core_timing.layer_cycles`, as :func:`model.pim_image.run_pim` counts them on one core, the
  RTL chip's). They depend on the data (the core skips zero input bits): :func:`chip_cycles` takes them on the
  chip's own activations of the samples (the golden chip's execution of the program from the quantized input).

:func:`chip_cycles` sums them into the chip's ``CYCLES`` per inference (equal to the golden chip's and the RTL's
for the same samples), attributed to the artifact's layer records (:func:`instruction_layers`).
:func:`simd_layer_instructions` gives ``sim_bench.perf`` the SIMD instructions of each layer record, whose
cycles replace the ``ceil(ops / lanes)`` estimate of :func:`model.simd_core.record_cycles` for an artifact the
chip runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dbpim.model.chip import CONFIG_ACT, CONFIG_WMEM

__all__ = ["ChipCycles", "simd_instruction_cycles", "instruction_layers", "simd_layer_instructions", "chip_cycles",
           "recorded_input", "chip_configuration", "chip_summary"]


@dataclass
class ChipCycles:
    """Cycles of one inference on the chip, per instruction and per layer record.

    ``instructions``: one dict per instruction of the program (``pc``, ``op``, ``source`` the program op it
    comes from or None for HALT, ``layer`` the record it is attributed to or None, ``cycles`` per inference);
    ``layers``: record name -> cycles per inference (every record, 0 for those with no instruction: a clamp
    folded into its producer's ``REQ``, a flatten); ``unattributed``: the cycles of the instructions no record
    holds (``HALT``, an op without a record); ``total``: their sum, the chip's ``CYCLES`` per inference
    (mean over ``samples``); ``cycles``: the same summed over the samples (an integer, exact).
    """

    instructions: list
    layers: dict
    unattributed: float
    total: float
    samples: int
    cycles: int = 0
    what: str = field(default="")

    def to_json(self) -> dict:
        return {"cycles_per_inference": self.total, "samples": self.samples,
                "unattributed [cycles]": self.unattributed, "layers [cycles]": dict(self.layers),
                "instructions": list(self.instructions), "what": self.what}


def simd_instruction_cycles(program, lanes: int) -> np.ndarray:
    """Cycles of every instruction of ``program`` (a :class:`model.chip.ChipProgram`) on one sample, from its
    descriptor (:func:`model.chip_timing.instruction_cycles`: a SIMD instruction, ``LOAD`` / ``STORE`` and
    ``HALT``); -1 for a ``PIM`` instruction (data dependent)."""
    from dbpim.model import isa
    from dbpim.model.chip_timing import instruction_cycles
    out = np.full(len(program.imem), -1, np.int64)
    for pc, word in enumerate(program.imem):
        ins = isa.decode(int(word))
        if ins["op"] == "PIM":
            continue
        base = ins["desc"] * isa.DESC_WORDS
        out[pc] = instruction_cycles(ins["op"], isa.unpack_descriptor(ins["op"], program.dmem[base:base + isa.DESC_WORDS]),
                                     lanes)
    return out


def _record_of_op(records, ops) -> dict:
    """Program op name -> the layer record it is: a mapped op its first layer's; another op the SIMD record of
    the same graph node (the record's name, its ``.`` as ``_``, or its last part; in order, each once)."""
    out = {}
    simd = [r.name for r in records if not r.mapped]
    used = set()
    for op in ops:
        if op["op"] == "mapped":
            out[op["name"]] = op["layers"][0]
            continue
        n = op["name"]
        for r in simd:
            if r not in used and (r == n or r.replace(".", "_") == n or r.endswith("." + n)):
                out[n] = r
                used.add(r)
                break
    return out


def instruction_layers(plan, program, records, ops) -> list:
    """``(source op, layer record)`` of each instruction of ``program`` compiled from ``plan``
    (:func:`model.chip.instruction_sources`; ``HALT``: ``(None, None)``; an op without a record: its record
    None)."""
    from dbpim.model.chip import instruction_sources
    rec = _record_of_op(records, ops)
    src = [name for name, _ in instruction_sources(plan, program)]
    if len(src) != len(program.imem) - 1:
        raise ValueError(f"program: {len(program.imem)} instructions, the plan gives {len(src) + 1}")
    return [(n, rec.get(n)) for n in src] + [(None, None)]


def _plan_and_program(art, pim_images: bool):
    from dbpim.model.chip import ChipError, compile_program, integer_plan
    from dbpim.model.program import require_program
    prog = require_program(art, error=ChipError)
    plan = integer_plan(prog, art.layers)
    return plan, compile_program(plan, art.layers, art.macro, art.hw, pim_images=pim_images), prog["ops"]


def simd_layer_instructions(art) -> dict | None:
    """Record name -> ``(op, descriptor)`` of the chip's SIMD instructions compiled from its op (a mapped record:
    its ``REQ``; a SIMD record: its ``MAXP`` / ``ADD`` / ``GAP`` / ``CLMP`` / ``DWC``; a clamp folded into its
    producer's ``REQ``, a flatten: none), or None when the chip does not run the artifact's network (no program,
    an op the chip lacks, a constant it cannot hold). ``HALT`` is no record's. The program is compiled without its
    WMEM images (:func:`model.chip.compile_program` ``pim_images``): the descriptors are the chip's."""
    from dbpim.model import isa
    from dbpim.model.chip import ChipError
    from dbpim.model.requant import RequantError
    if getattr(art, "program", None) is None:
        return None
    try:
        plan, program, ops = _plan_and_program(art, pim_images=False)
    except (ChipError, RequantError, isa.IsaError):
        return None
    out = {r.name: [] for r in art.layers}
    for (_, layer), word in zip(instruction_layers(plan, program, art.layers, ops), program.imem):
        ins = isa.decode(int(word))
        if layer is not None and ins["op"] != "PIM":
            base = ins["desc"] * isa.DESC_WORDS
            out[layer].append((ins["op"], isa.unpack_descriptor(ins["op"], program.dmem[base:base + isa.DESC_WORDS])))
    return out


def recorded_input(art, plan) -> np.ndarray:
    """The chip's input (S, *input shape) int64 on the artifact's recorded samples: the recorded input of the
    mapped layer that reads the network input (the host's quantization with that layer's ``x_scale``, which is
    the chip's input scale, §13). ValueError when no mapped layer reads it or its inputs are not recorded."""
    first = next((st for st in plan.steps if plan.input in st["src"]), None)
    rec = None if first is None or first["op"] != "mapped" else \
        next((r for r in art.layers if r.name == first["layers"][0]), None)
    if rec is None or rec.x is None:
        raise ValueError("the network input is not recorded (no mapped layer reading it holds recorded inputs); "
                         "give the inputs")
    x = np.asarray(rec.x, np.int64)
    return x.reshape((x.shape[0],) + tuple(plan.input_shape))


def chip_cycles(art, x=None, *, wmem_words=CONFIG_WMEM, act_words: int | None | str = CONFIG_ACT) -> ChipCycles:
    """The chip's cycles per inference of an artifact's network on its own configuration (``art.hw``, one PIM
    core as the RTL chip has), on the float inputs ``x`` (S, *input shape; the host quantizes them) or, None,
    the artifact's recorded samples (:func:`recorded_input`).

    The program is :func:`model.chip.compile_program`'s with ``wmem_words`` (default: the configuration's WMEM,
    weights streamed when they do not fit it). SIMD instructions, ``LOAD`` / ``STORE`` (the ideal DRAM's
    :func:`model.chip_timing.dma_cycles`; a streamed program's ``LOAD`` of a PIM instruction's blocks goes to
    that instruction's layer record) and ``HALT`` from their descriptors (:func:`simd_instruction_cycles`),
    ``PIM`` instructions from the golden chip's run of the program on the samples (its image and the core's
    cycles on the chip's own activations, :func:`model.chip_timing.pim_cycles`; each sample on its own copy of
    the program's DRAM). Raises :class:`model.chip.ChipError` when the chip does not run the network.
    ``act_words`` (default: the configuration's ACT): the program with its activations spilled to fit that ACT
    (:func:`model.chip.compile_program`; its LOAD / STORE timed like the others).
    """
    from dbpim.model.chip import ChipError, GoldenChip, quantize_input
    chip = GoldenChip(art, wmem_words=wmem_words, act_words=act_words)
    plan, p = chip.plan, chip.program
    if x is None:
        try:
            q = recorded_input(art, plan)
        except ValueError as e:
            raise ChipError(f"{art.network}: {e}") from None
    else:
        x = np.asarray(x)
        if x.ndim != len(plan.input_shape) + 1 or tuple(x.shape[1:]) != plan.input_shape:
            raise ChipError(f"x: shape must be (S, {', '.join(map(str, plan.input_shape))}), got {tuple(x.shape)}")
        q = quantize_input(x, plan.quants[plan.input])
    S = len(q)
    if S == 0:
        raise ChipError("x: holds no samples; give at least one")
    act = np.zeros((S, max(1, p.act_words)), np.int64)
    acc = np.zeros((S, max(1, p.acc_words)), np.int64)
    act[:, p.input["addr"]:p.input["addr"] + q[0].size] = q.reshape(S, -1)
    chip.execute(act, acc, None if p.dram is None else np.tile(p.dram, (S, 1)))
    static = simd_instruction_cycles(p, chip.lanes)
    summed = np.where(static >= 0, static * S, chip.by_instruction)  # PIM: the run's
    per = summed / S
    from dbpim.model import isa
    rows, layers, loose = [], {r.name: 0.0 for r in art.layers}, 0.0
    for pc, ((src, layer), c) in enumerate(zip(instruction_layers(plan, p, art.layers, art.program["ops"]), per)):
        rows.append({"pc": pc, "op": isa.decode(int(p.imem[pc]))["op"], "source": src, "layer": layer,
                     "cycles": float(c)})
        if layer is None:
            loose += float(c)
        else:
            layers[layer] += float(c)
    return ChipCycles(instructions=rows, layers=layers, unattributed=loose, total=float(summed.sum()) / S,
                      samples=S, cycles=int(summed.sum()),
                      what="per inference (mean over the samples): the chip's CYCLES on its own configuration, one "
                           "PIM core; every instruction timed by model.chip_timing.instruction_cycles (PIM: "
                           "pim_cycles of its WMEM image and the core's cycles on the chip's activations; LOAD / "
                           "STORE: dma_cycles, the ideal DRAM)")


def chip_configuration(art, cfg) -> bool:
    """Whether ``cfg`` is the configuration the artifact's chip program is compiled for (``art.hw``): the same
    macro, core and system, PIM core count included (the RTL chip runs ``system.cores`` cores); only
    ``system.replicate_idle_cores``, a choice of the performance model the chip does not make, may differ."""
    import dataclasses
    hw = getattr(art, "hw", None)
    if hw is None:
        return False

    def chip(c):
        return dataclasses.replace(c.system, replicate_idle_cores=False)
    return hw.macro == cfg.macro and hw.core == cfg.core and chip(hw) == chip(cfg)


def chip_summary(art, cfg) -> dict | None:
    """The JSON of :func:`chip_cycles` on the recorded samples when ``cfg`` is the chip's configuration
    (:func:`chip_configuration`) and the chip runs the network; else None, or ``{"skipped": reason}`` when the
    chip's configuration cannot run it."""
    from dbpim.model.chip import ChipError
    from dbpim.model.pim_image import PimImageError
    from dbpim.model.requant import RequantError
    if getattr(art, "program", None) is None or not chip_configuration(art, cfg):
        return None
    try:
        return chip_cycles(art).to_json()
    except (ChipError, RequantError, PimImageError) as e:
        return {"skipped": str(e)}
