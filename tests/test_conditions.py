"""The in-memory group sums behind condition means (RDMs of conditions, crossnobis, dPCA)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnprobe.analysis.conditions import sum_group_sets, sum_groups


@pytest.mark.parametrize("groups", [[0, 1, 2, 3], [2, 0, 3, 1], [1, 0, 1, 2], [3, 0, 3, 0]])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_groups_equal_a_scatter_add_bit_for_bit(groups, dtype):
    """In order (a view), permuted (a gather), repeated (the indicator product), with empty groups (zeros);
    each group's stimuli are added in their order, as ``np.add.at`` adds them, so the sums are the same bits.
    """
    groups = np.array(groups)
    states = np.random.default_rng(groups.sum()).normal(size=(4, 3, 2)).astype(dtype) * 1e3
    expected = np.zeros((groups.max() + 1, 3, 2))
    np.add.at(expected, groups, states)
    got = sum_groups(states, groups, groups.max() + 1)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_sum_groups_in_shares_of_groups_on_threads_equal_a_scatter_add_bit_for_bit(threads, monkeypatch, torch_threads):
    """States from SPLIT_BYTES on: the groups in shares on the library threads (5 groups on 3: shares of 1 and 2),
    each group's stimuli still added in their order: the same bits as ``np.add.at``, an empty group zeros."""
    from rnnprobe.analysis import conditions

    rng = np.random.default_rng(2)
    states, groups = rng.normal(size=(300, 4, 6)) * 1e3, rng.integers(0, 5, 300)
    groups[groups == 3] = 4  # (group 3 empty)
    monkeypatch.setattr(conditions, "SPLIT_BYTES", states.nbytes)
    shares = []
    in_shares = conditions.in_shares
    monkeypatch.setattr(conditions, "in_shares", lambda fn, n, **kw: shares.append(n) or in_shares(fn, n, **kw))
    torch_threads(threads)
    expected = np.zeros((5, 4, 6))
    np.add.at(expected, groups, states)
    np.testing.assert_array_equal(sum_groups(states, groups, 5), expected)
    assert shares == [5]
    fewer = np.zeros((5, 4, 6))
    np.add.at(fewer, groups[:-1], states[:-1])
    np.testing.assert_array_equal(sum_groups(states[:-1], groups[:-1], 5), fewer)
    assert shares == [5]  # (below SPLIT_BYTES: one product)


def test_sum_groups_of_many_stimuli_equal_a_loop_over_groups():
    rng = np.random.default_rng(0)
    states, groups = rng.normal(size=(5000, 4, 7)), rng.integers(0, 12, 5000)
    expected = np.stack([states[groups == k].sum(axis=0) for k in range(13)])  # group 12 is empty
    np.testing.assert_allclose(sum_groups(states, groups, 13), expected, rtol=1e-12, atol=1e-12)


def test_sum_groups_and_condition_average_in_blocks_of_rows_equal_a_loop(monkeypatch):
    """float32 states converted a block of rows at a time, and the squared deviations behind ``sem`` formed
    a block at a time (a budget of 7 rows here): the same sums, means and spreads as whole."""
    from rnnprobe import Recording
    from rnnprobe.analysis import condition_average, conditions

    rng = np.random.default_rng(1)
    states, groups = rng.normal(size=(40, 3, 5)).astype(np.float32), rng.integers(0, 4, 40)
    monkeypatch.setattr(conditions, "ROW_BYTES", 8 * 15 * 7)
    expected = np.stack([states[groups == k].astype(np.float64).sum(axis=0) for k in range(4)])
    np.testing.assert_allclose(sum_groups(states, groups, 4), expected, rtol=1e-12, atol=1e-12)
    means = condition_average(Recording({"h": states.astype(np.float64)}, metadata={"g": groups}), "g", sem=True)
    for k in range(4):
        trials = states[groups == k].astype(np.float64)
        np.testing.assert_allclose(means.get("h")[k], trials.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(means.get("h:sem")[k], trials.std(axis=0, ddof=1) / np.sqrt(len(trials)),
                                   rtol=1e-10)  # fmt: skip


@pytest.mark.parametrize("n_groups", [5, 30])  # the stacked dense indicator, and sparse products per set
def test_sum_group_sets_equal_sums_per_set(monkeypatch, n_groups):
    from rnnprobe.analysis import conditions

    rng = np.random.default_rng(n_groups)
    states = rng.normal(size=(50, 2, 3)).astype(np.float32)
    sets = rng.integers(0, n_groups, size=(4, 50))
    monkeypatch.setattr(conditions, "ROW_BYTES", 8 * 6 * 11)  # blocks of a few stimuli
    expected = np.stack([sum_groups(states, labels, n_groups) for labels in sets])
    got = sum_group_sets(states, sets, n_groups)
    assert got.shape == (4, n_groups, 2, 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sem", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_condition_average_refuses_non_finite_states_from_its_means(bad, sem):
    """NaN or inf in one trial (of a condition of several, or of one, in order or not: the one-trial groups come
    back as the states themselves) is refused with its count and position, from the means, as a check of every
    state would; finite states whose sums overflow are refused as such. Finite states average as before."""
    from rnnprobe import Recording
    from rnnprobe.analysis import condition_average
    from rnnprobe.errors import NonFiniteError

    for groups in (np.array([0, 1, 0, 2, 1, 0]), np.array([2, 0, 1, 3, 5, 4])):
        states = np.random.default_rng(0).normal(size=(6, 3, 2))
        states[4, 2, 1] = bad
        rec = Recording({"h": states}, metadata={"g": groups})
        with pytest.raises(NonFiniteError, match=r"layer 'h' holds 1 non-finite value\(s\) .* first at \(4, 2, 1\)"):
            condition_average(rec, "g", sem=sem)
    huge = np.full((4, 1, 1), 1e308)  # each finite, two of a condition sum to inf
    with pytest.raises(NonFiniteError, match=r"layer 'h' holds finite states \(up to 1e\+308\) whose sums overflow"):
        condition_average(Recording({"h": huge}, metadata={"g": [0, 0, 1, 2]}), "g", sem=sem)
    means = condition_average(Recording({"h": huge / 2}, metadata={"g": [0, 0, 1, 2]}), "g", sem=sem)
    np.testing.assert_array_equal(means.get("h"), np.full((3, 1, 1), 5e307))
