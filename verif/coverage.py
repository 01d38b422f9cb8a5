"""Functional coverage of the RTL regressions (cocotb-coverage), sampled from what the DUT did: the PIM core
(:class:`CoreCoverage`), the macro (:class:`MacroCoverage`), the SIMD core (:class:`SIMDCoverage`), the window
generator (:class:`WindowCoverage`), the chip controller (:class:`ChipCoverage`) and the building blocks
(:data:`BLOCK_REQUIRED`: :class:`DBMUCoverage`, :class:`IPUCoverage`, :class:`LPUCoverage`,
:class:`AdderTreeCoverage`, :class:`AccumulatorCoverage`, :class:`SwitchCoverage`, with crosses: :class:`Cross`);
one report and one check (:func:`missing`, :func:`write_report`) for all.

:data:`REQUIRED` is the coverage a core regression must reach, written once:
coverpoint -> its required bins, a list or the name of a set that
:func:`required_bins` derives from the configuration and :mod:`model.spec`
(the controller's states, ``STATUS.ERROR_CODE``, each descriptor field's
extremes). :class:`CoreCoverage` holds one cocotb-coverage ``CoverPoint`` per
coverpoint and is fed by monitors (:class:`verif.core_tb.CoreMonitor`) with
what happened at the DUT's ports and in its controller:

* ``bus_write`` / ``bus_read``: each AXI4-Lite write and read as the DUT took
  it; the writes are kept in a shadow of the register map, and each write of
  ``CTRL.START`` decodes the descriptors, column maps and ``LAYER`` the core is
  about to run (descriptor field extremes, filter ``phi`` = columns of a
  filter in its tile's column map, a full tile, ``K`` = kept rows of a filter
  tile's accumulation chain, ``N_DESC``, ``SIGNED``); a ``STATUS`` read after
  DONE samples its ``ERROR_CODE``;
* ``input_beat``: each input window the core accepted (an all-zero group of
  inputs, a group whose only set bit column is the MSB);
* ``backpressure``: a stream stage holding valid without ready that cycle;
* ``reset_in``: the controller state a reset aborted.

Filters at ``phi`` = 0 never reach the core (the compiler leaves them out of
every tile: their outputs are zeros the host places, docs/design.md §6), so
bin 0 of ``filter.phi`` is sampled from the compiled layer a test ran
(``layer_phi``); its other bins come from the column maps the DUT was written.

:func:`missing` compares a report (coverpoint -> bin -> hits) with the
required bins; :func:`write_report` writes ``coverage.json`` and
``coverage.txt`` (a table) and returns the unhit required bins, which fail the
test.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

__all__ = ["REQUIRED", "MACRO_REQUIRED", "SIMD_REQUIRED", "WINDOW_REQUIRED", "STALL_ONLY", "REPORTED", "STAGES",
           "CORE_STALL_STAGES", "CONTROLLER_STATES", "SIMD_ERRORS", "required_bins", "descriptor_extremes",
           "CoreCoverage", "MacroCoverage", "SIMDCoverage", "WindowCoverage", "missing", "report_table",
           "write_report", "unstalled", "check_closed", "CHIP_REQUIRED", "CHIP_REPORTED", "ChipCoverage",
           "chip_states", "fsm_states", "fsm_signal", "Cross", "bin_name", "BLOCK_REQUIRED", "DBMUCoverage", "IPUCoverage",
           "LPUCoverage", "AdderTreeCoverage", "AccumulatorCoverage", "SwitchCoverage"]

#: stream stages of the core, input to output: the AXI4-Stream input, the sparse allocation switch's input,
#: the row packer's input (the switch's output), the macros' inputs (the packer's output), the result stream
STAGES = ("s_axis", "switch", "packer", "macro", "m_axis")
#: the stages whose back-pressure a core regression must show: not the macros' inputs, which never push back
#: inside the core (a macro has two input buffers and the controller delivers a round's vectors only while
#: the round before computes); the macro testbench covers that stage (``MACRO_REQUIRED``)
CORE_STALL_STAGES = ("s_axis", "switch", "packer", "m_axis")
#: the PIM core controller's states (hw.core.PIMCore, in the order Amaranth numbers them)
CONTROLLER_STATES = ("IDLE", "NEXT", "DECODE", "RUN", "FINISH", "DRAIN", "OUT")

#: The required coverage: coverpoint -> bins (a list) or the name of a derived set (:func:`required_bins`).
REQUIRED = {
    "filter.phi": "phi 0..phi_max",
    "input.group": ["all_zero", "lone_msb"],
    "tile.full": ["full"],
    "layer.k": [1],
    "layer.n_desc": "extremes",
    "layer.signed": [0, 1],
    "stream.backpressure": list(CORE_STALL_STAGES),
    "reset.state": "controller states",
    "status.error_code": "model.spec.ERROR_CODES",
    "desc.*": "extremes",
}


#: bins reported beside the required ones (hit or not, they pass): coverpoint -> bins
REPORTED = {"stream.backpressure": ["macro"], "input.group": ["other"]}


def descriptor_extremes(hw) -> dict[str, tuple[int, int]]:
    """Each descriptor field's smallest and largest value a good descriptor may hold (the ranges the core's
    DECODE accepts, ``STATUS.ERROR_CODE`` 1 otherwise; ``n_out`` from 1: the compiler's passes hold a filter)."""
    mc, core = hw.macro, hw.core
    return {"tile": (0, core.tile_slots - 1), "mask_base": (0, core.mask_windows - 1),
            "n_win": (1, core.mask_windows), "n_kept": (1, mc.capacity_rows), "pixels": (1, core.out_pixels),
            "n_out": (1, mc.n_col), "first": (0, 1), "last": (0, 1)}


def required_bins(hw) -> dict[str, list]:
    """:data:`REQUIRED` resolved for configuration ``hw``: coverpoint -> list of required bins."""
    from dbpim.model import spec
    derived = {"phi 0..phi_max": list(range(hw.macro.phi_max + 1)),
               "controller states": list(CONTROLLER_STATES),
               "model.spec.ERROR_CODES": sorted(spec.ERROR_CODES)}
    out = {}
    for point, bins in REQUIRED.items():
        if point == "desc.*":
            for f, (lo, hi) in descriptor_extremes(hw).items():
                out[f"desc.{f}"] = [f"min={lo}", f"max={hi}"]
        elif point == "layer.n_desc":
            out[point] = ["min=0", f"max={hw.core.descriptors}"]
        else:
            out[point] = list(derived[bins]) if isinstance(bins, str) else list(bins)
    return out


