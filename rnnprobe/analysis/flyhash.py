"""FlyHash: the fruit fly's olfactory circuit as a similarity-preserving hash (Dasgupta, Stevens &
Navlakha 2017), applicable to any recorded layer.

The fly maps the ~50 glomeruli of its antennal lobe to ~2000 Kenyon cells by a sparse, random, binary
projection (each Kenyon cell sums about 6 glomeruli), and an inhibitory feedback neuron silences all but
the most active ~5% of Kenyon cells. As a hash of an input x (mean-centred, as the antennal lobe's
divisive normalisation does)::

    a = M x            M: (m, d) binary, each row with `sampling` ones at random columns
    h = top_k(a)       1 for the k largest entries of a, 0 elsewhere (winner-take-all)

:func:`fly_hash` builds the hash, :func:`random_projection` the dense Gaussian projection of classic
locality-sensitive hashing (LSH) with which it is compared at equal hash length k (k winners vs k
projected dimensions), :func:`mean_average_precision` the paper's measure (how well the hash ranks each
query's true nearest neighbours), and :func:`compare_hashes` runs the comparison over hash lengths, with
RSA (input RDM vs hashed RDM) as a second measure of similarity preservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import (
    all_finite,
    check_finite,
    check_finite_layer,
    check_int,
    check_number,
    check_numeric,
    layer_states,
)
from ..errors import ArgumentError, ShapeError, describe
from ..recording import Recording
from ._constant import centred
from ._ranks import scatter_rows

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


MAX_UNITS = 10**8  # expansion units (Kenyon cells): more would not fit in memory
PROJECTION_BLOCK = 2**24  # uniform draws per block of projection rows (128 MiB)


def _rows(x: Any, name: str = "x") -> np.ndarray:
    array = check_numeric(x, name=name).astype(np.float64)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ShapeError(f"{name}: got {describe(array)}. Pass a 2-D array (samples, features).")
    return check_finite(array, name=name)


def _winners(activations: np.ndarray, k: int) -> np.ndarray:
    """Binary codes with 1 at each row's k largest activations (ties: the lower index wins)."""
    top = np.argpartition(-activations, k - 1, axis=1)[:, :k]
    return scatter_rows(np.zeros(activations.shape, dtype=np.float64), top, 1.0)


