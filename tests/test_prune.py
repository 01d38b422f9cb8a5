"""Block-wise pruning masks (docs/design.md §4)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dbpim.model import prune


def test_lowest_blocks_pruned_with_index_ties():
    W = np.array([[1.0, 1.0, 5.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    m = prune.block_mask(W, group_size=2, sparsity=0.5)
    # blocks (k, g): scores (1.41, 5), (0, 0), (3, 0), (0, 0); 4 of 8 pruned, ties by index
    assert m.tolist() == [[True, True], [False, False], [True, False], [False, True]]


def test_l1_norm_and_partial_group():
    W = np.array([[3.0, 4.0, 6.0], [5.0, 0.0, 0.0]])
    assert prune.block_mask(W, 2, 0.25, norm="l2").tolist() == [[True, True], [True, False]]
    # l1: (7, 6), (5, 0) -> the zero block first
    assert prune.block_mask(W, 2, 0.5, norm="l1").tolist() == [[True, True], [False, False]]


@settings(max_examples=60, deadline=None)
@given(K=st.integers(1, 40), N=st.integers(1, 40), G=st.integers(1, 9), s=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_mask_properties(K, N, G, s, seed):
    W = np.random.default_rng(seed).normal(size=(K, N))
    m = prune.block_mask(W, G, s)
    ng = -(-N // G)
    assert m.shape == (K, ng)
    assert (~m).sum() == int(np.floor(s * K * ng + 0.5))
    full = prune.expand_mask(m, N, G)
    assert full.shape == (K, N)
    assert np.array_equal(full[:, ::G][:, :ng], m)
    # every pruned block scores no higher than every kept block
    Wp = np.pad(W, ((0, 0), (0, ng * G - N))).reshape(K, ng, G)
    score = np.sqrt((Wp ** 2).sum(-1))
    if m.any() and (~m).any():
        assert score[~m].max() <= score[m].min()


def test_bad_arguments():
    with pytest.raises(ValueError, match="sparsity: must be a number in"):
        prune.block_mask(np.ones((2, 2)), 1, 1.5)
    with pytest.raises(ValueError, match="group_size"):
        prune.block_mask(np.ones((2, 2)), 0, 0.5)
    with pytest.raises(ValueError, match="norm"):
        prune.block_mask(np.ones((2, 2)), 1, 0.5, norm="max")
    with pytest.raises(ValueError, match="NaN"):
        prune.block_mask(np.array([[np.nan]]), 1, 0.5)
    with pytest.raises(ValueError, match="mask: must have shape"):
        prune.expand_mask(np.ones((2, 3), bool), 4, 2)
