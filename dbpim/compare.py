"""``dbpim compare``: the ReRAM bit-sparsity schemes next to DB-PIM on compiled networks.

    dbpim compare --artifact DIR [DIR ...] [--hw paper] [--finetune-epochs E] [--no-accuracy] --out DIR

Prints one table (:func:`sim_bench.compare.format_table`) and writes
``compare.csv``, ``compare.json`` and ``speedup.png`` into ``--out`` through
:func:`model.outdir.output_dir`. The cost figures need only the artifact; the
accuracy after each transform needs the trained network, which an artifact
does not hold: when the artifact sits in a ``dbpim compile`` folder (its
``report.json`` next to it), the flow is re-run with the report's settings
into a temporary folder, the re-trained network's integer weights are checked
equal to the artifact's, and, starting from the same weights as the cost rows
(:func:`sim_bench.compare.reram_weights`), each scheme is fine-tuned under its
own weight constraint (:func:`model.torch.project.projected_finetune`) and
evaluated on the test set; its cost row then counts the fine-tuned weights.
Otherwise, or with ``--no-accuracy``, the accuracy column says why it is
empty and the rows count the transformed start weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from dbpim.model.outdir import check_output, output_dir
from dbpim.model import reram as model_reram
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN
from dbpim.sim_bench import compare as cmp
from dbpim.sim_bench import reram
from dbpim.sim_bench.report import BenchError, check_macro

__all__ = ["run_compare", "scheme_accuracies"]

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


def _projection(scheme: str, w: np.ndarray, groups: int, cfg: reram.ReramConfig):
    """The projection of one QLayer (``u = W / scale``, K x N) onto ``scheme``'s constraint, per conv group.

    SME and ERA-BS: the transform of ``rint(clip(u))``. Sharing: the
    clustering of the start weights ``w`` fixes the assignments; each shared
    block is then the mean of its members in ``rint(clip(u))``
    (:func:`model.reram.share_project`), so that before any training the
    projection equals the clustering's own weights.
    """
    if scheme == "sharing":
        labels = [model_reram.ou_share(p, cfg.ou_rows, cfg.share_ratio, cfg.seed).labels
                  for p in _group_splits(np.asarray(w, np.int64), groups)]

        def project(u):
            return np.concatenate([model_reram.share_project(p, lab, cfg.ou_rows)
                                   for p, lab in zip(_group_splits(_int8(u), groups), labels)], axis=1)
    else:
        def project(u):
            return _transform_qlayer(_int8(u), groups, scheme, cfg)
    return project


def _int8(u: np.ndarray) -> np.ndarray:
    """The int8 values nearest to ``u`` (what every projection starts from)."""
    return np.rint(np.clip(u, WEIGHT_MIN, WEIGHT_MAX)).astype(np.int64)


def _start_weights(q, from_float: bool):
    """A QLayer's (int8 K x N, scale (N,)) the ReRAM schemes start from (as :func:`sim_bench.compare.reram_weights`)."""
    if from_float:
        from dbpim.model.torch.export import _w_float
        return model_reram.int8_weights(_w_float(q))
    return q.w_int.numpy().astype(np.int64), q.w_scale.numpy().copy()


def _record_slots(art, qs) -> list | None:
    """For each mapped record of ``art``, the (QLayer index, conv group) holding the same int8 weights.

    None when the two sets of weights differ (the re-run did not reproduce the
    artifact). A module called twice gives two records of one QLayer.
    """
    ours: dict = {}
    for i, (_, q) in enumerate(qs):
        for j, p in enumerate(_group_splits(q.w_int.numpy().astype(np.int8), q.groups)):
            ours.setdefault(_digest(p), []).append((i, j))
    slots, seen = [], {}
    for r in art.mapped_layers():
        key = _digest(r.w)
        if key not in ours:
            return None
        slots.append(ours[key][seen.get(key, 0) % len(ours[key])])
        seen[key] = seen.get(key, 0) + 1
    return slots if set(seen) == set(ours) else None


#: training samples the ERA-BS activation-pruning threshold is calibrated on
CALIBRATION_SAMPLES = 512


def act_prune_candidates(cfg: reram.ReramConfig) -> list[int]:
    """Thresholds the calibration tries, ascending: powers of two up to ``cfg.act_prune``, and it."""
    return sorted({t for t in (1 << i for i in range(8)) if t <= cfg.act_prune} | {cfg.act_prune} - {0})


