"""fit_encoding: regressions from model features to every neuron or voxel, scored on held-out stimuli."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._validation import check_device, check_int, check_progress, check_seed
from ...errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from .._arrays import namespace, send, to_numpy, zeros
from .._constant import centred
from .._scores import nan_argmax, nan_median, peak_position
from . import ridge as ridge_solver
from .ceiling import CeilingResult, column_correlations, reliability_of_halves
from .inputs import Features, StepBlocks, make_folds, read_features, read_responses, stimulus_labels
from .pls import fit_pls, fit_pls_gram, fit_pls_nipals, fit_pls_nipals_gram, predict_pls

ESTIMATORS = ("ridge", "pls", "pls_nipals")
PLS_SOLVERS = {"pls": fit_pls, "pls_nipals": fit_pls_nipals}
PLS_GRAM_SOLVERS = {"pls": fit_pls_gram, "pls_nipals": fit_pls_nipals_gram}  # the same models' dual forms
DEFAULT_ALPHAS = np.logspace(-3, 9, 25)
GRAM_BLOCK = 4096  # units per block of a Gram matrix accumulated from float32 features


@dataclass
class Estimator:
    """The checked estimator of a call: "ridge" (alphas), "pls" (n_components) or a scikit-learn regressor."""

    name: str
    alphas: np.ndarray | None = None
    n_components: int = 25
    regressor: Any = None
    inner_cv: int | None = None  # ridge: k-fold selection of the penalties (None: leave-one-out)
    seed: int | None = 0
    device: Any = None  # ridge: a torch device (None: numpy on the CPU)
    edge_hits: list[float] = field(default_factory=list)  # share of targets choosing a grid edge, per fit

    def note_choice(self, chosen: np.ndarray) -> None:
        """Record a ridge fit's penalties (indices into ``alphas``): the share that chose an end of the grid."""
        ends = (chosen == 0) | (chosen == self.alphas.size - 1)
        self.edge_hits.append(float(np.mean(ends)) if self.alphas.size > 1 else 0.0)


def check_estimator(
    estimator: Any, alphas: Any, n_components: Any, inner_cv: Any = None, seed: Any = 0, device: Any = None
) -> Estimator:
    """The estimator setting, checked (a name, or an object with fit and predict; ``device`` for ridge only)."""
    device = check_device(device)
    if device is not None and not (isinstance(estimator, str) and estimator == "ridge"):
        raise ArgumentError(f"device: got {str(device)!r} with estimator {describe(estimator)}, but only ridge runs on "
                            f"a torch device. Pass estimator='ridge', or leave device out.")  # fmt: skip
    if isinstance(estimator, str):
        if estimator not in ESTIMATORS:
            raise UnknownNameError(f"estimator: got {estimator!r}. Available: {format_choices(ESTIMATORS)}, or a "
                                   f"scikit-learn regressor.")  # fmt: skip
        if estimator in PLS_SOLVERS:
            _no_inner_cv(inner_cv)
            return Estimator(estimator, n_components=check_int("n_components", n_components))
        grid = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64).ravel()
        if grid.size == 0 or not np.isfinite(grid).all() or (grid <= 0).any():
            raise ArgumentError(f"alphas: got {describe(alphas)}. Pass positive finite ridge penalties.")
        inner = None if inner_cv is None else check_int("inner_cv", inner_cv, minimum=2, maximum=10_000)
        return Estimator("ridge", alphas=grid, inner_cv=inner, seed=check_seed(seed), device=device)
    _no_inner_cv(inner_cv)
    if hasattr(estimator, "fit") and hasattr(estimator, "predict"):
        return Estimator(type(estimator).__name__, regressor=estimator)
    raise ArgumentTypeError(f"estimator: got {describe(estimator)}. Pass 'ridge', 'pls' or a scikit-learn regressor.")


def _no_inner_cv(inner_cv: Any) -> None:
    if inner_cv is not None:
        raise ArgumentError(f"inner_cv: got {inner_cv!r}, but it selects ridge penalties; pass estimator='ridge'.")


