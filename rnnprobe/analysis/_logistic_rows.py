"""Logistic regression of one time step read in blocks of stimuli, never whole: the batched truncated Newton
method of :mod:`._logistic` with its products with the data summed block by block.

A step of more stimuli than units (a narrow layer on many stimuli) has no exact reduction for logistic
regression as ridge has (its sums) or as a wide step has (the training samples' coordinates): every Newton
iteration needs every stimulus. The solver touches the data only through three products, and those are passes
over blocks of the step (:class:`._stimulus_sums.StepRows`):

- ``X scaled`` (the linear predictions of a direction: a pass per Newton iteration),
- ``[X 1]' r`` (the gradient: a pass per Newton iteration),
- ``[X 1]' J (X v)`` (a Hessian product: both products in one pass, each block's rows through the softmax
  Jacobian at their curvature; a pass per conjugate-gradient step).

Everything else the solver holds per stimulus (the linear predictions, the probabilities, the line search's
trials: a few floats per stimulus, fold, target set and class) or per unit (the parameters, the
preconditioner from the Gram matrix of every stimulus, p x p) stays in memory, so the iterations are the
in-memory solver's and the fits equal its (to its precision: float32 conjugate gradients whose products are now
summed block by block). A first pass gives what :class:`._linear.TimeBlock` gives in memory: the mean of every
stimulus (the centre), the Gram matrix of the centred stimuli and each fold's training mean and standard
deviation (from the test stimuli's sums and sums of squares). A 10-class fit of 20,000 stimuli x 2048 units, 5
folds, took 15 Newton iterations and 303 Hessian products in memory: about 335 passes over the step. With
``spill``, the first pass also writes the blocks to files of a temporary folder (:mod:`._spill`) that the later
passes read (a Hessian product's pass over those 20,000 x 2048 float32 units from a zarr store: 0.40 -> 0.11 s).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from ._linear import FoldMoments, LinearFit, inverse_std, matmul, to_original_units, training_multipliers
from ._logistic import MAX_ITER, TOL, _newton, _Problems, classes_present, decision_columns, mask_absent_classes
from ._spill import Spill, spill_folder
from ._stimulus_sums import StepRows

PER_SAMPLE_ARRAYS = 12  # float64 arrays of (folds, classes) values per stimulus that the solver holds per target set
# (linear predictions, direction, probabilities, curvature, residuals, the line search's trials, logits)


def set_bytes(n: int, p: int, n_folds: int, n_classes: int) -> int:
    """The bytes the solver holds per target set: its arrays per stimulus and per unit, each (folds, classes)."""
    return 8 * PER_SAMPLE_ARRAYS * n_folds * n_classes * (n + p)


class RowData:
    """What the solver's problems (:class:`._logistic._Problems`) need of a step, as a :class:`._linear.TimeBlock`
    of one step gives it in memory, from one pass over its blocks of stimuli: ``centre`` (1, p) the mean of every
    stimulus, ``gram_all`` (1, p, p) the Gram matrix of the stimuli centred on it, and each fold's training moments
    (:meth:`fold`). The sums are taken about the first block's mean, for precision, then moved to the centre.
    """

    grams = True  # the p x p Gram matrix of every stimulus: the preconditioner's

    def __init__(self, rows: StepRows, folds: list[np.ndarray], *, spill: Spill | None = None) -> None:
        n, p = rows.n, rows.p
        tests = (~np.asarray(folds, dtype=bool)).astype(np.float64)  # (F, n)
        shift = rows.first_mean()
        total, gram = np.zeros(p), np.zeros((p, p))
        test_sums, test_squares = np.zeros((len(folds), p)), np.zeros((len(folds), p))
        for block, values in rows.slices():
            if spill is not None:
                spill.keep(block, values)
            v = values - shift
            total += v.sum(axis=0)
            gram += v.T @ v
            test_sums += tests[:, block] @ v
            test_squares += tests[:, block] @ (v * v)
        d = total / n  # the centre minus the shift
        n_test = tests.sum(axis=1)[:, None]
        self.centre_values = shift + d
        self.folds, self.n = folds, n
        self.shape, self.device = (1, n, p), torch.device("cpu")
        self.centre = torch.from_numpy(self.centre_values[None])
        self.gram_all = torch.from_numpy(gram - n * np.outer(d, d))[None]
        self.sums_all = total - n * d  # about the centre: zero but for rounding, as in memory
        self.test_sums = test_sums - n_test * d
        self.test_squares = test_squares - 2 * d * test_sums + n_test * d * d

    def fold(self, f: int, *, scale: bool) -> FoldMoments:
        """Fold ``f``'s training moments about the centre (its test stimuli's sums subtracted from every stimulus's)."""
        train = np.asarray(self.folds[f], dtype=bool)
        n_train = int(train.sum())
        mean = (self.sums_all - self.test_sums[f]) / n_train
        every = np.diagonal(self.gram_all[0].numpy())
        squares = every - self.test_squares[f] - n_train * mean * mean
        moments = torch.from_numpy(squares / n_train), torch.from_numpy(self.centre_values + mean), n_train
        cancelled = torch.from_numpy((every + self.test_squares[f]) / n_train)  # (its sums: a difference)
        inv = training_multipliers(*moments, shift=torch.from_numpy(mean), cancelled=cancelled, scale=scale)[None]
        return FoldMoments(train, n_train, torch.from_numpy(mean)[None], inv.to(torch.float64), None, None)

    def inverse_std(self) -> torch.Tensor:
        """(1, p): 1 / the standard deviation of every stimulus, per unit (1 where constant)."""
        squares, shift = (
            torch.diagonal(self.gram_all, dim1=1, dim2=2) / self.n,
            torch.from_numpy(self.sums_all / self.n),
        )
        return inverse_std(squares, self.centre, self.n, shift=shift)


