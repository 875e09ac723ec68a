"""Slow manifolds: linearisation against the eigen-equations, line attractors and selection vectors of planted
linear maps (closed forms), per-context selection as in Mante et al. (2013), and bad input."""

import numpy as np
import pytest
import torch

from rnnprobe.analysis import find_fixed_points, linearize_points, slow_manifolds
from rnnprobe.errors import ArgumentTypeError, UnknownNameError

V = np.array([[1.0, 0.4, 0.0, 0.2], [0.0, 1.0, 0.3, 0.0], [0.2, 0.0, 1.0, 0.1], [0.0, 0.3, 0.0, 1.0]])


def _line_map(v, b):
    """x -> A x + B u with A = V diag(1, 0.6, 0.4, 0.2) V^-1: a line of fixed points along V[:, 0] at u = 0."""
    a = torch.tensor(v @ np.diag([1.0, 0.6, 0.4, 0.2]) @ np.linalg.inv(v))
    bt = torch.tensor(b)
    return lambda x, u: x @ a.T + u @ bt.T


def test_a_planted_line_attractor_and_its_selection_vector_equal_the_closed_form(rng):
    b = rng.normal(size=(4, 2))
    fp = find_fixed_points(_line_map(V, b), inputs=[0.0, 0.0], initial_states=rng.normal(size=(60, 4)))
    line = slow_manifolds(fp)
    r = V[:, 0] / np.linalg.norm(V[:, 0])
    left = np.linalg.inv(V)[0]  # the left eigenvector of eigenvalue 1 (V^-1 A V is diagonal)
    assert line.is_line_attractor().tolist() == [True]
    assert abs(line.direction[0] @ r) == pytest.approx(1, abs=1e-9)
    assert abs(line.selection[0] @ left / np.linalg.norm(left)) == pytest.approx(1, abs=1e-9)
    np.testing.assert_allclose(np.abs(line.slow_eigenvalue), 1, atol=1e-9)
    np.testing.assert_allclose(line.straightness, 1, atol=1e-9)
    cos = np.abs(left @ b) / (np.linalg.norm(left) * np.linalg.norm(b, axis=0))
    np.testing.assert_allclose(np.abs(line.input_alignment[0]), cos, atol=1e-9)
    # displacement along the line per unit input: the projection r l' b / (l' r) on the direction
    drive = (line.direction[0] @ V[:, 0]) * (left @ b) / (left @ V[:, 0])
    np.testing.assert_allclose(line.input_drive[0], drive, atol=1e-9)


def test_linearization_satisfies_the_eigen_equations(rng):
    fp = find_fixed_points(_line_map(V, rng.normal(size=(4, 2))), inputs=[0.0, 0.0],
                           initial_states=rng.normal(size=(10, 4)))  # fmt: skip
    lin = linearize_points(fp)
    for jac, values, right, left in zip(lin.jacobians, lin.eigenvalues, lin.right, lin.left, strict=True):
        np.testing.assert_allclose(jac @ right, right * values, atol=1e-10)
        np.testing.assert_allclose(left.conj().T @ jac, values[:, None] * left.conj().T, atol=1e-10)
        np.testing.assert_allclose(left.conj().T @ right, np.eye(4), atol=1e-10)
        assert abs(abs(values[0]) - 1) < 1e-10  # the slowest mode first


def test_selection_vectors_turn_with_the_context():
    """Two contexts, two inputs: in each context the line's left eigenvector aligns with one input's weights
    (Mante et al. 2013, Fig. 5-6, in miniature)."""
    rng = np.random.default_rng(4)
    b = np.linalg.qr(rng.normal(size=(4, 2)))[0]  # "motion" and "colour" input weights, orthonormal
    right = np.linalg.qr(rng.normal(size=(4, 1)))[0][:, 0]  # the same line in both contexts

    def context_map(select):
        # A = I - (I - r s') ... : eigenvalue 1 along `right`, left eigenvector `select` (s'r = 1), others 0.3
        s = select / (select @ right)
        return 0.3 * np.eye(4) + 0.7 * np.outer(right, s)

    a0, a1 = (torch.tensor(context_map(b[:, j] + 0.3 * right)) for j in (0, 1))
    bt = torch.tensor(b)

    def model(x, u):
        c = u[:, 2:3]  # the context input: 0 or 1
        return (1 - c) * (x @ a0.T) + c * (x @ a1.T) + u[:, :2] @ bt.T

    for contexts in ([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]):
        fp = find_fixed_points(model, inputs=contexts, initial_states=rng.normal(size=(40, 4)))
        line = slow_manifolds(fp)
        np.testing.assert_array_equal(line.inputs, contexts)  # groups in the order the inputs were given
        assert line.is_line_attractor().tolist() == [True, True]
        relevant = np.abs(line.input_alignment[:, :2])
        first = int(contexts[0][2])  # the context of group 0
        assert relevant[0, first] > 0.9 and relevant[0, 1 - first] < 0.35  # each context selects its input
        assert relevant[1, 1 - first] > 0.9 and relevant[1, first] < 0.35
    assert abs(line.direction[0] @ right) > 0.999 and abs(line.direction[1] @ right) > 0.999
    assert line.plot() is not None and len(line.summary()) > 4


def test_bad_input():
    with pytest.raises(ArgumentTypeError):
        slow_manifolds("points")
    fp = find_fixed_points(lambda x, u: 0.5 * x + u, inputs=[1.0], initial_states=np.ones((3, 1)))
    with pytest.raises(UnknownNameError):
        linearize_points(fp, which="stable")