def gram_matrix(x: np.ndarray | StepBlocks) -> np.ndarray:
    """X X' in float64, accumulated over blocks of units (float32 features are never copied whole; a
    :class:`.inputs.StepBlocks` step's from its blocks of stimuli).
    """
    if isinstance(x, StepBlocks):
        return x.gram()
    if namespace(x) is not np:  # (a device's float64 tensor)
        return x @ x.T
    out = np.zeros((x.shape[0], x.shape[0]))
    for start in range(0, x.shape[1], GRAM_BLOCK):
        block = np.asarray(x[:, start : start + GRAM_BLOCK], dtype=np.float64)
        out += block @ block.T
    return out


def fold_predictions(x: np.ndarray | StepBlocks, y: np.ndarray, folds: list, estimator: Estimator) -> list[np.ndarray]:
    """Held-out predictions of each fold for one (layer, model time step)."""
    from .tall import from_sums, tall_predictions

    if estimator.device is not None:
        return _device_ridge_predictions(x, y, folds, estimator)

    if not _dual(x.shape[1], folds) and from_sums(estimator, x.shape[1], y.shape[1], len(folds)):  # tall
        return tall_predictions(x, y, folds, estimator)
    if estimator.name == "ridge":
        return _ridge_predictions(x, y, folds, estimator)
    if estimator.name in PLS_SOLVERS and _dual(x.shape[1], folds):
        return _pls_gram_predictions(x, y, folds, estimator)
    out = []
    for train, test in folds:
        x_train = np.asarray(x[train], dtype=np.float64)
        if estimator.name in PLS_SOLVERS:
            n_components = min(estimator.n_components, *x_train.shape)
            model = PLS_SOLVERS[estimator.name](x_train, y[train], n_components)
            out.append(predict_pls(model, np.asarray(x[test], dtype=np.float64)))
        else:
            from sklearn.base import clone

            model = clone(estimator.regressor).fit(x_train, y[train])
            out.append(np.asarray(model.predict(np.asarray(x[test], dtype=np.float64))).reshape(len(test), -1))
    return out


def _ridge_predictions(x: np.ndarray, y: np.ndarray, folds: list, estimator: Estimator) -> list[np.ndarray]:
    """Ridge per fold, primal (units <= training stimuli) or dual from one Gram matrix of all stimuli."""
    alphas = estimator.alphas
    dual = _dual(x.shape[1], folds)
    kernel = gram_matrix(x) if dual else None
    out = []
    for train, test in folds:
        u, s2, z = _coordinates(x, kernel, train, test)
        path = ridge_solver.ridge_path(u, s2, y[train])
        if estimator.inner_cv is None:
            chosen = path.best_alphas(alphas)
        else:
            chosen = _inner_alphas(x, kernel, y, train, estimator)
        estimator.note_choice(chosen)
        out.append(path.predict(z, alphas, chosen))
    return out


def _device_ridge_predictions(x: np.ndarray, y: np.ndarray, folds: list, estimator: Estimator) -> list[np.ndarray]:
    """:func:`_ridge_predictions` in float64 on ``estimator.device`` (the features and targets sent once)."""
    x, y = send(x, estimator.device), send(y, estimator.device)
    return [to_numpy(p) for p in _ridge_predictions(x, y, folds, estimator)]


def _pls_gram_predictions(x: np.ndarray | StepBlocks, y: np.ndarray, folds: list, estimator: Estimator) -> list:
    """PLS per fold from one Gram matrix of all stimuli (more units than training stimuli): the same models as
    :data:`PLS_SOLVERS` fit on the features (:data:`PLS_GRAM_SOLVERS`), which a step larger than a block gives.
    """
    kernel = gram_matrix(x)
    out = []
    for train, test in folds:
        k_train, k_test = ridge_solver.centre_gram(kernel, train, test)
        n_components = min(estimator.n_components, len(train), x.shape[1])
        dual, y_mean = PLS_GRAM_SOLVERS[estimator.name](k_train, y[train], n_components)
        out.append(k_test @ dual + y_mean)
    return out


