"""dPCA's algebra: trials to a condition tensor, marginalisations, the regularised closed-form fit.

Notation (Kobak et al. 2016): X (unit x conditions... x time), centred per unit. A marginalisation
X_phi for a set phi of task parameters (time among them) keeps what depends on exactly those
parameters: by inclusion-exclusion over the means M_psi of X over every axis outside psi,
X_phi = sum over psi in phi of (-1)^(|phi| - |psi|) M_psi. The X_phi sum to X. For each (joined)
marginalisation, dPCA solves the reduced-rank regression

    min over P, D of ||X_phi - P D' X||^2 + mu ||P D'||^2,   P'P = I, rank q:

with C = X_phi X' (X X' + mu I)^-1, P holds the top q eigenvectors of C (X X' + mu I) C' and D = C' P.
The ridge mu is (regularizer x ||X||^2)^2, as the dPCA package scales it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from ..._validation import check_grouping
from ...errors import ArgumentError, ShapeError, UnknownNameError, format_choices
from .._lapack import largest_eigh

TIME = "time"


@dataclass
class Design:
    """The condition tensor of a set of trials: levels per parameter and each trial's cell."""

    parameters: list[str]
    levels: list[np.ndarray]
    cells: np.ndarray  # (trial,) flat index of each trial's condition
    counts: np.ndarray  # trials per condition, in the grid's shape

    @property
    def shape(self) -> tuple[int, ...]:
        """Levels per parameter."""
        return tuple(len(level) for level in self.levels)


def trial_design(columns: dict[str, np.ndarray]) -> Design:
    """The full grid of the parameters' levels; every combination must have a trial."""
    parameters = list(columns)
    levels, codes = [], []
    for name in parameters:
        values, code = np.unique(check_grouping(columns[name], name=f"parameters {name!r}"), return_inverse=True)
        if values.size < 2:
            raise ArgumentError(f"parameters: column {name!r} has one value ({values[0]!r}); a parameter needs two.")
        levels.append(values)
        codes.append(code)
    shape = tuple(len(level) for level in levels)
    cells = np.ravel_multi_index(codes, shape)
    counts = np.bincount(cells, minlength=int(np.prod(shape))).reshape(shape)
    if counts.min() == 0:
        missing = np.argwhere(counts == 0)[0]
        where = {name: level[i].item() for name, level, i in zip(parameters, levels, missing, strict=True)}
        raise ShapeError(
            f"parameters: no trial has {where} ({int((counts == 0).sum())} empty condition(s)). dPCA needs every "
            f"combination of the parameters' values; select trials or parameters that cross fully."
        )
    return Design(parameters, levels, cells, counts)


def by_condition(per_cell: np.ndarray, design: Design) -> np.ndarray:
    """(..., cell, time, unit) arrays as (..., unit, *conditions, time) (leading axes: a batch)."""
    lead = per_cell.shape[:-3]
    return np.moveaxis(per_cell.reshape(*lead, *design.shape, *per_cell.shape[-2:]), -1, len(lead))


def marginalization_names(parameters: list[str], join: Any) -> dict[str, list[tuple[str, ...]]]:
    """Marginalisation name -> the parameter sets it joins. join: None (every set apart), "time" (each
    set with its interaction with time, as Kobak et al.'s figures), or a dict name -> list of set names.
    """
    axes = [*parameters, TIME]
    subsets = [s for r in range(1, len(axes) + 1) for s in combinations(axes, r)]
    names = {" x ".join(s): s for s in subsets}
    if join is None:
        return {name: [s] for name, s in names.items()}
    if join == TIME:
        joined: dict[str, list[tuple[str, ...]]] = {TIME: [(TIME,)]}
        for s in subsets:
            if TIME not in s:
                joined[" x ".join(s)] = [s, (*s, TIME)]
        return joined
    if isinstance(join, dict):
        out = {name: [s] for name, s in names.items()}
        for new, parts in join.items():
            for part in parts:
                if part not in out:
                    raise UnknownNameError(
                        f"join: {part!r} is not a marginalisation. Available: {format_choices(out)}."
                    )
            out[str(new)] = [s for part in parts for s in out.pop(part)]
        return out
    raise ArgumentError(f"join: got {join!r}. Pass None, 'time' or a dict of name -> list of marginalisations.")


