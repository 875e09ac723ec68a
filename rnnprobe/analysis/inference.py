"""Inference for model-vs-data RSA: bootstrap over conditions (patterns).

Resampling conditions with replacement asks how a model's fit would vary over
other stimulus sets drawn from the same population (Nili et al. 2014; Schütt et
al. 2023). For each bootstrap sample the RDMs are restricted to the drawn
conditions: every pair of drawn copies is kept, except a condition paired with
its own copy, which has no dissimilarity. Given the same indices, the results
equal rsatoolbox's ``eval_bootstrap_pattern`` (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import MAX_RESAMPLES, check_int, check_option, check_probability, check_progress, check_seed
from ..errors import ArgumentError, ShapeError, describe
from ._draws import distinct_conditions, draw_counts
from ._pattern_bootstrap import _ceiling_from_similarities, pattern_bootstrap
from ._rank_bootstrap import RANKED, rank_bootstrap
from ._ranks import rank_rows
from ._scores import permutation_p_values
from .parallel import equal_shares, library_threads, task_pool
from .rsa import COMPARISONS, RDMs, compare_rdms, n_conditions, noise_ceiling, paired_vectors, similarity_transform
from .rsa.compare import DOT_METHODS
from .rsa.kendall import Rows, affine, indicators, permuted_tau, tau_a, two_valued
from .rsa.rdms import check_whole

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def _pair_index(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Position of pair (i, j), i < j, in a row-major upper-triangle vector of an n x n matrix."""
    return i * n - i * (i + 1) // 2 + (j - i - 1)


def resample_pairs(indices: np.ndarray, n_conditions: int) -> np.ndarray:
    """Upper-triangle positions of all pairs among drawn conditions (sorted, with copies), without a
    condition paired with its own copy; the order follows the resampled matrix's upper triangle.
    """
    drawn = np.sort(np.asarray(indices))
    rows, cols = np.triu_indices(drawn.size, k=1)
    a, b = drawn[rows], drawn[cols]
    keep = a != b
    a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    return _pair_index(a, b, n_conditions)