def _coordinates(
    x: np.ndarray, kernel: np.ndarray | None, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, s^2, z) of a training set and its test stimuli: from the features, or from the Gram matrix."""
    xp = namespace(x)
    if kernel is not None:
        k_train, k_test = ridge_solver.centre_gram(kernel, train, test)
        u, s2 = ridge_solver.factorise_gram(k_train)
        return u, s2, (k_test @ u) / xp.sqrt(s2)
    x_train = xp.asarray(x[train], dtype=xp.float64)
    mean = x_train.mean(axis=0)
    u, s2, v = ridge_solver.factorise(x_train - mean)
    return u, s2, (xp.asarray(x[test], dtype=xp.float64) - mean) @ v


def _inner_alphas(x: np.ndarray, kernel: np.ndarray | None, y: np.ndarray, train: np.ndarray,
                  estimator: Estimator) -> np.ndarray:  # fmt: skip
    """Each target's penalty with the smallest squared error summed over inner k-fold splits of ``train``
    (each inner fit centred on its own training part; the first penalty on ties).
    """
    from sklearn.model_selection import KFold

    alphas = estimator.alphas
    errors = zeros(y, (alphas.size, y.shape[1]))
    for inner_train, inner_test in KFold(estimator.inner_cv, shuffle=True, random_state=estimator.seed).split(train):
        fit_on, held = train[inner_train], train[inner_test]
        u, s2, z = _coordinates(x, kernel, fit_on, held)
        path = ridge_solver.ridge_path(u, s2, y[fit_on])
        for i in range(alphas.size):
            residual = y[held] - path.predict(z, alphas, np.full(y.shape[1], i))
            errors[i] += (residual * residual).sum(axis=0)
    return to_numpy(errors.argmin(0))


def fold_scores(predictions: list[np.ndarray], y: np.ndarray, folds: list) -> tuple[np.ndarray, np.ndarray]:
    """(Pearson r, R^2) per target on each fold's held-out stimuli, averaged over folds."""
    r, r2 = [], []
    for prediction, (_, test) in zip(predictions, folds, strict=True):
        actual = y[test]
        r.append(column_correlations(prediction, actual))
        residual = ((actual - prediction) ** 2).sum(axis=0)
        spread = (centred(actual, 0) ** 2).sum(axis=0)  # NaN for a target constant on the fold (no R^2, not -inf)
        r2.append(1 - residual / spread)
    return np.mean(r, axis=0), np.mean(r2, axis=0)