def marginalize(x: np.ndarray, axes: list[str], groups: dict[str, list[tuple[str, ...]]]) -> dict[str, np.ndarray]:
    """Name -> X_phi (unit x conditions x time, summed over the joined sets) of centred x (..., unit,
    *conditions, time), leading axes a batch.
    """
    dims = {name: k - len(axes) for k, name in enumerate(axes)}  # (from the end: any leading batch axes)
    means: dict[tuple[str, ...], np.ndarray] = {}

    def mean_keeping(keep: tuple[str, ...]) -> np.ndarray:
        if keep not in means:
            drop = tuple(d for name, d in dims.items() if name not in keep)
            means[keep] = x.mean(axis=drop, keepdims=True) if drop else x
        return means[keep]

    out = {}
    for name, sets in groups.items():
        total = np.zeros_like(x)
        for s in sets:
            for r in range(len(s) + 1):
                for psi in combinations(s, r):
                    total += (-1) ** (len(s) - r) * mean_keeping(psi)
        out[name] = total
    return out


def _t(a: np.ndarray) -> np.ndarray:
    """The last two axes swapped (the transpose of each matrix of a stack)."""
    return a.swapaxes(-1, -2)


def _ridge_or_pinv(mu: np.ndarray, ridge: Any, plain: Any) -> np.ndarray:
    """``ridge(sel)`` where the ridge mu (the batch's shape) is positive, ``plain(sel)`` (the pseudo-inverse's
    solution) where it is zero; ``sel`` selects those matrices of the batch (``...``: all of them).
    """
    positive = mu > 0
    if positive.all():
        return ridge(...)
    if not positive.any():
        return plain(...)
    first = ridge(positive)
    out = np.empty((*mu.shape, *first.shape[1:]))
    out[positive], out[~positive] = first, plain(~positive)
    return out