def _subject_samples(
    models: np.ndarray, data: np.ndarray, draws: np.ndarray, comparison: str, with_ceiling: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Every bootstrap sample of subjects (rows of ``draws``) at once, for corr and cosine: a sample's evaluations
    are its subjects' similarities with the models weighted by their draw counts, and its pooled RDM is the
    subjects' normalised RDMs so weighted, whose ceiling comes from the subjects' similarities R = F F' and the
    counts (:func:`._pattern_bootstrap._ceiling_from_similarities`). 200 samples of 15 subjects,
    92 conditions, corr: 0.128 s sample by sample, 0.6 ms (``benchmarks/bootstrap_subjects.py``).
    """
    f_data = similarity_transform(data, comparison)
    counts = draw_counts(draws, len(data))
    evaluations = counts @ (similarity_transform(models, comparison) @ f_data.T).T / draws.shape[1]
    if not with_ceiling:
        return evaluations, None
    return evaluations, _ceiling_from_similarities(np.broadcast_to(f_data @ f_data.T, (len(draws), *[len(data)] * 2)),
                                                   counts)  # fmt: skip


def _dot_path(comparison: str, *stacks: np.ndarray) -> bool:
    """Whether similarities can be computed as dot products of transformed RDMs (no NaN anywhere)."""
    return comparison in DOT_METHODS and not any(np.isnan(stack).any() for stack in stacks)


def _draws(indices: np.ndarray | None, n_bootstrap: int, seed: Any, n: int, what: str) -> np.ndarray:
    """Bootstrap draws (n_bootstrap, n) from ``seed``, or the given ``indices`` after checking them."""
    if indices is None:
        n_bootstrap = check_int("n_bootstrap", n_bootstrap, maximum=MAX_RESAMPLES)
        if not isinstance(seed, np.random.SeedSequence):  # the joint bootstrap spawns its own sequences
            seed = check_seed(seed)
        return np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.size == 0 or indices.min() < 0 or indices.max() >= n:
        raise ShapeError(f"indices: got {describe(indices)}. Pass (n_bootstrap, n_draws) {what} indices in [0, {n}).")
    return indices


def _model_names(models: Any, n: int) -> list[str]:
    names = list(models.rdm_descriptors.get("name", [])) if isinstance(models, RDMs) else []
    return [str(name) for name in names] if len(names) == n else [f"model {i}" for i in range(n)]


@dataclass
class BootstrapResult:
    """Model evaluations over bootstrap samples of the conditions and/or subjects.

    Attributes
    ----------
    evaluations : ndarray, (n_bootstrap, n_models)
        Mean similarity of each model to the data RDMs in each sample (NaN for samples with
        fewer than 3 distinct conditions).
    noise_ceiling : ndarray, (2, n_bootstrap) or None
        Lower and upper noise ceiling per sample.
    indices : ndarray, (n_bootstrap, n_conditions) or (n_bootstrap, n_subjects)
        The drawn conditions (or subjects when only subjects were resampled); reproducible given
        the seed.
    comparison : str
    model_names : list of str
    over : tuple of str
        What was resampled: ("conditions",), ("subjects",) or ("conditions", "subjects").
    n_conditions, n_subjects : int
        Size of the data; the variance correction n / (n - 1) and the t-tests' degrees of freedom
        n - 1 use the resampled factor's n (the smaller one when both were), as rsatoolbox does.
    subject_indices : ndarray or None
        The drawn subjects of a joint bootstrap.
    """

    evaluations: np.ndarray
    noise_ceiling: np.ndarray | None
    indices: np.ndarray
    comparison: str
    model_names: list[str]
    over: tuple[str, ...] = ("conditions",)
    n_conditions: int = 0
    n_subjects: int = 0
    subject_indices: np.ndarray | None = None

    def mean(self) -> np.ndarray:
        """Mean evaluation of each model over the valid samples, (n_models,)."""
        return np.nanmean(self.evaluations, axis=0)

    def confidence_interval(self, level: float = 0.95) -> np.ndarray:
        """Percentile interval per model, (2, n_models); ``level`` in (0, 1)."""
        tail = (1 - check_probability("level", level)) / 2
        return np.nanpercentile(self.evaluations, [100 * tail, 100 * (1 - tail)], axis=0)

    def _n(self) -> int:
        sizes = {"conditions": self.n_conditions, "subjects": self.n_subjects}
        return min(sizes[factor] for factor in self.over)

    def covariance(self) -> np.ndarray:
        """Covariance of the model evaluations over the valid samples, corrected by n / (n - 1).

        The diagonal equals rsatoolbox's ``Result.model_var`` for the same draws (tested).
        """
        valid = np.isfinite(self.evaluations).all(axis=1)
        n = self._n()
        return np.atleast_2d(np.cov(self.evaluations[valid].T)) * (n / (n - 1))

    def standard_error(self) -> np.ndarray:
        """Bootstrap standard error of each model's evaluation, (n_models,)."""
        return np.sqrt(np.maximum(np.diag(self.covariance()), 0))

    def pairwise_p_values(self) -> np.ndarray:
        """Two-sided t-tests of every pair of models, (n_models, n_models), 1 on the diagonal.

        t = (mean_i - mean_j) / sqrt(var(eval_i - eval_j)), with n - 1 degrees of freedom (as
        rsatoolbox's ``Result.test_pairwise()``). Not corrected for multiple comparisons.
        """
        from scipy import stats

        cov, mean = self.covariance(), self.mean()
        variance = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (mean[:, None] - mean[None, :]) / np.sqrt(np.maximum(variance, np.finfo(float).eps))
        p = 2 * stats.t.sf(np.abs(t), self._n() - 1)
        np.fill_diagonal(p, 1.0)  # no difference of a model with itself
        return p

    def summary(self, level: float = 0.95) -> dict[str, Any]:
        """Key numbers: each model's mean evaluation and confidence interval, and the noise ceiling."""
        mean, ci = self.mean(), self.confidence_interval(level)
        out: dict[str, Any] = {"comparison": self.comparison, "resampled": " and ".join(self.over)}
        for k, name in enumerate(self.model_names):
            out[f"{name} mean"] = float(mean[k])
            out[f"{name} {int(level * 100)}% interval"] = [float(ci[0, k]), float(ci[1, k])]
        if self.noise_ceiling is not None:
            out["noise ceiling lower"], out["noise ceiling upper"] = map(float, np.nanmean(self.noise_ceiling, axis=1))
        return out

    def plot(self) -> Figure:
        """Mean model performance with 95% bootstrap intervals and the noise-ceiling band."""
        from .plotting import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(max(3.5, 0.8 * len(self.model_names) + 1.5), 4), layout="constrained")
        x = np.arange(len(self.model_names))
        mean, (low, high) = self.mean(), self.confidence_interval()
        if self.noise_ceiling is not None:
            ceiling = np.nanmean(self.noise_ceiling, axis=1)
            ax.axhspan(ceiling[0], ceiling[1], color="#999999", alpha=0.35, lw=0, label="noise ceiling")
        ax.bar(x, mean, color="#0072B2", width=0.6)
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="none", ecolor="black", capsize=3, lw=1)
        ax.set_xticks(x, self.model_names, rotation=30, ha="right")
        ax.set_ylabel(f"RDM similarity ({self.comparison})")
        ax.axhline(0, color="black", lw=0.6)
        if self.noise_ceiling is not None:
            ax.legend(frameon=False)
        ax.set_title(f"bootstrap over {' and '.join(self.over)} (n = {self.evaluations.shape[0]} samples)")
        return fig


