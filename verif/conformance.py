"""Replay a conformance set (``dbpim conformance``) on the RTL through the native Verilator harnesses.

Reads only the set's files, as another team's checker would: each macro case's
tiles and input vectors go to the macro harness (accumulators and cycles
compared with the expected ones), each core case's bus writes and input stream
to the core harness (result stream and ``CYCLES`` compared), each chip case's
images and buffers to the chip harness (:mod:`verif.native_chip`: ``ACT``,
``ACC`` after HALT and ``CYCLES`` compared). The golden model is not run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dbpim.model.compile import Tile
from dbpim.model.config import load_config
from dbpim.model.core import CoreParams
from dbpim.verif.native import _hex_rows, _parse_core, _run, build_native, run_macro_native

__all__ = ["replay"]


def _first(where: str, name: str, want, got, out: list[str]) -> None:
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape:
        out.append(f"{where}: {name} has shape {want.shape}, the RTL gives {got.shape}")
        return
    bad = np.argwhere(want != got)
    if len(bad):
        i = tuple(int(j) for j in bad[0])
        out.append(f"{where}: {name}[{', '.join(map(str, i))}] expected {want[i].item()}, the RTL gives "
                   f"{got[i].item()} ({len(bad)} mismatches)")


def _chip(where: str, a: dict, hw, out: list[str]) -> None:
    """One chip case on the native chip harness: images loaded once, per sample ACT and ACC, START, HALT."""
    from dbpim.model.chip import ChipProgram
    from dbpim.verif.native_chip import run_chip_native
    prog = ChipProgram(imem=a["imem"].astype(np.uint64), dmem=a["dmem"].astype(np.int64),
                       cmem=a["cmem"].astype(np.int64), wmem=a["wmem"].astype(np.int64),
                       act_words=int(a["act_in"].shape[1]), acc_words=int(a["acc_in"].shape[1]), input={}, output={},
                       macro=hw.macro, values={})
    A, C = prog.act_words, prog.acc_words
    run = run_chip_native(prog, hw, [{"ACT": (0, x), "ACC": (0, c)} for x, c in zip(a["act_in"], a["acc_in"])],
                          [("ACT", 0, A), ("ACC", 0, C)], limit=100 * int(a["cycles"].max()) + 100_000)
    for s in range(len(run.status)):
        if run.error(s) is not None:
            out.append(f"{where}: {run.error(s)}")
            return
    _first(where, "act", a["act"], np.stack([o[0] for o in run.outputs]), out)
    _first(where, "acc", a["acc"], np.stack([o[1] for o in run.outputs]), out)
    _first(where, "cycles", a["cycles"], run.cycles, out)


def replay(folder, kinds=("macro", "core", "chip")) -> list[str]:
    """Run the set in ``folder`` on the RTL (native harnesses); one line per disagreeing array (empty: it agrees).
    ``kinds``: the case kinds to run (the others are skipped)."""
    folder = Path(folder)
    man = json.loads((folder / "manifest.json").read_text())
    hw = load_config(folder / man["config_file"])
    psum = CoreParams.from_config(hw).psum_width
    out: list[str] = []
    for case in man["cases"]:
        if case["kind"] not in kinds:
            continue
        where = f"{case['kind']}/{case['name']}"
        with np.load(folder / case["file"], allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        if case["kind"] == "chip":
            _chip(where, a, hw, out)
            continue
        signed = bool(a["signed"])
        if case["kind"] == "macro":
            acc = np.zeros_like(a["acc"])
            cyc = np.zeros_like(a["cycles"])
            for i in range(len(a["meta"])):
                sel = np.nonzero(a["tile_of"] == i)[0]
                acc[sel], cyc[sel], _ = run_macro_native(Tile.from_arrays(a, index=i), a["x"][sel].astype(np.int64),
                                                         hw, signed)
            _first(where, "acc", a["acc"], acc, out)
            _first(where, "cycles", a["cycles"], cyc, out)
        else:
            exe, _ = build_native("core", hw)
            lines = ["reset 4", "stall 0.0 0.0 0"]
            for s in range(a["cycles"].size):
                w0, w1 = a["seg_writes"][s:s + 2]
                i0, i1 = a["seg_inputs"][s:s + 2]
                lines += [f"write {int(ad):x} {int(d):x}" for ad, d in a["bus_writes"][w0:w1]]
                lines += [f"window {w}" for w in _hex_rows(a["in_stream"][i0:i1])]
                lines.append(f"run {100_000 + 100 * int(i1 - i0) * hw.macro.n_row}")
            runs, _ = _parse_core(_run(exe, lines, "core"), psum, hw.core.result_lanes)
            if len(runs) != a["cycles"].size:
                out.append(f"{where}: {a['cycles'].size} STARTs, the RTL ran {len(runs)}")
                continue
            _first(where, "cycles", a["cycles"], [r.cycles for r in runs], out)
            _first(where, "out_stream", a["out_stream"], np.concatenate([r.beats for r in runs]), out)
    return out