@dataclass
class EncodingResult:
    """Held-out scores of encoding models from each layer and model time step to each target.

    Attributes
    ----------
    scores : dict of str to ndarray, (n_model_times, n_neural_times, n_targets)
        Pearson r between predicted and actual responses on held-out stimuli, averaged over folds.
    r2 : dict of str to ndarray
        R^2 on held-out stimuli (the same shape).
    model_times : dict of str to ndarray
    neural_times : ndarray
    ceiling : CeilingResult or None
        Split-half reliability of every (neural time, target) from the repetitions.
    estimator : str
    n_folds, n_stimuli : int
    edge_share : float
        Ridge: the share of (fit, target) whose penalty was the smallest or largest of ``alphas`` (widen
        the grid when it is large); NaN for other estimators.
    periods : dict
        The model recording's periods (marked on the figure over model time).
    """

    scores: dict[str, np.ndarray]
    r2: dict[str, np.ndarray]
    model_times: dict[str, np.ndarray]
    neural_times: np.ndarray
    ceiling: CeilingResult | None
    estimator: str
    n_folds: int
    n_stimuli: int
    edge_share: float
    periods: dict[str, tuple[float, float]] = field(default_factory=dict)

    def ceiled(self, layer: str) -> np.ndarray:
        """R / ceiling per target (ceiling = sqrt(reliability)); NaN where the target is unreliable."""
        if self.ceiling is None:
            raise ArgumentError("ceiled: this result has no ceiling (responses without repetitions).")
        return self.scores[self._layer(layer)] / self.ceiling.ceiling[None]

    def median(self, layer: str | None = None, *, ceiled: bool = False) -> np.ndarray:
        """The median over targets (as Brain-Score reports), (n_model_times, n_neural_times)."""
        layer = self._layer(layer)
        values = self.ceiled(layer) if ceiled else self.scores[layer]
        return nan_median(values)

    def peak(self, layer: str | None = None) -> dict[str, Any]:
        """The layer's (model time, neural time) of the highest median r, that median (and ceiled)."""
        layer = self._layer(layer)
        median = self.median(layer)
        peak = peak_position(median)
        if peak is None:  # no target has a score at any step (e.g. every prediction the mean): no peak
            return {"layer": layer, "model_time": None, "neural_time": None, "median r": float("nan")} | (
                {} if self.ceiling is None else {"ceiled median r": float("nan")}
            )
        i, j = peak
        out = {"layer": layer, "model_time": self.model_times[layer][i].item(),
               "neural_time": self.neural_times[j].item(), "median r": float(median[i, j])}  # fmt: skip
        if self.ceiling is not None:
            out["ceiled median r"] = float(self.median(layer, ceiled=True)[i, j])
        return out

    def best(self) -> dict[str, np.ndarray]:
        """Per (neural time, target): the best layer and model time step and its score; where no layer has a
        score for a target, its layer and model time are None and its score NaN.
        """
        layers = list(self.scores)
        stacked = [self.scores[name] for name in layers]
        best_step = [nan_argmax(s) for s in stacked]
        best_value = np.stack([np.take_along_axis(s, b[None], 0)[0] for s, b in zip(stacked, best_step, strict=True)])
        which = nan_argmax(best_value)
        score = np.take_along_axis(best_value, which[None], 0)[0]  # (a NaN of another layer is no maximum)
        steps = np.choose(which, best_step)
        undefined = np.isnan(score)
        times = np.array([[None if u else self.model_times[layers[w]][t] for w, t, u in zip(wr, tr, ur, strict=True)]
                          for wr, tr, ur in zip(which, steps, undefined, strict=True)], dtype=object)  # fmt: skip
        layer = np.asarray(layers, dtype=object)[which]
        layer[undefined] = None
        return {"layer": layer, "model_time": times, "score": score}

    def summary(self) -> dict[str, Any]:
        """Key numbers: each layer's best median score (and ceiled), where it is, and the ceiling."""
        out: dict[str, Any] = {"estimator": self.estimator, "stimuli": self.n_stimuli, "folds": self.n_folds,
                               "targets": int(next(iter(self.scores.values())).shape[-1])}  # fmt: skip
        for layer in self.scores:
            peak = self.peak(layer)
            out[f"{layer}: best median r"] = peak["median r"]
            out[f"{layer}: at model time"] = peak["model_time"]
            out[f"{layer}: at neural time"] = peak["neural_time"]
            if "ceiled median r" in peak:
                out[f"{layer}: ceiled median r"] = peak["ceiled median r"]
        if self.ceiling is not None:
            out["median ceiling (r)"] = self.ceiling.median_ceiling()
        if np.isfinite(self.edge_share):
            out["penalties at the grid's edge"] = self.edge_share
        return out

    def draw(self, ax: Any) -> Any:
        """The median score over model time of each layer, at the neural time where it peaks."""
        from ..plotting import OKABE_ITO

        for layer, color in zip(self.scores, OKABE_ITO * 4, strict=False):
            median = self.median(layer)
            peak = peak_position(median)
            j = 0 if peak is None else peak[1]  # (no score at all: the first)
            ax.plot(self.model_times[layer], median[:, j], marker="o", ms=3, color=color,
                    label=f"{layer} (neural time {self.neural_times[j]})")  # fmt: skip
        ax.set_xlabel("model time step")
        ax.set_ylabel("median held-out r")
        ax.legend(frameon=False, fontsize=7)
        from ..plotting import mark_periods

        mark_periods(ax, self.periods)
        return ax

    def draw_targets(self, ax: Any) -> Any:
        """Every target's held-out r at each layer's peak (model time, neural time): one column of points
        per layer, its median as a bar, the targets' median ceiling dashed.
        """
        from ..plotting import OKABE_ITO

        jitter = np.random.default_rng(0)
        for k, (layer, color) in enumerate(zip(self.scores, OKABE_ITO * 4, strict=False)):
            values = self._at_peak(layer)
            ax.scatter(k + jitter.uniform(-0.15, 0.15, len(values)), values, s=8, alpha=0.6, color=color)
            ax.hlines(nan_median(values, axis=0), k - 0.3, k + 0.3, color="black", lw=2)
        if self.ceiling is not None:
            ax.axhline(self.ceiling.median_ceiling(), color="grey", ls="--", lw=1, label="median ceiling")
            ax.legend(frameon=False, fontsize=7)
        ax.set_xticks(range(len(self.scores)), list(self.scores), rotation=20)
        ax.set_ylabel("held-out r per target (at the peak)")
        return ax

    def plot(self) -> Any:
        """Left: :meth:`draw` (over model time), or :meth:`draw_targets` when there is one model time step.
        Right: the best layer's model time x neural time median, or (one of either) each target's r against
        its ceiling.
        """
        from ..plotting import pyplot

        fig, (left, right) = pyplot().subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        over_time = max(len(times) for times in self.model_times.values()) > 1
        self.draw(left) if over_time else self.draw_targets(left)
        layer = max(self.scores, key=lambda name: np.max(np.nan_to_num(self.median(name), nan=-np.inf)))
        median = self.median(layer)
        peak = peak_position(median)
        if min(median.shape) > 1:
            image = right.imshow(median, origin="lower", aspect="auto", cmap="viridis")
            right.set_xlabel("neural time bin")
            right.set_ylabel(f"model time step ({layer})")
            fig.colorbar(image, ax=right, label="median held-out r")
        elif self.ceiling is not None and peak is not None:
            right.scatter(self.ceiling.ceiling[peak[1]], self._at_peak(layer), s=8, alpha=0.6, color="black")
            right.axline((0, 0), slope=1, color="grey", ls="--", lw=1)
            right.set_xlabel("ceiling (sqrt of split-half reliability)")
            right.set_ylabel(f"held-out r ({layer})")
        else:
            self.draw_targets(right)
        return fig

    def _at_peak(self, layer: str) -> np.ndarray:
        """Every target's score at the layer's peak (NaN where the layer has none)."""
        peak = peak_position(self.median(layer))
        return np.full(self.scores[layer].shape[-1], np.nan) if peak is None else self.scores[layer][peak]

    def _layer(self, layer: str | None) -> str:
        if layer is None:
            if len(self.scores) != 1:
                raise ArgumentError(f"layer: this result has {len(self.scores)} layers; name one of "
                                    f"{format_choices(self.scores)}.")  # fmt: skip
            return next(iter(self.scores))
        if layer not in self.scores:
            raise UnknownNameError(f"layer: {layer!r} is not in this result. Available: {format_choices(self.scores)}.")
        return layer