def _calibrate_act_prune(net, starts, data, cfg: reram.ReramConfig) -> int:
    """ERA-BS's activation-pruning threshold for this network: the largest candidate (ascending, stopping
    at the first that fails) whose accuracy on the first training samples is within
    ``cfg.act_prune_drop`` of no pruning (0 when none is).

    ``starts`` are the dense start weights (their identity projection): the
    pruning is judged on the trained network, not on ERA-BS's weights before
    their fine-tune, which may have collapsed to chance (nothing to lose)."""
    from dbpim.model.torch.project import crossbar_pruned_op, projected_finetune
    from dbpim.model.torch.train import evaluate
    x, y = data.x_train[:CALIBRATION_SAMPLES], data.y_train[:CALIBRATION_SAMPLES]

    def accuracy(t):
        op = crossbar_pruned_op(cfg.ou_rows, t) if t else None
        return evaluate(projected_finetune(net, starts, x, y, epochs=0, lr=1.0, op=op)[0], x, y)
    base, best = accuracy(0), 0
    for t in act_prune_candidates(cfg):
        if accuracy(t) < base - cfg.act_prune_drop:
            break
        best = t
    return best


def _evaluate_hook(art, cfg: reram.ReramConfig, schemes, tune: dict, result: dict):
    """The ``on_frozen`` hook of :func:`model.torch.flow.run_flow`.

    Fills ``result`` with ``reproduced``, ``dbpim`` (the compiled network's
    accuracy) and, per scheme, ``(accuracy, [int8 weights per mapped record])``
    after a projected fine-tune of ``tune["epochs"]`` epochs (none for dense);
    ERA-BS trains and is evaluated with its activation pruning
    (:func:`model.torch.project.crossbar_pruned_op`) at the threshold
    :func:`_calibrate_act_prune` picks, kept as ``result["act_prune"]``.
    """
    from_float = cmp.uses_float(art)

    def hook(net, data):
        from dbpim.model.torch.project import crossbar_pruned_op, projected_finetune
        from dbpim.model.torch.qat import qlayers
        from dbpim.model.torch.train import evaluate
        qs = qlayers(net)
        slots = _record_slots(art, qs)
        result["reproduced"] = slots is not None
        if slots is None:
            return
        result["dbpim"] = evaluate(net, data.x_test, data.y_test)
        start = [_start_weights(q, from_float) for _, q in qs]

        def starts_of(scheme):
            return [(w, scale, _projection(scheme, w, q.groups, cfg)) for (_, q), (w, scale) in zip(qs, start)]
        for k, s in enumerate(schemes):
            starts = starts_of(s)
            ep = 0 if s == "dense" else tune["epochs"]
            op = None
            if s == "era_bs":
                result["act_prune"] = _calibrate_act_prune(net, starts_of("dense"), data, cfg)
                op = crossbar_pruned_op(cfg.ou_rows, result["act_prune"]) if result["act_prune"] else None
            ft, weights = projected_finetune(net, starts, data.x_train, data.y_train, epochs=ep, lr=tune["lr"],
                                             batch_size=tune["batch_size"], seed=tune["seed"] + k, op=op)
            per_record = [_group_splits(weights[i], qs[i][1].groups)[j] for i, j in slots]
            result[s] = (evaluate(ft, data.x_test, data.y_test), per_record)
    return hook


def _flow_settings(rep: dict) -> dict:
    """The :func:`model.torch.flow.run_flow` keywords a ``dbpim compile`` report.json records."""
    ep = rep["epochs"]
    kw = dict(model=rep["network"], data=rep["data"], sparsity=float(rep["sparsity"]),
              seed=int(rep["seed"]), epochs=ep["float"], finetune_epochs=ep["finetune"], qat_epochs=ep["qat"],
              phi_max=int(rep["phi_max"]), phi_min=int(rep["phi_min"]), width=float(rep["width"]),
              n_train=int(rep["n_train"]), n_test=int(rep["n_test"]), threads=int(rep.get("threads", 2)))
    if isinstance(rep.get("lr"), dict):  # recorded since dbpim compare exists
        kw.update(lr=float(rep["lr"]["float"]), finetune_lr=float(rep["lr"]["finetune"]),
                  qat_lr=float(rep["lr"]["qat"]), batch_size=int(rep["batch_size"]))
    return kw


