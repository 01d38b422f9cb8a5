"""Lint the generated Verilog with ``verilator --lint-only -Wall``.

Usage: ``python -m hw.lint <dir>`` (``make lint``). Every ``dbpim_*.v`` file is
linted on its own with its file name as top module; any warning that is not
waived below fails the run (exit status 1).

Waivers: each is a warning category that Amaranth's Yosys back end produces by
construction and that does not indicate a design bug. Everything else
(MULTIDRIVEN, LATCH, COMBDLY, UNOPTFLAT, UNDRIVEN, BLKSEQ, ...) fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hw.tools import verilator_env

__all__ = ["WAIVERS", "lint_file", "lint_dir", "main"]

WAIVERS = {
    # Yosys writes operands at their natural width and lets Verilog's context
    # rules extend/truncate them; Amaranth already fixed every width exactly.
    "WIDTHEXPAND": "Yosys relies on Verilog context width extension",
    "WIDTHTRUNC": "Yosys relies on Verilog context truncation (e.g. `!vec`, `x >> b` into 1 bit)",
    # Amaranth keeps named aliases of payload fields / array elements for
    # waveforms; they are read by nothing.
    "UNUSEDSIGNAL": "debug aliases of StructLayout fields and unused carry bits",
    # Registers carry their reset value as a declaration initialiser as well.
    "PROCASSINIT": "registers have both an initial value and a synchronous reset",
    # Decoders are written as a default assignment followed by a `casez` with
    # only the meaningful states; uncovered patterns keep the default.
    "CASEINCOMPLETE": "default assignment precedes each partial `casez`",
    # Submodules are emitted in the same file as `top.sub` modules.
    "DECLFILENAME": "submodules share the top's file",
}


def lint_file(path: Path) -> tuple[int, str]:
    """Lint one file; returns (exit status, Verilator's messages)."""
    exe = verilator_env()
    cmd = [exe, "--lint-only", "-Wall", "--top-module", path.stem]
    cmd += [f"-Wno-{w}" for w in WAIVERS]
    cmd.append(str(path))
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def lint_dir(directory) -> int:
    """Lint every ``dbpim_*.v`` in ``directory``; returns the number of failing files."""
    d = Path(directory)
    files = sorted(d.glob("dbpim_*.v"))
    if not files:
        print(f"hw.lint: {d}: no dbpim_*.v files (run `make verilog` first)", file=sys.stderr)
        return 1
    bad = 0
    for f in files:
        rc, msg = lint_file(f)
        print(f"{f}: {'ok' if rc == 0 else 'FAILED'}")
        if rc:
            bad += 1
            print(msg, file=sys.stderr)
    return bad


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m hw.lint <dir with generated Verilog>", file=sys.stderr)
        return 2
    return 1 if lint_dir(argv[0]) else 0


if __name__ == "__main__":
    sys.exit(main())