def fit_encoding(
    features: Any,
    responses: Any,
    *,
    layers: Any = None,
    area: str | None = None,
    time: Any = None,
    neural_time: Any = None,
    descriptor: str | None = None,
    estimator: Any = "ridge",
    alphas: Any = None,
    inner_cv: int | None = None,
    n_components: int = 25,
    cv: Any = 5,
    stratify: Any = None,
    groups: Any = None,
    ceiling: bool = True,
    n_splits: int = 100,
    seed: int | None = 0,
    progress: bool | None = None,
    device: str | None = None,
) -> EncodingResult:
    r"""Encoding models: predict every neuron (voxel) at every neural time from each layer at each model time.

    For each layer and model time step, a regression from the units to all (neural time, target)
    columns at once is fitted on the training stimuli of each fold and scored on the held-out ones
    (Pearson r and R^2 per target, averaged over folds, the same folds for every layer): the
    Brain-Score "neural predictivity" standard, over time.

    Parameters
    ----------
    features : Recording or ndarray
        The model's states, (stimulus, time, unit) per layer; an array (stimulus, unit) or (stimulus,
        time, unit) is one layer named "features".
    responses : Recording or ndarray
        Neural responses. A Recording's rows are trials (grouped by ``descriptor`` into stimuli, with
        their repetitions) or stimuli; arrays are (stimulus, target), (stimulus, time, target) or
        (stimulus, repetition, time, target). Models are scored against the mean over repetitions.
    layers : str or list of str, optional
        The model layers (default all).
    area : str, optional
        The responses' layer (e.g. "IT"); default its only layer.
    time, neural_time : selection, optional
        Model time steps and neural time bins (positions); default all.
    descriptor : str, optional
        A column of both Recordings naming each trial's stimulus (e.g. "condition"): trials are grouped
        per value (sorted), features averaged per value.
    estimator : "ridge", "pls", "pls_nipals" or a scikit-learn regressor
        "ridge": a penalty per target from ``alphas`` by efficient leave-one-out on the training
        stimuli (scikit-learn's ``RidgeCV(alpha_per_target=True)``), in the dual form when units
        outnumber training stimuli. "pls": PLS regression with ``n_components`` (Brain-Score's default,
        25; scikit-learn's ``PLSRegression(scale=False)``) solved exactly: each component from an
        eigendecomposition, the limit of scikit-learn's iterations. "pls_nipals": the same model by
        NIPALS with scikit-learn's defaults (tol 1e-6, 500 iterations), to reproduce its (and
        Brain-Score's) numbers to rounding. Both are fitted from the Gram matrix across stimuli where
        units outnumber training stimuli, as ridge's dual form is. A regressor is cloned and fitted per fold.
    alphas : array, optional
        Ridge penalties (default 25 values from 1e-3 to 1e9).
    inner_cv : int, optional
        Ridge: choose each target's penalty by k-fold cross-validation on the training stimuli (the
        smallest squared error summed over the inner folds, shuffled by ``seed``) instead of exact
        leave-one-out; for stimuli that are not independent (e.g. neighbouring frames).
    n_components : int
    cv : int, splitter or (train, test) pairs
        An int k: shuffled k-fold of the stimuli, stratified by ``stratify`` or grouped by ``groups``.
    stratify, groups : str or array, optional
        A column of ``features`` (per stimulus; per condition with a descriptor) or labels.
    ceiling : bool
        Compute split-half noise ceilings from the repetitions (needs at least 2).
    n_splits : int
        Random splits of the ceiling.
    seed : int, optional
        Seeds the folds and the ceiling's splits.
    progress : bool, optional
        A progress bar over (layer, model time step).
    device : str, optional
        Torch device of ridge's arithmetic (e.g. "cuda"; ``estimator="ridge"`` only), in float64: each step's
        features and the targets are sent once, the folds' factorisations, penalties and predictions computed
        there (the same numbers as on the CPU, to rounding). Steps are read whole and fitted one after another,
        also those of a dask-backed recording. Default: numpy on the CPU.

    Returns
    -------
    EncodingResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(120, 30))                                   # 120 stimuli x 30 units
    >>> signal = x @ rng.normal(size=(30, 8))                            # 8 neurons
    >>> trials = signal[:, None, None] + rng.normal(0, 3, size=(120, 6, 1, 8))   # 6 repetitions
    >>> result = fit_encoding(x, trials)
    >>> bool(result.median(ceiled=True)[0, 0] > 0.9)
    True
    """
    model = check_estimator(estimator, alphas, n_components, inner_cv, seed, device)
    if not isinstance(ceiling, bool):
        raise ArgumentTypeError(f"ceiling: got {describe(ceiling)}. Pass True or False.")
    neural = read_responses(responses, layer=area, time=neural_time, descriptor=descriptor)
    readers, rows = read_features(features, layers=layers, time=time, descriptor=descriptor,
                                  conditions=neural.conditions)  # fmt: skip
    n = neural.shape[0]
    _check_stimuli(features, rows, n)
    folds = make_folds(n, cv, seed=seed, stratify=stimulus_labels(stratify, "stratify", features, rows, n),
                       groups=stimulus_labels(groups, "groups", features, rows, n))  # fmt: skip
    smallest = min(len(train) for train, _ in folds)
    if model.inner_cv is not None and model.inner_cv > smallest // 2:
        raise ArgumentError(
            f"inner_cv: got {model.inner_cv}, but the smallest training fold has {smallest} stimuli; pass at most "
            f"{smallest // 2} (each inner split needs 2 or more stimuli)."
        )
    y = neural.mean.reshape(n, -1)
    _refuse_constant_targets(y, neural.shape[2:])
    noise = None
    if ceiling and neural.shape[1] >= 2:
        noise = reliability_of_halves(neural.halves, neural.shape, n_splits=n_splits, n_repetitions=None, seed=seed)
    scores, r2 = _fit_all(readers, y, folds, model, neural.shape[2:], progress)
    edge = float(np.mean(model.edge_hits)) if model.edge_hits else float("nan")
    from ...recording import Recording

    periods = features.periods if isinstance(features, Recording) else {}  # of the model's time axis
    return EncodingResult(scores, r2, {f.label: f.times for f in readers}, neural.times, noise, model.name,
                          len(folds), n, edge, periods)  # fmt: skip