class Cross(tuple):
    """A cross of two or more dimensions (each a list of bins), as a required-bins entry: a cocotb-coverage
    ``CoverCross`` whose bins are the tuples of the product less ``ignore`` (tuples that cannot occur), named
    ``"a x b"`` in reports (:func:`bin_name`); sampled with one value per dimension."""

    def __new__(cls, *axes, ignore=()):
        self = super().__new__(cls, tuple(tuple(a) for a in axes))
        if len(self) < 2 or not all(self):
            raise ValueError(f"axes: a cross needs two or more non-empty dimensions, got {axes!r}")
        self.ignore = {tuple(t) for t in ignore}
        return self

    def bins(self) -> list:
        """The cross's bins (tuples), ignored ones left out."""
        return [t for t in itertools.product(*self) if t not in self.ignore]


def bin_name(b) -> str:
    """A bin as reports name it: a cross's tuple ``"a x b"``, any other bin ``str(b)``."""
    return " x ".join(map(str, b)) if isinstance(b, tuple) else str(b)


def _cover_points(prefix: str, required: dict, reported: dict | None = None, crosses: dict | None = None) -> dict:
    """One cocotb-coverage ``CoverPoint`` per coverpoint of ``required`` (bins: the required ones, then those
    ``reported`` adds), named ``prefix.point``, and one ``CoverCross`` per entry of ``crosses`` (point ->
    :class:`Cross`; its dimensions are coverpoints ``prefix.point[k]``): point -> its sampling function."""
    from cocotb_coverage.coverage import CoverCross, CoverPoint
    if not isinstance(prefix, str) or not prefix or "." in prefix:
        raise ValueError(f"prefix: must be a non-empty name without dots, got {prefix!r}")
    points = {}
    for point, cross in (crosses or {}).items():
        names = [f"{prefix}.{point}[{k}]" for k in range(len(cross))]
        axes = [CoverPoint(n, xf=lambda *v, k=k: v[k], bins=list(a)) for k, (n, a) in enumerate(zip(names, cross))]
        ign = [t for t in itertools.product(*cross) if t in cross.ignore]
        sample = CoverCross(f"{prefix}.{point}", items=names, ign_bins=ign)(lambda *v: None)
        for ax in axes:
            sample = ax(sample)
        points[point] = sample
    for point, bins in required.items():
        if point in points:
            continue
        @CoverPoint(f"{prefix}.{point}", xf=lambda v: v, bins=list(bins) + (reported or {}).get(point, []))
        def sample(v):
            pass
        points[point] = sample
    return points


def _report(prefix: str, required: dict) -> dict:
    """Coverpoint -> {bin (str): hits} of the coverpoints ``required`` names in model ``prefix``."""
    from cocotb_coverage.coverage import coverage_db
    return {p: {bin_name(b): int(h) for b, h in coverage_db[f"{prefix}.{p}"].detailed_coverage.items()}
            for p in required}


def unstalled(required: dict, stall: float) -> dict:
    """``required`` less the bins of :data:`STALL_ONLY` when ``stall`` is 0 (a full-rate run has no gap and
    no back-pressure to show)."""
    if stall:
        return {p: list(b) for p, b in required.items()}
    return {p: [b for b in bins if b not in STALL_ONLY.get(p, ())] for p, bins in required.items()}


def _extreme(value: int, lo: int, hi: int):
    return f"min={lo}" if value == lo else f"max={hi}" if value == hi else None


class CoreCoverage:
    """The core's coverpoints (cocotb-coverage), sampled through its methods (see the module docstring).

    Parameters
    ----------
    hw : model.config.HwConfig
        The configuration of the core under test.
    prefix : str
        Name of this model in cocotb-coverage's (process-wide) database; a
        fresh prefix gives a fresh model.
    """

    def __init__(self, *, hw, prefix: str = "core"):
        from dbpim.model.config import HwConfig
        from dbpim.model.core import CoreParams
        if not isinstance(hw, HwConfig):
            raise TypeError(f"hw: must be an HwConfig, got {type(hw).__name__}")
        if not isinstance(prefix, str) or not prefix or "." in prefix:
            raise ValueError(f"prefix: must be a non-empty name without dots, got {prefix!r}")
        self.hw, self.prefix = hw, prefix
        self.params = CoreParams.from_config(hw)
        self.required = required_bins(hw)
        self._extremes = descriptor_extremes(hw)
        self._points = _cover_points(prefix, self.required, REPORTED)
        self.shadow: dict[int, int] = {}
        self._chain_k = 0

    def sample(self, point: str, value) -> None:
        """Sample ``value`` on coverpoint ``point`` (a value outside its bins counts nowhere)."""
        self._points[point](value)

    # ------------------------------------------------------------------ what the monitors saw
    def bus_write(self, addr: int, data: int) -> None:
        """An AXI4-Lite write the DUT took (full words: the regression writes every strobe)."""
        from dbpim.model.spec import CORE_REG
        self.shadow[int(addr)] = int(data)
        if addr == self.params.map.regs["CTRL"] and CORE_REG["CTRL"].decode(data)["START"]:
            self._start()

    def bus_read(self, addr: int, data: int) -> None:
        """An AXI4-Lite read response the DUT gave: ``STATUS`` after DONE samples its error code."""
        from dbpim.model.spec import CORE_REG
        if addr == self.params.map.regs["STATUS"]:
            st = CORE_REG["STATUS"].decode(data)
            if st["DONE"]:
                self.sample("status.error_code", st["ERROR_CODE"] if st["ERROR"] else 0)

    def input_beat(self, data: int) -> None:
        """An input window the core accepted: an all-zero group, or one whose only set bit column is the MSB."""
        mc = self.hw.macro
        ored = 0
        for c in range(mc.n_comp):
            ored |= (int(data) >> (c * mc.in_bits)) & ((1 << mc.in_bits) - 1)
        self.sample("input.group", "all_zero" if ored == 0 else
                    "lone_msb" if ored == 1 << (mc.in_bits - 1) else "other")

    def backpressure(self, stage: str) -> None:
        """Stream stage ``stage`` (:data:`STAGES`) held valid without ready in a cycle (a stage outside the
        required ones is reported, not required)."""
        self.sample("stream.backpressure", stage)

    def reset_in(self, state: str) -> None:
        """A reset reached the controller in ``state`` (:data:`CONTROLLER_STATES`)."""
        self.sample("reset.state", state)

    def layer_phi(self, phi) -> None:
        """The compiled layer a test ran: its filters at ``phi`` = 0 (never in a tile) sample bin 0."""
        if np.any(np.asarray(phi) == 0):
            self.sample("filter.phi", 0)

    # ------------------------------------------------------------------ decoding a START
    def _entry(self, region, entry: int) -> int:
        return sum(self.shadow.get(region.address(entry, w), 0) << (32 * w) for w in range(region.words))

    def _start(self) -> None:
        from dbpim.model import spec
        mc, cmap = self.hw.macro, self.params.map
        layer = spec.CORE_REG["LAYER"].decode(self.shadow.get(cmap.regs["LAYER"], 0))
        n_desc = layer["N_DESC"]
        self.sample("layer.n_desc", _extreme(n_desc, 0, self.hw.core.descriptors))
        self.sample("layer.signed", layer["SIGNED"])
        desc, cmap_r = cmap.regions["desc"], cmap.regions["map"]
        mf = spec.map_entry_fields(mc.n_col)
        for k in range(min(n_desc, desc.entries)):
            d = spec.unpack(desc.fields, self._entry(desc, k))
            for f, (lo, hi) in self._extremes.items():
                self.sample(f"desc.{f}", _extreme(d[f], lo, hi))
            cm = spec.unpack(mf, self._entry(cmap_r, d["tile"] % cmap_r.entries))
            cols = [s for s, u in zip(cm["slot"], cm["used"]) if u]
            for s in range(d["n_out"]):
                self.sample("filter.phi", cols.count(s))
            if d["n_kept"] == mc.capacity_rows and len(cols) == mc.n_col:
                self.sample("tile.full", "full")
            self._chain_k = d["n_kept"] if d["first"] else self._chain_k + d["n_kept"]
            if d["last"]:
                self.sample("layer.k", self._chain_k)

    # ------------------------------------------------------------------ the report
    def report(self) -> dict:
        """Coverpoint -> {bin (str): hits} of every coverpoint of this model."""
        return _report(self.prefix, self.required)


