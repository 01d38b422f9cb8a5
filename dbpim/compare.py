"""``dbpim compare``: the ReRAM bit-sparsity schemes next to DB-PIM on compiled networks.

    dbpim compare --artifact DIR [DIR ...] [--hw paper] [--no-accuracy] --out DIR

Prints one table (:func:`sim_bench.compare.format_table`) and writes
``compare.csv``, ``compare.json`` and ``speedup.png`` into ``--out`` through
:func:`model.outdir.output_dir`. The cost figures need only the artifact; the
accuracy after each transform needs the trained network, which an artifact
does not hold: when the artifact sits in a ``dbpim compile`` folder (its
``report.json`` next to it), the flow is re-run with the report's settings
into a temporary folder, the re-trained network's integer weights are checked
equal to the artifact's, and the network is evaluated on the test set with
each scheme's transformed weights (no fine-tune), starting from the same
weights as the cost rows (:func:`sim_bench.compare.reram_weights`). Otherwise, or with
``--no-accuracy``, the accuracy column says why it is empty.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from model.outdir import OUT_HELP, OutputError, check_output, output_dir
from model import reram as model_reram
from sim_bench import compare as cmp
from sim_bench import reram
from sim_bench.report import BenchError, load_inputs

__all__ = ["main", "run_compare", "scheme_accuracies"]

COMMAND = "dbpim compare"
NO_FINETUNE = "no fine-tune"


def _digest(w: np.ndarray) -> tuple:
    a = np.ascontiguousarray(np.asarray(w, np.int8))
    return a.shape, hashlib.sha1(a.tobytes()).hexdigest()


def _group_splits(w: np.ndarray, groups: int) -> list[np.ndarray]:
    """A QLayer's K x N integer weights as its artifact records hold them (one per conv group)."""
    ng = w.shape[1] // groups
    return [w[:, j * ng:(j + 1) * ng] for j in range(groups)]


def _transform_qlayer(w: np.ndarray, groups: int, scheme: str, cfg: reram.ReramConfig) -> np.ndarray:
    return np.concatenate([reram.transformed_weights(p, scheme, cfg) for p in _group_splits(w, groups)], axis=1)


def _start_weights(q, from_float: bool):
    """A QLayer's (int8 K x N, scale (N,)) the ReRAM schemes start from (as :func:`sim_bench.compare.reram_weights`)."""
    if from_float:
        from model.torch.export import _w_float
        return model_reram.int8_weights(_w_float(q))
    return q.w_int.numpy().astype(np.int64), q.w_scale.numpy().copy()


def _evaluate_hook(art, cfg: reram.ReramConfig, schemes, result: dict):
    """The ``on_frozen`` hook of :func:`model.torch.flow.run_flow`: fills ``result`` with accuracies."""
    from_float = cmp.uses_float(art)

    def hook(net, x, y):
        from model.torch.qat import qlayers
        from model.torch.train import evaluate
        import torch
        qs = qlayers(net)
        orig = [q.w_int.clone() for _, q in qs]
        orig_scale = [q.w_scale.clone() for _, q in qs]
        ours = sorted(_digest(p) for (_, q), w in zip(qs, orig)
                      for p in _group_splits(w.numpy().astype(np.int8), q.groups))
        theirs = sorted(_digest(r.w) for r in art.mapped_layers())
        result["reproduced"] = ours == theirs
        if not result["reproduced"]:
            return
        result["dbpim"] = evaluate(net, x, y)
        start = [_start_weights(q, from_float) for _, q in qs]
        try:
            for s in schemes:
                for (_, q), (w, scale) in zip(qs, start):
                    t = _transform_qlayer(np.asarray(w, np.int64), q.groups, s, cfg)
                    q.w_int = torch.from_numpy(t.astype(np.float32))
                    q.w_scale.copy_(torch.from_numpy(np.asarray(scale, np.float32)))
                result[s] = evaluate(net, x, y)
        finally:
            for (_, q), w, sc in zip(qs, orig, orig_scale):
                q.w_int = w
                q.w_scale.copy_(sc)
    return hook