def scheme_accuracies(art, hw, cfg: reram.ReramConfig, schemes=reram.SCHEMES,
                      finetune_epochs: float | None = None) -> tuple[dict, dict, int]:
    """Test accuracy with each scheme's weights, after a short fine-tune under the scheme's constraint.

    Re-runs the ``dbpim compile`` flow recorded in the ``report.json`` next to
    the artifact ``art`` (same settings, on ``hw``, temporary folder); the results are taken only
    if the re-trained integer weights equal the artifact's. Each scheme (not
    dense) is then fine-tuned for ``finetune_epochs`` epochs (default: the
    flow's QAT epochs, at its QAT learning rate; 0: no fine-tune) with its
    projection in the forward pass (:func:`model.torch.project.projected_finetune`).

    Returns
    -------
    accuracy : dict
        ``{scheme or "dbpim": (fraction or None, note)}``.
    weights : dict
        ``{scheme: [int8 K x N per mapped record]}``: the weights the accuracy
        was measured on (empty when not evaluated).
    act_prune : int
        ERA-BS's calibrated activation-pruning threshold (0: no pruning, also
        when nothing was evaluated).
    """
    rep_path = Path(str(art.path)).resolve().parent / "report.json"
    every = ("dense",) + tuple(s for s in schemes if s != "dense") + ("dbpim",)

    def none(why):
        return {s: (None, why) for s in every}, {}, 0
    try:
        rep = json.loads(rep_path.read_text())
        kw = _flow_settings(rep)
    except (OSError, ValueError, KeyError, TypeError):
        return none(f"not evaluated: no readable dbpim compile report.json next to the artifact ({rep_path})")
    ep = float(kw["qat_epochs"]) if finetune_epochs is None else float(finetune_epochs)
    from dbpim.model.torch.flow import FlowError, FlowOptions, learning_rates, run_flow
    model, data = kw.pop("model"), kw.pop("data")
    result: dict = {}
    try:
        opts = FlowOptions(compare=False, plots=False, progress=False, **kw)
        lr = learning_rates(opts.lr, opts.finetune_lr, opts.qat_lr)[2]
        tune = dict(epochs=ep, lr=lr, batch_size=opts.batch_size, seed=opts.seed + 3)
        with tempfile.TemporaryDirectory(prefix="dbpim-compare-") as tmp:
            run_flow(model, data, hw, opts, out=Path(tmp) / "flow",
                     on_frozen=_evaluate_hook(art, cfg, every[:-1], tune, result))
    except FlowError as e:
        return none(f"not evaluated: re-running the flow failed ({str(e).splitlines()[0]})")
    if not result.get("reproduced"):
        return none("not evaluated: the re-run flow did not reproduce the artifact's weights")
    start = "plain int8 of w_float" if cmp.uses_float(art) else "the artifact's int8 weights"
    tuned = (f"{start}, {ep:g} epochs of projected fine-tune (STE, lr {tune['lr']:g})" if ep > 0
             else f"{start}, {NO_FINETUNE}")
    acc = {s: (result[s][0], f"{start}, untransformed" if s == "dense" else tuned) for s in every[:-1]}
    acc["dbpim"] = (result["dbpim"], "as compiled (FTA-QAT)")
    t = result.get("act_prune", 0)
    if "era_bs" in acc:
        acc["era_bs"] = (acc["era_bs"][0], acc["era_bs"][1] + (
            f"; activations pruned where a segment's |x| <= {t} (calibrated)" if t else
            "; no activation pruning (no calibrated threshold kept the accuracy)"))
    return acc, {s: result[s][1] for s in every[:-1] if s != "dense"}, t


def run_compare(arts, hw, out="build/compare", accuracy: bool = True, plots: bool = True,
                cfg: reram.ReramConfig | None = None, finetune_epochs: float | None = None, batch: int = 1) -> list:
    """Compare every loaded artifact on ``hw`` (an HwConfig); print nothing; return the table rows (also in ``out``).

    With ``accuracy``, each scheme is fine-tuned (:func:`scheme_accuracies`)
    and its ReRAM row counts the fine-tuned weights it was evaluated on, ERA-BS
    its activation pruning at the network's calibrated threshold; without,
    ERA-BS prunes no activation (``act_prune`` 0: nothing to calibrate on).
    The DB-PIM rows run at ``batch`` samples per loaded tile (``model.limits.BATCH``).

    Raises
    ------
    BenchError
        No artifact, a configuration whose macro is not an artifact's, or a bad
        ``finetune_epochs`` or ``batch`` (one line naming the field).
    OutputError
        An ``out`` that cannot be written without losing data (one line).
    """
    from dbpim.model import limits
    if not arts:
        raise BenchError("artifacts: give at least one artifact")
    if finetune_epochs is not None:
        finetune_epochs = limits.EPOCHS.check("finetune_epochs", finetune_epochs, exc=BenchError)
    batch = limits.BATCH.check("batch", batch, BenchError)
    cfg = cfg or reram.ReramConfig()
    for art in arts:
        check_macro(art, hw)
    inputs = [str(a.path) for a in arts if a.path] + ([str(hw.path)] if hw.path else [])
    check_output(out, COMMAND, inputs)  # refuse before the long part
    rows = []
    for art in arts:
        acc, weights, act_prune = scheme_accuracies(art, hw, cfg, finetune_epochs=finetune_epochs) if accuracy \
            else ({s: (None, "not evaluated (--no-accuracy)") for s in reram.SCHEMES + ("dbpim",)}, {}, 0)
        rows += cmp.compare_network(art, hw, dataclasses.replace(cfg, act_prune=act_prune), acc, weights, batch)
    with output_dir(out, COMMAND, inputs) as tmp:
        cmp.write_outputs(rows, tmp, cfg, plots=plots)
    return rows