def missing(report: dict, required: dict) -> list[str]:
    """``point: bin`` of every required bin the report does not show hit (a point absent counts as unhit)."""
    return [f"{p}: {b}" for p, bins in required.items() for b in bins
            if report.get(p, {}).get(str(b), 0) < 1]


def check_closed(cov, *, stall: float, seed: int, out=None) -> None:
    """Assert that coverage model ``cov`` (with ``required`` and ``report()``) hit every required bin, less
    those of :data:`STALL_ONLY` at ``stall`` 0; with ``out``, :func:`write_report` into that folder first.

    Raises
    ------
    AssertionError
        Naming the seed, the stall and every unhit bin.
    """
    required = unstalled(cov.required, stall)
    bad = (write_report(cov.report(), required, Path(out), meta={"seed": seed, "stall": stall}) if out
           else missing(cov.report(), required))
    assert not bad, f"seed {seed} stall {stall}: required coverage bins unhit: {', '.join(bad)}"


def report_table(report: dict, required: dict) -> str:
    """The report as a text table: coverpoint, bin, hits, required / unhit."""
    rows = [("coverpoint", "bin", "hits", "")]
    for p in required:
        for b in itertools.chain(map(str, required[p]), (b for b in report.get(p, {}) if b not in
                                                        set(map(str, required[p])))):
            h = report.get(p, {}).get(b, 0)
            req = b in set(map(str, required[p]))
            rows.append((p, b, str(h), "UNHIT (required)" if req and h < 1 else "required" if req else ""))
    w = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w[k]) for k, c in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    bad = missing(report, required)
    n = sum(len(v) for v in required.values())
    lines += ["", f"required bins hit: {n - len(bad)} / {n}" + (f"; unhit: {', '.join(bad)}" if bad else "")]
    return "\n".join(lines) + "\n"


def write_report(report: dict, required: dict, folder: Path, meta: dict | None = None) -> list[str]:
    """Write ``coverage.json`` (report, required bins, unhit ones, ``meta``) and ``coverage.txt`` into
    ``folder``; returns the unhit required bins (empty: coverage closed)."""
    from dbpim.model import jsonio
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bad = missing(report, required)
    doc = {"meta": meta or {}, "required": {p: [str(b) for b in v] for p, v in required.items()},
           "hits": report, "unhit": bad}
    (folder / "coverage.json").write_text(jsonio.dumps(doc, what="coverage.json", newline=True))
    (folder / "coverage.txt").write_text(report_table(report, required))
    return bad


# --------------------------------------------------------------------------- the macro testbench

#: The required coverage of each macro regression run (verif/test_macro.py), as :data:`REQUIRED`.
MACRO_REQUIRED = {
    "macro.filter.phi": "phi 1..phi_max",
    "macro.tile": ["one_row", "full"],
    "macro.input.row": ["all_zero", "lone_msb"],
    "macro.backpressure": ["x", "o"],
}


