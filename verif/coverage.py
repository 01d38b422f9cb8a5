"""Functional coverage of the PIM core regression (cocotb-coverage), sampled from what the DUT did.

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

__all__ = ["REQUIRED", "MACRO_REQUIRED", "REPORTED", "STAGES", "CORE_STALL_STAGES", "CONTROLLER_STATES",
           "required_bins", "descriptor_extremes", "CoreCoverage", "MacroCoverage", "missing", "report_table",
           "write_report"]

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
        from cocotb_coverage.coverage import CoverPoint
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
        self._points = {}
        for point, bins in self.required.items():
            @CoverPoint(f"{prefix}.{point}", xf=lambda v: v, bins=list(bins) + REPORTED.get(point, []))
            def sample(v):
                pass
            self._points[point] = sample
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
        from cocotb_coverage.coverage import coverage_db
        return {p: {str(b): int(h) for b, h in coverage_db[f"{self.prefix}.{p}"].detailed_coverage.items()}
                for p in self.required}


def missing(report: dict, required: dict) -> list[str]:
    """``point: bin`` of every required bin the report does not show hit (a point absent counts as unhit)."""
    return [f"{p}: {b}" for p, bins in required.items() for b in bins
            if report.get(p, {}).get(str(b), 0) < 1]


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
        from cocotb_coverage.coverage import CoverPoint
        from dbpim.model.config import MacroConfig
        if not isinstance(macro, MacroConfig):
            raise TypeError(f"macro: must be a MacroConfig, got {type(macro).__name__}")
        self.mc, self.prefix = macro, prefix
        self.required = {p: (list(range(1, macro.phi_max + 1)) if isinstance(b, str) else list(b))
                         for p, b in MACRO_REQUIRED.items()}
        self._points = {}
        for point, bins in self.required.items():
            @CoverPoint(f"{prefix}.{point}", xf=lambda v: v, bins=list(bins))
            def sample(v):
                pass
            self._points[point] = sample

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
        from cocotb_coverage.coverage import coverage_db
        return {p: {str(b): int(h) for b, h in coverage_db[f"{self.prefix}.{p}"].detailed_coverage.items()}
                for p in self.required}
