"""model.blocks: twins against first principles, packing round trips, composition == run_macro."""

import numpy as np
import pytest

from dbpim.model import blocks, csd, spec
from dbpim.model.config import MacroConfig
from dbpim.model.macro import run_macro
from dbpim.model.spec import input_bits


def test_lpu_truth_table():
    hi, lo = blocks.lpu([0, 0, 1, 1], [0, 1, 0, 1])
    assert list(hi) == [0, 0, 0, 1] and list(lo) == [0, 0, 1, 0]


def test_adder_tree_is_digit_sum():
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (50, 16))
    idx, pos, sign, valid = csd.entries(w)
    # one digit per compartment: take the first valid entry of each weight
    k = np.argmax(valid, -1)
    sel = lambda a: np.take_along_axis(a, k[..., None], -1)[..., 0]  # noqa: E731
    i, p, s, v = sel(idx), sel(pos), sel(sign), sel(valid)
    x = rng.integers(0, 2, w.shape)
    hi, lo = blocks.lpu(x, p)
    got = blocks.adder_tree(hi * v, lo * v, i, s)
    want = (np.where(v, (1 - 2 * s.astype(int)) << (2 * i.astype(int) + p), 0) * x).sum(-1)
    assert np.array_equal(got, want)


def test_adder_tree_extremes_fit_width():
    n = 16
    v = blocks.adder_tree(np.ones(n, int), np.zeros(n, int), np.full(n, 3), np.ones(n, int))
    assert v == -n * 128
    w = spec.col_sum_width(n)
    assert -(1 << (w - 1)) <= v < (1 << (w - 1))


def test_ipu_and_switch():
    assert blocks.ipu([0, 0, 0, 0]) == []
    assert blocks.ipu([1, 0x80, 0, 3]) == [(0, 0b1001, False), (1, 0b1000, False), (7, 0b0010, True)]
    assert blocks.switch([5, 6, 7, 8], [1, 0, 1, 1], 2) == [([5, 7], 3, False), ([8, 0], 1, True)]
    assert blocks.switch([5, 6], [0, 0], 2) == []


@pytest.mark.parametrize("fields,values", [
    (spec.ipu_out_fields(4, 8), {"b": 7, "bits": 0b1010, "last": 1}),
    (spec.macro_out_fields(16, 16, 16, 8), {"slot": 15, "acc": -12345, "last": 0}),
    (spec.switch_out_fields(4, 8), {"data": [1, 2, 255, 0], "lane_en": 7, "last": 1}),
])
def test_pack_round_trip(fields, values):
    assert spec.unpack(fields, spec.pack(fields, values)) == values


def test_pack_errors():
    with pytest.raises(ValueError, match="acc"):
        spec.pack_macro_out(0, 1 << 40, False, 4, 4, 4)
    with pytest.raises(ValueError, match="missing"):
        spec.pack(spec.ipu_out_fields(4, 8), {"b": 1})
    with pytest.raises(TypeError, match="group"):
        blocks.ipu([0.5, 1])
    with pytest.raises(ValueError, match="row"):
        blocks.dbmu([0, 1], 2, 1)


def test_layouts_match_amaranth():
    amaranth = pytest.importorskip("amaranth")  # noqa: F841
    from amaranth.hdl import Shape
    from dbpim.hw.common import layout_from_fields
    f = spec.macro_out_fields(16, 16, 16, 8)
    lay = layout_from_fields(f)
    assert Shape.cast(lay).width == sum(w * (n or 1) for _, w, n, _ in f)
    assert [n for n, _ in lay] == [x[0] for x in f]
    off = 0
    for name, w, n, _ in f:
        assert lay[name].offset == off
        off += w * (n or 1)


@pytest.mark.parametrize("signed", [False, True])
def test_blocks_compose_to_run_macro(signed):
    """IPU -> DBMU/LPU -> adder tree -> accumulator equals model.macro.run_macro."""
    from dbpim.verif.tiles import random_tiles, vectors_for
    mc = MacroConfig(n_comp=4, n_col=4, n_row=4, in_bits=8, phi_max=2, lanes=2, pipeline=False)
    rng = np.random.default_rng(5)
    tile = random_tiles(mc, rng)[0]
    for xg in vectors_for(tile, rng, 8, signed):
        bits = input_bits(xg, signed)
        cs, bs = [], []
        for r in range(tile.n_rows_used):
            for b, col, _ in blocks.ipu(bits[r]):
                x = np.array([(col >> c) & 1 for c in range(mc.n_comp)])
                hi = np.array([[blocks.dbmu(tile.cells[:, c, j], r, x[c])[0] for c in range(mc.n_comp)]
                               for j in range(mc.n_col)])
                lo = np.array([[blocks.dbmu(tile.cells[:, c, j], r, x[c])[1] for c in range(mc.n_comp)]
                               for j in range(mc.n_col)])
                cs.append(blocks.adder_tree(hi, lo, tile.idx[r].T, tile.sign[r].T))
                bs.append(b)
        acc = blocks.accumulator(np.array(cs).reshape(-1, mc.n_col), bs, tile.col_filter, signed)
        want = run_macro(tile, xg, mc, signed=signed, gathered=True)
        assert list(acc) == list(want.acc)
        assert len(bs) == want.compute_cycles


def test_acc_width_bound():
    assert spec.acc_width(16, 16, 16, 8) == (16 * 255 * 16 * 16 * 128).bit_length() + 1