class MacroCoverage:
    """The macro's coverpoints, sampled by :func:`verif.test_macro.macro_body` from its TB agents' records.

    * ``tile``: the configuration a tile load wrote (the ``c_*`` port values): filter phi = a filter's
      columns in ``c_slot`` / ``c_used``, a one-row tile (K = 1 row used), a full tile (every row and column);
    * ``inputs``: the ``x`` beats the macro accepted (a cell row of all-zero inputs, one whose only set bit
      column is the MSB) and whether it held ``x.ready`` low while a beat was offered;
    * ``outputs``: whether it held ``o.valid`` while the sink was not ready.

    Filters at phi 0 take no column (the compiler leaves them out of every tile), as in :class:`CoreCoverage`.
    """

    def __init__(self, *, macro, prefix: str = "macro"):
        from dbpim.model.config import MacroConfig
        if not isinstance(macro, MacroConfig):
            raise TypeError(f"macro: must be a MacroConfig, got {type(macro).__name__}")
        self.mc, self.prefix = macro, prefix
        self.required = {p: (list(range(1, macro.phi_max + 1)) if isinstance(b, str) else list(b))
                         for p, b in MACRO_REQUIRED.items()}
        self._points = _cover_points(prefix, self.required)

    def tile(self, config: dict) -> None:
        """A tile load's ``c_*`` port values (``c_rows_used``, ``c_slot``, ``c_used``: packed as on the ports)."""
        from dbpim.model.spec import bits_for
        mc = self.mc
        sb = bits_for(mc.n_col - 1)
        used = [(config["c_used"] >> j) & 1 for j in range(mc.n_col)]
        slots = [(config["c_slot"] >> (j * sb)) & ((1 << sb) - 1) for j in range(mc.n_col)]
        cols = [s for s, u in zip(slots, used) if u]
        for s in set(cols):
            self._points["macro.filter.phi"](cols.count(s))
        if config["c_rows_used"] == 1:
            self._points["macro.tile"]("one_row")
        if config["c_rows_used"] == mc.n_row and all(used):
            self._points["macro.tile"]("full")

    def inputs(self, source) -> None:
        """The ``x`` source's records: each accepted payload's cell row, and any beat accepted after its offer."""
        from dbpim.model.spec import unpack_macro_in
        mc = self.mc
        for p in source.taken:
            ored = 0
            for v in unpack_macro_in(p, mc.n_comp, mc.in_bits):
                ored |= int(v)
            if ored == 0:
                self._points["macro.input.row"]("all_zero")
            elif ored == 1 << (mc.in_bits - 1):
                self._points["macro.input.row"]("lone_msb")
        if any(a > o for o, a in zip(source.offered, source.accepted)):
            self._points["macro.backpressure"]("x")

    def outputs(self, sink) -> None:
        """The ``o`` sink's records: the macro held a result while the sink was not ready."""
        if sink.held:
            self._points["macro.backpressure"]("o")

    def report(self) -> dict:
        return _report(self.prefix, self.required)


# --------------------------------------------------------------------------- the SIMD core and the window generator

#: The causes of the SIMD core's ``err`` (a descriptor taken that runs nothing, docs/design.md §14), as bins.
SIMD_ERRORS = ("op", "channels=0", "channels>max", "window=0", "pixels=0", "lo>hi")

#: The required coverage of a SIMD core regression run (verif/simd_tb.py ``simd_body``), as :data:`REQUIRED`:
#: every opcode, a partial last lane group (channels not a multiple of the lanes), an output saturated at each
#: side, a rounding tie (``v * m`` exactly halfway) of either sign, a padding element in each pooling op, a
#: reset while a descriptor runs, each cause of ``err``, back-pressure on ``o`` and a gap on ``i`` (stalled
#: runs: :data:`STALL_ONLY`).
SIMD_REQUIRED = {
    "simd.op": "model.spec.SIMD_OPCODES",
    "simd.lane_group": ["partial"],
    "simd.saturate": ["lo", "hi"],
    "simd.round": ["tie+", "tie-"],
    "simd.pad": ["maxpool", "avgpool", "dwconv"],
    "simd.stream": ["o_backpressure", "i_stall"],
    "simd.reset": ["busy"],
    "simd.err": list(SIMD_ERRORS),
}

#: The required coverage of a window generator regression run (verif/test_window.py ``window_body``): a tap in
#: the padding above, left of, below and right of the map and in a corner (both axes out), a stride and a
#: dilation above 1 on each axis, a window reaching past K (``N_PAD`` > 0), a pass without beats (``PIXELS`` 0,
#: ``N_WIN`` 0: taken and dropped, the generator's only refused input; it has no error flag), a pass taken in
#: the cycle of the previous pass's last beat, a reset while a pass streams, back-pressure on ``o`` and a gap
#: between pass descriptors on ``d`` (stalled runs: :data:`STALL_ONLY`).
WINDOW_REQUIRED = {
    "window.pad": ["top", "left", "bottom", "right", "corner"],
    "window.stride": ["sh>1", "sw>1"],
    "window.dilation": ["dh>1", "dw>1"],
    "window.past_k": ["n_pad>0"],
    "window.pass": ["pixels=0", "n_win=0", "back_to_back"],
    "window.stream": ["o_backpressure", "d_stall"],
    "window.reset": ["busy"],
}

#: Bins a run at full rate (stall 0) cannot hit: required only of stalled runs (:func:`unstalled`).
STALL_ONLY = {"simd.stream": ("o_backpressure", "i_stall"), "window.stream": ("o_backpressure", "d_stall"),
              "ipu.stream": ("o_backpressure", "i_stall"), "switch.stream": ("o_backpressure", "i_stall")}