def _fit_all(readers: list[Features], y: np.ndarray, folds: list, model: Estimator, shape: tuple, progress: Any
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:  # fmt: skip
    """Scores of every (layer, model time step): step by step here, or, for a dask-backed recording on the CPU, in
    blocks of steps as tasks on the active dask client (:mod:`..blockwise`; the same folds, the same numbers).
    """
    from tqdm.auto import tqdm

    from ..blockwise import run_blocks

    scores, r2 = {}, {}
    with tqdm(total=sum(len(f.times) for f in readers), desc="encoding", unit="step",
              disable=not check_progress(progress)) as bar:  # fmt: skip
        for feature in readers:
            if feature.blocks is None or model.device is not None:
                parts = []
                for step in range(len(feature.times)):
                    parts.append(_score_steps([step], feature, y, folds, model))
                    bar.update(1)
            else:
                parts = run_blocks(_score_steps, feature.blocks, feature, y, folds, model)
                bar.update(len(feature.times))
            steps = [step for part, _ in parts for step in part]
            model.edge_hits.extend(hit for _, hits in parts for hit in hits)
            scores[feature.label] = np.stack([r.reshape(shape) for r, _ in steps])
            r2[feature.label] = np.stack([r_sq.reshape(shape) for _, r_sq in steps])
    return scores, r2


def _score_steps(steps: Any, feature: Features, y: np.ndarray, folds: list, model: Estimator
                 ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[float]]:  # fmt: skip
    """(r, R^2) per target at each of ``steps`` (positions in ``feature.times``), and the grid-edge shares of
    their ridge fits (the estimator is copied, so that a task on a dask worker returns them).
    """
    import dataclasses

    fitted = dataclasses.replace(model, edge_hits=[])
    out = [fold_scores(fold_predictions(_step_features(feature, int(step), folds, model, y.shape[1]), y, folds, fitted),
                       y, folds)
           for step in steps]  # fmt: skip
    return out, fitted.edge_hits


def _step_features(feature: Features, step: int, folds: list, model: Estimator, q: int) -> np.ndarray | StepBlocks:
    """One step's features: a :class:`.inputs.StepBlocks` where the step is larger than a block and ridge or PLS is
    fitted in its dual form (more units than training stimuli: only the Gram matrix across stimuli is needed) or
    from each fold's sums over blocks of stimuli (:mod:`.tall`), else whole (always whole for a device).
    """
    from .tall import from_sums

    if feature.read_blocks is not None and model.name in ("ridge", *PLS_SOLVERS) and model.device is None:
        blocks = feature.read_blocks(step)
        if _dual(blocks.shape[1], folds) or from_sums(model, blocks.shape[1], q, len(folds)):
            return blocks
    return feature.read(step)


def _dual(n_units: int, folds: list) -> bool:
    """Whether ridge (and PLS) is fitted in its dual form: more units than a fold's training stimuli."""
    return n_units > min(len(train) for train, _ in folds)


def _check_stimuli(features: Any, rows: list[np.ndarray] | None, n: int) -> None:
    from ...recording import Recording

    got = len(rows) if rows is not None else len(features) if isinstance(features, Recording) else np.shape(features)[0]
    if got != n:
        raise ShapeError(
            f"features, responses: {got} and {n} stimuli. Both must hold the same stimuli in the same order (or pass "
            f"descriptor= to match trials to stimuli by a column)."
        )


def _refuse_constant_targets(y: np.ndarray, shape: tuple) -> None:
    constant = np.ptp(y, axis=0) == 0
    if constant.any():
        first = [np.unravel_index(i, shape) for i in np.flatnonzero(constant)[:5]]
        raise ArgumentError(
            f"responses: {int(constant.sum())} (time, target) column(s) (first at {first}) are the same for every "
            f"stimulus, so no score is defined. Drop them (e.g. neurons that never fire in a bin)."
        )