def scheme_accuracies(artifact, art, cfg: reram.ReramConfig, schemes=reram.SCHEMES) -> dict:
    """Test accuracy of the network with each scheme's weights: ``{scheme: (fraction or None, note)}``.

    Re-runs the ``dbpim compile`` flow recorded in the ``report.json`` next to
    ``artifact`` (same settings, temporary folder); the accuracies are taken
    only if the re-trained integer weights equal the artifact's.
    """
    rep_path = Path(artifact).resolve().parent / "report.json"
    every = ("dense",) + tuple(s for s in schemes if s != "dense") + ("dbpim",)

    def none(why):
        return {s: (None, why) for s in every}
    try:
        rep = json.loads(rep_path.read_text())
        ep = rep["epochs"]
        kw = dict(model=rep["network"], data=rep["data"], sparsity=float(rep["sparsity"]), hw=rep["hw"],
                  seed=int(rep["seed"]), epochs=ep["float"], finetune_epochs=ep["finetune"], qat_epochs=ep["qat"],
                  phi_max=int(rep["phi_max"]), phi_min=int(rep["phi_min"]), width=float(rep["width"]),
                  n_train=int(rep["n_train"]), n_test=int(rep["n_test"]), threads=int(rep.get("threads", 2)))
        if isinstance(rep.get("lr"), dict):  # recorded since dbpim compare exists
            kw.update(lr=float(rep["lr"]["float"]), finetune_lr=float(rep["lr"]["finetune"]),
                      qat_lr=float(rep["lr"]["qat"]), batch_size=int(rep["batch_size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return none(f"not evaluated: no readable dbpim compile report.json next to the artifact ({rep_path})")
    from model.torch.flow import FlowError, run_flow
    result: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="dbpim-compare-") as tmp:
            run_flow(out=Path(tmp) / "flow", compare=False, plots=False, progress=False,
                     on_frozen=_evaluate_hook(art, cfg, every[:-1], result), **kw)
    except FlowError as e:
        return none(f"not evaluated: re-running the flow failed ({str(e).splitlines()[0]})")
    if not result.get("reproduced"):
        return none("not evaluated: the re-run flow did not reproduce the artifact's weights")
    start = "plain int8 of w_float" if cmp.uses_float(art) else "the artifact's int8 weights"
    return {s: (result[s], "as compiled (FTA-QAT)" if s == "dbpim" else
                f"{start}, untransformed" if s == "dense" else f"{start}, {NO_FINETUNE}") for s in every}


def run_compare(artifacts, hw="paper", out="build/compare", accuracy: bool = True, plots: bool = True,
                cfg: reram.ReramConfig | None = None) -> list:
    """Compare every artifact; print nothing; return the table rows (also written to ``out``).

    Raises
    ------
    BenchError
        A bad artifact or hardware YAML (one line).
    OutputError
        An ``out`` that cannot be written without losing data (one line).
    """
    if not artifacts:
        raise BenchError("--artifact: give at least one artifact directory")
    cfg = cfg or reram.ReramConfig()
    loaded = [load_inputs(a, hw) for a in artifacts]
    inputs = [str(a) for a in artifacts] + [str(loaded[0][1].path)]
    check_output(out, COMMAND, inputs)  # refuse before the long part
    rows = []
    for a, (art, hwcfg) in zip(artifacts, loaded):
        acc = scheme_accuracies(a, art, cfg) if accuracy else {
            s: (None, "not evaluated (--no-accuracy)") for s in reram.SCHEMES + ("dbpim",)}
        rows += cmp.compare_network(art, hwcfg, cfg, acc)
    with output_dir(out, COMMAND, inputs) as tmp:
        cmp.write_outputs(rows, tmp, cfg, plots=plots)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dbpim compare", description=(
        "The ReRAM bit-sparsity schemes (SME/SoBS-X, ERA-BS, ReRAM-Sharing) on an ISAAC-like crossbar model, "
        "next to DB-PIM, on compiled artifacts: accuracy after each weight transform, weight storage, "
        "crossbars or macro tiles, ADC conversions or macro cycles, speedup and energy over each technology's "
        "own dense baseline. Writes compare.csv, compare.json and speedup.png into --out."))
    p.add_argument("--artifact", nargs="+", required=True, help="compiled artifact directories")
    p.add_argument("--hw", default="paper", help="hardware YAML or shipped name (default: paper)")
    p.add_argument("--out", default="build/compare", help=OUT_HELP + " (default: build/compare)")
    p.add_argument("--no-accuracy", action="store_true",
                   help="skip the accuracy column (it re-runs the compile flow of each artifact)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plot")
    a = p.parse_args(argv)
    try:
        rows = run_compare(a.artifact, a.hw, a.out, accuracy=not a.no_accuracy, plots=not a.no_plots)
    except (BenchError, OutputError) as e:
        print(f"dbpim compare: {e}", file=sys.stderr)
        return 2
    print(cmp.format_table(rows))
    print(f"comparison written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