class SIMDCoverage:
    """The SIMD core's coverpoints (:data:`SIMD_REQUIRED`), sampled by ``verif.simd_tb`` from each job it ran
    (descriptor, input beats, constants, the agents' records), each ``err`` pulse and each reset.

    Per job (:meth:`job`): its op, whether its last lane group is partial, and per active lane and output beat
    the value before the saturation (the window's reduction, rescaled) against ``lo`` / ``hi`` and each rescale's
    ``v * m`` against the halfway point of its shift (a tie, by the sign of ``v * m``); a padding element of a
    pooling window; a gap before one of its input beats and an output held while the sink was not ready.
    """

    def __init__(self, *, prefix: str = "simd"):
        from dbpim.model.spec import SIMD_OPCODES
        self.prefix = prefix
        self.required = {p: (list(SIMD_OPCODES) if isinstance(b, str) else list(b))
                         for p, b in SIMD_REQUIRED.items()}
        self._points = _cover_points(prefix, self.required, {"simd.lane_group": ["whole"]})
        self._names = {code: name for name, code in SIMD_OPCODES.items()}

    def sample(self, point: str, value) -> None:
        self._points[point](value)

    def job(self, desc: dict, a, lanes: int, b=None, pad=None, consts=None, gaps=(), held: int = 0) -> None:
        """A job the core ran: descriptor ``desc`` (:func:`model.simd_core.descriptor`), input beats ``a`` (and
        ``b``, ``pad``) of ``lanes`` lanes, per-channel ``consts`` (m, s, bias, mb, sb), the gaps before its
        input beats and the output beats held by back-pressure during it."""
        op = self._names[desc["op"]]
        C, W, P = desc["channels"], desc["window"], desc["pixels"]
        G = -(-C // lanes)
        self.sample("simd.op", op)
        self.sample("simd.lane_group", "partial" if C % lanes else "whole")
        a = np.asarray(a, np.int64).reshape(P, G, W, lanes)
        b = np.zeros_like(a) if b is None else np.asarray(b, np.int64).reshape(P, G, W, lanes)
        pad = np.zeros((P, G, W), bool) if pad is None else np.asarray(pad).astype(bool).reshape(P, G, W)
        cst = {k: np.zeros(G * lanes, np.int64) for k in ("m", "s", "bias", "mb", "sb")}
        for k, v in (consts or {}).items():
            cst[k][:C] = np.broadcast_to(np.asarray(v, np.int64), (C,))
        if op in ("maxpool", "avgpool", "dwconv") and pad.any():
            self.sample("simd.pad", op)
        for p, g, lane in itertools.product(range(P), range(G), range(lanes)):
            ch = g * lanes + lane
            if ch >= C:
                continue
            xs = [int(a[p, g, e, lane]) for e in range(W) if not pad[p, g, e]]
            dw = int(cst["bias"][ch]) + sum(int(a[p, g, e, lane]) * int(b[p, g, e, lane]) for e in range(W)
                                            if not pad[p, g, e]) if op == "dwconv" else 0
            v = {"requant": int(a[p, g, 0, lane]) + int(cst["bias"][ch]), "maxpool": max(xs, default=None),
                 "avgpool": sum(xs), "dwconv": dw}.get(op, int(a[p, g, 0, lane]))
            if v is None:  # a window of padding only: the smallest value, saturated at lo
                self.sample("simd.saturate", "lo")
                continue
            if op in ("requant", "add", "avgpool", "dwconv"):
                v = self._rescale(v, int(cst["m"][ch]), int(cst["s"][ch]))
            if op == "add":
                v += self._rescale(int(b[p, g, 0, lane]), int(cst["mb"][ch]), int(cst["sb"][ch]))
            if v < desc["lo"]:
                self.sample("simd.saturate", "lo")
            elif v > desc["hi"]:
                self.sample("simd.saturate", "hi")
        if any(int(x) > 0 for x in gaps):
            self.sample("simd.stream", "i_stall")
        if held:
            self.sample("simd.stream", "o_backpressure")

    def _rescale(self, v: int, m: int, s: int) -> int:
        """``rescale(v, m, s)`` (model.requant), sampling a tie: ``v * m`` exactly halfway between two steps."""
        prod = v * m
        if s >= 1 and prod & ((1 << s) - 1) == 1 << (s - 1):
            self.sample("simd.round", "tie+" if prod > 0 else "tie-")
        return (prod + ((1 << s) >> 1)) >> s

    def error(self, desc: dict, max_channels: int) -> None:
        """``err`` pulsed after descriptor ``desc`` (field -> int, as packed): each of its causes."""
        from dbpim.model.spec import SIMD_OPCODES
        causes = (desc["op"] >= len(SIMD_OPCODES), desc["channels"] == 0, desc["channels"] > max_channels,
                  desc["window"] == 0, desc["pixels"] == 0, desc["lo"] > desc["hi"])
        for name, hit in zip(SIMD_ERRORS, causes):
            if hit:
                self.sample("simd.err", name)

    def reset_while_busy(self) -> None:
        """A reset reached the core while ``busy`` was high."""
        self.sample("simd.reset", "busy")

    def report(self) -> dict:
        return _report(self.prefix, self.required)


class WindowCoverage:
    """The window generator's coverpoints (:data:`WINDOW_REQUIRED`), sampled by ``verif.test_window`` from each
    job it ran: the layer descriptor, the window table and the passes (their taps: :func:`model.window.pass_taps`),
    the cycles of the passes taken on ``d`` and of the beats taken on ``o``, the agents' records, each reset."""

    def __init__(self, *, prefix: str = "window"):
        self.prefix = prefix
        self.required = {p: list(b) for p, b in WINDOW_REQUIRED.items()}
        self._points = _cover_points(prefix, self.required)

    def sample(self, point: str, value) -> None:
        self._points[point](value)

    def job(self, layer_words, table, passes, n_comp: int, taken=(), beat_cycles=(), gaps=(), held: int = 0) -> None:
        """One job: layer descriptor words, window table words, pass descriptors (four words each), the cycle
        each pass was taken (``taken``) and each beat left (``beat_cycles``), the gaps before the passes and the
        beats held by back-pressure."""
        from dbpim.model.spec import WINDOW_LAYER, WINDOW_PASS
        from dbpim.model.window import _decode, pass_taps
        L = _decode(WINDOW_LAYER, layer_words)
        for f in ("sh", "sw", "dh", "dw"):
            if L[f] > 1:
                self.sample("window.stride" if f[0] == "s" else "window.dilation", f"{f}>1")
        ends, at = [], 0
        for words in passes:
            P = _decode(WINDOW_PASS, words)
            if P["pixels"] == 0:
                self.sample("window.pass", "pixels=0")
            if P["n_win"] == 0:
                self.sample("window.pass", "n_win=0")
            taps = pass_taps(layer_words, table, words, n_comp)
            if taps is None:
                ends.append(None)
                continue
            at += P["pixels"] * P["n_win"]
            ends.append(at - 1)
            _, y, x, live = taps
            if (~live).any():
                self.sample("window.past_k", "n_pad>0")
            out_y = live & ((y < 0) | (y >= L["height"]))
            out_x = live & ((x < 0) | (x >= L["width"]))
            for name, hit in (("top", live & (y < 0)), ("bottom", live & (y >= L["height"])),
                              ("left", live & (x < 0)), ("right", live & (x >= L["width"])),
                              ("corner", out_y & out_x)):
                if hit.any():
                    self.sample("window.pad", name)
        # a pass taken before the previous (non-empty) pass's last beat left: the generator reads a beat's inputs
        # the cycle before the beat leaves, so it takes the next pass while that beat is still on its way
        beat_cycles, taken = list(beat_cycles), list(taken)
        for k in range(1, min(len(passes), len(taken))):
            prev = ends[k - 1]
            if prev is not None and ends[k] is not None and prev < len(beat_cycles) \
                    and taken[k] < beat_cycles[prev]:
                self.sample("window.pass", "back_to_back")
        if any(int(g) > 0 for g in gaps):
            self.sample("window.stream", "d_stall")
        if held:
            self.sample("window.stream", "o_backpressure")

    def reset_while_busy(self) -> None:
        """A reset reached the generator while ``busy`` was high."""
        self.sample("window.reset", "busy")

    def report(self) -> dict:
        return _report(self.prefix, self.required)


# --------------------------------------------------------------------------- the chip controller

#: The required coverage of the chip controller's regression (verif/chip_tb.py ``run_chip_coverage``), as
#: :data:`REQUIRED`: every opcode of :data:`model.isa.OPCODES` decoded (the pending ones stop with code 2), every
#: STATUS.ERROR_CODE of :data:`model.isa.CHIP_ERRORS`, a reset in each state of the controller (hw.chip_ctrl), the
#: waits where the controller is held (a SIMD result awaited, a PIM instruction running) and a PIM layer of several
#: segments. The SIMD core never holds the controller back (it offers a descriptor only to an idle SIMD core, and a
#: window's last input beat only when its result will find the write-back free): those waits (``simd_d``,
#: ``simd_i``) are reported beside the required bins (:data:`CHIP_REPORTED`), not required.
CHIP_REQUIRED = {
    "chip.opcode": "model.isa.OPCODES",
    "chip.error_code": "model.isa.CHIP_ERRORS",
    "chip.reset": "chip controller states",
    "chip.wait": ["simd_o", "pim"],
    "chip.pim_segments": [">1"],
}
#: bins reported beside :data:`CHIP_REQUIRED` (hit or not, they pass)
CHIP_REPORTED = {"chip.wait": ["simd_d", "simd_i"], "chip.pim_segments": ["1"]}


def chip_states() -> list[str]:
    """The chip controller's states (hw.chip_ctrl.ChipController's FSM, in the order Amaranth numbers them)."""
    from dbpim.hw.chip_ctrl import ChipController
    ctrl = ChipController(lanes=1, simd_channels=1, depths={b: 16 for b in ("IMEM", "DMEM", "CMEM", "ACT", "ACC")})
    return list(fsm_states(ctrl.elaborate(None)).values())


def fsm_states(module) -> dict:
    """Encoding -> state name of the one FSM of an elaborated Amaranth ``module`` (Module)."""
    sig = fsm_signal(module)
    out = {}
    for n in range(1 << len(sig)):
        try:
            name = sig.decoder(n)
        except KeyError:  # past the last state
            continue
        out[n] = name.rsplit("/", 1)[0]
    return out


def fsm_signal(module):
    """The state signal of the one FSM of an elaborated Amaranth ``module`` (a ``Module``): the test of the
    ``Switch`` Amaranth builds for it (named ``fsm_state``, with a decoder to the state names)."""
    from amaranth.hdl._ast import Switch
    for stmts in module._statements.values():
        for s in stmts:
            if isinstance(s, Switch) and getattr(s.test, "name", "") == "fsm_state":
                return s.test
    raise ValueError("module: has no FSM")


class ChipCoverage:
    """The chip controller's coverpoints (:data:`CHIP_REQUIRED`), sampled by ``verif.chip_tb`` from the
    controller's state and ports each cycle, each STATUS it read after DONE and each reset it applied."""

    def __init__(self, *, prefix: str = "chip"):
        from dbpim.model import isa
        self.prefix = prefix
        derived = {"model.isa.OPCODES": list(isa.OPCODES), "model.isa.CHIP_ERRORS": sorted(set(isa.CHIP_ERRORS) - set(isa.RESERVED_ERRORS)),
                   "chip controller states": chip_states()}
        self.required = {p: (list(derived[b]) if isinstance(b, str) else list(b)) for p, b in CHIP_REQUIRED.items()}
        self._points = _cover_points(prefix, self.required, CHIP_REPORTED)
        self._names = {spec.code: name for name, spec in isa.OPCODES.items()}

    def sample(self, point: str, value) -> None:
        self._points[point](value)

    def decode(self, opcode: int) -> None:
        """The controller decoded an instruction with ``opcode`` (a code outside model.isa.OPCODES counts
        nowhere: it is the undefined-opcode error)."""
        if opcode in self._names:
            self.sample("chip.opcode", self._names[opcode])

    def status(self, st: dict) -> None:
        """A STATUS read after DONE (fields of model.isa.CHIP_REGISTERS): its ERROR_CODE when ERROR."""
        if st["DONE"] and st["ERROR"]:
            self.sample("chip.error_code", int(st["ERROR_CODE"]))

    def reset_in(self, state: str) -> None:
        """A reset reached the controller in ``state``."""
        self.sample("chip.reset", state)

    def wait(self, what: str) -> None:
        """The controller was held a cycle: ``simd_d`` (descriptor offered, not taken), ``simd_i`` (input beat
        offered, not taken), ``simd_o`` (result awaited, every operand sent), ``pim`` (a PIM instruction
        running)."""
        self.sample("chip.wait", what)

    def pim_layer(self, segments: int) -> None:
        """A PIM instruction finished after ``segments`` PIM core runs."""
        self.sample("chip.pim_segments", ">1" if segments > 1 else "1")

    def report(self) -> dict:
        return _report(self.prefix, self.required)


# --------------------------------------------------------------------------- the building blocks

#: The required coverage of the building blocks' regressions (``verif/test_<block>.py``), block -> coverpoint ->
#: bins (a list, the name of a set the block's coverage class derives from the configuration, or a
#: :class:`Cross` of such):
#:
#: * DBMU (one column of ``n_row`` cells and its LPU, docs/design.md §5): the column's cells all 0, all 1, and a
#:   lone MSB (only the last row's cell set); a read of the first and of the last row; each LPU product (``hi``:
#:   x AND Q, ``lo``: x AND QB, ``none``: x = 0); the cross of the selected cell ``Q`` and the input bit ``x``.
#: * IPU (docs/design.md §5, input bit-level sparsity): an all-zero group (no beat, ``empty``), a group whose
#:   only set bit column is the MSB, a group with every bit column set; each bit column skipped (zero in a group
#:   that has a beat); back-pressure on ``o`` and a gap on ``i`` (stalled runs: :data:`STALL_ONLY`); the cross of
#:   each emitted beat's bit column and its ``last`` (the MSB column is always a group's last beat: ignored).
#: * LPU: each product and the cross of the input bit ``x`` and the cell bit ``Q`` (its whole truth table).
#: * CSD adder tree: the smallest, the largest and a zero sum (``-+n_comp * 2**7``, every compartment at
#:   digit -1 / +1 of the top dyadic block's high bit); the cross of a set product's dyadic block index, the
#:   digit's sign and which product (``hi``: the block's high bit, ``lo``: its low bit).
#: * accumulator: a column sum at each extreme (``-+n_comp * 2**7``); the shift of each input bit column, from
#:   0 to the MSB column ``in_bits - 1`` (the largest shift, subtracted when signed), crossed with ``signed``;
#:   each filter width ``phi`` (columns of a slot, 1..``phi_max``) crossed with ``signed``; an unused column;
#:   a step after a gap in ``valid``.
#: * sparse allocation switch: an empty mask (no beat, ``empty``), a full one, one whose only kept input is the
#:   last; back-pressure on ``o`` and a gap on ``i`` (stalled runs: :data:`STALL_ONLY`); the cross of a beat's
#:   filled lanes (1..``lanes``, every lane count delivered) and ``last`` (a beat before the last is full:
#:   fewer lanes without ``last`` are ignored, and all of them when ``window <= lanes``: one beat a window).
BLOCK_REQUIRED = {
    "dbmu": {
        "dbmu.cells": ["all_zero", "all_one", "lone_msb"],
        "dbmu.row": ["first", "last"],
        "dbmu.product": ["hi", "lo", "none"],
        "dbmu.q*x": Cross([0, 1], [0, 1]),
    },
    "ipu": {
        "ipu.group": ["all_zero", "lone_msb", "all_columns"],
        "ipu.skip": "bit columns",
        "ipu.stream": ["o_backpressure", "i_stall"],
        "ipu.column*last": "bit columns x last",
    },
    "lpu": {
        "lpu.product": ["hi", "lo", "none"],
        "lpu.x*q": Cross([0, 1], [0, 1]),
    },
    "adder_tree": {
        "adder_tree.sum": ["min", "max", "zero"],
        "adder_tree.idx*sign*product": Cross(range(4), [0, 1], ["hi", "lo"]),
    },
    "accumulator": {
        "accumulator.col_sum": ["min", "max"],
        "accumulator.shift*signed": "bit columns x signed",
        "accumulator.phi*signed": "phi 1..phi_max x signed",
        "accumulator.column": ["unused"],
        "accumulator.valid": ["gap"],
    },
    "switch": {
        "switch.mask": ["empty", "full", "lone_last"],
        "switch.stream": ["o_backpressure", "i_stall"],
        "switch.lanes*last": "lane counts x last",
    },
}


class _BlockCoverage:
    """The coverpoints of one building block (:data:`BLOCK_REQUIRED` ``[block]``, with ``derived``: set name ->
    its bins or :class:`Cross`); :attr:`required` holds every point's bins by name (a cross's as ``"a x b"``)."""

    BLOCK = ""

    def __init__(self, prefix: str, derived: dict):
        self.prefix = prefix
        spec = {p: derived[b] if isinstance(b, str) else b for p, b in BLOCK_REQUIRED[self.BLOCK].items()}
        crosses = {p: b for p, b in spec.items() if isinstance(b, Cross)}
        self.required = {p: [bin_name(t) for t in b.bins()] if p in crosses else list(b) for p, b in spec.items()}
        self._points = _cover_points(prefix, {p: b for p, b in self.required.items() if p not in crosses},
                                     crosses=crosses)

    def sample(self, point: str, *values) -> None:
        """Sample ``values`` (one, or one per dimension of a cross) on coverpoint ``point``."""
        self._points[point](*values)

    def report(self) -> dict:
        return _report(self.prefix, self.required)


def _bit_kinds(bits, *, none: str, every: str, lone_last: str) -> list[str]:
    """The bins a bit vector hits (element 0 first), named by the caller: ``none`` set, ``every`` one set, and
    ``lone_last`` when only the last is set (a vector of one set bit hits ``every`` and ``lone_last``)."""
    b = [int(v) for v in bits]
    kinds = [none] if not any(b) else [every] if all(b) else []
    return kinds + ([lone_last] if b[-1] and not any(b[:-1]) else [])


class DBMUCoverage(_BlockCoverage):
    """The DBMU's coverpoints (:data:`BLOCK_REQUIRED` ``["dbmu"]``), sampled by ``verif.test_dbmu`` from each
    column of cells it wrote (:meth:`cells`) and each read it checked (:meth:`read`: row, input bit, the cell and
    the products the DUT gave)."""

    BLOCK = "dbmu"

    def __init__(self, *, n_row: int, prefix: str = "dbmu"):
        if isinstance(n_row, bool) or not isinstance(n_row, int) or n_row < 1:
            raise ValueError(f"n_row: must be a positive integer, got {n_row!r}")
        self.n_row = n_row
        super().__init__(prefix, {})

    def cells(self, cells) -> None:
        """The column's cell bits Q (row 0 first) after a write pass."""
        for kind in _bit_kinds(cells, none="all_zero", every="all_one", lone_last="lone_msb"):
            self.sample("dbmu.cells", kind)

    def read(self, row: int, x: int, q: int, hi: int, lo: int) -> None:
        """A read of ``row`` with input bit ``x``: the selected cell ``q`` and the products ``hi``, ``lo``."""
        if row == 0:
            self.sample("dbmu.row", "first")
        if row == self.n_row - 1:
            self.sample("dbmu.row", "last")
        self.sample("dbmu.product", "hi" if hi else "lo" if lo else "none")
        self.sample("dbmu.q*x", int(q), int(x))


class IPUCoverage(_BlockCoverage):
    """The IPU's coverpoints (:data:`BLOCK_REQUIRED` ``["ipu"]``), sampled by ``verif.test_ipu`` from each group
    it took (:meth:`group`), each beat it gave (:meth:`beat`) and the stream agents' records (:meth:`stream`)."""

    BLOCK = "ipu"

    def __init__(self, *, in_bits: int, prefix: str = "ipu"):
        if isinstance(in_bits, bool) or not isinstance(in_bits, int) or in_bits < 2:
            raise ValueError(f"in_bits: must be an integer >= 2, got {in_bits!r}")
        self.in_bits = in_bits
        cols = list(range(in_bits))
        super().__init__(prefix, {"bit columns": cols,
                                  "bit columns x last": Cross(cols, [0, 1], ignore=[(in_bits - 1, 0)])})

    def group(self, group) -> None:
        """A group of inputs the IPU took (bit patterns): its kind and the bit columns it skips."""
        ored = 0
        for v in group:
            ored |= int(v)
        top = 1 << (self.in_bits - 1)
        if ored == 0:
            self.sample("ipu.group", "all_zero")
            return
        if ored == top:
            self.sample("ipu.group", "lone_msb")
        if ored == (top << 1) - 1:
            self.sample("ipu.group", "all_columns")
        for b in range(self.in_bits):
            if not (ored >> b) & 1:
                self.sample("ipu.skip", b)

    def beat(self, column: int, last: int) -> None:
        """An output beat: its bit column ``b`` and ``last``."""
        self.sample("ipu.column*last", int(column), int(last))

    def stream(self, source, sink) -> None:
        """The ``i`` source's and ``o`` sink's records: a gap before an input beat, an output held."""
        if any(int(g) > 0 for g in source.gaps):
            self.sample("ipu.stream", "i_stall")
        if sink.held:
            self.sample("ipu.stream", "o_backpressure")


class LPUCoverage(_BlockCoverage):
    """The LPU's coverpoints (:data:`BLOCK_REQUIRED` ``["lpu"]``), sampled by ``verif.test_lpu`` from each
    input pair it drove and the products the DUT gave (:meth:`products`)."""

    BLOCK = "lpu"

    def __init__(self, *, prefix: str = "lpu"):
        super().__init__(prefix, {})

    def products(self, x: int, q: int, hi: int, lo: int) -> None:
        self.sample("lpu.product", "hi" if hi else "lo" if lo else "none")
        self.sample("lpu.x*q", int(x), int(q))


class AdderTreeCoverage(_BlockCoverage):
    """The CSD adder tree's coverpoints (:data:`BLOCK_REQUIRED` ``["adder_tree"]``), sampled by
    ``verif.test_adder_tree`` from each step it drove and the sum the DUT gave (:meth:`step`)."""

    BLOCK = "adder_tree"

    def __init__(self, *, n_comp: int, prefix: str = "adder_tree"):
        if isinstance(n_comp, bool) or not isinstance(n_comp, int) or n_comp < 1:
            raise ValueError(f"n_comp: must be a positive integer, got {n_comp!r}")
        self.n_comp = n_comp
        super().__init__(prefix, {})

    def step(self, hi, lo, idx, sign, total: int) -> None:
        """One step: per compartment the products ``hi``, ``lo``, block index ``idx`` and ``sign``; the sum."""
        from dbpim.model.spec import TERM_MAX
        lim = self.n_comp * TERM_MAX
        if total in (-lim, lim, 0):
            self.sample("adder_tree.sum", {-lim: "min", lim: "max", 0: "zero"}[int(total)])
        for h, l, i, sg in zip(hi, lo, idx, sign):
            if h or l:
                self.sample("adder_tree.idx*sign*product", int(i), int(sg), "hi" if h else "lo")


class AccumulatorCoverage(_BlockCoverage):
    """The shift-and-add accumulator's coverpoints (:data:`BLOCK_REQUIRED` ``["accumulator"]``), sampled by
    ``verif.test_accumulator`` from each vector it ran (:meth:`vector`: the column map, the steps, ``signed``,
    whether a gap in ``valid`` came between its steps)."""

    BLOCK = "accumulator"

    def __init__(self, *, macro, prefix: str = "accumulator"):
        from dbpim.model.config import MacroConfig
        if not isinstance(macro, MacroConfig):
            raise TypeError(f"macro: must be a MacroConfig, got {type(macro).__name__}")
        self.mc = macro
        super().__init__(prefix, {"bit columns x signed": Cross(range(macro.in_bits), [0, 1]),
                                  "phi 1..phi_max x signed": Cross(range(1, macro.phi_max + 1), [0, 1])})

    def vector(self, col_sums, bits, col_filter, signed: bool, gap: bool = False) -> None:
        """A vector: column sums (T, n_col), bit column of each step (T,), the column map (slot or -1)."""
        from dbpim.model.spec import TERM_MAX
        lim = self.mc.n_comp * TERM_MAX
        cf = [int(s) for s in col_filter]
        used = [j for j, s in enumerate(cf) if s >= 0]
        cs = np.asarray(col_sums, np.int64)[:, used] if used else np.zeros((len(bits), 0), np.int64)
        if (cs == -lim).any():
            self.sample("accumulator.col_sum", "min")
        if (cs == lim).any():
            self.sample("accumulator.col_sum", "max")
        for b in sorted({int(b) for b in bits}):
            self.sample("accumulator.shift*signed", b, int(signed))
        for s in sorted(set(cf) - {-1}):
            self.sample("accumulator.phi*signed", cf.count(s), int(signed))
        if len(used) < len(cf):
            self.sample("accumulator.column", "unused")
        if gap:
            self.sample("accumulator.valid", "gap")


class SwitchCoverage(_BlockCoverage):
    """The sparse allocation switch's coverpoints (:data:`BLOCK_REQUIRED` ``["switch"]``), sampled by
    ``verif.test_switch`` from each window's mask (:meth:`mask`), each beat it gave (:meth:`beat`) and the
    stream agents' records (:meth:`stream`)."""

    BLOCK = "switch"

    def __init__(self, *, window: int, lanes: int, prefix: str = "switch"):
        for name, v in (("window", window), ("lanes", lanes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        self.window, self.lanes = window, lanes
        counts = range(1, lanes + 1)
        # a beat before the last is full; a window of at most ``lanes`` inputs has one beat, always the last
        ignore = [(k, 0) for k in counts if k < lanes or window <= lanes]
        super().__init__(prefix, {"lane counts x last": Cross(counts, [0, 1], ignore=ignore)})

    def mask(self, mask) -> None:
        for kind in _bit_kinds(mask, none="empty", every="full", lone_last="lone_last"):
            self.sample("switch.mask", kind)

    def beat(self, lane_en: int, last: int) -> None:
        """An output beat: its ``lane_en`` bits and ``last``."""
        self.sample("switch.lanes*last", bin(int(lane_en)).count("1"), int(last))

    def stream(self, source, sink) -> None:
        if any(int(g) > 0 for g in source.gaps):
            self.sample("switch.stream", "i_stall")
        if sink.held:
            self.sample("switch.stream", "o_backpressure")