def fit_marginal(x: np.ndarray, marginal: np.ndarray, mu: np.ndarray, q: int, gram: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(encoder P, decoder D), unit x q, of one marginalisation (x, marginal: unit x samples; gram = X X'):
    the reduced-rank regression's target C R C' (C = X_phi X' R^-1, or X_phi X^+ unregularised;
    R = X X' + mu I) decomposed in the units' dimension. With fewer samples than units, :func:`fit_path`
    solves the same in the samples' dimension (:func:`_thin_fit`). Leading axes (and ``mu``'s): a batch.
    """
    regularized = gram + mu[..., None, None] * np.eye(gram.shape[-1])
    c = _ridge_or_pinv(  # X_phi X' (X X' + mu I)^-1 (the inverse is symmetric), or X_phi X^+ (X X' may be singular)
        mu,
        lambda sel: _t(np.linalg.solve(regularized[sel], x[sel] @ _t(marginal[sel]))),
        lambda sel: marginal[sel] @ np.linalg.pinv(x[sel]),
    )
    target = c @ regularized @ _t(c)
    encoder = _leading(largest_eigh((target + _t(target)) / 2, q)[1], q)
    return encoder, _t(c) @ encoder


def _thin_parts(x: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, K) of :func:`fit_marginal`'s samples-dimension solution, shared by every marginalisation of x:
    A = R^-1 X = X (X'X + mu I)^-1 (the push-through identity), or A = (X^+)' unregularised, and
    K = A' R A = (X'A)'(X'A) + mu A'A (samples x samples). Leading axes (and ``mu``'s): a batch.
    """
    eye = np.eye(x.shape[-1])
    a = _ridge_or_pinv(  # (X'X + mu I) is symmetric
        mu,
        lambda sel: _t(np.linalg.solve(_t(x[sel]) @ x[sel] + mu[sel][..., None, None] * eye, _t(x[sel]))),
        lambda sel: _t(np.linalg.pinv(x[sel])),
    )
    xa = _t(x) @ a
    return a, _t(xa) @ xa + mu[..., None, None] * (_t(a) @ a)


def _thin_fit(marginal: np.ndarray, factors: tuple[np.ndarray, np.ndarray], a: np.ndarray, k: np.ndarray, q: int
              ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(encoder, decoder) of one marginalisation M, given its QR ``factors`` (Q, r) and :func:`_thin_parts`:
    C = M A', the target C R C' = M K M' = Q (r K r') Q', so the encoder is Q V for the leading eigenvectors
    V of r K r' and the decoder C' P = A M' P. A 256-unit layer of 40 samples: a 40 x 40 eigenproblem, no
    256 x 256 products (``dpca_significance``, one thread, AMD EPYC: 24,000 trials x 4 steps x 256 units,
    20 shuffles x 5 splits, 1.6-2.0 -> 0.65-0.8 s; 240 trials x 15 steps x 400 units, 20 x 20, 33 -> 9.3 s).
    """
    basis, r = factors  # marginal = basis r (unit x samples, samples x samples)
    small = r @ k @ _t(r)
    encoder = _leading(basis @ largest_eigh((small + _t(small)) / 2, q)[1], q)
    return encoder, a @ (_t(marginal) @ encoder)


def _leading(vectors: np.ndarray, q: int) -> np.ndarray:
    """The last q columns of eigh's ascending eigenvectors (of each matrix of a stack), largest first, each
    signed so that its largest entry is positive.
    """
    encoder = vectors[..., ::-1][..., :q]
    peak = np.take_along_axis(encoder, np.argmax(np.abs(encoder), axis=-2)[..., None, :], axis=-2)
    return encoder * np.where(peak < 0, -1.0, 1.0)


def fit_all(x: np.ndarray, marginals: dict[str, np.ndarray], regularizer: float, components: dict[str, int],
            *, batch: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:  # fmt: skip
    """Encoders and decoders of every marginalisation, at one regularizer."""
    return next(fit_path(x, marginals, [regularizer], components, batch=batch))


def fit_path(x: np.ndarray, marginals: dict[str, np.ndarray], regularizers: Iterable[float],
             components: dict[str, int], *, batch: int = 0
             ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:  # fmt: skip
    """(encoders, decoders) of every marginalisation at each regularizer in turn (the cross-validation's
    candidates); what no regularizer changes is computed once: the unit x unit Gram matrix, or, with fewer
    samples than units (the samples' dimension, :func:`_thin_fit`), each marginalisation's QR factors (3.5 of
    ``regularizer="auto"``'s 10 s when they were recomputed for each of its 45 candidates, 400 units).

    ``x`` and the marginals (unit, *conditions, time) may lead with ``batch`` axes of independent fits (the
    significance's splits and shuffles), fitted by the stacked solvers at once: the encoders and decoders
    lead with them too.
    """
    flat = x.reshape(*x.shape[: batch + 1], -1)  # (..., unit, samples)
    norm = np.einsum("...us,...us->...", flat, flat)
    shaped = {name: marginal.reshape(flat.shape) for name, marginal in marginals.items()}
    thin = flat.shape[-1] < flat.shape[-2] and max(components.values()) <= flat.shape[-1]
    factors = {name: np.linalg.qr(m) for name, m in shaped.items()} if thin else None
    gram = None if thin else flat @ _t(flat)
    for regularizer in regularizers:
        mu = (regularizer * norm) ** 2
        if factors is not None:
            parts = _thin_parts(flat, mu)  # (shared by the marginalisations; no unit x unit matrices)
            fits = {name: _thin_fit(m, factors[name], *parts, components[name]) for name, m in shaped.items()}
        else:
            fits = {name: fit_marginal(flat, m, mu, components[name], gram) for name, m in shaped.items()}
        yield {name: fit[0] for name, fit in fits.items()}, {name: fit[1] for name, fit in fits.items()}


def held_out_error(x: np.ndarray, marginals: dict[str, np.ndarray], encoders: dict[str, np.ndarray],
                   decoders: dict[str, np.ndarray]) -> dict[str, float]:  # fmt: skip
    """Per marginalisation, sum over units n of ||X_phi[n] - (P D')[n, -n] X[-n]||^2 on held-out data: each
    unit predicted from the others (Kobak et al. 2016, Methods; the dPCA package's score).
    """
    flat = x.reshape(x.shape[0], -1)
    errors = {}
    for name, marginal in marginals.items():
        p, d = encoders[name], decoders[name]
        own = np.sum(p * d, axis=1)  # the diagonal of P D'
        residual = marginal.reshape(flat.shape) - p @ (d.T @ flat) + own[:, None] * flat
        errors[name] = float(np.vdot(residual, residual))
    return errors
