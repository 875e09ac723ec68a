"""Ridge decoders of wide layers scored through kernel matrices: many target sets at about the price of one.

With more units p than training samples n, a fold's ridge decoder at training step t is, in the dual form
(:func:`._ridge._fit_dual`), w = Z' A with A = (Z Z' + alpha I)^-1 (Y - mean Y), Z the training states centred
(and scaled). Its decision values on test states X (m x p, at any test step) are therefore

    D = K A + mean Y,   K = ((X - mean) * inv) Z'   (m x n, the test-train kernel matrix),

and K does not depend on the targets. A permutation test's target sets (the true targets and every permuted
one, C columns of class codes in all) then cost n^2 C (A) and m n C (D) products per training and test step,
where forming the weights costs p n C more and scoring them m p C: about p / n times the work for each column
(4096 units, 400 training samples). The weights are never formed; the scores equal those of the weights route
to rounding (tested). :func:`kernel_route_pays` chooses the route by counting the products.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from . import _scores
from ._linear import as_device, block_budget, matmul, solve, time_blocks, time_major
from ._ridge import FoldBuffers, dual_training
from .parallel import library_threads, task_pool


def kernel_route_pays(n_train: int, n_test: int, n_units: int, test_steps: int, columns: int) -> bool:
    """Whether scoring ``columns`` target columns through the kernel matrices takes fewer products than forming
    and applying the weights, per fold and training step (``test_steps`` test steps per decoder; the shared
    kernel matrix and its factorisation cost both routes the same).

    Examples
    --------
    >>> kernel_route_pays(400, 100, 4096, 1, 10), kernel_route_pays(400, 100, 4096, 1, 2010)
    (False, True)
    """
    if n_units <= n_train:  # (the primal form: no kernel matrix)
        return False
    weights = columns * n_units * (n_train + test_steps * n_test)
    kernel = test_steps * n_test * n_train * (n_units + columns)
    return kernel < weights


def kernel_scores(
    x: np.ndarray,
    codes: np.ndarray,
    y_sets: np.ndarray,
    folds: list,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    *,
    alpha: float,
    scale: bool,
    scoring: str,
    n_classes: int | None,
    generalize: bool,
    device: Any = None,
    done: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Scores (n_folds, n_sets, T[, T']) of the ridge decoders of target sets ``y_sets`` (n, sets), coded as
    ``codes`` (n, sets x k: each set's k columns together), as :func:`.decoding._fast_scores` computes them
    through the weights: every fold (``folds``: (train, test) index pairs) and training step; tested on the
    fold's test samples at the same step or, with ``generalize``, at every step; with ``x_test``, one fold
    trained on every sample and tested on ``x_test`` against ``y_test``. The tasks, a block of training steps each
    (every fold in turn, in one set of work arrays: fresh arrays per fold and block were page-faulted by the two
    threads in turns, 1.1-1.5x faster on two threads than on one against 1.7-1.9x), run on the libraries'
    threads, one each (on a device, one after another); ``done`` is called (in the caller's thread) with each
    task's share of them as it ends.
    """
    device = as_device(device)
    cpu = device.type == "cpu"
    n, n_times, p = x.shape
    test_steps = (x if x_test is None else x_test).shape[1]
    shape = (len(folds), y_sets.shape[1], n_times) + ((test_steps,) if generalize else ())
    out = np.empty(shape)
    n_train = max(len(train) for train, _ in folds)
    per_step = 8 * (n * p + 2 * n_train * p + n_train * n_train)  # a block's copy, z, its squares, the kernel
    parts = min(library_threads(), n_times) if cpu else 1
    blocks = list(time_blocks(n_times, per_step, budget=block_budget(device), parts=parts))
    all_codes = torch.as_tensor(codes, dtype=torch.float64, device=device)
    width = codes.shape[1] // y_sets.shape[1]  # code columns a set
    # each fold's test states, its test rows of them (None: every row) and their targets, for every block
    tested = ([(x, test, y_sets[test]) for _, test in folds] if x_test is None
              else [(x_test, None, _repeated(y_test, y_sets))] * len(folds))  # fmt: skip

    def task(block: slice) -> None:  # every fold at the block's steps, in one set of work arrays
        xb = time_major(x, block, device)
        work = FoldBuffers(len(xb), n_train, p, device, squares=scale)
        for f, (train, _) in enumerate(folds):
            fold = _DualFold(xb, block, train, all_codes, work, alpha=alpha, scale=scale)
            _fold_scores(fold, out[f], tested[f], width, scoring=scoring, n_classes=n_classes, generalize=generalize)

    with task_pool(len(blocks) if cpu else 1) as pmap:
        for _ in pmap(task, blocks):
            if done is not None:
                done(1 / len(blocks))
    return out


