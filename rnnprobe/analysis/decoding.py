"""Decoding over time and temporal generalization from a Recording.

When (at which time step) and where (which layer) can a variable be read out, and does the code
change over time? :func:`decode` cross-validates a decoder at every time step of a layer, or with
``generalize=True`` trains at every step and tests at every step (King & Dehaene 2014), like
MNE-Python's ``SlidingEstimator`` / ``GeneralizingEstimator``.

Two paths:

- any scikit-learn estimator or pipeline, cloned and fitted per (fold, time step);
- a fast path, the default, for ridge (``RidgeClassifier`` / ``Ridge``) and l2 logistic
  regression (``LogisticRegression``), alone or after a ``StandardScaler``: every fold, time step
  and permutation is fitted at once in torch (CPU or GPU). Ridge is solved from shared Gram
  matrices (:mod:`._ridge`) with sklearn's scores to rounding, and permutation tests reuse its
  factorisations (labels enter linearly); logistic regression by a batched truncated Newton
  method (:mod:`._logistic`) to a tighter optimum than sklearn's lbfgs reaches.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import (
    MAX_RESAMPLES,
    check_device,
    check_grouping,
    check_int,
    check_number,
    check_probability,
    check_progress,
    check_recording,
    check_seed,
    layer_states,
)
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from ..recording import Recording
from . import _scores
from ._clusters import Cluster, cluster_test
from ._group_folds import splitter_folds, stratified_group_folds
from ._kernel_decoding import kernel_route_pays, kernel_scores
from ._logistic import fit_logistic
from ._ridge import fit_ridge
from .parallel import library_threads, small_blas, task_pool

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

ESTIMATORS = ("ridge", "logistic")
MAX_SETS_PER_PASS = 64  # logistic: target sets (true, permuted) fitted and scored at once (bounded memory)
PASS_BYTES = 2**28  # ridge: bytes of a pass's per-set arrays (coefficients, the decision values being scored)


@dataclass
class DecodingResult:
    """Cross-validated decoding scores over time (or the temporal generalization matrix).

    Attributes
    ----------
    scores : ndarray, (n_times,) or (n_train_times, n_test_times)
        Mean over folds.
    fold_scores : ndarray, (n_folds, ...)
    times, test_times : ndarray
        Time coordinates of the training and test time steps.
    scoring : str
    chance : float
        The score of guessing: the majority-class rate for accuracy, 1 / n_classes for balanced
        accuracy, 0.5 for ROC AUC, 0 for R^2, minus the target's variance (mean absolute deviation
        from the median) for the negated squared (absolute) error.
    null : ndarray or None, (n_permutations, ...)
        Scores with permuted targets (same folds).
    p_values : ndarray or None
        Per point: (1 + #{null >= score}) / (1 + n_permutations), one-sided (a null score within 1e-12
        of the larger magnitude counts as reaching it, whatever the scores' scale).
    clusters : list of Cluster
        Cluster-based permutation correction over time (or the generalization matrix).
    patterns : ndarray or None, (n_times, n_units, n_outputs)
        Haufe et al. (2014) activation patterns of linear decoders fitted on all samples.
    classes : ndarray or None
    """

    scores: np.ndarray
    fold_scores: np.ndarray
    times: np.ndarray
    test_times: np.ndarray
    scoring: str
    chance: float
    layer: str
    target: str
    estimator: str
    generalize: bool
    null: np.ndarray | None = None
    p_values: np.ndarray | None = None
    clusters: list[Cluster] = field(default_factory=list)
    patterns: np.ndarray | None = None
    classes: np.ndarray | None = None
    periods: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.scores.shape)
        kind = "generalization matrix" if self.generalize else "scores over time"
        best = _defined_max(self.scores)
        return (
            f"<DecodingResult: {kind} ({shape}) of {self.target!r} from {self.layer!r}, {self.scoring}, "
            f"best {best:.3f}, chance {self.chance:.3f}, {len(self.fold_scores)} fold(s)>"
        )

    def diagonal(self) -> np.ndarray:
        """Scores when training and testing at the same time step."""
        return np.diagonal(self.scores) if self.generalize else self.scores

    def significant(self, p_threshold: float = 0.05) -> np.ndarray:
        """Boolean mask of the points in clusters with p < ``p_threshold``."""
        mask = np.zeros(self.scores.shape, dtype=bool)
        for cluster in self.clusters:
            if cluster.p_value < p_threshold:
                mask |= cluster.mask
        return mask

    def summary(self, p_threshold: float = 0.05) -> dict[str, Any]:
        """Key numbers: the peak score and when, chance, folds, and significant clusters (if tested)."""
        out: dict[str, Any] = {
            "layer": self.layer, "target": self.target, "scoring": self.scoring, "chance": float(self.chance),
            "peak score": float("nan"),
        }  # fmt: skip
        i = _scores.peak_position(self.scores)  # (None where no score is defined: no peak)
        if i is not None:
            out["peak score"] = float(self.scores[i])
        if self.generalize:
            out["peak train time"], out["peak test time"] = (
                (self.times[i[0]].item(), self.test_times[i[1]].item()) if i is not None else (None, None)
            )
            out["peak diagonal score"] = _defined_max(self.diagonal())
        else:
            out["peak time"] = self.times[i[0]].item() if i is not None else None
        out["folds"] = len(self.fold_scores)
        if self.null is not None:
            out[f"clusters p < {p_threshold}"] = sum(c.p_value < p_threshold for c in self.clusters)
            significant = self.significant(p_threshold)
            steps = np.diagonal(significant) if self.generalize else significant
            out["first significant time"] = self.times[np.argmax(steps)].item() if steps.any() else None
        return out

    def plot(self, *, p_threshold: float = 0.05) -> Figure:
        """Score over time with the chance line and significant clusters, or the generalization
        matrix (train time x test time) with its diagonal and cluster outlines.
        """
        from .plotting import pyplot

        plt = pyplot()
        if not self.generalize:
            fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
            self.draw(ax, p_threshold=p_threshold)
            ax.set_title(f"decoding {self.target} from {self.layer}")
            ax.legend(frameon=False, fontsize=8)
            return fig
        fig, ax = plt.subplots(figsize=(4.6, 4), layout="constrained")
        image = self.draw(ax, p_threshold=p_threshold)
        ax.set_title(f"generalization: {self.target} from {self.layer}")
        fig.colorbar(image, ax=ax, label=f"{self.scoring} (chance {self.chance:.2f})")
        return fig

    def draw(
        self, ax: Any, *, p_threshold: float = 0.05, color: str = "#0072B2", label: str | None = None,
        span: float | None = None, chance_line: bool = True,
    ) -> Any:  # fmt: skip
        """Draw into a matplotlib Axes (for composite figures): the score over time with its
        standard error over folds, the chance line and significant clusters; or the generalization
        matrix, coloured symmetrically around chance (``span``: the colour range's half-width,
        default the largest deviation from chance), whose image is returned.
        """
        sig = self.significant(p_threshold)
        if not self.generalize:
            spread = self.fold_scores.std(axis=0) / np.sqrt(len(self.fold_scores))
            ax.fill_between(self.times, self.scores - spread, self.scores + spread, color=color, alpha=0.25, lw=0)
            line = ax.plot(self.times, self.scores, color=color, lw=1.8, label=label or self.target)
            if chance_line:
                ax.axhline(self.chance, color="black", ls="--", lw=0.8, label="chance")
            if sig.any():
                level = np.full(self.scores.shape, np.nan)
                level[sig] = np.nanmin(self.scores) - 0.02 * np.ptp(self.scores)
                ax.plot(self.times, level, color=color, lw=3, label=f"cluster p < {p_threshold}")
            ax.set_xlabel("time step")
            ax.set_ylabel(self.scoring)
            from .plotting import mark_periods

            mark_periods(ax, self.periods)
            return line[0]
        if span is None:
            span = float(np.nanmax(np.abs(self.scores - self.chance)))
        image = ax.imshow(
            self.scores,
            origin="lower",
            cmap="RdBu_r",
            vmin=self.chance - span,
            vmax=self.chance + span,
            extent=_extent(self.test_times, self.times),
            aspect="auto",
        )
        low, high = max(self.times[0], self.test_times[0]), min(self.times[-1], self.test_times[-1])
        ax.plot([low, high], [low, high], color="black", lw=0.8, ls=":")
        if sig.any():
            ax.contour(self.test_times, self.times, sig.astype(float), levels=[0.5], colors="black", linewidths=1)
        ax.set_xlabel("test time step")
        ax.set_ylabel("train time step")
        from .plotting import mark_periods

        mark_periods(ax, self.periods, axis="y")
        if np.array_equal(self.test_times, self.times):  # tested on the same trials' time axis
            mark_periods(ax, self.periods, axis="x")
        return image


def _extent(x: np.ndarray, y: np.ndarray) -> list[float]:
    def edges(v: np.ndarray) -> tuple[float, float]:
        step = float(v[1] - v[0]) if len(v) > 1 else 1.0
        return float(v[0]) - step / 2, float(v[-1]) + step / 2

    return [*edges(np.asarray(x, dtype=float)), *edges(np.asarray(y, dtype=float))]


# --- inputs -----------------------------------------------------------------------------------


def _target(recording: Recording, target: Any) -> tuple[np.ndarray, str]:
    if isinstance(target, str):
        if target not in recording.columns:
            raise UnknownNameError(
                f"target: {target!r} is not a metadata column. Available: {format_choices(recording.columns)}; "
                f"or pass an array with one value per stimulus."
            )
        return np.asarray(recording.column(target)), target
    if target is None:
        raise ArgumentError("target: pass a metadata column name or an array with one value per stimulus.")
    values = np.asarray(target)
    if values.ndim != 1 or len(values) != recording.n_stimuli:
        raise ShapeError(
            f"target: got {describe(values)}, but the recording has {recording.n_stimuli} stimuli. Pass one "
            f"value per stimulus (1-D)."
        )
    return values, "target"


@dataclass(frozen=True)
class _FastSpec:
    """A decoder the fast path fits: "ridge" (penalty alpha) or "logistic" (penalty 1 / C),
    optionally after a StandardScaler.
    """

    kind: str
    penalty: float
    scale: bool


def _fast_spec(estimator: Any, alpha: float, classify: bool) -> _FastSpec | None:
    """How the fast path fits ``estimator``, or None when it cannot; the named estimators are a
    StandardScaler and ridge (or logistic regression) with penalty ``alpha``.
    """
    if isinstance(estimator, str):
        kind = "ridge" if estimator == "ridge" or not classify else "logistic"
        return _FastSpec(kind, float(alpha), True)
    from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scale = False
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
        if len(steps) == 2 and isinstance(steps[0], StandardScaler):
            scaler = steps[0]
            if not (scaler.with_mean and scaler.with_std):
                return None
            scale, estimator = True, steps[1]
        elif len(steps) == 1:
            estimator = steps[0]
        else:
            return None
    if type(estimator) not in (Ridge, RidgeClassifier, LogisticRegression):
        return None
    params = estimator.get_params()
    if not params["fit_intercept"] or params.get("class_weight") is not None:
        return None
    if isinstance(estimator, LogisticRegression):
        l2 = params["penalty"] == "l2" or (params["penalty"] == "deprecated" and params["l1_ratio"] in (0, None))
        c = params["C"]
        if l2 and params["solver"] != "liblinear" and not params["dual"] and np.ndim(c) == 0 and 0 < c < np.inf:
            return _FastSpec("logistic", 1.0 / float(c), scale)
        return None
    if not params.get("positive") and params["solver"] in ("auto", "cholesky") and np.ndim(params["alpha"]) == 0:
        return _FastSpec("ridge", float(params["alpha"]), scale)
    return None


def _defined_max(values: np.ndarray) -> float:
    """The largest score, NaN where none is defined (numpy's ``nanmax`` warns there)."""
    return float(np.nanmax(values)) if not np.isnan(values).all() else float("nan")


def _check_both_classes(folds: list, y: np.ndarray, cross: bool) -> None:
    """Refuse ROC AUC where a test set holds one class, where it is undefined (every score was NaN, silently)."""
    tests = [np.arange(len(y))] if cross else [test for _, test in folds]
    single = [k for k, test in enumerate(tests) if np.unique(y[test]).size < 2]
    if single:
        where = "test: its stimuli hold" if cross else f"cv: test folds {single[:10]} hold"
        raise ArgumentError(
            f"{where} one class, where ROC AUC is undefined. Use folds whose test sets hold both classes (an int cv "
            f"stratifies them; with groups, groups of both classes), or scoring='accuracy'."
        )


def _folds(cv: Any, y: np.ndarray, groups: np.ndarray | None, classify: bool, seed: int | None) -> list:
    """(train, test) index pairs: stratified (grouped) k-fold for an int, else ``cv``'s splits."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        k = check_int("cv", cv, minimum=2)
        if classify:
            _, counts = np.unique(y, return_counts=True)
            if counts.min() < k:
                raise ArgumentError(
                    f"cv: {k} folds need at least {k} samples of every class; the smallest class has "
                    f"{int(counts.min())}. Use fewer folds (cv={max(2, int(counts.min()))}) or more stimuli."
                )
        if groups is not None:
            n_groups = np.unique(groups).size
            if n_groups < k:
                raise ArgumentError(f"groups: {n_groups} distinct groups cannot make cv={k} folds; use cv<={n_groups}.")
            if classify:  # scikit-learn's StratifiedGroupKFold(k, shuffle=True, random_state=seed), faster
                return stratified_group_folds(y, groups, k, seed)
            splitter = GroupKFold(k)
        else:
            kfold = StratifiedKFold if classify else KFold
            splitter = kfold(k, shuffle=True, random_state=seed)
        return splitter_folds(splitter, len(y), y, groups)
    if hasattr(cv, "split"):
        return splitter_folds(cv, len(y), y, groups)
    try:
        return [(np.asarray(train), np.asarray(test)) for train, test in cv]
    except TypeError:
        raise ArgumentTypeError(
            f"cv: got {describe(cv)}. Pass a number of folds, a scikit-learn splitter, or (train, test) index pairs."
        ) from None


def _check_scoring(scoring: str | None, classify: bool, fast: bool) -> str:
    if scoring is None:
        return "accuracy" if classify else "r2"
    own = _scores.CLASSIFICATION if classify else _scores.REGRESSION
    if fast and scoring in own:
        return scoring
    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if scoring not in names:
        raise UnknownNameError(
            f"scoring: unknown scorer {scoring!r}. For {'classification' if classify else 'regression'} use "
            f"{format_choices(own)} or another scikit-learn scorer name."
        )
    if fast:
        raise ArgumentError(
            f"scoring: {scoring!r} is not computed by the fast ridge path ({format_choices(own)}). Pass "
            f"fast=False to score with scikit-learn, or choose one of those."
        )
    return scoring


def _chance(scoring: str, y: np.ndarray, n_classes: int | None) -> float:
    if scoring == "accuracy":
        return float(np.bincount(y).max() / len(y))
    if scoring == "balanced_accuracy":
        return 1.0 / n_classes
    if scoring == "roc_auc":
        return 0.5
    if scoring == "neg_mean_squared_error":
        return -float(np.var(y))
    if scoring == "neg_mean_absolute_error":
        return -float(np.mean(np.abs(y - np.median(y))))
    return 0.0


# --- the two paths ----------------------------------------------------------------------------


def _fast_scores(
    spec: _FastSpec,
    x: np.ndarray,
    y_sets: np.ndarray,
    folds: list,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    *,
    scoring: str,
    n_classes: int | None,
    generalize: bool,
    device: Any,
) -> np.ndarray:
    """Scores (n_folds, n_sets, T[, T']) of batched linear fits to several target sets at once
    (the true targets, then permuted ones): ``y_sets`` (n, n_sets) holds their values or class
    indices. With ``x_test``, one fold trains on everything and tests on (x_test, y_test).
    """
    fit = fast_fit(spec, x, y_sets, folds, n_classes, device)
    return fast_test(fit, x if x_test is None else x_test, y_sets, folds, y_test, scoring=scoring,
                     n_classes=n_classes, generalize=generalize)  # fmt: skip


def fast_fit(spec: _FastSpec, x: np.ndarray, y_sets: np.ndarray, folds: list, n_classes: int | None, device: Any):
    """The fast path's decoders (a LinearFit) of every fold's training set, time step and target set."""
    masks = []
    for train, _ in folds:
        mask = np.zeros(len(x), dtype=bool)
        mask[train] = True
        masks.append(mask)
    return _fit(spec, x, y_sets, masks, n_classes, device)


def fast_test(
    fit: Any, x: np.ndarray, y_sets: np.ndarray, folds: list, y_test: np.ndarray | None, *, scoring: str,
    n_classes: int | None, generalize: bool
) -> np.ndarray:  # fmt: skip
    """Scores (n_folds, n_sets, T[, T']) of fitted decoders on states ``x``: each fold's test samples
    (cross-validation), or all of ``x`` against ``y_test`` (cross-decoding: ``x`` the test states).
    """
    n_sets, threads = y_sets.shape[1], library_threads()
    columns = fit.coef.shape[-1] // n_sets
    # (fold, group of target sets, group of test steps) tasks on the libraries' threads, one each (1 inside a
    # pass's worker): the sets split in as many groups as threads, and where there are fewer sets than threads
    # the test steps too (each task reads only its steps), so that 5 folds on 2 threads are 10 even tasks, not
    # 3 against 2
    set_edges = np.linspace(0, n_sets, min(n_sets, threads) + 1).astype(int)
    n_steps = x.shape[1]
    step_edges = np.linspace(0, n_steps, min(n_steps, threads // (len(set_edges) - 1)) + 1).astype(int)
    groups = list(itertools.product(itertools.pairwise(set_edges), itertools.pairwise(step_edges)))
    tasks = [(f, slice(*sets), slice(*steps)) for f in range(len(folds)) for sets, steps in groups]

    def one(task: tuple[int, slice, slice]) -> np.ndarray:
        f, sets, steps = task
        width = sets.stop - sets.start
        if y_test is None:
            test = folds[f][1]
            xt, yt = x[test, steps], y_sets[test, sets]
        else:
            xt, yt = x[:, steps], np.repeat(y_test[:, None], width, axis=1)
        cols = slice(sets.start * columns, sets.stop * columns)
        trained = slice(None) if generalize else steps  # every training step's decoder, or those of the steps
        coef, intercept = fit.coef[f, trained][..., cols], fit.intercept[f, trained][..., cols]
        decision = _decisions(xt, coef, intercept, generalize=generalize)
        return _scores.score_sets(scoring, decision, yt, n_classes)  # every set of the group at once

    with task_pool(len(tasks)) as pmap:
        parts = list(pmap(one, tasks))
    n_step_groups, n_set_groups = len(step_edges) - 1, len(set_edges) - 1  # test steps: the scores' last axis
    rows = [np.concatenate(parts[i : i + n_step_groups], axis=-1) for i in range(0, len(parts), n_step_groups)]
    return np.stack([np.concatenate(rows[f * n_set_groups : (f + 1) * n_set_groups]) for f in range(len(folds))])


def _decisions(xt: np.ndarray, coef: np.ndarray, intercept: np.ndarray, *, generalize: bool) -> np.ndarray:
    """Decision values of one fold's decoders (coef (T, p, cols), intercept (T, cols)) on test samples
    xt (n, T', p): (T, n, cols) at their own time steps, or (T, T', n, cols) with generalization.
    """
    if generalize:  # every training step's decoder on every test step
        n_train_times, n_units, n_cols = coef.shape
        stacked = coef.transpose(1, 0, 2).reshape(n_units, -1)  # one GEMM reads the test data once
        flat = xt.reshape(-1, n_units) @ stacked  # (n * T', T * cols)
        decision = flat.reshape(*xt.shape[:2], n_train_times, n_cols).transpose(2, 1, 0, 3)
        return decision + intercept[:, None, None, :]
    # batched BLAS products (np.einsum's own loops: 5x slower at 120 x 30 x 128 x 201)
    return np.matmul(xt.transpose(1, 0, 2), coef) + intercept[:, None, :]


def _fit(spec: _FastSpec, x: np.ndarray, y_sets: np.ndarray, masks: list, n_classes: int | None, device: Any):
    """The batched fit of every fold (mask) and target set: ridge on the targets' codes, or
    logistic regression on the classes.
    """
    if spec.kind == "logistic":
        return fit_logistic(x, y_sets, masks, n_classes=n_classes, penalty=spec.penalty, scale=spec.scale,
                            device=device)  # fmt: skip
    codes = _code(y_sets, n_classes)
    # a class absent from a training set: its column's fit is the constant -1, below the present classes'
    # mean decision (2 - K') / K' (their codes sum to 2 - K'), so it is never predicted, as in
    # scikit-learn's RidgeClassifier of the classes present (tested)
    return fit_ridge(x, codes, masks, alpha=spec.penalty, scale=spec.scale, device=device)


def _generic_scores(
    estimator: Any,
    x: np.ndarray,
    y: np.ndarray,
    folds: list,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    *,
    scoring: str,
    generalize: bool,
    progress: bool,
) -> np.ndarray:
    """Scores (n_folds, T[, T']) of a scikit-learn estimator cloned per (fold, training time)."""
    from sklearn.metrics import check_scoring
    from tqdm.auto import tqdm

    scorer = check_scoring(estimator, scoring=scoring)
    n_times = x.shape[1]
    n_test_times = (x_test if x_test is not None else x).shape[1]
    shape = (len(folds), n_times, n_test_times) if generalize else (len(folds), n_times)
    out = np.empty(shape)
    bar = tqdm(total=len(folds) * n_times, desc="decoding", disable=not check_progress(progress))
    for f, (train, test) in enumerate(folds):
        xt, yt = (x[test], y[test]) if x_test is None else (x_test, y_test)
        out[f] = generic_test(generic_fit(estimator, x, y, train, bar), scorer, xt, yt, generalize=generalize)
    bar.close()
    return out


def generic_fit(estimator: Any, x: np.ndarray, y: np.ndarray, train: np.ndarray, bar: Any = None) -> list:
    """Clones of ``estimator`` fitted on the training samples at every time step of ``x``."""
    from sklearn.base import clone

    models = []
    for t in range(x.shape[1]):
        models.append(clone(estimator).fit(x[train, t], y[train]))
        if bar is not None:
            bar.update()
    return models


def generic_test(models: list, scorer: Any, xt: np.ndarray, yt: np.ndarray, *, generalize: bool) -> np.ndarray:
    """Scores of each time step's model on the test states ``xt`` at its own step (T,), or at every step of
    ``xt`` (T, T').
    """
    if generalize:
        return np.array([[scorer(model, xt[:, s], yt) for s in range(xt.shape[1])] for model in models])
    return np.array([scorer(model, xt[:, t], yt) for t, model in enumerate(models)])


def _haufe_patterns(spec: _FastSpec, x: np.ndarray, y: np.ndarray, n_classes: int | None, device: Any) -> np.ndarray:
    """Activation patterns A = cov(x) W cov(s)^-1 (Haufe et al. 2014) of the linear decoders
    fitted on all samples at each time step: (n_times, n_units, n_outputs).
    """
    coef = _fit(spec, x, y[:, None], [np.ones(len(x), dtype=bool)], n_classes, device).coef[0]  # (T, p, out)
    xc = x - x.mean(axis=0, keepdims=True)  # (n, T, p)
    sources = np.matmul(xc.transpose(1, 0, 2), coef)  # (T, n, out)
    cov_xs = np.matmul(xc.transpose(1, 2, 0), sources) / (len(x) - 1)
    cov_s = np.matmul(sources.transpose(0, 2, 1), sources) / (len(x) - 1)
    return np.matmul(cov_xs, np.linalg.pinv(cov_s))


# --- public -----------------------------------------------------------------------------------


def decode(
    recording: Recording,
    layer: str | None = None,
    target: Any = None,
    *,
    estimator: Any = "ridge",
    cv: Any = 5,
    scoring: str | None = None,
    generalize: bool = False,
    time: Any = None,
    groups: Any = None,
    test: Recording | None = None,
    alpha: float = 1.0,
    fast: bool | None = None,
    n_permutations: int = 0,
    cluster_threshold: float = 0.05,
    patterns: bool = False,
    seed: int | None = 0,
    progress: bool | None = None,
    device: str | None = None,
) -> DecodingResult:
    """Cross-validated decoding of ``target`` from ``layer`` at every time step.

    Parameters
    ----------
    recording : Recording
        A dask-backed recording (``Recording.load(path, chunks=...)``) is decoded blockwise, never read
        whole: blocks of time steps as tasks, the generalization matrix in two passes of tasks
        (:mod:`rnnprobe.analysis.decoding_blockwise`); steps larger than a block decoded by ridge, in
        blocks of units or of stimuli (:mod:`rnnprobe.analysis.decoding_steps`); the same results.
    layer : str, optional
        May be omitted when the recording has one layer; units are flattened.
    target : str or array-like
        A metadata column, or one value per stimulus. Classes (any labels) for classifiers,
        numbers for regressors.
    estimator : "ridge", "logistic" or a scikit-learn estimator
        "ridge": ``make_pipeline(StandardScaler(), RidgeClassifier(alpha))`` for categorical
        targets, ``Ridge`` for continuous ones (``type_of_target``); "logistic":
        ``make_pipeline(StandardScaler(), LogisticRegression(C=1 / alpha))``; both on the fast
        path. Any estimator or pipeline works (cloned per fold and time step, like MNE's
        SlidingEstimator); Ridge, RidgeClassifier and l2-penalised LogisticRegression (not
        liblinear, which penalises the intercept), alone or after a ``StandardScaler``, take the
        fast path.
    cv : int, splitter or iterable of (train, test)
        An int gives shuffled stratified k-fold for classification (grouped when ``groups`` is
        given), k-fold for regression, seeded by ``seed``.
    scoring : str, optional
        A scikit-learn scorer name; default "accuracy" (classification) or "r2". The fast path
        computes "accuracy", "balanced_accuracy", "roc_auc" (2 classes), "r2",
        "neg_mean_squared_error" and "neg_mean_absolute_error" itself.
    generalize : bool
        Train at every time step and test at every time step: a (train time x test time) matrix.
    time : selection of time steps, optional
        Index, slice, mask or list (as :meth:`Recording.get`).
    groups : str or array-like, optional
        A metadata column or labels keeping samples of a group in the same fold (e.g. image id).
    test : Recording, optional
        Cross-decoding: train on all of ``recording`` and test on ``test`` (same layer), e.g.
        train on clean digits and test on occluded ones. ``cv`` and ``groups`` are not used.
    alpha : float
        Penalty of the named estimators: ridge's alpha, 1 / C of logistic regression.
    fast : bool, optional
        Force (True) or forbid (False) the fast path; by default it is used when possible.
    n_permutations : int
        Label permutations (the same folds for every permutation) for p-values and cluster-based
        correction over time and over the generalization matrix. Shuffling all labels is exact
        under the global null (no information at any step): p-values are uniform there (tested).
        Like every cluster test it controls the error of claiming *any* effect, not where each
        cluster ends; in a generalization matrix, decoders trained at steps without information
        are random projections, which score above chance on test steps with a strong signal half
        of the time, so off-diagonal clusters next to real effects need care.
    cluster_threshold : float
        Cluster-forming threshold, as a one-sided p-value per point.
    patterns : bool
        Also compute Haufe activation patterns of the ridge decoder at each time step.
    seed : int, optional
        Seeds the folds and the permutations.
    progress : bool or None
        Progress bar (on stderr) over the permutations, and over the fits of the per-estimator path.
        None (default): a bar only when stderr is a terminal.
    device : str, optional
        Torch device of the fast path's arithmetic, e.g. "cuda"; default the CPU. Ridge decoders of a
        dask-backed step larger than a block (256 MiB) are fitted on the CPU from its blocks whatever the
        device (logistic regression reads such steps whole on another device). An estimator without a fast
        path (scikit-learn fits it on the CPU) with a device is refused.

    Returns
    -------
    DecodingResult

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rng = np.random.default_rng(0)
    >>> label = np.repeat([0, 1], 40)
    >>> states = rng.normal(size=(80, 6, 20))
    >>> states[:, 3:, 0] += 2.0 * label[:, None]        # the label appears at step 3
    >>> rec = Recording({"h": states}, metadata={"label": label})
    >>> result = decode(rec, "h", "label")
    >>> np.round(result.scores, 2)
    array([0.56, 0.42, 0.55, 0.78, 0.85, 0.81])
    >>> result
    <DecodingResult: scores over time (6) of 'label' from 'h', accuracy, best 0.850, chance 0.500, 5 fold(s)>
    """
    plan = _plan(recording, layer, target, estimator=estimator, cv=cv, scoring=scoring, time=time, groups=groups,
                 test=test, generalize=generalize, alpha=alpha, fast=fast, n_permutations=n_permutations,
                 patterns=patterns, seed=seed, device=device)  # fmt: skip
    cluster_threshold = check_probability("cluster_threshold", cluster_threshold)
    dask = recording.is_dask or (test is not None and test.is_dask)  # blockwise: the layers are never read whole
    from .decoding_steps import decode_large_steps, large_steps

    large = large_steps(recording, plan) if dask else None  # steps larger than a block
    if dask and not generalize and not large:  # blocks of time steps as tasks, each decoded in memory by decode()
        from .decoding_blockwise import decode_blockwise

        return decode_blockwise(recording, plan, target, _block_settings(locals()))
    run = dict(scoring=plan.scoring, generalize=generalize, progress=progress)
    if large and generalize:  # passes of tasks per step, reading it in blocks of units or of stimuli
        from .decoding_steps_matrix import generalize_large_steps

        fold_scores, null, haufe = generalize_large_steps(recording, plan, large, patterns=patterns)
    elif large:  # a task per step, reading it in blocks of units or of stimuli
        fold_scores, null, haufe = decode_large_steps(recording, plan, large, patterns=patterns)
    elif dask:  # the generalization matrix: decoders fitted on blocks of steps, then tested on blocks of steps
        from .decoding_blockwise import generalize_blockwise

        fold_scores, null, haufe = generalize_blockwise(recording, plan, run, patterns=patterns)
    else:
        fold_scores, null, haufe = _in_memory(recording, plan, run, patterns=patterns, generalize=generalize)
    scores = fold_scores.mean(axis=0)
    result = DecodingResult(
        scores=scores,
        fold_scores=fold_scores,
        times=plan.times,
        test_times=plan.test_times,
        scoring=plan.scoring,
        chance=_chance(plan.scoring, plan.y, plan.n_classes),
        layer=plan.layer,
        target=plan.target,
        estimator=plan.label,
        generalize=generalize,
        classes=plan.classes,
        periods=recording.periods,
        patterns=haufe,
    )
    if len(plan.perms):
        result.null = null
        result.p_values = _scores.permutation_p_values(scores, null)
        result.clusters = cluster_test(scores, null, threshold_p=cluster_threshold)
    return result


@dataclass
class _Plan:
    """What decode() settles before it reads any states: the layer, time steps, targets, decoder, folds
    and permutations (the same for the in-memory and the blockwise paths).
    """

    layer: str
    positions: np.ndarray
    times: np.ndarray
    target: str
    label: str  # the estimator's name in the result
    classes: np.ndarray | None
    y: np.ndarray
    n_classes: int | None
    estimator: Any
    spec: _FastSpec | None
    scoring: str
    folds: list
    perms: np.ndarray
    device: Any
    test: Recording | None  # cross-decoding: tested on this recording at test_positions, targets y_test
    test_positions: np.ndarray
    test_times: np.ndarray
    y_test: np.ndarray | None


def _plan(recording: Recording, layer: Any, target: Any, *, estimator: Any, cv: Any, scoring: Any, time: Any,
          groups: Any, test: Any, generalize: bool, alpha: Any, fast: Any, n_permutations: Any, patterns: bool,
          seed: Any, device: Any) -> _Plan:  # fmt: skip
    """decode()'s arguments checked and settled (:class:`_Plan`), no states read."""
    check_recording(recording, "recording")
    layer = recording.resolve_layer(layer)
    positions = recording.time_positions(layer, time)
    values, target_name = _target(recording, target)
    _check_estimator(estimator)
    classify, classes, y = _labels(values, estimator)
    spec = _fast_path(estimator, check_number("alpha", alpha, minimum=0, inclusive=False), classify, fast)
    device = check_device(device)
    if device is not None and spec is None:
        raise ArgumentError(f"device: got {str(device)!r} with {describe(estimator)}, which scikit-learn fits on the "
                            f"CPU; only the fast path (Ridge, RidgeClassifier and l2 LogisticRegression, alone or "
                            f"after StandardScaler, or estimator='ridge' / 'logistic') runs on a torch device. Leave "
                            f"device out.")  # fmt: skip
    scoring = _check_scoring(scoring, classify, spec is not None)
    if spec is not None and scoring == "roc_auc" and classes.size != 2:
        raise ArgumentError(f"scoring: 'roc_auc' needs 2 classes, the target has {classes.size}. Use 'accuracy' or "
                            f"'balanced_accuracy'.")  # fmt: skip
    n_permutations = check_int("n_permutations", n_permutations, minimum=0, maximum=MAX_RESAMPLES)
    seed = check_seed(seed)
    if patterns and spec is None:
        raise ArgumentError("patterns: Haufe patterns are computed for the fast path's linear decoders; use "
                            "estimator='ridge' or 'logistic'.")  # fmt: skip
    times = np.asarray(recording.times[layer])[positions]
    test_positions, test_times, y_test = positions, times, None
    if test is not None:
        test_positions, test_times, y_test = _test_set(test, layer, time, target, classes, recording,
                                                       generalize=generalize)  # fmt: skip
        folds = [(np.arange(len(y)), np.zeros(0, dtype=np.int64))]
    else:
        folds = _folds(cv, y, _groups(recording, groups, len(y)), classify, seed)
    if scoring == "roc_auc":
        _check_both_classes(folds, y if y_test is None else y_test, test is not None)
    rng = np.random.default_rng(seed)
    perms = np.array([rng.permutation(len(y)) for _ in range(n_permutations)], dtype=np.intp).reshape(-1, len(y))
    label = spec.kind if spec is not None and isinstance(estimator, str) else type(estimator).__name__
    return _Plan(layer, positions, times, target_name, label, classes, y, classes.size if classify else None,
                 estimator, spec, scoring, folds, perms, device, test, test_positions, test_times, y_test)  # fmt: skip


def _in_memory(
    recording: Recording, plan: _Plan, run: dict, *, patterns: bool, generalize: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fold scores, null and Haufe patterns of the selected states read into memory."""
    _, _, x = layer_states(recording, plan.layer, time=plan.positions)
    x_test = None
    if plan.test is not None:
        _, _, x_test = layer_states(plan.test, plan.layer, time=plan.test_positions, name="test")
    data = _Data(x, plan.y, x_test, plan.y_test, plan.folds, plan.n_classes)
    fold_scores, null = _scores_and_null(plan.perms, plan.spec, plan.estimator, data, plan.device, run)
    haufe = _haufe_patterns(plan.spec, x, plan.y, plan.n_classes, plan.device) if patterns else None
    return fold_scores, null, haufe


_BLOCK_SETTINGS = (
    "estimator",
    "cv",
    "scoring",
    "groups",
    "alpha",
    "fast",
    "n_permutations",
    "cluster_threshold",
    "patterns",
    "seed",
    "device",
)  # decode()'s arguments a block of time steps is decoded with


def _block_settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a decode() call that every block of time steps is decoded with."""
    return {key: arguments[key] for key in _BLOCK_SETTINGS}


@dataclass
class _Data:
    """What the decoders see: training states and targets, the test set (cross-decoding), the folds."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    folds: list
    n_classes: int | None


def _check_estimator(estimator: Any) -> None:
    if isinstance(estimator, str):
        if estimator not in ESTIMATORS:
            raise UnknownNameError(
                f"estimator: unknown name {estimator!r}. Use {format_choices(ESTIMATORS)} or a scikit-learn estimator."
            )
    elif not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise ArgumentTypeError(f"estimator: got {describe(estimator)}. Pass 'ridge' or a scikit-learn estimator.")


def _labels(values: np.ndarray, estimator: Any) -> tuple[bool, np.ndarray | None, np.ndarray]:
    """(classify?, the classes, y as class indices or floats), checked against the estimator."""
    from sklearn.base import is_classifier, is_regressor
    from sklearn.utils.multiclass import type_of_target

    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ArgumentError(f"target: {int(np.isnan(values).sum())} value(s) are NaN. Drop those stimuli first.")
    kind = type_of_target(values)
    if isinstance(estimator, str) or not (is_classifier(estimator) or is_regressor(estimator)):
        classify = kind in ("binary", "multiclass")  # from the target
    else:
        classify = is_classifier(estimator)
    if estimator == "logistic" and not classify:
        raise ArgumentError(
            f"estimator: 'logistic' classifies, but the target has {kind} values ({describe(values)}). Use "
            f"estimator='ridge' for regression, or bin the target."
        )
    if not classify:
        y = values.astype(np.float64)
        if y.size and (y == y[0]).all():  # R^2 of a constant is undefined (every score was 0: "no information")
            raise ArgumentError(
                f"target: every stimulus has the same value ({y[0].item()!r}); a regression needs a target that varies."
            )
        return False, None, y
    classes, y = np.unique(values, return_inverse=True)
    if classes.size < 2:
        raise ArgumentError(
            f"target: every stimulus has the same class ({classes[0]!r}); decoding needs at least 2 classes."
        )
    if kind not in ("binary", "multiclass"):
        raise ArgumentError(
            f"target: a classifier needs class labels, got {kind} values ({describe(values)}). Use a regressor, "
            f"or bin the target."
        )
    return True, classes, y


def _fast_path(estimator: Any, alpha: float, classify: bool, fast: bool | None) -> _FastSpec | None:
    spec = _fast_spec(estimator, alpha, classify) if fast is not False else None
    if spec is not None and spec.penalty <= 0 and not isinstance(estimator, str):
        spec = None  # an unpenalised scikit-learn estimator: its own solver copes with singular problems
    if fast and spec is None:
        raise ArgumentError(
            f"fast: {estimator!r} has no fast path (Ridge, RidgeClassifier and l2 LogisticRegression, alone or after "
            f"StandardScaler, have). Pass fast=None."
        )
    if isinstance(estimator, str) and spec is None:
        raise ArgumentError(f"fast: estimator={estimator!r} is only fitted on the fast path; pass fast=None.")
    if spec is not None and spec.kind == "logistic" and spec.penalty <= 0:
        raise ArgumentError(f"alpha: got {alpha}. Logistic regression needs a positive penalty (alpha = 1 / C > 0).")
    return spec


def _groups(recording: Recording, groups: Any, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    values, _ = _target(recording, groups) if isinstance(groups, str) else (np.asarray(groups), "")
    if len(values) != n:
        raise ShapeError(f"groups: got {describe(values)}; pass one group per stimulus ({n}).")
    return check_grouping(values, name="groups")


def _test_set(
    test: Any, layer: str, time: Any, target: Any, classes: np.ndarray | None, recording: Recording, *,
    generalize: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Cross-decoding's test time positions, times and targets (coded as in training); no states read."""
    if not isinstance(test, Recording):
        raise ArgumentTypeError(f"test: got {describe(test)}. Pass a Recording to test on.")
    check_recording(test, "test")
    test_layer = test.resolve_layer(layer)
    test_positions = test.time_positions(test_layer, time)
    units, test_units = (int(np.prod(r.unit_shape(name))) for r, name in ((recording, layer), (test, test_layer)))
    if test_units != units:
        raise ShapeError(
            f"test: layer {test_layer!r} has {test_units} units, the training layer {units}; "
            f"cross-decoding needs the same units."
        )
    n_steps = len(recording.time_positions(layer, time))
    if not generalize and len(test_positions) != n_steps:
        raise ShapeError(
            f"test: {len(test_positions)} time steps against {n_steps} for training; use generalize=True or "
            f"select the same steps."
        )
    test_values, _ = _target(test, target if isinstance(target, str) else None)
    if classes is not None:
        unknown = np.setdiff1d(test_values, classes)
        if unknown.size:
            raise ArgumentError(f"test: classes {unknown[:5].tolist()} were never seen in training.")
        y_test = np.searchsorted(classes, test_values)
    else:
        y_test = test_values.astype(np.float64)
    return test_positions, np.asarray(test.times[test_layer])[test_positions], y_test


def _scores_and_null(
    perms: np.ndarray, spec: _FastSpec | None, estimator: Any, data: _Data, device: Any, run: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Fold scores of the true targets and each permutation's mean scores: here, or (on the CPU) the
    permutations in blocks as tasks on the active dask client (:mod:`.blockwise`; the same numbers).
    """
    from .blockwise import run_blocks, sample_blocks

    blocks = sample_blocks(len(perms)) if len(perms) and (device is None or str(device) == "cpu") else None
    if blocks is None:
        return _permutation_block(slice(None), perms, spec, estimator, data, device, run)
    parts = run_blocks(_permutation_block, blocks, perms, spec, estimator, data, device,
                       {**run, "progress": False})  # fmt: skip
    return parts[0][0], np.concatenate([null for _, null in parts])


def _permutation_block(
    block: slice, perms: np.ndarray, spec: _FastSpec | None, estimator: Any, data: _Data, device: Any, run: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Fold scores and the null of ``perms[block]``: by the fast path's batched solvers, or a cloned estimator."""
    if spec is not None:
        return _fast_permutations(spec, data, perms[block], device=device, **run)
    return _generic_permutations(estimator, data, perms[block], **run)


def _fast_permutations(
    spec: _FastSpec, data: _Data, perms: np.ndarray, *, scoring: str, generalize: bool, progress: Any, device: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Fold scores of the true targets and the mean null scores, all target sets on the fast path: through the
    kernel matrices where they take fewer products (ridge, wide layers: :mod:`._kernel_decoding`), else in passes.
    """
    from tqdm.auto import tqdm

    orders = [np.arange(len(data.y)), *perms]  # the true targets, then permuted ones
    show = check_progress(progress) and len(perms) > 0
    # the passes or tasks on the libraries' threads, one each, BLAS on one thread (small_blas)
    blas = small_blas() if library_threads() > 1 else contextlib.nullcontext()
    with blas, tqdm(total=len(perms), desc="permutations", disable=not show) as bar:
        route = _kernel_route_scores if _kernel_route(spec, data, generalize, len(orders)) else _pass_scores
        all_scores = route(spec, data, orders, bar, scoring=scoring, generalize=generalize, device=device)
    return all_scores[:, 0], all_scores[:, 1:].mean(axis=0)  # (folds, sets, ...)


def _pass_scores(
    spec: _FastSpec, data: _Data, orders: list, bar: Any, *, scoring: str, generalize: bool, device: Any
) -> np.ndarray:
    """Scores (folds, sets, ...) of the target sets ``orders`` in passes (:func:`_pass_plan`): logistic passes
    side by side on the libraries' threads, ridge's one at a time with its blocks and folds on the threads.
    """
    threads = library_threads()
    workers = threads if device is None or str(device) == "cpu" else 1  # a device: one pass at a time
    n_passes, tasks = _pass_plan(spec, data, generalize, len(orders), workers)
    size = -(-len(orders) // n_passes)
    starts = range(0, len(orders), size)

    def scores(start: int) -> np.ndarray:
        y_sets = np.ascontiguousarray(data.y[np.array(orders[start : start + size])].T)  # (n, sets)
        return _fast_scores(spec, data.x, y_sets, data.folds, data.x_test, data.y_test, scoring=scoring,
                            n_classes=data.n_classes, generalize=generalize, device=device)  # fmt: skip

    with task_pool(tasks, threads=threads) as pmap:
        result = []
        for start, part in zip(starts, pmap(scores, starts), strict=True):
            result.append(part)
            bar.update(min(len(orders), start + size) - 1 - bar.n)
    return np.concatenate(result, axis=1)


def _kernel_route(spec: _FastSpec, data: _Data, generalize: bool, n_sets: int) -> bool:
    """Whether ridge's target sets are scored through the kernel matrices (:mod:`._kernel_decoding`)."""
    if spec.kind != "ridge":
        return False
    n_train = max(len(train) for train, _ in data.folds)
    tested = data.x if data.x_test is None else data.x_test
    n_test = len(tested) if data.x_test is not None else max(len(test) for _, test in data.folds)
    test_steps = tested.shape[1] if generalize else 1
    columns = n_sets * code_columns(data.n_classes)
    return kernel_route_pays(n_train, n_test, data.x.shape[2], test_steps, columns)


def _kernel_route_scores(
    spec: _FastSpec, data: _Data, orders: list, bar: Any, *, scoring: str, generalize: bool, device: Any
) -> np.ndarray:
    """:func:`_pass_scores` through the kernel matrices: every target set at once, the bar moved by each task's
    share of the work.
    """
    y_sets = np.ascontiguousarray(data.y[np.array(orders)].T)  # (n, sets)
    finished = [0.0]

    def done(share: float) -> None:
        finished[0] += share
        bar.update(round(finished[0] * bar.total) - bar.n)

    return kernel_scores(data.x, _code(y_sets, data.n_classes), y_sets, data.folds, data.x_test, data.y_test,
                         alpha=spec.penalty, scale=spec.scale, scoring=scoring, n_classes=data.n_classes,
                         generalize=generalize, device=device, done=done)  # fmt: skip


def ridge_sets_per_pass(
    n_folds: int, n_samples: int, n_times: int, n_units: int, columns: int, decisions: int = 0, threads: int = 1
) -> int:
    """Target sets whose ridge decoders are fitted (and scored) in one pass: their codes (``columns`` per set
    and sample), coefficients (every fold and time step) and, when scored, the ``decisions`` values per
    column of the folds scored at once (three arrays of that size while a fold is scored) within PASS_BYTES.
    """
    per_fit = n_samples + n_folds * n_times * (n_units + 1)
    per_set = 8 * columns * (per_fit + 3 * min(threads, n_folds) * decisions)
    return max(1, PASS_BYTES // per_set)


def _pass_plan(spec: _FastSpec, data: _Data, generalize: bool, n_sets: int, workers: int) -> tuple[int, int]:
    """(passes, passes run side by side) for ``n_sets`` target sets on ``workers`` threads.

    Ridge: the Gram matrices and their factors serve every set of a pass, so the sets go in one pass where
    PASS_BYTES holds them, its blocks of time steps and folds on the threads (201 sets of 600 x 30 x 128,
    AMD EPYC: 4 passes 232 -> 1 pass 144 ms on one thread, 148 -> 92 ms on two); where they need several
    passes anyway (the generalization matrices' decision values), those run side by side, one thread and
    PASS_BYTES each (scoring the folds of one pass split less well: 0.54 against 0.68 s for 201
    generalization matrices on two threads). Logistic regression fits set by set: passes of at most
    MAX_SETS_PER_PASS side by side. Passes are of equal size in a multiple of the workers (201 sets on 2
    threads: 4 passes of 51, not 64 + 64 + 64 + 9).
    """
    if spec.kind == "ridge":
        whole = _sets_per_pass(data, generalize, workers)
        if n_sets <= whole or workers == 1:
            return -(-n_sets // whole), 1
        per_pass = _sets_per_pass(data, generalize, 1)
    else:
        per_pass = MAX_SETS_PER_PASS
    n_passes = workers * -(-n_sets // (per_pass * workers))
    return n_passes, n_passes if workers > 1 else 1


def scored_values(folds: list, n_tested: int | None, n_train_times: int, n_test_times: int) -> int:
    """Decision values per target column that scoring one fold holds: each training step's decoder at
    ``n_test_times`` test steps of the fold's test samples (all ``n_tested`` samples when cross-decoding).
    """
    n_test = n_tested if n_tested is not None else max(len(test) for _, test in folds)
    return n_train_times * n_test_times * n_test


def _sets_per_pass(data: _Data, generalize: bool, threads: int) -> int:
    n_times, n_units = data.x.shape[1:]
    tested = data.x if data.x_test is None else data.x_test
    n_tested = None if data.x_test is None else len(tested)
    decisions = scored_values(data.folds, n_tested, n_times, tested.shape[1] if generalize else 1)
    columns = code_columns(data.n_classes)
    return ridge_sets_per_pass(len(data.folds), len(data.x), n_times, n_units, columns, decisions, threads)


def _generic_permutations(
    estimator: Any, data: _Data, perms: np.ndarray, *, scoring: str, generalize: bool, progress: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The same with a scikit-learn estimator cloned per fold and time step."""
    from tqdm.auto import tqdm

    def scores(y: np.ndarray, bar: Any) -> np.ndarray:
        return _generic_scores(estimator, data.x, y, data.folds, data.x_test, data.y_test, scoring=scoring,
                               generalize=generalize, progress=bar)  # fmt: skip

    fold_scores = scores(data.y, progress)
    if not len(perms):
        return fold_scores, np.zeros((0, *fold_scores.shape[1:]))
    null = [scores(data.y[p], False).mean(axis=0) for p in tqdm(perms, desc="permutations",
                                                                  disable=not check_progress(progress))]  # fmt: skip
    return fold_scores, np.stack(null)


def code_columns(n_classes: int | None) -> int:
    """Columns of :func:`_code` per target set: one for regression and 2 classes, one per class otherwise."""
    return n_classes if n_classes is not None and n_classes > 2 else 1


def _code(y_sets: np.ndarray, n_classes: int | None) -> np.ndarray:
    """The target sets (n, sets) as ridge targets (n, sets x columns), each set's columns together:
    regression targets as one column; classes as RidgeClassifier codes, one {-1, 1} column for 2
    classes (1 = the second class), one per class otherwise.
    """
    if n_classes is None:
        return y_sets.astype(np.float64)
    if n_classes == 2:
        return np.where(y_sets == 1, 1.0, -1.0)
    coded = -np.ones((*y_sets.shape, n_classes))
    np.put_along_axis(coded, y_sets[..., None], 1.0, axis=-1)
    return coded.reshape(len(y_sets), -1)
