"""N:M masks: exactly n kept in every group of m, short row ends, ties, shapes, counts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsity_tune.trial.pruning import count_pruned, dense_masks, nm_masks, nm_pruned_count


def _groups(t: torch.Tensor, m: int) -> list[list]:
    """The groups of m consecutive entries of each row of t viewed as (out, rest), as lists."""
    rows = t.reshape(t.shape[0], -1).tolist()
    return [row[i : i + m] for row in rows for i in range(0, len(row), m)]


def test_two_four_by_hand():
    scores = {"w": torch.tensor([[0.1, 0.9, 0.5, 0.2, 3.0, -1.0, 2.0, 0.0]])}
    masks = nm_masks(scores, dense_masks(scores), 2, 4)
    assert masks["w"].tolist() == [[False, True, True, False, True, False, True, False]]


def test_a_short_row_end_keeps_what_zero_padding_allows():
    """Row length 7 with m = 4: one full group (keeps 2) and a group of 3 (keeps min(2, 3));
    with n = 1, m = 8 a row of 3 keeps 1; rows shorter than n keep everything."""
    s = {"w": torch.tensor([[7.0, 6, 5, 4, 1, 3, 2]])}
    assert nm_masks(s, dense_masks(s), 2, 4)["w"].tolist() == [
        [True, True, False, False, False, True, True]
    ]
    s = {"w": torch.tensor([[1.0, 3, 2]])}
    assert nm_masks(s, dense_masks(s), 1, 8)["w"].tolist() == [[False, True, False]]
    assert nm_masks(s, dense_masks(s), 3, 4)["w"].all()
    assert nm_pruned_count({"w": (5, 7)}, 2, 4) == 5 * (2 + 1)
    assert nm_pruned_count({"w": (5, 3)}, 3, 4) == 0


def test_ties_prune_the_earlier_weight_first():
    s = {"w": torch.ones(2, 8)}
    m = nm_masks(s, dense_masks(s), 2, 4)["w"]
    assert m.tolist() == [[False, False, True, True] * 2] * 2


def test_convolutions_group_along_in_times_kernel_and_keep_layout():
    """A Conv2d weight (out, in, kh, kw) in channels-last memory is grouped as (out, in·kh·kw),
    the im2col layout, whatever its strides."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 3, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
    masks = {"c": torch.ones_like(w, dtype=torch.bool)}
    m = nm_masks({"c": w.abs()}, masks, 2, 4)["c"]
    assert m.shape == w.shape
    flat, rows = m.reshape(6, 27), w.abs().reshape(6, 27)
    for r in range(6):
        for i in range(0, 27, 4):
            group = rows[r, i : i + 4]
            kept = flat[r, i : i + 4]
            assert int(kept.sum()) == min(2, group.numel())
            if group.numel() == 4:
                assert kept.tolist() == (group >= group.topk(2).values.min()).tolist()


def test_already_pruned_weights_count_among_the_pruned_and_masks_only_shrink():
    s = {"w": torch.tensor([[9.0, 8, 1, 2]])}
    prior = {"w": torch.tensor([[False, True, True, True]])}  # the largest is already gone
    m = nm_masks(s, prior, 2, 4)["w"]
    assert m.tolist() == [[False, True, False, True]]


def test_bad_n_m_and_nan_are_refused():
    s = {"w": torch.ones(2, 4)}
    for n, m in [(0, 4), (4, 4), (5, 4), (2.0, 4)]:
        with pytest.raises(ValueError, match="1 <= n < m"):
            nm_masks(s, dense_masks(s), n, m)
    with pytest.raises(ValueError, match="NaN"):
        nm_masks({"w": torch.full((2, 4), float("nan"))}, dense_masks(s), 2, 4)


@st.composite
def _nm_problem(draw):
    m = draw(st.integers(2, 8))
    n = draw(st.integers(1, m - 1))
    shapes = {
        f"l{i}": tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=4)))
        for i in range(draw(st.integers(1, 3)))
    }
    scores = {  # few distinct values: plenty of ties
        name: torch.tensor(
            draw(st.lists(st.integers(0, 3), min_size=sz, max_size=sz)), dtype=torch.float32
        ).reshape(shape)
        for name, shape in shapes.items()
        for sz in [torch.Size(shape).numel()]
    }
    return n, m, scores


@settings(max_examples=150, deadline=None)
@given(_nm_problem())
def test_property_every_group_of_m_keeps_exactly_n_the_highest_scored(problem):
    n, m, scores = problem
    masks = nm_masks(scores, dense_masks(scores), n, m)
    for name, s in scores.items():
        for kept, group in zip(_groups(masks[name], m), _groups(s, m), strict=True):
            assert sum(kept) == min(n, len(group))  # full groups: exactly n
            dropped = [v for v, k in zip(group, kept, strict=True) if not k]
            if dropped:
                assert max(dropped) <= min(v for v, k in zip(group, kept, strict=True) if k)
    assert count_pruned(masks) == nm_pruned_count({k: v.shape for k, v in scores.items()}, n, m)
    again = nm_masks(scores, dense_masks(scores), n, m)
    assert all(torch.equal(masks[k], again[k]) for k in masks)
