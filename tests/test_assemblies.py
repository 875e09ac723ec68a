"""Assembly calculus simulator: k-cap and Hebbian plasticity against dense brute force, projection
converges to a stable assembly, association increases overlap, merge, Recording, errors."""

import numpy as np
import pytest

from rnnprobe.errors import ArgumentError, UnknownNameError
from rnnprobe.models.assemblies import Brain, overlap, to_recording


def test_synapses_are_drawn_with_probability_p_without_duplicates():
    brain = Brain(p=0.02, seed=1)
    brain.add_area("A", 2000, 40)
    w = brain.weights("A", "A")
    count = w.nnz
    expected, sd = 0.02 * 2000**2, np.sqrt(0.02 * 0.98 * 2000**2)
    assert abs(count - expected) < 5 * sd
    assert w.has_canonical_format and (w.data == 1).all()  # sorted, no duplicate synapses, weight 1


def test_k_cap_and_hebbian_update_equal_dense_brute_force():
    brain = Brain(p=0.1, beta=0.2, seed=0)
    brain.add_stimulus("s", 10)
    brain.add_area("A", 60, 8)
    brain.project("s", "A", rounds=2)  # A has winners and learnt weights
    ws, wa = brain.weights("s", "A").toarray(), brain.weights("A", "A").toarray()
    previous = brain.areas["A"].winners.copy()
    inputs = ws[np.arange(10)].sum(axis=0) + wa[previous].sum(axis=0)
    winners = brain.step({"s": None, "A": None}, "A")
    assert set(np.argsort(-inputs, kind="stable")[:8]) == set(winners) or np.sort(inputs)[-8] == np.sort(inputs)[-9]
    expected_ws, expected_wa = ws.copy(), wa.copy()
    for i in range(10):
        for j in winners:
            if expected_ws[i, j]:
                expected_ws[i, j] *= 1.2
    for i in previous:
        for j in winners:
            if expected_wa[i, j]:
                expected_wa[i, j] *= 1.2
    np.testing.assert_allclose(brain.weights("s", "A").toarray(), expected_ws, rtol=1e-6)
    np.testing.assert_allclose(brain.weights("A", "A").toarray(), expected_wa, rtol=1e-6)


def test_projection_converges_to_a_stable_assembly_only_with_plasticity():
    results = {}
    for beta in (0.0, 0.1):
        brain = Brain(p=0.05, beta=beta, seed=0)
        brain.add_stimulus("s", 30)
        brain.add_area("A", 1000, 30)
        run = brain.project("s", "A", rounds=20)
        results[beta] = run.overlaps[-5:].mean()
        if beta:
            # the assembly is what the stimulus alone evokes afterwards, from silence, without learning
            assert overlap(brain.respond("s", "A", rounds=3), run.assembly) > 0.9
    assert results[0.1] > 0.9 > 0.5 > results[0.0]


def test_association_increases_overlap_and_merge_makes_a_shared_assembly():
    brain = Brain(p=0.05, beta=0.1, seed=2)
    for s in ("x", "y"):
        brain.add_stimulus(s, 30)
    for a in ("A", "B", "C"):
        brain.add_area(a, 1000, 30)
    brain.project("x", "A", rounds=15)
    brain.reset()
    brain.project("y", "A", rounds=15)
    before = overlap(brain.respond("x", "A", rounds=3), brain.respond("y", "A", rounds=3))
    brain.reset()
    brain.associate("x", "y", "A", rounds=15)
    after = overlap(brain.respond("x", "A", rounds=3), brain.respond("y", "A", rounds=3))
    assert after > before + 0.2, (before, after)
    # merge: assemblies of x in A and of y in B into C
    brain.reset()
    brain.project("x", "A", rounds=10)
    brain.project("y", "B", rounds=10)
    merged = brain.merge("A", "B", "C", rounds=15).assembly
    assert merged.size == 30
    from_a = brain.respond("A", "C", rounds=1)  # A still fires its assembly
    assert overlap(from_a, merged) > 30 / 1000 * 5  # far above chance (k / n)


def test_runs_become_a_recording_for_the_usual_analyses():
    from rnnprobe.analysis.decoding import decode
    from rnnprobe.analysis.rsa import compute_rdms

    brain = Brain(p=0.05, beta=0.1, seed=0)
    brain.add_area("A", 400, 20)
    runs = {}
    for i in range(6):
        name = f"s{i}"
        brain.add_stimulus(name, 20)
        brain.reset()
        runs[name] = brain.project(name, "A", rounds=8)
    rec = to_recording(runs)
    assert rec.shapes == {"A": (6, 8, 400)} and list(rec.column("run")) == list(runs)
    assert (rec.get("A").sum(axis=-1) == 20).all()
    rdms = compute_rdms(rec, "A", distance="euclidean")
    assert rdms.n_rdms == 8 and rdms.n_conditions == 6
    twice = to_recording(list(runs.values()) * 2, metadata={"label": np.tile(np.arange(6), 2)})
    assert decode(twice, "A", "label", cv=2, progress=False).scores[-1] == 1.0  # the same assembly again


def test_errors():
    brain = Brain(seed=0)
    with pytest.raises(ArgumentError, match="k: got 200 for an area of n=100 neurons"):
        brain.add_area("A", 100, 200)
    with pytest.raises(ArgumentError, match="p: got"):
        Brain(p=1.5)
    with pytest.raises(ArgumentError, match="beta: got"):
        Brain(beta=-0.1)
    brain.add_area("A", 100, 10)
    with pytest.raises(UnknownNameError, match="'z' is neither an area nor a stimulus"):
        brain.project("z", "A")
    with pytest.raises(ArgumentError, match="name: 'A' exists already"):
        brain.add_stimulus("A", 5)
    with pytest.raises(ArgumentError, match="merge: 'A' and 'B' need assemblies first"):
        brain.add_area("B", 100, 10)
        brain.add_area("C", 100, 10)
        brain.merge("A", "B", "C")