def _fold_scores(
    fold: _DualFold, out: np.ndarray, tested: tuple, width: int, *, scoring: str, n_classes: int | None,
    generalize: bool,
) -> None:  # fmt: skip
    """One fold's scores at its block's training steps into ``out`` (sets, T[, T']): ``tested`` the test states,
    the fold's test rows of them (None: every row) and their targets (m, sets); ``width`` code columns a set.
    """
    states, rows, targets = tested
    device, block, n_test = fold.z.device, fold.block, len(targets)
    chunks = _test_chunks(states.shape[1], n_test * states.shape[2], device) if generalize else [block]
    per_set = 8 * width * ((block.stop - block.start) * fold.z.shape[1] + n_test * (chunks[0].stop - chunks[0].start))
    for sets in _chunks(targets.shape[1], max(1, block_budget(device) // per_set)):
        dual = fold.dual(slice(sets.start * width, sets.stop * width))
        for t, steps, decision in fold.decisions(states, rows, dual, chunks, generalize=generalize):
            scores = _scores.score_sets(scoring, decision, targets[:, sets], n_classes)  # (sets, test steps)
            if generalize:
                out[sets, t, steps] = scores
            else:
                out[sets, t] = scores[:, 0]


def _repeated(y_test: np.ndarray, y_sets: np.ndarray) -> np.ndarray:
    """Cross-decoding's test targets, the same for every set (n_test, sets)."""
    return np.repeat(y_test[:, None], y_sets.shape[1], axis=1)


def _test_chunks(n_steps: int, per_step: int, device: torch.device) -> list[slice]:
    """Slices of the test steps whose test states (``per_step`` values a step, and a centred copy) take about a
    block's budget.
    """
    return _chunks(n_steps, max(1, block_budget(device) // (16 * per_step)))


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


class _DualFold:
    """One fold's training states at a block of steps in the dual form: z (tb, n_train, p) centred (and scaled),
    their mean and multipliers inv (tb, p), the penalised kernel matrix (tb, n_train, n_train), the codes'
    training mean and their centred training rows.
    """

    def __init__(
        self, xb: torch.Tensor, block: slice, train: np.ndarray, codes: torch.Tensor, work: FoldBuffers, *,
        alpha: float, scale: bool,
    ) -> None:  # fmt: skip
        self.block = block
        rows = torch.as_tensor(train, device=xb.device)
        self.z, self.mean, self.inv = dual_training(xb, rows, work, scale=scale)  # (z: a view of work's array)
        self.kernel = matmul(self.z, self.z.mT)
        torch.diagonal(self.kernel, dim1=1, dim2=2).add_(alpha)
        self.yc = codes[rows]  # (a copy: centred in place)
        self.y_mean = self.yc.mean(dim=0)
        self.yc -= self.y_mean

    def dual(self, columns: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """The dual coefficients (tb, n_train, columns) of the code columns ``columns`` at every step, and the
        columns' training mean.
        """
        return solve(self.kernel, self.yc[:, columns].expand(len(self.z), -1, -1)), self.y_mean[columns]

    def decisions(
        self, states: np.ndarray, rows: np.ndarray | None, dual: tuple[torch.Tensor, torch.Tensor],
        chunks: list[slice], *, generalize: bool,
    ) -> Iterator[tuple[int, slice, np.ndarray]]:  # fmt: skip
        """(training step, test steps, decision values (test steps, m, columns)) of the decoders of ``dual`` (the
        coefficients and the codes' mean) at each training step of the block on the test samples ``rows`` of
        ``states`` (n, T', p; None: every sample): at the test steps of each chunk of ``chunks`` with
        ``generalize``, else at the training step (``chunks``: the block).
        """
        coefficients, y_mean = dual
        for chunk in chunks:
            raw = _gathered(states, rows, chunk, self.z.device)  # (chunk's steps, m, p)
            for i, t in enumerate(range(self.block.start, self.block.stop)):
                centred = (raw if generalize else raw[i : i + 1]) - self.mean[i]
                centred *= self.inv[i]
                decision = matmul(matmul(centred, self.z[i].mT), coefficients[i]) + y_mean
                yield t, chunk, decision.cpu().numpy()


def _gathered(states: np.ndarray, rows: np.ndarray | None, steps: slice, device: torch.device) -> torch.Tensor:
    """The samples ``rows`` (None: all) of ``states`` at ``steps`` as a (steps, rows, p) float64 tensor (a copy)."""
    if rows is None:
        return time_major(states, steps, device)
    picked = states[rows[:, None], np.arange(states.shape[1])[steps][None, :]]  # (rows, steps, p): these alone
    return torch.from_numpy(np.ascontiguousarray(picked.transpose(1, 0, 2), dtype=np.float64)).to(device)