@dataclass
class FlyHash:
    """A fly hash: sparse binary projection (``projection``, (m, d)) and winner-take-all (``k`` winners).

    Attributes
    ----------
    projection : scipy.sparse.csr_matrix, (m, d)
        Binary; row i lists the inputs Kenyon cell i sums.
    k : int
        Winners kept (the hash length).
    center : bool
        Subtract each sample's mean over its features before projecting (a sample that does not vary, but for
        rounding, projects to 0).
    """

    projection: Any
    k: int
    center: bool = True

    @property
    def n_inputs(self) -> int:
        """Input dimension (columns of the projection)."""
        return self.projection.shape[1]

    @property
    def n_units(self) -> int:
        """Number of expansion units (Kenyon cells)."""
        return self.projection.shape[0]

    def activations(self, x: Any) -> np.ndarray:
        """Kenyon-cell activations M x (before winner-take-all), (samples, m)."""
        x = _rows(x)
        if x.shape[1] != self.n_inputs:
            raise ShapeError(f"x: got {x.shape[1]} features per sample; this hash takes {self.n_inputs}.")
        return np.asarray((self.projection @ _centred(x, self.center).T).T)

    def transform(self, x: Any, *, dtype: Any = np.float64) -> np.ndarray:
        """Binary hash codes, (samples, m) with k ones per row, as ``dtype``.

        Samples are hashed in blocks whose float64 activations fit in 256 MiB: memory is the codes
        plus one block (a 4096-unit layer expands to 163,840 Kenyon cells per sample).
        """
        x = _rows(x)
        codes = np.empty((x.shape[0], self.n_units), dtype=dtype)
        step = max(1, 2**28 // (8 * 3 * self.n_units))
        for start in range(0, x.shape[0], step):
            codes[start : start + step] = _winners(self.activations(x[start : start + step]), self.k)
        return codes

    def __repr__(self) -> str:
        per_unit = self.projection.getnnz(axis=1)
        return (
            f"<FlyHash: {self.n_inputs} inputs -> {self.n_units} units ({per_unit.mean():.1f} inputs each), "
            f"{self.k} winners ({100 * self.k / self.n_units:.1f}%)>"
        )


def fly_hash(
    n_inputs: int,
    *,
    n_units: int | None = None,
    expansion: float = 40.0,
    sampling: int | None = None,
    k: int | None = None,
    winners: float = 0.05,
    projection: Any = None,
    center: bool = True,
    seed: int | None = 0,
) -> FlyHash:
    """Build a fly hash for inputs of ``n_inputs`` features.

    Parameters
    ----------
    n_inputs : int
        d, features per input (e.g. a layer's units).
    n_units : int, optional
        m, Kenyon cells; default ``expansion * n_inputs``.
    expansion : float
        m / d when ``n_units`` is not given (the fly: about 40).
    sampling : int, optional
        Inputs each unit sums, drawn without replacement; default 6 (the fly's), or d if smaller.
    k : int, optional
        Winners kept (the hash length); default ``winners * m`` (the fly: about 5%).
    winners : float
        Fraction of winners when ``k`` is not given.
    projection : array-like or sparse (m, d), optional
        Use this binary projection (0/1 entries) instead of drawing one.
    center : bool
        Mean-centre each input over its features first: every input that does not vary (but for rounding, as
        a sample at 0.1) hashes as the zero input.
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> h = fly_hash(10, expansion=20, k=5, seed=0)
    >>> h
    <FlyHash: 10 inputs -> 200 units (6.0 inputs each), 5 winners (2.5%)>
    >>> codes = h.transform(np.random.default_rng(0).normal(size=(3, 10)))
    >>> codes.shape, codes.sum(axis=1)
    ((3, 200), array([5., 5., 5.]))
    """
    import scipy.sparse

    d = check_int("n_inputs", n_inputs)
    if projection is not None:
        matrix = scipy.sparse.csr_matrix(projection, dtype=np.float64)
        if matrix.shape[1] != d:
            raise ShapeError(f"projection: got shape {matrix.shape}; it must have n_inputs={d} columns.")
        values = matrix.data
        if not np.isin(values, (0.0, 1.0)).all():
            bad = values[~np.isin(values, (0.0, 1.0))][:3]
            raise ArgumentError(
                f"projection: a fly hash's projection is a binary mask, but it holds values such as {bad.tolist()}. "
                f"Pass 0/1 entries (or use random_projection for a dense one)."
            )
        matrix.eliminate_zeros()
        m = matrix.shape[0]
    else:
        expansion = check_number("expansion", expansion, minimum=0, inclusive=False)
        if expansion * d > MAX_UNITS:
            raise ArgumentError(
                f"expansion: got {describe(expansion)}. Pass a finite ratio m / d with m <= {MAX_UNITS}."
            )
        m = check_int("n_units", n_units, maximum=MAX_UNITS) if n_units is not None else max(1, round(expansion * d))
        s = min(6, d) if sampling is None else check_int("sampling", sampling, maximum=d)
        rng = np.random.default_rng(seed)
        # s distinct inputs per unit: the s smallest of d uniform draws, drawn in blocks of rows (the same
        # stream as one (m, d) draw, without its m x d memory: 10 GiB for a 4096-unit layer)
        rows = max(1, PROJECTION_BLOCK // d)
        blocks = []
        for start in range(0, m, rows):
            draws = rng.random((min(rows, m - start), d))
            blocks.append(np.argpartition(draws, s - 1, axis=1)[:, :s].copy())  # a copy: no view keeps a block
        columns = np.concatenate(blocks)
        matrix = scipy.sparse.csr_matrix(
            (np.ones(m * s), (np.repeat(np.arange(m), s), columns.ravel())), shape=(m, d), dtype=np.float64
        )
    if k is None:
        if not (np.isscalar(winners) and 0 < winners <= 1):
            raise ArgumentError(f"winners: got {describe(winners)}. Pass a fraction in (0, 1], e.g. 0.05.")
        k = max(1, round(winners * m))
    k = check_int("k", k, maximum=m)
    return FlyHash(matrix, k, center)


def random_projection(n_inputs: int, n_outputs: int, *, center: bool = True, seed: int | None = 0) -> Any:
    """The dense Gaussian random projection of LSH: a function x -> G x with G (n_outputs, n_inputs)
    of i.i.d. standard normal entries (inputs mean-centred like the fly's when ``center``).

    Examples
    --------
    >>> import numpy as np
    >>> lsh = random_projection(10, 3, seed=0)
    >>> lsh(np.ones((4, 10))).shape
    (4, 3)
    """
    d, k = check_int("n_inputs", n_inputs), check_int("n_outputs", n_outputs)
    weights = np.random.default_rng(seed).standard_normal((k, d))

    def project(x: Any) -> np.ndarray:
        x = _rows(x)
        if x.shape[1] != d:
            raise ShapeError(f"x: got {x.shape[1]} features per sample; this projection takes {d}.")
        return _centred(x, center) @ weights.T

    return project


def _centred(x: np.ndarray, center: bool) -> np.ndarray:
    """Each sample less its mean over its features where ``center``; 0 for a sample that does not vary but for
    rounding (a sample at 0.1 keeps about 1e-17 per feature once centred): every sample that does not vary
    hashes as the zero input, whatever its value.
    """
    return centred(x, 1, constant=0.0) if center else x


def true_neighbours(x: Any, queries: np.ndarray, n_neighbours: int) -> np.ndarray:
    """Each query's ``n_neighbours`` nearest samples in Euclidean distance (itself excluded)."""
    d2 = _squared_distances(_rows(x), queries)
    d2[np.arange(len(queries)), queries] = np.inf
    return np.argsort(d2, axis=1, kind="stable")[:, :n_neighbours]


def _squared_distances(x: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (query, sample) from products, of the samples centred first: distances do not
    change, and samples far from the origin against their spread keep their digits.
    """
    x = x - x.mean(axis=0)
    return (x[queries] ** 2).sum(1)[:, None] - 2 * x[queries] @ x.T + (x**2).sum(1)[None]


def mean_average_precision(
    x: Any, codes: Any, *, n_neighbours: float = 0.02, n_queries: int = 1000, seed: int | None = 0
) -> float:
    """How well distances between hash codes rank each query's true nearest neighbours.

    For each of ``n_queries`` random samples, its true neighbours are its ``n_neighbours`` nearest
    samples in ``x`` (a fraction of the samples when < 1: the paper's 2%); all other samples are
    ranked by Euclidean distance between codes (ties in random order, seeded), and the average
    precision of that ranking is taken; the mean over queries is returned.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 5))
    >>> mean_average_precision(x, x, n_queries=50)    # the input itself ranks perfectly
    1.0
    """
    x, codes = _rows(x), _rows(codes, "codes")
    n = len(x)
    if len(codes) != n:
        raise ShapeError(f"codes: got {len(codes)} rows for {n} samples. Hash every sample of x.")
    n_nn = round(n_neighbours * n) if n_neighbours < 1 else check_int("n_neighbours", n_neighbours)
    if not 1 <= n_nn < n - 1:
        raise ArgumentError(f"n_neighbours: gives {n_nn} of {n} samples. Pass a fraction or count below n - 1.")
    if not centred(x, 0, constant=0.0).any():  # (the MAP of neighbours chosen by index or rounding was returned)
        raise ArgumentError(
            "x: every sample is the same (to rounding), so no sample is nearer to a query than another and its "
            "true neighbours are undefined. Pass samples that differ."
        )
    rng = np.random.default_rng(seed)
    queries = rng.choice(n, size=min(check_int("n_queries", n_queries), n), replace=False)
    relevant = np.zeros((len(queries), n), dtype=bool)
    relevant[np.arange(len(queries))[:, None], true_neighbours(x, queries, n_nn)] = True
    dist = _squared_distances(codes, queries)
    # equal distances are ties, whatever the rounding of the products: 12 digits of the largest (not 9 decimals,
    # which made every distance of codes at a scale of 1e-6 a tie, and their ranking random)
    dist = np.round(dist / max(float(np.abs(dist).max()), np.finfo(float).tiny), 12)
    dist[np.arange(len(queries)), queries] = np.inf
    tie_break = rng.random(dist.shape)
    order = np.lexsort((tie_break, dist), axis=1)[:, : n - 1]  # the query itself (inf) is last
    hits = np.take_along_axis(relevant, order, axis=1)
    precision = np.cumsum(hits, axis=1) / np.arange(1, n)
    return float(((precision * hits).sum(axis=1) / n_nn).mean())


@dataclass
class HashComparisonResult:
    """Fly hash vs LSH over hash lengths: mean average precision and RSA, mean and spread over draws.

    Attributes
    ----------
    lengths : ndarray
        Hash lengths k.
    fly_map, lsh_map : ndarray, (n_lengths, n_repeats)
    fly_rsa, lsh_rsa : ndarray, (n_lengths, n_repeats)
        Spearman correlation of the input's and the codes' Euclidean RDMs (over a subsample).
    settings : dict
    """

    lengths: np.ndarray
    fly_map: np.ndarray
    lsh_map: np.ndarray
    fly_rsa: np.ndarray
    lsh_rsa: np.ndarray
    settings: dict[str, Any]

    def __repr__(self) -> str:
        pairs = ", ".join(
            f"k={k}: {f:.2f} vs {g:.2f}"
            for k, f, g in zip(self.lengths, self.fly_map.mean(1), self.lsh_map.mean(1), strict=True)
        )
        return f"<HashComparisonResult: mean average precision, fly vs LSH, {pairs}>"

    def summary(self) -> dict[str, Any]:
        """MAP and RSA of both hashes at each length (means over draws)."""
        out: dict[str, Any] = {"samples": self.settings["n_samples"], "repeats": self.fly_map.shape[1]}
        for i, k in enumerate(self.lengths):
            out[f"MAP k={k} fly"] = float(self.fly_map[i].mean())
            out[f"MAP k={k} LSH"] = float(self.lsh_map[i].mean())
        for i, k in enumerate(self.lengths):
            out[f"RSA k={k} fly"] = float(self.fly_rsa[i].mean())
            out[f"RSA k={k} LSH"] = float(self.lsh_rsa[i].mean())
        return out

    def plot(self) -> Figure:
        """MAP and RSA against hash length, fly vs LSH (mean and s.d. over draws)."""
        from .plotting import pyplot

        fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.4), layout="constrained")
        for ax, (fly, lsh, label) in zip(axes, ((self.fly_map, self.lsh_map, "mean average precision"),
                                                (self.fly_rsa, self.lsh_rsa, "RSA (Spearman, input vs codes)")),
                                         strict=True):  # fmt: skip
            for values, name, color in ((fly, "fly hash", "#D55E00"), (lsh, "LSH (dense Gaussian)", "#0072B2")):
                ax.errorbar(self.lengths, values.mean(1), yerr=values.std(1), color=color, marker="o", ms=4,
                            capsize=2, label=name)  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_xticks(self.lengths, [str(k) for k in self.lengths])
            ax.set_xlabel("hash length k")
            ax.set_ylabel(label)
            ax.legend(frameon=False, fontsize=8)
        axes[0].set_title(f"nearest neighbours ({100 * self.settings['n_neighbours']:.0f}% nearest)")
        axes[1].set_title("similarity preservation")
        return fig


def compare_hashes(
    x: Any,
    *,
    lengths: Any = (2, 4, 8, 16, 32),
    n_units: int | None = None,
    expansion: float = 40.0,
    sampling: int | None = None,
    n_repeats: int = 5,
    n_neighbours: float = 0.02,
    n_queries: int = 1000,
    rsa_samples: int = 300,
    seed: int | None = 0,
) -> HashComparisonResult:
    """Fly hash vs dense random projection (LSH) at equal hash length k, as Dasgupta et al. (2017).

    For each k: the fly's k winners among ``n_units`` (default ``expansion * d``) Kenyon cells vs LSH's
    k Gaussian projections, each drawn ``n_repeats`` times; scored by :func:`mean_average_precision`
    and by RSA (Spearman correlation of the Euclidean RDMs of the inputs and of the codes, on
    ``rsa_samples`` samples).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(300, 20))
    >>> result = compare_hashes(x, lengths=[4], n_repeats=2, n_queries=100)
    >>> result.fly_map.shape
    (1, 2)
    """
    from scipy.spatial.distance import pdist

    from .rsa import compare_rdms

    x = _rows(x)
    n, d = x.shape
    lengths = np.array(sorted({check_int("lengths", int(k)) for k in np.atleast_1d(lengths)}))
    n_repeats = check_int("n_repeats", n_repeats)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, size=(len(lengths), n_repeats))
    sub = rng.choice(n, size=min(check_int("rsa_samples", rsa_samples, minimum=3), n), replace=False)
    centred = x - x.mean(axis=1, keepdims=True)
    input_rdm = pdist(centred[sub])
    out = {name: np.zeros((len(lengths), n_repeats)) for name in ("fly_map", "lsh_map", "fly_rsa", "lsh_rsa")}
    for i, k in enumerate(lengths):
        for r in range(n_repeats):
            fly = fly_hash(d, n_units=n_units, expansion=expansion, sampling=sampling, k=int(k), seed=int(seeds[i, r]))
            lsh = random_projection(d, int(k), seed=int(seeds[i, r]))
            scoring = dict(n_neighbours=n_neighbours, n_queries=n_queries, seed=int(seeds[i, r]))
            for name, codes in (("fly", fly.transform(x)), ("lsh", lsh(x))):
                out[f"{name}_map"][i, r] = mean_average_precision(x, codes, **scoring)
                out[f"{name}_rsa"][i, r] = compare_rdms(input_rdm, pdist(codes[sub]), comparison="spearman")[0, 0]
    settings = dict(n_samples=n, n_inputs=d, n_units=n_units or round(expansion * d), sampling=sampling or 6,
                    n_neighbours=n_neighbours, n_queries=n_queries, seed=seed)  # fmt: skip
    return HashComparisonResult(lengths, out["fly_map"], out["lsh_map"], out["fly_rsa"], out["lsh_rsa"], settings)


def hash_recording(recording: Recording, layer: str | None = None, hasher: Any = None, *, name: str | None = None,
                   **kwargs: Any) -> Recording:  # fmt: skip
    """A Recording with ``layer`` replaced by its fly-hash codes at every time step (units flattened),
    so RSA, decoding and PCA run on the hashed representation. A dask-backed recording's codes stay lazy:
    each chunk of stimuli is hashed when it is read, and the analyses of the hashed layer run blockwise.

    Parameters
    ----------
    recording : Recording
    layer : str, optional
    hasher : FlyHash or callable, optional
        Default: ``fly_hash(n_units_of_layer, **kwargs)``; any function (samples, d) -> (samples, m).
    name : str, optional
        The hashed layer's name (default ``"<layer>:flyhash"``).

    Examples
    --------
    >>> import numpy as np
    >>> rec = Recording({"h": np.random.default_rng(0).normal(size=(8, 3, 5))})
    >>> hash_recording(rec, "h", expansion=10, k=4).shapes
    {'h:flyhash': (8, 3, 50)}
    """
    if recording.is_dask:
        layer, codes = _lazy_codes(recording, layer, hasher, kwargs)
    else:
        layer, _, states = layer_states(recording, layer)
        hasher = fly_hash(states.shape[2], **kwargs) if hasher is None else hasher
        codes = _hash_block(states, hasher)  # layer_states refused non-finite states
    return Recording(
        {name or f"{layer}:flyhash": codes},
        metadata=recording.metadata if recording.columns else None,
        times={name or f"{layer}:flyhash": recording.times[layer]},
    )


def _hash_block(states: np.ndarray, hasher: Any) -> np.ndarray:
    """The float32 codes (stimulus, time, m) of finite states (stimulus, time, d)."""
    n, t, d = states.shape
    flat = np.asarray(states, dtype=np.float64).reshape(n * t, d)
    if isinstance(hasher, FlyHash):  # binary codes: exact in float32, built block by block
        codes = hasher.transform(flat, dtype=np.float32)
    else:
        codes = np.asarray(hasher(flat), dtype=np.float32)
    return codes.reshape(n, t, -1)


def _lazy_codes(recording: Recording, layer: str | None, hasher: Any, kwargs: dict) -> tuple[str, Any]:
    """A dask-backed layer's codes as a lazy layer: each chunk of stimuli hashed when it is read (on the
    active client's workers when there is one), so the hashed layer (m = 40 d wide by default) is never held
    whole; a custom ``hasher``'s width is found on one stimulus.
    """
    from ..recording.lazy import LazyArray

    layer = recording.resolve_layer(layer)
    x = recording.to_dask(layer)
    x = x.reshape(*x.shape[:2], -1).rechunk({1: -1, 2: -1})
    hasher = fly_hash(x.shape[2], **kwargs) if hasher is None else hasher
    width = hasher.n_units if isinstance(hasher, FlyHash) else _hash_chunk(x[:1, :1].compute(), hasher, layer).shape[2]
    codes = x.map_blocks(_hash_chunk, hasher, layer, dtype=np.float32, chunks=(x.chunks[0], x.chunks[1], (width,)))
    return layer, LazyArray(codes, name=f"{layer}:flyhash")


def _hash_chunk(states: np.ndarray, hasher: Any, layer: str) -> np.ndarray:
    """:func:`_hash_block` of a chunk of a dask-backed layer, its non-finite states refused when it is read."""
    check_finite_layer(all_finite(states), layer)
    return _hash_block(states, hasher)
