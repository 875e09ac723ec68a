"""What the batched linear decoders share: time blocks, fold-wise moments from shared Gram
matrices, and the fitted weights in the features' original units.

Every fold's training set is all samples minus the fold's test samples, so its centred Gram
matrix is the whole data's minus one product of the test samples (and the mean):

    X_tr'X_tr - n m m' = X'X - X_test'X_test - n m m',

half the products of forming each fold's Gram matrix from its training samples; with k-fold splits
(test sets that partition the samples) X'X is the sum of the test sets' X_test'X_test, which halves
the products again. The data are centred once per time step over all samples, so the fold means
are small and the subtraction loses no digits. With ``scale`` (a ``StandardScaler`` before the
decoder) the features are divided by the training standard deviation (population, 1 where
constant), as sklearn does.

The arithmetic runs in torch (float64) on ``device``: the CPU by default, a GPU on request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._constant import rounding_only
from ._lapack import posv_batch


@dataclass
class LinearFit:
    """Weights and intercepts of linear decoders in the original units of the features.

    coef : (n_folds, n_times, n_features, n_outputs); intercept : (n_folds, n_times, n_outputs).
    The decision values of fold f, trained at t, on features x: x @ coef[f, t] + intercept[f, t].
    """

    coef: np.ndarray
    intercept: np.ndarray


@dataclass
class FoldMoments:
    """One fold's training moments at each time step of a block (torch tensors on the device).

    mean : (tb, p) training mean of the block-centred data; inv : (tb, p) 1 / training standard
    deviation, or ones without scaling, and 0 for a feature constant on the training samples (its weight is
    then 0, as scikit-learn's for a centred constant feature, whatever the penalty: rounding left in its row of
    the Gram matrix would otherwise weigh it by about rounding / penalty); gram : (tb, p, p) centred (and
    scaled) training Gram matrix, a view of a buffer the next fold overwrites (None for a block without
    ``grams``);
    test : (tb, n_test, p), the block-centred samples outside the training set.
    """

    train: np.ndarray
    n_train: int
    mean: torch.Tensor
    inv: torch.Tensor
    gram: torch.Tensor | None
    test: torch.Tensor


class TimeBlock:
    """The data of a block of time steps, centred over all samples, with its Gram matrix, and the
    moments of the training samples of each fold (``folds``: boolean masks, True for training).

    ``x`` is (tb, n, p) on the device, ``centre`` (tb, p) the mean that was subtracted. When the folds'
    test sets partition the samples (k-fold cross-validation: each sample tested once), the Gram matrix
    of all samples is the sum of the test sets' own, which are kept: each fold's training Gram matrix is
    then the total minus its test set's (and n m m'), and the products read the samples once instead of
    twice (600 x 30 x 128, 5 folds: 1.19 -> 0.60 GFLOP). Other splits (shuffled, overlapping or
    incomplete test sets) take one product of each test set per fold. With ``grams=False`` (a solver that
    needs no p x p matrices: more units than samples) only the training variances are computed.
    """

    def __init__(
        self, x: np.ndarray, block: slice, device: torch.device, folds: list[np.ndarray], *, grams: bool = True
    ) -> None:
        xb = time_major(x, block, device)
        self.centre = xb.mean(dim=1)
        xb -= self.centre[:, None, :]
        self.x, self.folds, self.grams = xb, folds, grams
        self.sums_all = xb.sum(dim=1)
        self._test_grams: list[torch.Tensor] | None = None
        tests = ~np.asarray(folds, dtype=bool)
        if not grams:
            self.squares_all = (xb * xb).sum(dim=1)
        elif tests.sum(axis=0).tolist() == [1] * tests.shape[1]:  # a partition of the samples
            self._test_grams = [self._gram(self.x[:, torch.as_tensor(test, device=xb.device)]) for test in tests]
            self.gram_all = self._test_grams[0].clone()
            for gram in self._test_grams[1:]:
                self.gram_all += gram
        else:
            self.gram_all = self._gram(xb)
            self._product = torch.empty_like(self.gram_all)
        if grams:  # a reused buffer: fresh (tb, p, p) arrays per fold cost more in page faults than in flops
            self._buffer = torch.empty_like(self.gram_all)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(tb, n, p): the block's steps, samples and features."""
        return tuple(self.x.shape)

    @property
    def device(self) -> torch.device:
        return self.x.device

    @staticmethod
    def _gram(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return matmul(x.mT, x, out=out)

    def fold(self, f: int, *, scale: bool) -> FoldMoments:
        """Moments of fold ``f``'s training samples."""
        train = self.folds[f]
        n_train = int(train.sum())
        xt = self.x[:, torch.as_tensor(~train, device=self.x.device)]
        mean = (self.sums_all - xt.sum(dim=1)) / n_train
        gram = None
        if not self.grams:  # the diagonal only: sum of squares of the training samples minus n m^2
            test_squares = (xt * xt).sum(dim=1)
            squares = self.squares_all - test_squares - n_train * mean * mean
            cancelled = self.squares_all + test_squares
        else:  # X'X - X_test'X_test - n m m'
            test_gram = self._gram(xt, out=self._product) if self._test_grams is None else self._test_grams[f]
            cancelled = torch.diagonal(self.gram_all, dim1=1, dim2=2) + torch.diagonal(test_gram, dim1=1, dim2=2)
            gram = torch.sub(self.gram_all, test_gram, out=self._buffer)
            gram.baddbmm_(mean[:, :, None], mean[:, None, :], alpha=-float(n_train))
        squares = torch.diagonal(gram, dim1=1, dim2=2) if gram is not None else squares
        inv = training_multipliers(squares / n_train, self.centre + mean, n_train, shift=mean,
                                   cancelled=cancelled / n_train, scale=scale)  # fmt: skip
        if gram is not None and (scale or not bool(inv.all())):  # (scaled; a constant feature's row and column: 0)
            gram *= inv[:, :, None]
            gram *= inv[:, None, :]
        return FoldMoments(train, n_train, mean, inv, gram, xt)

    def inverse_std(self) -> torch.Tensor:
        """(tb, p): 1 / the standard deviation of every sample of the block, per feature (1 where constant)."""
        squares = torch.diagonal(self.gram_all, dim1=1, dim2=2) if self.grams else self.squares_all
        n = self.x.shape[1]
        return inverse_std(squares / n, self.centre, n, shift=self.sums_all / n)


def training_multipliers(
    variance: torch.Tensor,
    mean: torch.Tensor,
    n: int,
    *,
    shift: torch.Tensor | float = 0.0,
    cancelled: torch.Tensor | float = 0.0,
    scale: bool,
    if_constant: float = 0.0,
) -> torch.Tensor:
    """A fold's multipliers of its features (``FoldMoments.inv``): 1 / StandardScaler's (population) standard
    deviation of ``n`` samples per feature from their ``variance`` with ``scale``, else 1, and ``if_constant``
    (0) where the feature is constant on them (:func:`._constant.rounding_only`; ``mean``: the samples' mean in
    the features' original units, ``shift``: their mean less the point the squares were summed about,
    ``cancelled``: the mean square of the sums the squares are a difference of).
    """
    var = torch.clamp(variance, min=0)
    constant = rounding_only(var, mean, n, shift=shift, cancelled=cancelled, eps=torch.finfo(var.dtype).eps)
    return torch.where(constant, if_constant, 1 / torch.sqrt(var) if scale else torch.ones_like(var))


def inverse_std(
    variance: torch.Tensor, mean: torch.Tensor, n: int, *, shift: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """1 / StandardScaler's standard deviation, 1 for a constant feature, as StandardScaler's ``scale_``
    (:func:`training_multipliers`' arguments).
    """
    return training_multipliers(variance, mean, n, shift=shift, scale=True, if_constant=1.0)


def work_bytes(p: int, n_folds: int) -> int:
    """Bytes per time step of a :class:`TimeBlock`'s p x p arrays (with a partition: every test set's Gram
    matrix, the total and a buffer).
    """
    return 8 * p * p * (n_folds + 2)


BUDGET = 2**28  # bytes of a block's work arrays, by default
CPU_BUDGET = 2**25  # on the CPU, for the iterative and batched fits (ridge, logistic): blocks this small, whose
# arrays the allocator reuses from one block to the next and the caches hold better, beat large fresh ones
# (AMD EPYC, in one process: ridge 2000 x 30 x 512 with generalization 1.06 -> 0.99 s on one thread, 0.86 ->
# 0.67 s on two, 600 x 30 x 128 unchanged; multinomial logistic 1000 x 10 x 512, 4 classes, 1.68 -> 1.35 s)


def block_budget(device: torch.device) -> int:
    """The bytes of a block's work arrays for the batched fits on ``device``."""
    return CPU_BUDGET if device.type == "cpu" else BUDGET


def time_blocks(n_times: int, bytes_per_step: int, *, budget: int = BUDGET, parts: int = 1) -> Iterator[slice]:
    """Consecutive slices of time steps whose work arrays take about ``budget`` bytes, at least ``parts``
    of them (as many as there are time steps at most) and, with several parts, a multiple of them whose
    sizes differ by one at most, the larger first: ``parts`` workers taking them in turn get as many steps.
    """
    size = max(1, min(n_times, budget // max(1, bytes_per_step), -(-n_times // max(1, parts))))
    if parts > 1:  # 30 steps of at most 13 on 2 threads: 8, 8, 7, 7 (15 steps a worker; 8, 8, 8, 6 gave 16 and 14)
        fewest = -(-n_times // size)  # blocks within the budget
        n_blocks = min(n_times, -(-fewest // parts) * parts)
        small, larger = divmod(n_times, n_blocks)
        sizes = [small + 1] * larger + [small] * (n_blocks - larger)
    else:
        sizes = [size] * (n_times // size) + ([n_times % size] if n_times % size else [])
    start = 0
    for steps in sizes:
        yield slice(start, start + steps)
        start += steps


def time_major(x: np.ndarray, block: slice, device: torch.device) -> torch.Tensor:
    """The samples' features at the time steps of ``block`` as a contiguous (tb, n, p) float64 copy on
    ``device``. A copy, always: callers centre it in place, and for a single time step the transposed
    slice of a float64 array is the caller's own memory (a Recording's states). Contiguous, always:
    ``torch.tensor`` of the transposed slice keeps numpy's strides, and every product and fold
    gather on those strides copied the block again (600 x 30 x 128 decoding with generalization, AMD
    EPYC, 1 thread: 88 -> 56 ms).
    """
    block_major = np.array(x[:, block].transpose(1, 0, 2), dtype=np.float64, order="C")  # (copy=True)
    return torch.from_numpy(block_major).to(device)


def to_original_units(
    w: torch.Tensor, b: torch.Tensor, moments: FoldMoments, centre: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Weights w (tb, p, k) and intercepts b (tb, k) of a decoder of the centred, scaled features
    ((x - centre - mean) * inv) as (coef, intercept) of the raw features x.
    """
    coef = w * moments.inv[:, :, None]
    intercept = b - torch.einsum("tp,tpk->tk", centre + moments.mean, coef)
    return coef.cpu().numpy(), intercept.cpu().numpy()


def matmul(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` (into ``out``); on the CPU through numpy's BLAS, which multiplies the batched
    solvers' matrices up to several times faster than torch's here (AMD EPYC, 1 thread: 30 Gram
    matrices of 600 x 128 in 10 vs 19 ms; thin n x p times p x 5 products in 2.2 vs 3.0 ms in
    float64, 0.4 vs 3.1 ms in float32).
    """
    if a.device.type != "cpu":
        return torch.matmul(a, b, out=out)
    result = np.matmul(_blas_operand(a), _blas_operand(b), out=None if out is None else out.numpy())
    return out if out is not None else torch.from_numpy(result)


def _blas_operand(t: torch.Tensor) -> np.ndarray:
    """``t`` as numpy matrices that BLAS reads in place: contiguous or transposed views as they are (a copy
    of the transposed kernel operand z' cost as much as the dual ridge's product z z'), others copied.
    """
    return t.numpy() if t.is_contiguous() or t.mT.is_contiguous() else t.contiguous().numpy()


CHOLESKY_MIN = 32  # from this many unknowns a Cholesky solve per matrix beats numpy's batched LU (AMD EPYC:
# 1.3-1.6x for 32 to 1024 unknowns; 0.4-0.7x for 8 to 16, where the per-matrix calls cost more than the work)


def solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched ``a x = b`` for ridge's penalised Gram matrices (symmetric, positive definite for a positive
    penalty); on the CPU through LAPACK: a Cholesky solve (``dposv``, by :func:`._lapack.posv_batch`, which
    releases the interpreter lock) per matrix from ``CHOLESKY_MIN`` unknowns, numpy's batched LU below. A
    system that is not positive definite in floating point (no penalty, or 1e-33 on constant features)
    gets the minimum-norm least-squares solution, as scikit-learn's ridge falls back to (below
    ``CHOLESKY_MIN``: when LU finds it singular).
    """
    if a.device.type != "cpu":
        try:
            return torch.linalg.solve(a, b)
        except RuntimeError:  # torch's LinAlgError
            return torch.linalg.pinv(a) @ b
    a_np, b_np = a.numpy(), b.numpy()
    if a_np.shape[-1] < CHOLESKY_MIN:
        return torch.from_numpy(lu_solve(a_np, b_np))
    rhs_all = np.broadcast_to(b_np, (len(a_np), *b_np.shape[-2:]))  # (the dual form's right-hand sides are shared)
    # the upper triangle of each matrix's transpose (in column order: the matrix's own memory), without the lock
    out, info = posv_batch(a_np.transpose(0, 2, 1), rhs_all)
    for i in np.flatnonzero(info):  # not positive definite: as scikit-learn's fallback
        out[i] = np.linalg.lstsq(a_np[i], rhs_all[i], rcond=None)[0]
    return torch.from_numpy(out)


def lu_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched a x = b by numpy's LU (LAPACK), the minimum-norm least-squares solution where a is singular."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a) @ b


def as_device(device: str | torch.device | None) -> torch.device:
    return torch.device("cpu" if device is None else device)
