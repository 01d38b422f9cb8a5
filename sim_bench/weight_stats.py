"""What the weights give the hardware: phi per filter and bit-level (CSD) sparsity per layer of an artifact.

Used by ``dbpim bench-paper`` (``weights.csv`` and the "Weights" section of
``summary.md`` / ``summary.json``) to put networks with real trained weights
next to the untrained (Kaiming-normal) ones:

* ``phi`` histogram: filters with phi_f = 0, 1, ..., phi_max (the FTA's
  digits per weight of each filter, ``compiled.phi``); a filter at phi = 1
  takes half the columns of one at phi = 2;
* ``nnz`` histogram of the int8 weights *before* FTA: the share of weights
  with 0, 1, ..., 4 non-zero CSD digits (``model.csd.nnz``), from the
  unpruned float weights ``w_float`` over the layer's quantization ``scale``
  (``round_half_even(clip(w_float / scale, -128, 127))``, the weights FTA
  sets phi from); absent without ``w_float``;
* bit-level sparsity: the share of zero CSD digits (8 per weight) of those
  int8 weights before FTA, and of the stored weights ``w`` after block
  pruning and FTA (pruned weights count as 8 zero digits).
"""

from __future__ import annotations

import numpy as np

from dbpim.model import csd
from dbpim.model.spec import N_BLOCKS, WEIGHT_MAX, WEIGHT_MIN

__all__ = ["layer_weight_stats", "network_weight_stats", "weight_stats_markdown", "NNZ_MAX"]

#: the most non-zero CSD digits of an int8 weight
NNZ_MAX = N_BLOCKS


def _int8_before_fta(rec) -> np.ndarray | None:
    if rec.w_float is None or rec.scale is None:
        return None
    u = np.asarray(rec.w_float, np.float64) / np.asarray(rec.scale, np.float64)[None, :]
    return np.rint(np.clip(u, WEIGHT_MIN, WEIGHT_MAX)).astype(np.int8)


def layer_weight_stats(rec, phi_max: int) -> dict:
    """Phi histogram, nnz histogram and zero-CSD-digit shares of one mapped layer record (a CSV row)."""
    c = rec.compiled
    phi = np.asarray(c.phi, np.int64)
    hist = np.bincount(phi, minlength=phi_max + 1)
    row = {"layer": rec.name, "K [rows]": int(c.K), "N [filters]": int(c.N)}
    for p in range(len(hist)):
        row[f"filters_phi{p} [filters]"] = int(hist[p])
    row["phi_mean [digits/weight]"] = float(phi.mean()) if phi.size else 0.0
    w0 = _int8_before_fta(rec)
    if w0 is not None:
        nz = csd.nnz(w0)
        counts = np.bincount(nz.ravel(), minlength=NNZ_MAX + 1)
        for v in range(NNZ_MAX + 1):
            row[f"weights_nnz{v} [%]"] = 100.0 * float(counts[v]) / nz.size
        row["zero_csd_digits_int8 [%]"] = 100.0 * (1.0 - float(nz.mean()) / csd.N_POS)
    else:
        for v in range(NNZ_MAX + 1):
            row[f"weights_nnz{v} [%]"] = ""
        row["zero_csd_digits_int8 [%]"] = ""
    row["zero_csd_digits_fta [%]"] = 100.0 * (1.0 - float(csd.nnz(rec.w).mean()) / csd.N_POS)
    row["signed_inputs"] = bool(rec.signed_input)
    return row


def network_weight_stats(art, phi_max: int) -> dict:
    """Whole-network figures of :func:`layer_weight_stats`: phi histogram over all filters, the shares
    weighted by weights, and the per-layer rows."""
    rows = [layer_weight_stats(r, phi_max) for r in art.mapped_layers()]
    hist = [sum(r[f"filters_phi{p} [filters]"] for r in rows) for p in range(phi_max + 1)]
    n_w = np.array([r["K [rows]"] * r["N [filters]"] for r in rows], np.float64)
    tot = float(n_w.sum()) or 1.0

    def wmean(key):
        v = [r[key] for r in rows]
        return float(np.dot(n_w, v) / tot) if v and all(x != "" for x in v) else None

    d = {"network": art.network, "filters_by_phi": hist,
         "filters_phi1 [%]": 100.0 * hist[1] / max(sum(hist), 1) if phi_max >= 1 else 0.0,
         "zero_csd_digits_int8 [%]": wmean("zero_csd_digits_int8 [%]"),
         "zero_csd_digits_fta [%]": wmean("zero_csd_digits_fta [%]"),
         "weights_by_nnz [%]": [wmean(f"weights_nnz{v} [%]") for v in range(NNZ_MAX + 1)],
         "layers": rows}
    if d["weights_by_nnz [%]"][0] is None:
        d["weights_by_nnz [%]"] = None
    return d


def _n(v, fmt=".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def weight_stats_markdown(stats: list[dict], labels: dict, fig11: list[dict] | None = None) -> list[str]:
    """The "Weights" section: per network the phi histogram, the nnz histogram and zero CSD digits, and,
    where Fig. 11 rows exist, the speedup at each block sparsity."""
    if not stats:
        return []
    L = ["", "## Weights: phi per filter and bit-level sparsity (trained vs. untrained)", "",
         "phi = the FTA's CSD digits per weight of a filter (a phi = 1 filter takes half the columns of a "
         "phi = 2 one); nnz = non-zero CSD digits of the int8 weights before FTA; zero CSD digits = share of "
         "the 8 digit positions per weight that are zero, before FTA (int8) and after pruning + FTA (stored).", "",
         "| network | weights | filters at phi = 0 / 1 / 2 | weights with nnz 0 / 1 / 2 / 3 / 4 | "
         "zero CSD digits, int8 | zero CSD digits, pruned + FTA |", "|---|---|---|---|---|---|"]
    for s in stats:
        nnz = s["weights_by_nnz [%]"]
        L.append(f"| {s['network']} | {labels.get(s['network'], '')} | "
                 + " / ".join(str(v) for v in s["filters_by_phi"])
                 + f" ({_n(s['filters_phi1 [%]'])}% at phi = 1) | "
                 + ("n/a" if nnz is None else " / ".join(f"{v:.1f}%" for v in nnz))
                 + f" | {_n(s['zero_csd_digits_int8 [%]'])}% | {_n(s['zero_csd_digits_fta [%]'])}% |")
    rows = [r for r in (fig11 or []) if r["network"] in {s["network"] for s in stats}]
    if rows:
        sps = sorted({r["sparsity [fraction of blocks]"] for r in rows})
        L += ["", "Modelled speedup of the weight sparsity alone (Fig. 11 setting: value + bit level, input "
              "skipping off, std/pw-conv and FC layers, re-pruned from the float weights):", "",
              "| network | " + " | ".join(f"{100 * s:.0f}% blocks" for s in sps) + " |", "|---|" + "---|" * len(sps)]
        for name in dict.fromkeys(r["network"] for r in rows):
            by = {r["sparsity [fraction of blocks]"]: r["speedup [x]"] for r in rows if r["network"] == name}
            L.append(f"| {name} | " + " | ".join(f"{by[s]:.2f}x" if s in by else "n/a" for s in sps) + " |")
    L += ["", "Per layer: `weights.csv`.", ""]
    return L