class RowProblems(_Problems):
    """The problems of :class:`._logistic._Problems` whose products with the data are passes over ``rows``."""

    def __init__(self, rows: StepRows, data: RowData, *args: object, spill: Spill | None = None) -> None:
        self.rows, self.centre_values, self.spill = rows, data.centre_values, spill
        super().__init__(data, *args)

    @staticmethod
    def _products(data: RowData) -> dict[str, torch.Tensor]:
        return {}  # (the data stay in the store: read block by block)

    def _blocks(self, dtype: torch.dtype) -> Iterator[tuple[slice, torch.Tensor]]:
        """(block, its stimuli centred, in ``dtype``) block by block of the step: from the spill where there is one."""
        if self.spill is not None:
            kind = np.float32 if dtype == torch.float32 else np.float64
            for block in self.rows.blocks:
                yield block, torch.from_numpy(self.spill.read(block, kind))
            return
        for block, values in self.rows.slices():
            yield block, torch.from_numpy(values - self.centre_values).to(dtype)

    def _forward(self, scaled: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((1, self.rows.n, scaled.shape[-1]), dtype=scaled.dtype)
        if scaled.any():  # (the solver's first predictions are of zero weights)
            for block, z in self._blocks(scaled.dtype):
                out[0, block] = matmul(z, scaled[0])
        return out

    def _backward(self, r: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((1, self.rows.p + 1, r.shape[-1]), dtype=r.dtype)
        for block, z in self._blocks(r.dtype):
            self._add_back(out, z, r[0, block])
        return out

    @staticmethod
    def _add_back(out: torch.Tensor, z: torch.Tensor, r: torch.Tensor) -> None:
        """Add [z 1]' r, a block's share of [X 1]' r, to ``out``."""
        out[0, :-1] += matmul(z.mT, r)
        out[0, -1] += r.sum(dim=0)

    def _through(self, scaled: torch.Tensor, offset: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
        """The Hessian product's two products in one pass: each block's J (z scaled + offset) multiplied back."""
        out = torch.zeros((1, self.rows.p + 1, scaled.shape[-1]), dtype=scaled.dtype)
        for block, z in self._blocks(scaled.dtype):
            u = matmul(z, scaled[0]).view(1, -1, *offset.shape[1:]) + offset[:, None]
            self._add_back(out, z, self.jacobian(curvature, u, block).reshape(len(z), -1))
        return out


def fit_logistic_rows(
    rows: StepRows,
    y: np.ndarray,
    folds: list[np.ndarray],
    *,
    n_classes: int,
    penalty: float,
    scale: bool,
    tol: float = TOL,
    max_iter: int = MAX_ITER,
    max_cg: int = 200,
    spill: bool = False,
) -> tuple[LinearFit, RowData]:
    """:func:`._logistic.fit_logistic` of one step read in blocks of stimuli (``rows``): (the fit, one step:
    coef (F, 1, p, S n_out), intercept (F, 1, S n_out); the step's :class:`RowData`, whose Gram matrix gives
    its covariance). ``y`` (n, S) class indices, ``folds`` boolean masks of the training stimuli. ``spill``: the
    passes after the first read the step's blocks from files of a temporary folder (:mod:`._spill`; the same
    values), where its disk has room.
    """
    present = classes_present(y, folds, n_classes)
    with spill_folder(Spill.size(rows.n, rows.p)) if spill else contextlib.nullcontext() as folder:
        kept = None if folder is None else Spill(folder, rows.p)
        data = RowData(rows, folds, spill=kept)
        if kept is not None:
            kept.centred(data.centre_values, rows.blocks)
        problems = RowProblems(rows, data, folds, torch.as_tensor(y, dtype=torch.int64), torch.as_tensor(present),
                               penalty, scale, spill=kept)  # fmt: skip
        w, b = decision_columns(*_newton(problems, tol=tol, max_iter=max_iter, max_cg=max_cg), n_classes)
    parts = [to_original_units(w[:, f], b[:, f], moments, data.centre) for f, moments in enumerate(problems.moments)]
    fit = LinearFit(np.stack([coef for coef, _ in parts]), np.stack([intercept for _, intercept in parts]))
    mask_absent_classes(fit, present)
    return fit, data
