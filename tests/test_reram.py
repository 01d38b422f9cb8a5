"""ReRAM bit-sparsity schemes: the weight transforms (model/reram.py), the crossbar cost model
(sim_bench/reram.py), the comparison table (sim_bench/compare.py) and ``dbpim compare``."""

import json
import re

import numpy as np
import pytest

from dbpim.model import artifact, reram
from dbpim.model.config import load_config
from dbpim.model.outdir import MARKER
from dbpim.sim_bench import compare as cmp
from dbpim.sim_bench import reram as xb

ALL_INT8 = np.arange(-128, 128).reshape(-1, 1)


def _slices(v, cell_bits=2):
    return reram.nonzero_slices(np.abs(np.asarray(v, np.int64)), cell_bits)


def test_int8_weights_per_filter_scale(rng):
    wf = rng.normal(0, 1, (16, 5)).astype(np.float32)
    wf[:, 3] = 0.0
    w, s = reram.int8_weights(wf)
    assert w.dtype == np.int8 and np.all(np.abs(w).max(0)[[0, 1, 2, 4]] == 127) and np.all(w[:, 3] == 0)
    assert np.all(np.abs(w * s - wf) <= s / 2 + 1e-6)


# ----------------------------------------------------------------------------- SME


@pytest.mark.parametrize("max_slices", [1, 2, 3])
def test_sme_pattern_is_the_nearest_value_meeting_the_pattern(max_slices):
    got = reram.sme_pattern(ALL_INT8, max_slices).astype(np.int64)[:, 0]
    vals = np.arange(-128, 128)
    ok = vals[_slices(vals) <= max_slices]
    for w, g in zip(vals, got):
        assert _slices(g) <= max_slices
        assert abs(g - w) == np.abs(ok - w).min(), (w, g)
        assert np.sign(g) in (0, np.sign(w))
    keep = _slices(vals) <= max_slices
    np.testing.assert_array_equal(got[keep], vals[keep])  # already meeting the pattern: unchanged


def test_sme_squeeze_out_counts_on_known_zero_slices():
    cfg = xb.ReramConfig()
    w = np.zeros((256, 4), np.int8)
    w[:10] = 3  # only the lowest 2-bit slice of the positive part: one plane, 10 rows
    m = xb.map_sme(w, cfg)
    assert m.crossbars == 1  # 7 of the 8 (sign, slice) planes are all zero: squeezed out
    assert m.ous == 2 * 1  # ceil(10 / 8) row OUs x ceil(4 / 8) column OUs
    assert m.meta_bits == 10 * 8  # a row index (log2 256 bits) per kept row
    d = xb.map_dense(w, cfg)
    assert d.crossbars == 2 * 1 and d.ous == 32 * 4  # K = 256 rows, 4 filters x 2 signs x 4 slices
    w[200, 1] = -64  # slice 3 of the negative part, in the second crossbar row range
    m2 = xb.map_sme(w, cfg)
    assert m2.crossbars == 2 and m2.ous == 3


# ----------------------------------------------------------------------------- ERA-BS


def test_bit_flip_never_adds_one_bits_and_keeps_the_error_bound(rng):
    for bits in (3, 4, 5):
        m = np.arange(-(2 ** bits - 1), 2 ** bits)
        for tol in (0, 1, 2):
            f = reram.bit_flip(m, bits, tol)
            pop = np.vectorize(lambda v: bin(abs(int(v))).count("1"))
            assert np.all(pop(f) <= pop(m))
            assert np.all(np.abs(f - m) <= tol)
            assert np.all(np.abs(f) < 2 ** bits)
            if tol == 0:
                np.testing.assert_array_equal(f, m)
    assert reram.bit_flip(np.array([7]), 4, 1)[0] == 8  # 0111 -> 1000: one one bit
    assert reram.bit_flip(np.array([-15]), 4, 1)[0] == -14  # 1111 -> 1110 (16 needs a fifth bit)