def _check_resampling_method(comparison: str) -> None:
    check_option("comparison", comparison, COMPARISONS)
    if comparison in ("corr_cov", "cosine_cov"):
        raise ArgumentError(
            f"comparison: {comparison!r} whitens with the full RDM structure, which resampled RDMs (with gaps for "
            f"repeated conditions) do not have. Use 'corr', 'cosine', 'spearman', 'rho-a' or 'tau-a'."
        )


def _bootstrap_loop(
    model_vectors: np.ndarray,
    data_vectors: np.ndarray,
    condition_draws: np.ndarray | None,
    subject_draws: np.ndarray | None,
    comparison: str,
    with_noise_ceiling: bool,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Evaluations and noise ceilings sample by sample, for comparisons or RDMs without a dot-product form
    (tau-a, RDMs with NaN): each sample's RDMs compared by :func:`compare_rdms`, its ceiling by
    :func:`noise_ceiling`.
    """
    n_cond = n_conditions(data_vectors.shape[1])
    n_samples = len(condition_draws if condition_draws is not None else subject_draws)
    evaluations = np.full((n_samples, model_vectors.shape[0]), np.nan)
    ceiling = np.full((2, n_samples), np.nan) if with_noise_ceiling else None
    held = None if condition_draws is None else distinct_conditions(condition_draws)  # conditions per sample
    # samples of subjects alone, complete RDMs (tau-a): every model against every subject once, each sample's
    # evaluations the mean of its subjects' columns (the same numbers: each pair's comparison is its own)
    every = None
    if condition_draws is None and subject_draws is not None and not np.isnan(data_vectors).any():
        every = compare_rdms(model_vectors, data_vectors, comparison=comparison)
    from tqdm.auto import tqdm

    for b in tqdm(range(n_samples), desc="bootstrap", unit="sample", disable=not check_progress(progress)):
        groups = None if subject_draws is None else subject_draws[b]
        sample = data_vectors if groups is None else data_vectors[groups]
        sample_models = model_vectors
        if condition_draws is not None:
            if held[b] < 3:
                continue
            pairs = resample_pairs(condition_draws[b], n_cond)
            sample, sample_models = sample[:, pairs], model_vectors[:, pairs]
        evaluations[b] = (
            every[:, groups] if every is not None else compare_rdms(sample_models, sample, comparison=comparison)
        ).mean(axis=1)
        distinct = sample.shape[0] if groups is None else np.unique(groups).size
        bounds = (np.nan, np.nan)
        if ceiling is not None and distinct >= 2:
            try:
                bounds = noise_ceiling(sample, comparison=comparison, groups=groups)
            except ArgumentError:  # a drawn subject RDM without a defined similarity: no ceiling, as its
                pass  # evaluations are NaN in such a sample (invalid samples are left out of every summary)
        if ceiling is not None:
            ceiling[:, b] = bounds
    return evaluations, ceiling


def _evaluate_samples(
    model_vectors: np.ndarray,
    data_vectors: np.ndarray,
    condition_draws: np.ndarray | None,
    subject_draws: np.ndarray | None,
    comparison: str,
    with_noise_ceiling: bool,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Evaluations (n_samples, n_models) and noise ceilings (2, n_samples) of the drawn samples: in blocks of
    samples as tasks on the active dask client (:mod:`.blockwise`), else here: dot-product comparisons of
    complete RDMs all at once (the pattern and rank bootstraps split their own samples over the threads), the
    others sample by sample in blocks on the libraries' threads (the same numbers).
    """
    from .blockwise import run_blocks, sample_blocks

    fast = _dot_path(comparison, model_vectors, data_vectors)
    settings = (comparison, fast, with_noise_ceiling)
    n_samples = len(condition_draws if condition_draws is not None else subject_draws)
    blocks = sample_blocks(n_samples)
    draws = (condition_draws, subject_draws, model_vectors, data_vectors)
    threads = library_threads()
    if blocks is not None:
        parts = run_blocks(_evaluate_block, blocks, *draws, *settings)  # (large arrays travel to the workers once)
    elif threads == 1 or fast:
        # (dot-product comparisons of complete RDMs: every sample at once, on the threads where it splits)
        return _evaluate_block(slice(None), *draws, *settings, progress)
    else:
        parts = _blocks_on_threads(n_samples, threads, draws, settings, progress)
    ceilings = [c for _, c in parts if c is not None]
    return np.concatenate([e for e, _ in parts]), np.concatenate(ceilings, axis=1) if ceilings else None


def _blocks_on_threads(n_samples: int, threads: int, draws: tuple, settings: tuple, progress: bool | None) -> list:
    """:func:`_evaluate_block` of consecutive blocks of the samples on ``threads`` workers, four blocks a thread
    (so that the progress bar moves and the threads end together), in order. bootstrap_subjects' 1000 samples of
    15 subjects' RDMs of 92 conditions, spearman, with its noise ceiling, ran on one core: 2.36 s on one thread
    and on two (AMD EPYC).
    """
    from tqdm.auto import tqdm

    blocks = equal_shares(n_samples, min(n_samples, 4 * threads))
    parts = []
    with tqdm(total=n_samples, desc="bootstrap", unit="sample", disable=not check_progress(progress)) as bar:
        with task_pool(len(blocks), threads=threads) as pmap:
            for block, part in zip(blocks, pmap(lambda b: _evaluate_block(b, *draws, *settings), blocks), strict=True):
                parts.append(part)
                bar.update(block.stop - block.start)
    return parts


def _evaluate_block(
    block: slice,
    condition_draws: np.ndarray | None,
    subject_draws: np.ndarray | None,
    model_vectors: np.ndarray,
    data_vectors: np.ndarray,
    comparison: str,
    fast: bool,
    with_noise_ceiling: bool,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Evaluations and noise ceilings of the samples ``block`` of the draws (of conditions, of subjects)."""
    condition_draws, subject_draws = (None if d is None else d[block] for d in (condition_draws, subject_draws))
    if not fast:
        return _bootstrap_loop(model_vectors, data_vectors, condition_draws, subject_draws, comparison,
                               with_noise_ceiling, progress)  # fmt: skip
    if condition_draws is None and comparison in RANKED:  # ranked once each, the pooled RDMs per sample
        return rank_bootstrap(model_vectors, data_vectors, None, subject_draws, comparison, with_noise_ceiling)
    if condition_draws is None:  # from the subjects' products
        return _subject_samples(model_vectors, data_vectors, subject_draws, comparison, with_noise_ceiling)
    # as weighted statistics (subjects drawn too: their counts weigh them)
    return pattern_bootstrap(model_vectors, data_vectors, condition_draws, comparison, with_noise_ceiling,
                             subject_draws)  # fmt: skip


def _bootstrap(
    model_rdms: Any,
    data: Any,
    comparison: str,
    conditions: tuple[np.ndarray | None, int, int | None] | None,
    subjects: tuple[np.ndarray | None, int, int | None] | None,
    with_noise_ceiling: bool,
    progress: bool = False,
) -> BootstrapResult:
    """The bootstrap loop shared by the three public functions. ``conditions``/``subjects``:
    (given indices or None, n_bootstrap, seed) for each resampled factor, None when it is fixed.
    """
    _check_resampling_method(comparison)
    model_vectors, data_vectors = paired_vectors(model_rdms, data, names=("model_rdms", "data"))
    _check_informative(model_vectors, "model_rdms", comparison)
    _check_informative(data_vectors, "data", comparison)
    n_subjects, n_pairs = data_vectors.shape
    n_cond = check_whole(data_vectors, "data", "resampling conditions") if conditions else n_conditions(n_pairs)
    if with_noise_ceiling and n_subjects < 2:
        raise ArgumentError("data: a noise ceiling needs at least 2 data RDMs; pass with_noise_ceiling=False.")
    subject_draws = None if subjects is None else _draws(*subjects, n_subjects, "subject")
    condition_draws = None if conditions is None else _draws(*conditions, n_cond, "condition")
    if condition_draws is not None and subject_draws is not None and len(condition_draws) != len(subject_draws):
        raise ShapeError(
            f"indices: {len(condition_draws)} condition draws but {len(subject_draws)} subject draws; "
            f"pass the same number of samples for both."
        )
    evaluations, ceiling = _evaluate_samples(model_vectors, data_vectors, condition_draws, subject_draws, comparison,
                                             with_noise_ceiling, progress)  # fmt: skip
    if not np.isfinite(evaluations).any():
        raise ArgumentError(
            f"n_bootstrap: none of the {len(evaluations)} samples gives a defined similarity (a sample of conditions "
            f"needs 3 or more distinct ones); pass more samples, or RDMs of more conditions."
        )
    over = tuple(
        name for name, draws in (("conditions", condition_draws), ("subjects", subject_draws)) if draws is not None
    )
    return BootstrapResult(
        evaluations,
        ceiling,
        condition_draws if condition_draws is not None else subject_draws,
        comparison,
        _model_names(model_rdms, model_vectors.shape[0]),
        over=over,
        n_conditions=n_cond,
        n_subjects=n_subjects,
        subject_indices=subject_draws if condition_draws is not None else None,
    )


def bootstrap_conditions(
    model_rdms: Any,
    data: Any,
    *,
    comparison: str = "corr",
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    indices: np.ndarray | None = None,
    with_noise_ceiling: bool = True,
    progress: bool | None = None,
) -> BootstrapResult:
    """Evaluate fixed model RDMs against data RDMs over bootstrap samples of the conditions.

    Given the same draws, equal to rsatoolbox's ``eval_bootstrap_pattern`` (tested), including
    the variances and pairwise tests of its result.

    Parameters
    ----------
    model_rdms : RDMs (or rsatoolbox RDMs / vectors), n_models RDMs
    data : RDMs, one RDM per subject/session (the evaluation averages over them)
    comparison : str
        A comparison of :func:`compare_rdms` (not the whitened ones: resampled RDMs have gaps).
    n_bootstrap, seed : int
        Number of samples; seed for drawing condition indices (numpy Generator).
    indices : ndarray, (n_bootstrap, n_conditions), optional
        Use these draws instead (e.g. to reproduce another tool's samples).
    with_noise_ceiling : bool
        Also compute the noise ceiling of each sample (needs at least 2 data RDMs).
    progress : bool or None
        Progress bar over the samples (on stderr) where they are evaluated one by one (tau-a, RDMs with
        NaN; the dot-product comparisons of complete RDMs evaluate all samples at once).
        None (default): a bar only when stderr is a terminal.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.random(45)
    >>> data = truth + rng.normal(0, 0.3, size=(4, 45))            # 4 subjects, 10 conditions
    >>> models = np.stack([truth, rng.random(45)])                  # a good and a random model
    >>> result = bootstrap_conditions(models, data, n_bootstrap=50, seed=1)
    >>> bool(result.mean()[0] > result.mean()[1])
    True
    >>> bool(result.pairwise_p_values()[0, 1] < 0.05)
    True
    """
    return _bootstrap(model_rdms, data, comparison, (indices, n_bootstrap, seed), None, with_noise_ceiling, progress)


def bootstrap_subjects(
    model_rdms: Any,
    data: Any,
    *,
    comparison: str = "corr",
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    indices: np.ndarray | None = None,
    with_noise_ceiling: bool = True,
    progress: bool | None = None,
) -> BootstrapResult:
    """Evaluate fixed model RDMs over bootstrap samples of the subjects (data RDMs).

    How would the models fare with other subjects from the same population? Each sample draws data
    RDMs with replacement; the noise ceiling leaves each drawn subject out with all its copies.
    Given the same draws, equal to rsatoolbox's ``eval_bootstrap_rdm`` (tested).

    Parameters are as for :func:`bootstrap_conditions`; ``indices`` are (n_bootstrap, n_subjects) draws.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.random(45)
    >>> data = truth + rng.normal(0, 0.3, size=(6, 45))
    >>> result = bootstrap_subjects(np.stack([truth, rng.random(45)]), data, n_bootstrap=50)
    >>> result.evaluations.shape
    (50, 2)
    """
    return _bootstrap(model_rdms, data, comparison, None, (indices, n_bootstrap, seed), with_noise_ceiling, progress)


def bootstrap_conditions_and_subjects(
    model_rdms: Any,
    data: Any,
    *,
    comparison: str = "corr",
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    indices: tuple[np.ndarray, np.ndarray] | None = None,
    with_noise_ceiling: bool = True,
    progress: bool | None = None,
) -> BootstrapResult:
    """Evaluate fixed model RDMs over samples that resample both subjects and conditions.

    The question of most model-vs-brain studies: would the ranking of models hold for new
    subjects *and* new stimuli? Each sample draws subjects, then conditions, with replacement.
    Given the same draws, equal to rsatoolbox's ``eval_bootstrap`` (tested). Resampling both
    factors overestimates the variance somewhat (Schütt et al. 2023); the result's intervals are
    conservative.

    Parameters
    ----------
    indices : (condition_draws, subject_draws), optional
        (n_bootstrap, n_conditions) and (n_bootstrap, n_subjects) draws to use instead of ``seed``.

    Notes
    -----
    Other parameters are as for :func:`bootstrap_conditions`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.random(45)
    >>> data = truth + rng.normal(0, 0.3, size=(6, 45))
    >>> result = bootstrap_conditions_and_subjects(np.stack([truth, rng.random(45)]), data, n_bootstrap=50)
    >>> result.over, result.standard_error().shape
    (('conditions', 'subjects'), (2,))
    """
    if indices is None:  # independent streams for the two factors
        condition_seed, subject_seed = np.random.SeedSequence(check_seed(seed)).spawn(2)
        return _bootstrap(model_rdms, data, comparison, (None, n_bootstrap, condition_seed),
                          (None, n_bootstrap, subject_seed), with_noise_ceiling, progress)  # fmt: skip
    if not (isinstance(indices, tuple | list) and len(indices) == 2):
        raise ArgumentError(
            f"indices: got {describe(indices)}. Pass a pair (condition_draws, subject_draws), "
            f"or None to draw them from seed."
        )
    return _bootstrap(model_rdms, data, comparison, (indices[0], 0, None), (indices[1], 0, None), with_noise_ceiling,
                      progress)  # fmt: skip


@dataclass
class PermutationResult:
    """Condition-label permutation test of each model against the data.

    Attributes
    ----------
    observed : ndarray, (n_models,)
        Mean similarity of each model to the data RDMs.
    null : ndarray, (n_permutations, n_models)
        The same with the model's condition labels permuted.
    p_values : ndarray, (n_models,)
        One-sided (model more similar than chance): (1 + #{null >= observed}) / (1 + n_permutations) (a null
        value within 1e-12 of the larger magnitude counts as reaching it); NaN where ``observed`` is NaN.
    comparison : str
    model_names : list of str
    """

    observed: np.ndarray
    null: np.ndarray
    p_values: np.ndarray
    comparison: str
    model_names: list[str]

    def summary(self) -> dict[str, Any]:
        """Key numbers: per model the observed similarity and its p-value, and the permutation count."""
        out: dict[str, Any] = {"comparison": self.comparison, "permutations": int(self.null.shape[0])}
        for k, name in enumerate(self.model_names):
            out[f"{name} observed"] = float(self.observed[k])
            out[f"{name} p"] = float(self.p_values[k])
        return out

    def plot(self) -> Figure:
        """The null distribution of each model with its observed similarity (one panel per model)."""
        from .plotting import pyplot

        plt = pyplot()
        n = len(self.model_names)
        fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), layout="constrained", squeeze=False)
        for k, ax in enumerate(axes[0]):
            self.draw(ax, k)
        return fig

    def draw(self, ax: Any, model: int = 0) -> None:
        """One model's null histogram and observed value into ``ax``."""
        ax.hist(self.null[:, model], bins=40, color="#999999", lw=0)
        ax.axvline(self.observed[model], color="#D55E00", lw=2, label="observed")
        ax.set_xlabel(f"RDM similarity ({self.comparison})")
        ax.set_ylabel("permutations")
        ax.set_title(f"{self.model_names[model]}: p = {self.p_values[model]:.3g}")
        ax.legend(frameon=False)


PERMUTATION_CHUNK = 256  # permutations per task of the libraries' threads
GATHER_ROWS = 16  # permutations gathered at once: their (16 x pairs) index and data stay in cache


@dataclass(frozen=True)
class _Keys:
    """The (n_permutations, n_conditions) keys ``np.random.default_rng(seed).random(shape)`` (each row's argsort a
    permutation), drawn block by block where they are used: PCG64 spends one 64-bit output per float64 and can
    advance past the rows before a block, so any block's rows are exactly the whole draw's. The tasks draw their
    own on the threads (drawing 10,000 x 92 took 1.9 ms of serial time) and the keys are never held whole.
    """

    state: dict
    shape: tuple[int, int]

    @classmethod
    def draw(cls, seed: int | None, shape: tuple[int, int]) -> _Keys:
        """The keys of ``seed`` (None: fresh entropy, fixed here for every block)."""
        return cls(np.random.default_rng(seed).bit_generator.state, shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, block: slice) -> np.ndarray:
        start, stop, step = block.indices(self.shape[0])
        if step != 1:
            raise IndexError(f"keys: blocks of consecutive rows only, got the slice {block}.")
        return self.fill(slice(start, stop), out=np.empty((max(0, stop - start), self.shape[1])))

    def fill(self, block: slice, *, out: np.ndarray) -> np.ndarray:
        """``out`` (C-contiguous float64, one row per key of ``block``, of consecutive rows in range) filled
        with those keys.
        """
        bits = np.random.PCG64()
        bits.state = self.state
        bits.advance(block.start * self.shape[1])
        return np.random.Generator(bits).random(out.shape, out=out)


def permutation_sides(
    models: np.ndarray, data: np.ndarray, comparison: str
) -> tuple[np.ndarray, np.ndarray, str | None, tuple[Any, Any]]:
    """What a permutation test gathers: (models' side, data's side, the comparison, (scale, shift)).

    Where the similarity is an affine map of a dot product (scale * f(model) . g(data) + shift, scale and shift
    per model), the sides are f(models) and the mean of g over the data RDMs and the comparison is None: the
    dot-product comparisons (:func:`.rsa.similarity_transform`, scale 1, shift 0), and tau-a where every model
    takes two values (a categorical model: 0/1 indicators and the data's midranks, :mod:`.rsa.kendall`). Otherwise
    the RDM vectors themselves, compared by ``comparison``.
    """
    if comparison in DOT_METHODS:
        return (
            similarity_transform(models, comparison),
            similarity_transform(data, comparison).mean(axis=0),
            None,
            (1.0, 0.0),
        )
    if comparison == "tau-a" and two_valued(models).all():
        upper = indicators(models)
        return upper, rank_rows(data).mean(axis=0), None, affine(upper)
    return models, data, comparison, (1.0, 0.0)


def _null_distribution(
    keys: _Keys, models: np.ndarray, data_side: np.ndarray, comparison: str | None, progress: Any
) -> np.ndarray:
    """(n_permutations, n_models) similarities of the models permuted by ``argsort(keys)`` (row by row; dot
    products of the sides where ``comparison`` is None, :func:`permutation_sides`):
    in blocks as tasks on the active dask client (:mod:`.blockwise`), else in chunks on the libraries'
    threads (disjoint rows of the null), each thread reusing one :class:`_PermutedGather`'s buffers.
    """
    import queue

    from tqdm.auto import tqdm

    from .blockwise import run_blocks, sample_blocks

    blocks = sample_blocks(len(keys))
    with tqdm(total=len(keys), desc="permutations", disable=not check_progress(progress)) as bar:
        if blocks is not None:
            parts = run_blocks(_permuted_similarities, blocks, keys, models, data_side, comparison)
            bar.update(len(keys))
            return np.concatenate(parts)
        null = np.empty((len(keys), models.shape[0]))
        starts = range(0, len(keys), PERMUTATION_CHUNK)
        idle: queue.SimpleQueue = queue.SimpleQueue()  # gathers that no thread uses now (one per thread at most)

        def chunk(start: int) -> int:
            block = slice(start, min(start + PERMUTATION_CHUNK, len(keys)))
            try:
                gather = idle.get_nowait()
            except queue.Empty:
                gather = _PermutedGather(models, data_side, comparison)
            gather.similarities(keys, block, out=null[block])
            idle.put(gather)
            return block.stop - start

        # (tau-a too: its loop over pairs is Python, but scipy's count of discordant pairs, most of each, runs without
        # the interpreter lock)
        with task_pool(len(starts)) as pmap:
            for done in pmap(chunk, starts):
                bar.update(done)
        return null


def _permuted_similarities(
    block: slice, keys: _Keys, models: np.ndarray, data_side: np.ndarray, comparison: str | None
) -> np.ndarray:
    """The null's rows of ``block`` (a dask task's): :meth:`_PermutedGather.similarities` of its chunks."""
    gather = _PermutedGather(models, data_side, comparison)
    null = np.empty((block.stop - block.start, models.shape[0]))
    for start in range(block.start, block.stop, PERMUTATION_CHUNK):
        chunk = slice(start, min(start + PERMUTATION_CHUNK, block.stop))
        gather.similarities(keys, chunk, out=null[chunk.start - block.start : chunk.stop - block.start])
    return null


class _PermutedGather:
    """Similarities (n_block, n_models) of the models with conditions permuted by p, each row of
    ``argsort(keys[block])``: M'[i, j] = M[p[i], p[j]], for chunks of at most ``PERMUTATION_CHUNK``
    permutations, in buffers that every chunk reuses (fresh ones for every chunk cost 20,000 page faults per
    10,000 permutations of 92 conditions, these 590: 157 -> 121 ms on one thread, AMD EPYC; and two threads take
    page faults in turns).

    Dot products (``comparison`` None: ``models`` and ``data_side`` of :func:`permutation_sides`): the sum
    over pairs of M[p_i, p_j] d_ij equals the sum of M_kl d[q_k, q_l] with q the inverse permutation, so
    the one data vector is gathered per permutation rather than every model (5 models: 2x faster), from
    its square (each pair's entry at q_k n + q_l). Others (``models`` and ``data_side`` the RDM vectors):
    each permuted model is compared with the data, its entries gathered through a square of positions.
    Permutations go in groups of ``GATHER_ROWS`` whose index arrays stay in a core's cache; the gathers
    are ``np.take`` and the products ``np.dot`` into the result, which release the interpreter lock (numpy's
    fancy index ``square[index]`` and ``@`` kept it for these shapes, so two threads took turns).
    """

    def __init__(self, models: np.ndarray, data_side: np.ndarray, comparison: str | None) -> None:
        self.models, self.data_side, self.comparison = models, data_side, comparison
        self.dot = comparison is None
        self.ranked: tuple[Rows, Rows] | None = None  # (tau-a) the models and the data, each row sorted once
        n = n_conditions(models.shape[1])
        self.rows, self.cols = np.triu_indices(n, k=1)
        square = np.zeros((n, n), dtype=data_side.dtype if self.dot else np.intp)
        square[self.rows, self.cols] = square[self.cols, self.rows] = (
            data_side if self.dot else np.arange(self.rows.size)
        )
        self.square = square.ravel()
        self.keys = np.empty((PERMUTATION_CHUNK, n))
        self.inverse = np.empty((PERMUTATION_CHUNK, n), np.intp)
        self.positions = np.tile(np.arange(n), PERMUTATION_CHUNK)  # (each row's conditions, scattered)
        self.offsets = n * np.arange(PERMUTATION_CHUNK)[:, None]  # (each row's start in the flat buffer)
        shape = (GATHER_ROWS, self.rows.size)
        self.flat, self.second = np.empty(shape, np.intp), np.empty(shape, np.intp)
        self.values = np.empty(shape, self.square.dtype)

    def similarities(self, keys: _Keys, block: slice, *, out: np.ndarray) -> np.ndarray:
        """``out`` (the block's rows of the null) filled for the permutations of ``keys[block]``."""
        m = block.stop - block.start
        perms = np.argsort(keys.fill(block, out=self.keys[:m]), axis=1)
        n = perms.shape[1]
        if self.dot:  # the inverse permutations: inverse[i, perms[i, j]] = j
            np.add(perms, self.offsets[:m], out=perms)
            self.inverse.reshape(-1)[perms.reshape(-1)] = self.positions[: m * n]
            perms = self.inverse[:m]
        for start in range(0, m, GATHER_ROWS):
            chunk = perms[start : start + GATHER_ROWS]
            index, gathered = self.flat[: len(chunk)], self.values[: len(chunk)]
            # (mode="clip": the indices are in range by construction, and take buffers its output otherwise)
            np.take(chunk * n, self.rows, axis=1, out=index, mode="clip")
            index += np.take(chunk, self.cols, axis=1, out=self.second[: len(chunk)], mode="clip")
            np.take(self.square, index, out=gathered, mode="clip")  # (1.5x faster than square[index]; no lock)
            if self.dot:
                np.dot(gathered, self.models.T, out=out[start : start + len(chunk)])
                continue
            if self.comparison == "tau-a":
                self._permuted_tau(gathered, out=out[start : start + len(chunk)])
                continue
            for k, pos in enumerate(gathered, start=start):
                out[k] = compare_rdms(self.models[:, pos], self.data_side, comparison=self.comparison).mean(axis=1)
        return out

    def _permuted_tau(self, gathered: np.ndarray, *, out: np.ndarray) -> None:
        """``out`` filled with tau-a of the models with their entries gathered by each row of ``gathered`` and the
        data, from the rows as first sorted (:class:`.rsa.kendall.Rows`, kept: neither side sorted again): all at
        once where every row holds many values (:func:`.rsa.kendall.permuted_tau`), else one permutation at a time.
        """
        if self.ranked is None:
            self.ranked = Rows(self.models), Rows(self.data_side)
        models, data = self.ranked
        tau = permuted_tau(models, data, gathered)
        if tau is not None:
            np.mean(tau, axis=2, out=out)
            return
        for k, pos in enumerate(gathered):
            out[k] = tau_a(models.permuted(pos), data).mean(axis=1)


def _check_informative(vectors: np.ndarray, name: str, comparison: str) -> None:
    """Refuse RDMs whose similarity is undefined under ``comparison`` (all zeros; constant for the others),
    before a permutation test or a bootstrap.
    """
    flat = np.flatnonzero(~vectors.any(axis=1) if comparison == "cosine" else np.ptp(vectors, axis=1) == 0)
    if flat.size:
        what = "all zero" if comparison == "cosine" else "constant"
        raise ArgumentError(
            f"{name}: RDM(s) {flat[:5].tolist()} are {what}, so their similarity under {comparison!r} is undefined "
            f"(NaN); no p-value is computed from it. Leave them out."
        )


def permutation_test(
    model_rdms: Any, data: Any, *, comparison: str = "corr", n_permutations: int = 10_000, seed: int | None = 0,
    progress: bool | None = None,
) -> PermutationResult:  # fmt: skip
    """Test each model RDM against the data RDMs by permuting the model's condition labels.

    For the dot-product comparisons ("cosine", "corr", "spearman", "rho-a") the transform of an RDM
    commutes with permuting its entries, so every permutation is a gather of the transformed model
    and one matrix product: thousands of permutations cost about as much as a few comparisons.
    ``progress`` shows a bar over the permutations (on stderr).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.random(45)
    >>> result = permutation_test(truth, truth + rng.normal(0, 0.3, size=(3, 45)), n_permutations=999)
    >>> float(result.p_values[0])
    0.001
    """
    check_option("comparison", comparison, COMPARISONS)
    if comparison in ("corr_cov", "cosine_cov"):
        raise ArgumentError(f"comparison: {comparison!r} is not supported by permutation_test; use a plain comparison.")
    model_vectors, data_vectors = paired_vectors(model_rdms, data, names=("model_rdms", "data"))
    if not (np.isfinite(model_vectors).all() and np.isfinite(data_vectors).all()):
        raise ArgumentError("model_rdms, data: permutation tests need complete RDMs (no NaN or inf dissimilarities).")
    _check_informative(model_vectors, "model_rdms", comparison)
    _check_informative(data_vectors, "data", comparison)
    n_permutations = check_int("n_permutations", n_permutations, maximum=MAX_RESAMPLES)
    seed = check_seed(seed)
    n_cond = check_whole(model_vectors, "model_rdms", "a permutation of conditions")
    keys = _Keys.draw(seed, (n_permutations, n_cond))
    models, data_side, similarity, (scale, shift) = permutation_sides(model_vectors, data_vectors, comparison)
    if similarity is None:  # an affine map of dot products: the same for the observed value and the null
        observed = scale * (models @ data_side) + shift
    else:
        observed = compare_rdms(model_vectors, data_vectors, comparison=comparison).mean(axis=1)
    null = _null_distribution(keys, models, data_side, similarity, progress)
    if similarity is None:
        null = null * scale + shift
    p_values = permutation_p_values(observed, null)
    return PermutationResult(observed, null, p_values, comparison, _model_names(model_rdms, model_vectors.shape[0]))