def test_era_bs_error_bound_and_exponents(rng):
    w = rng.integers(-128, 128, (40, 6)).astype(np.int8)
    w[:8, 0] = rng.integers(-7, 8, 8)  # a segment that fits the mantissa: exponent 0
    for tol in (0, 1):
        e = reram.era_bs(w, ou_rows=8, mantissa_bits=4, flip_tol=tol)
        assert e.exponent.shape == (5, 6) and e.exponent[0, 0] == 0
        E = e.exponent[np.arange(40) // 8]
        err = np.abs(e.w.astype(np.int64) - w)
        assert np.all(err <= (tol + 1) * (1 << E))  # rounding/clipping < 2**E, flip <= tol * 2**E
        np.testing.assert_array_equal(e.w, e.mantissa * (1 << E))
        assert np.all(np.abs(e.mantissa) < 16)
    edge = np.array([[-128], [111]], np.int8)  # exponent 4; 111 -> mantissa 7: 8 (one 1 bit) would be 128
    e = reram.era_bs(edge, ou_rows=8, mantissa_bits=4, flip_tol=1)
    assert e.w[1, 0] == 96 and np.array_equal(e.w, e.mantissa * 16)  # 6 = 0110: fewest 1 bits that fit
    exact = reram.era_bs(w[:8, :1], 8, 4, 0)
    np.testing.assert_array_equal(exact.w, w[:8, :1])


# ----------------------------------------------------------------------------- ReRAM-Sharing


def test_ou_sharing_exact_when_blocks_repeat(rng):
    protos = rng.integers(-128, 128, (3, 8))
    pick = rng.integers(0, 3, (4, 6))  # 4 row blocks x 6 filters
    w = np.concatenate([protos[pick[b]].T for b in range(4)], axis=0).astype(np.int8)  # (32, 6)
    w[8:16, 2] = 0  # one all-zero block: pruned, not clustered
    s = reram.ou_share(w, ou_rows=8, share_ratio=2.0, seed=1)
    np.testing.assert_array_equal(s.w, w)
    assert (s.labels == -1).sum() == 1 and len(s.centroids) <= 3
    m = xb.map_sharing(w, xb.ReramConfig())
    assert m.ous == len(np.unique(s.labels[s.labels >= 0]))  # one OU (8 x 8 cells) per shared block
    assert m.ou_acts == 23  # every non-zero block position is still computed


def test_ou_sharing_clusters_to_k_blocks(rng):
    w = rng.integers(-128, 128, (64, 8)).astype(np.int8)
    s = reram.ou_share(w, ou_rows=8, share_ratio=4.0, seed=0)
    assert len(s.centroids) == 16 and len(np.unique(reram.ou_blocks(s.w, 8), axis=0)) <= 16
    again = reram.ou_share(w, ou_rows=8, share_ratio=4.0, seed=0)
    np.testing.assert_array_equal(s.w, again.w)  # fixed seed


def test_share_project_moves_each_shared_block_to_its_members_mean(rng):
    w = rng.integers(-100, 100, (24, 5)).astype(np.int8)
    w[8:16, 1] = 0  # a pruned block stays 0
    s = reram.ou_share(w, ou_rows=8, share_ratio=3.0, seed=2)
    np.testing.assert_array_equal(reram.share_project(w, s.labels, 8), s.w)  # on its own weights: ou_share's
    u = w.astype(np.float64)
    blocks = reram.ou_blocks(u, 8, np.float64)
    lab = s.labels
    u2 = u + rng.normal(0, 3, u.shape)
    got = reram.ou_blocks(reram.share_project(u2, lab, 8), 8)
    b2 = reram.ou_blocks(u2, 8, np.float64)
    for c in range(lab.max() + 1):
        want = np.clip(np.rint(b2[lab == c].mean(0)), -128, 127)
        assert np.all(got[lab == c] == want)  # every member takes the cluster mean
    assert np.all(got[lab == -1] == 0) and blocks[lab == -1].sum() == 0
    with pytest.raises(ValueError, match="labels"):
        reram.share_project(u, lab[:-1], 8)


def test_share_of_reads_the_sharing_back_and_maps_like_the_clustering(rng):
    w = rng.integers(-128, 128, (64, 8)).astype(np.int8)
    w[:8, :3] = 0
    cfg = xb.ReramConfig()
    s = reram.ou_share(w, cfg.ou_rows, cfg.share_ratio, cfg.seed)
    back = reram.share_of(s.w, cfg.ou_rows)
    assert len(back.centroids) == len(np.unique(s.labels[s.labels >= 0]))
    np.testing.assert_array_equal(back.labels >= 0, s.labels >= 0)
    np.testing.assert_array_equal(back.centroids[back.labels[back.labels >= 0]],
                                  s.centroids[s.labels[s.labels >= 0]])
    assert xb.map_layer(s.w, "sharing", cfg, transformed=True) == xb.map_sharing(w, cfg)


@pytest.mark.parametrize("scheme,kw", [("sme", {"sme_max_slices": 1}), ("sme", {}), ("era_bs", {}),
                                       ("era_bs", {"ou_rows": 4}), ("era_bs", {"mantissa_bits": 3})])
def test_transforms_are_projections(rng, scheme, kw):
    """A fine-tuned scheme's weights are mapped as they are: the transform must leave its output unchanged."""
    cfg = xb.ReramConfig(**kw)
    w = np.concatenate([rng.integers(-128, 128, (40, 6)), np.tile(ALL_INT8, (1, 2)).reshape(-1, 4)[:40]], 1)
    w[rng.random(w.shape) < 0.3] = 0
    t = xb.transformed_weights(w.astype(np.int8), scheme, cfg)
    np.testing.assert_array_equal(xb.transformed_weights(t, scheme, cfg), t)
    assert xb.map_layer(t, scheme, cfg, transformed=True) == xb.map_layer(w, scheme, cfg)


def test_map_layer_refuses_weights_a_scheme_would_change():
    cfg = xb.ReramConfig()
    w = np.full((8, 2), 0b1010101, np.int8)  # four non-zero 2-bit slices: outside the SME pattern
    with pytest.raises(ValueError, match="fixed point of the sme transform"):
        xb.map_layer(w, "sme", cfg, transformed=True)
    w2 = np.array([[1], [-2], [3], [7], [0], [13], [100], [-50]], np.int8)
    t = xb.transformed_weights(w2, "era_bs", xb.ReramConfig(flip_tol=2))
    if not np.array_equal(xb.transformed_weights(t, "era_bs", xb.ReramConfig(flip_tol=2)), t):
        with pytest.raises(ValueError, match="flip_tol <= 1"):
            xb.map_layer(t, "era_bs", xb.ReramConfig(flip_tol=2), transformed=True)


# ----------------------------------------------------------------------------- cost model


def test_cost_model_counts_on_a_tiny_layer():
    cfg = xb.ReramConfig()
    w = np.array([[1], [-2], [0], [5], [0], [0], [0], [0]], np.int8)  # K = 8, one filter
    d = xb.map_dense(w, cfg)
    assert (d.crossbars, d.ous, d.ou_acts, d.storage_bits) == (1, 1, 1.0, 8 * 8 * 2)
    c = xb.layer_cost(d, vectors=3, dense_crossbars=1, cfg=cfg)
    assert c["ou_activations"] == 3 * 8 and c["adc_conversions"] == 3 * 8 * 8 and c["ou_cycles"] == 24
    assert c["energy_pj"]["adc"] == pytest.approx(24 * 8 * cfg.adc_pj)
    assert cfg.adc_bits == 5  # 8 rows x 3 (2-bit cell) = 24 -> 5 bits
    bits = np.zeros((4, 8), np.uint8)  # every recorded input zero: ERA-BS skips every OU activation
    assert xb.map_era_bs(w, cfg, bits=bits).ou_acts == 0.0
    bits[0, 3] = 1  # one vector, one bit of 8 -> 1/32 of the (vector, bit) cycles active
    assert xb.map_era_bs(w, cfg, bits=bits).ou_acts == pytest.approx(1 / 32)
    with pytest.raises(ValueError, match="ou_rows"):
        xb.ReramConfig(ou_rows=0)


# ----------------------------------------------------------------------------- dbpim compare


@pytest.fixture(scope="module")
def small_art(tmp_path_factory, save_digits_artifact):
    return save_digits_artifact(tmp_path_factory.mktemp("art") / "art")


def test_compare_cli_table_and_outputs(small_art, tmp_path, capsys):
    from dbpim.cli import main
    out = tmp_path / "cmp"
    assert main(["compare", "--artifact", str(small_art), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for s in ("sme", "era_bs", "sharing", "dbpim"):
        assert s in text
    assert "no readable dbpim compile report.json" in text  # no trained network: accuracy says why
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [(r["technology"], r["scheme"]) for r in rows] == [
        ("ReRAM", "dense"), ("ReRAM", "sme"), ("ReRAM", "era_bs"), ("ReRAM", "sharing"),
        ("DB-PIM", "dense"), ("DB-PIM", "dbpim")]
    assert rows[0]["speedup [x]"] == 1.0 and rows[4]["speedup [x]"] == 1.0
    assert all(r["accuracy [%]"] is None for r in rows)
    assert (out / "compare.csv").read_text().startswith("network,technology,scheme")
    assert (out / MARKER).is_file() and (out / "speedup.png").stat().st_size > 0


def test_reram_rows_count_the_weights_given_for_a_scheme(small_art):
    """A fine-tuned scheme's row maps its own weights: here the start weights with one SME weight changed."""
    art = artifact.load(small_art)
    cfg = xb.ReramConfig()
    start = [cmp.reram_weights(r, cmp.uses_float(art)) for r in art.mapped_layers()]
    own = [xb.transformed_weights(w, "sme", cfg) for w in start]
    same = {r.scheme: r for r in cmp.reram_rows(art, cfg, weights={"sme": own})}
    plain = {r.scheme: r for r in cmp.reram_rows(art, cfg)}
    assert same["sme"].work == plain["sme"].work and same["sme"].storage_bits == plain["sme"].storage_bits
    own[0] = own[0].copy()
    own[0][:, :] = 0  # the first layer's weights all pruned: fewer rows kept, fewer OUs activated
    fewer = {r.scheme: r for r in cmp.reram_rows(art, cfg, weights={"sme": own})}
    assert fewer["sme"].work < plain["sme"].work and fewer["dense"].work == plain["dense"].work
    with pytest.raises(ValueError, match="one K x N matrix per mapped record"):
        cmp.reram_rows(art, cfg, weights={"sme": own[:1]})


def test_era_bs_row_counts_the_pruned_inputs(small_art):
    art = artifact.load(small_art)
    rows = {t: {r.scheme: r for r in cmp.reram_rows(art, xb.ReramConfig(act_prune=t))} for t in (0, 200, 255)}
    assert rows[0]["era_bs"].work > rows[200]["era_bs"].work > rows[255]["era_bs"].work == 0  # 255: all pruned
    for s in ("dense", "sme", "sharing"):  # only ERA-BS prunes activations
        assert rows[0][s].work == rows[200][s].work == rows[255][s].work


def test_compare_cli_errors_are_one_line(small_art, tmp_path, capsys):
    from dbpim.cli import main
    assert main(["compare", "--artifact", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dbpim compare:") and "artifact not found" in err and "\n" not in err
    assert main(["compare", "--artifact", str(small_art), "--hw", "small", "--out", str(tmp_path / "o")]) == 2
    assert "macro must match" in capsys.readouterr().err
    assert main(["compare", "--artifact", str(small_art), "--finetune-epochs", "-1", "--out", str(tmp_path / "o")]) == 2
    assert "--finetune-epochs: must be a finite number in [0, 10000]" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    assert main(["compare", "--artifact", str(small_art), "--no-accuracy", "--out", str(tmp_path / "busy")]) == 2
    assert "not written by" in capsys.readouterr().err
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep"
    assert not (tmp_path / "o").exists()


def test_compare_accuracy_on_a_compiled_network(tmp_path):
    """The flow is re-run, its weights are checked equal to the artifact's, each scheme is evaluated."""
    from dbpim.compare import run_compare
    from flow_helpers import run_flow_kw
    tiny = dict(epochs=2, finetune_epochs=0.5, qat_epochs=0.5, n_train=192, n_test=96, progress=False,
                hw="hw/configs/small.yaml", width=0.5, compare=False, plots=False)
    rep = run_flow_kw("smallcnn", "digits", 0.5, out=tmp_path / "c", seed=0, **tiny)
    rows = run_compare([artifact.load(rep["artifact"])], load_config("small"), out=tmp_path / "cmp", plots=False)
    acc = {(r.technology, r.scheme): r for r in rows}
    assert acc[("DB-PIM", "dbpim")].accuracy == pytest.approx(rep["accuracy"]["final"])
    assert acc[("DB-PIM", "dense")].accuracy == pytest.approx(rep["accuracy"]["final"])  # same weights
    art = artifact.load(rep["artifact"])
    assert cmp.uses_float(art)  # the flow stores w_float: the ReRAM schemes start from its plain int8
    assert acc[("ReRAM", "dense")].accuracy_note == "plain int8 of w_float, untransformed"
    for s in ("dense", "sme", "era_bs", "sharing"):
        r = acc[("ReRAM", s)]
        assert 0.0 <= r.accuracy <= 1.0 and r.accuracy_note.startswith("plain int8 of w_float")
    assert "0.5 epochs of projected fine-tune" in acc[("ReRAM", "sme")].accuracy_note  # the flow's QAT epochs
    assert "activation pruning" in acc[("ReRAM", "era_bs")].accuracy_note \
        or "activations pruned where a segment's |x| <= " in acc[("ReRAM", "era_bs")].accuracy_note
    # the hook left the network as it was: the re-run's export (bit-exact check against the golden model)
    # passed, else the accuracies would be None with "re-running the flow failed"
    rows0 = run_compare([artifact.load(rep["artifact"])], load_config("small"), out=tmp_path / "cmp0", plots=False, finetune_epochs=0)
    acc0 = {(r.technology, r.scheme): r for r in rows0}
    assert acc0[("ReRAM", "sme")].accuracy_note.endswith("no fine-tune")
    assert acc0[("ReRAM", "dense")].accuracy == acc[("ReRAM", "dense")].accuracy
    # without a fine-tune the rows count the transformed start weights, as --no-accuracy does (which prunes
    # no activation: ERA-BS's threshold is calibrated on the network)
    plain = {(r.technology, r.scheme): r for r in run_compare([artifact.load(rep["artifact"])], load_config("small"), out=tmp_path / "cmpn",
                                                              plots=False, accuracy=False)}
    for s in ("sme", "era_bs", "sharing"):
        assert acc0[("ReRAM", s)].storage_bits == plain[("ReRAM", s)].storage_bits
        assert acc0[("ReRAM", s)].work == plain[("ReRAM", s)].work or s == "era_bs"
    t = re.search(r"\|x\| <= (\d+) \(calibrated\)", acc0[("ReRAM", "era_bs")].accuracy_note)
    era = next(r for r in cmp.reram_rows(artifact.load(rep["artifact"]), xb.ReramConfig(act_prune=int(t[1]) if t else 0))
               if r.scheme == "era_bs")
    assert acc0[("ReRAM", "era_bs")].work == era.work  # the row counts the inputs pruned at the calibrated threshold


def test_projected_finetune_trains_a_copy_under_the_constraint(tmp_path):
    import torch
    from flow_helpers import run_flow_kw
    from dbpim.model.torch.project import projected_finetune
    from dbpim.model.torch.qat import qlayers
    from dbpim.model.torch.train import evaluate
    got = {}

    def keep(net, data):
        import copy
        got["net"], got["data"] = copy.deepcopy(net), data
    run_flow_kw("smallcnn", "digits", 0.5, out=tmp_path / "c", seed=0, epochs=2, finetune_epochs=0.5, qat_epochs=0.5,
             n_train=192, n_test=96, progress=False, hw="hw/configs/small.yaml", width=0.5, compare=False,
             plots=False, on_frozen=keep)
    net, d = got["net"], got["data"]
    before = [q.w_int.clone() for _, q in qlayers(net)]
    out0 = net(d.x_test[:8]).detach()
    cfg = xb.ReramConfig()

    def starts():
        return [(q.w_int.numpy().astype(np.int64), q.w_scale.numpy().copy(),
                 lambda u: xb.transformed_weights(np.rint(np.clip(u, -128, 127)).astype(np.int64), "sme", cfg))
                for _, q in qlayers(net)]
    ft0, w0 = projected_finetune(net, starts(), d.x_train, d.y_train, epochs=0, lr=1e-3)
    for (_, q), w in zip(qlayers(net), w0):  # no training: the projection of the start weights
        np.testing.assert_array_equal(w, xb.transformed_weights(q.w_int.numpy().astype(np.int8), "sme", cfg))
    ft, w1 = projected_finetune(net, starts(), d.x_train, d.y_train, epochs=1, lr=1e-3, seed=3)
    assert any(not np.array_equal(a, b) for a, b in zip(w0, w1))  # the fine-tune moved weights
    for (_, q), w in zip(qlayers(ft), w1):
        assert q.mode == "int" and np.array_equal(q.w_int.numpy().astype(np.int8), w)
        np.testing.assert_array_equal(xb.transformed_weights(w, "sme", cfg), w)  # still meets the pattern
    assert 0.0 <= evaluate(ft, d.x_test, d.y_test) <= 1.0
    for (_, q), b in zip(qlayers(net), before):  # the network passed in is unchanged
        assert q.mode == "int" and q.projection is None and torch.equal(q.w_int, b)
    assert torch.equal(net(d.x_test[:8]).detach(), out0)
    with pytest.raises(ValueError, match="one per mapped layer"):
        projected_finetune(net, starts()[:-1], d.x_train, d.y_train, epochs=0, lr=1e-3)


@pytest.mark.parametrize("case", ["file", "cwd", "inside-artifact", "bad-hw"])
def test_compare_refuses_unsafe_out_and_bad_hw(small_art, tmp_path, capsys, monkeypatch, case):
    from dbpim.cli import main
    f = tmp_path / "f.txt"
    f.write_text("keep")
    y = tmp_path / "hw.yaml"
    y.write_bytes(b"\x00\x01\xff" * 20)
    argv, expect = {"file": (["--out", str(f)], "is a file"), "cwd": (["--out", "."], "current folder"),
                    "inside-artifact": (["--out", str(small_art / "cmp")], "the input"),
                    "bad-hw": (["--hw", str(y), "--out", str(tmp_path / "o")], str(y))}[case]
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--artifact", str(small_art), "--no-accuracy"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and "\n" not in err and err.startswith("dbpim compare:")
    assert f.read_text() == "keep" and not (tmp_path / "o").exists() and not (small_art / "cmp").exists()


def test_scheme_fine_tune_on_a_grouped_convolution(tmp_path):
    """Each conv group is its own record: the fine-tuned weights go back to the right record, and map."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from dbpim.compare import _evaluate_hook
    from flow_helpers import run_flow_kw

    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
            self.fc = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(F.relu(self.c2(F.relu(self.c1(x)))), 1))
    kw = dict(epochs=1, finetune_epochs=0.5, qat_epochs=0.5, n_train=192, n_test=96, progress=False, seed=0,
              hw="hw/configs/small.yaml", compare=False, plots=False)
    torch.manual_seed(0)
    rep = run_flow_kw(Grouped(), "digits", 0.5, out=tmp_path / "a", **kw)
    art = artifact.load(rep["artifact"])
    assert [r.name for r in art.mapped_layers()] == ["c1", "c2.g0", "c2.g1", "fc"]
    cfg, result = xb.ReramConfig(), {}
    torch.manual_seed(0)
    run_flow_kw(Grouped(), "digits", 0.5, out=tmp_path / "b", **kw,
             on_frozen=_evaluate_hook(art, cfg, xb.SCHEMES, dict(epochs=0.5, lr=1e-3, batch_size=64, seed=3), result))
    assert result["reproduced"] and result["dbpim"] == pytest.approx(rep["accuracy"]["final"])
    for s in ("sme", "era_bs", "sharing"):
        acc, ws = result[s]
        assert 0.0 <= acc <= 1.0
        assert [w.shape for w in ws] == [r.w.shape for r in art.mapped_layers()]
        row = next(r for r in cmp.reram_rows(art, cfg, weights={s: ws}) if r.scheme == s)  # fixed points: maps
        assert row.work > 0
    dense = result["dense"][1]  # dense is not fine-tuned: the start weights, record by record
    for w, r in zip(dense, art.mapped_layers()):
        np.testing.assert_array_equal(w, cmp.reram_weights(r, cmp.uses_float(art)))


@pytest.mark.parametrize("kind", ["conv2d-grouped", "conv2d", "conv1d", "linear"])
def test_crossbar_pruned_op_is_the_numpy_pruning_then_the_layer(rng, kind):
    """The torch twin of ERA-BS's activation pruning: exact on the integer path, per conv group, and a
    threshold of 0 changes nothing."""
    import torch
    from torch import nn
    from dbpim.model.layer import im2col
    from dbpim.model.torch.project import crossbar_pruned_op
    from dbpim.model.torch.qat import QLayer
    inner = {"conv2d-grouped": nn.Conv2d(6, 4, 3, stride=2, padding=2, dilation=2, groups=2),
             "conv2d": nn.Conv2d(3, 5, (2, 3), padding=(1, 0)), "conv1d": nn.Conv1d(4, 3, 3, padding=1),
             "linear": nn.Linear(13, 4)}[kind]
    q = QLayer(inner)
    q.mode = "int"
    shape = {"linear": (5, 2, 13), "conv1d": (3, 4, 9)}.get(kind) or (3, inner.in_channels, 7, 6)
    x = rng.integers(0, 8, shape)
    x[rng.random(shape) < 0.5] = 0
    xt = torch.from_numpy(x).double()
    w = torch.from_numpy(rng.integers(-128, 128, tuple(inner.weight.shape))).double()
    plain = q.plain_op(xt, w, None)
    assert torch.equal(crossbar_pruned_op(4, 0)(q, xt, w, None), plain)
    got = crossbar_pruned_op(4, 3)(q, xt, w, None)
    assert got.shape == plain.shape and not torch.equal(got, plain)
    wk = w.reshape(w.shape[0], -1).t().numpy().astype(np.int64)  # K x N, K per group
    if kind == "linear":
        want = reram.prune_segments(x.reshape(-1, 13), 4, 3) @ wk
        np.testing.assert_array_equal(got.numpy().reshape(-1, 4), want)
        return
    g = inner.groups
    x4 = x[:, :, None] if kind == "conv1d" else x
    k = (1,) + tuple(inner.kernel_size) if kind == "conv1d" else tuple(inner.kernel_size)
    pad = (0,) + tuple(inner.padding) if kind == "conv1d" else tuple(inner.padding)
    st = (1,) + tuple(inner.stride) if kind == "conv1d" else tuple(inner.stride)
    dil = (1,) + tuple(inner.dilation) if kind == "conv1d" else tuple(inner.dilation)
    cg, ng = x.shape[1] // g, w.shape[0] // g
    y = got.numpy().reshape(x.shape[0], w.shape[0], -1)
    for j in range(g):
        cols = im2col(x4[:, j * cg:(j + 1) * cg], k[0], k[1], st, pad, dil)
        want = reram.prune_segments(cols, 4, 3) @ wk[:, j * ng:(j + 1) * ng]
        np.testing.assert_array_equal(y[:, j * ng:(j + 1) * ng].transpose(0, 2, 1).reshape(-1, ng), want)


def test_prune_segments_zeroes_whole_small_segments():
    x = np.array([[0, 1, 0, 5, 1, 1, 0, 0, 2], [3, 0, 0, 0, -2, 2, 0, 1, 0]])
    np.testing.assert_array_equal(reram.prune_segments(x, 4, 2),
                                  [[0, 1, 0, 5, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(reram.prune_segments(x, 4, 0), x)
    with pytest.raises(ValueError, match="threshold"):
        reram.prune_segments(x, 4, -1)
    with pytest.raises(ValueError, match="ou_rows"):
        reram.prune_segments(x, 0, 2)
    with pytest.raises(TypeError, match="integers"):
        reram.prune_segments(x + 0.5, 4, 2)
    with pytest.raises(ValueError, match="ou_rows"):
        reram.share_project(x.astype(float), np.zeros(3, np.int64), 0)


def test_act_prune_candidates():
    from dbpim.compare import act_prune_candidates
    assert act_prune_candidates(xb.ReramConfig()) == [1, 2, 4, 8, 16]
    assert act_prune_candidates(xb.ReramConfig(act_prune=20)) == [1, 2, 4, 8, 16, 20]
    assert act_prune_candidates(xb.ReramConfig(act_prune=0)) == []
    with pytest.raises(ValueError, match="act_prune_drop"):
        xb.ReramConfig(act_prune_drop=-0.1)
