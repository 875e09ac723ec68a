"""Neural data: RDMs from MATLAB RSA-toolbox files, .npy arrays or rsatoolbox, and responses to RDMs.

MATLAB's RSA toolbox (Nili et al. 2014) stores RDMs as struct arrays with fields
``RDM`` (a square matrix or an upper-triangle vector) and ``name``; rsatoolbox's
demos ship the 92-image data of Kriegeskorte et al. (2008) that way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_numeric, symmetric_with_zero_diagonal
from ..analysis.rsa import RDMs, compute_rdms
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    ShapeError,
    StoreFormatError,
    StoreNotFoundError,
    UnknownNameError,
    describe,
    format_choices,
)
from .responses import from_responses

__all__ = ["load_rdms", "rdms_from_matrices", "rdms_from_responses"]


def _as_vector(rdm: Any, where: str) -> np.ndarray:
    array = np.asarray(rdm, dtype=np.float64)
    if array.ndim == 1:
        return array
    if array.ndim == 2 and array.shape[0] == array.shape[1]:
        if not symmetric_with_zero_diagonal(array):
            raise ShapeError(
                f"{where}: a square RDM must be symmetric with a zero diagonal. Pass dissimilarities, not "
                f"similarities (e.g. 1 - r)."
            )
        rows, cols = np.triu_indices(array.shape[0], k=1)
        return array[rows, cols]
    raise ShapeError(f"{where}: got {describe(array)}. An RDM is a square matrix or an upper-triangle vector.")


def _rdm_structs(mat: dict[str, Any]) -> dict[str, np.ndarray]:
    found = {}
    for key, value in mat.items():
        if key.startswith("__"):
            continue
        items = np.atleast_1d(value)
        if items.dtype == object and items.size and all(hasattr(item, "RDM") for item in items.ravel()):
            found[key] = items
    return found


def load_rdms(
    path: str | Path | Any, *, variable: str | None = None, distance: str = "unknown", layout: str = "auto"
) -> RDMs:
    """Load RDMs from a MATLAB RSA-toolbox ``.mat`` file, a ``.npy`` array, or an rsatoolbox RDMs object.

    Parameters
    ----------
    path : path or rsatoolbox.rdm.RDMs
        ``.mat``: struct array(s) with field ``RDM`` (and ``name``); ``.npy`` or ``.npz`` (one array):
        (n_pairs,), (n, n), (n_rdms, n_pairs) or (n_rdms, n, n) (see :func:`rdms_from_matrices`).
    variable : str, optional
        The ``.mat`` variable holding the struct array, or the ``.npz`` array (needed when a file has
        several).
    distance : str
        The dissimilarity measure, for the record (e.g. "correlation" for 1 - Pearson r).
    layout : {"auto", "square", "vectors"}
        How a 2-D (k, k) ``.npy``/``.npz`` array is read (see :func:`rdms_from_matrices`).

    Returns
    -------
    RDMs
        ``rdm_descriptors["name"]`` from the struct names (MATLAB struct arrays are read in
        column-major order, as MATLAB lists them).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "rdm.npy")
    >>> np.save(path, np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0.]]))
    >>> load_rdms(path).dissimilarities
    array([[1., 2., 3.]])
    """
    if hasattr(path, "get_vectors") and hasattr(path, "dissimilarity_measure"):
        return RDMs.from_rsatoolbox(path)
    if not isinstance(path, (str, Path)):
        raise ArgumentTypeError(f"path: got {describe(path)}. Pass a .mat or .npy path, or rsatoolbox RDMs.")
    path = Path(path)
    if not path.is_file():
        raise StoreNotFoundError(f"path: {str(path)!r} does not exist.")
    if path.suffix == ".npy":
        return rdms_from_matrices(load_numpy_file(path), distance=distance, layout=layout)
    if path.suffix == ".npz":
        with load_numpy_file(path) as archive:
            if variable is None and len(archive.files) != 1:
                raise ArgumentError(
                    f"variable: {str(path)!r} holds {len(archive.files)} arrays ({format_choices(archive.files)}). "
                    f"Name one with variable=..."
                )
            key = variable if variable is not None else archive.files[0]
            if key not in archive.files:
                raise UnknownNameError(f"variable: {key!r} is not in {str(path)!r}. Available: "
                                       f"{format_choices(archive.files)}.")  # fmt: skip
            array = archive[key]
        rdms = rdms_from_matrices(array, distance=distance, layout=layout)
        return RDMs(rdms.dissimilarities, distance, descriptors={"source": str(path)})
    if path.suffix != ".mat":
        raise ArgumentError(f"path: {str(path)!r} is not .mat, .npy or .npz. Convert it, or pass rsatoolbox RDMs.")
    import scipy.io

    mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    structs = _rdm_structs(mat)
    if variable is None:
        if len(structs) != 1:
            raise ArgumentError(
                f"variable: {str(path)!r} holds {len(structs)} RDM struct arrays "
                f"({format_choices(structs)}). Name one with variable=..."
            )
        variable = next(iter(structs))
    if variable not in structs:
        raise UnknownNameError(
            f"variable: {variable!r} is not an RDM struct array in {str(path)!r}. Available: {format_choices(structs)}."
        )
    items = structs[variable].ravel(order="F")
    vectors = np.stack([_as_vector(item.RDM, f"{variable}[{i}].RDM") for i, item in enumerate(items)])
    names = np.array([str(getattr(item, "name", i)) for i, item in enumerate(items)])
    return RDMs(vectors, distance, rdm_descriptors={"name": names}, descriptors={"source": str(path)})


def load_numpy_file(path: Path) -> Any:
    """np.load without unpickling: a file holding Python objects is refused with a clear error."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise StoreFormatError(
                f"path: {str(path)!r} holds pickled Python objects, which rnnprobe never loads (unpickling runs "
                f"code). Save the RDMs as a plain float array (np.save(path, np.asarray(rdms, dtype=float)))."
            ) from None
        raise StoreFormatError(f"path: {str(path)!r} could not be read as a numpy file ({exc}).") from None


LAYOUTS = ("auto", "square", "vectors")


def rdms_from_matrices(array: Any, *, distance: str = "unknown", layout: str = "auto") -> RDMs:
    """RDMs from an array: (n_pairs,) or (n_rdms, n_pairs) upper triangles, or (n, n) or (n_rdms, n, n) matrices.

    Square matrices must be symmetric with a zero diagonal (dissimilarities, not similarities).

    Parameters
    ----------
    array : array_like
        The dissimilarities.
    distance : str
        The dissimilarity measure, for the record.
    layout : {"auto", "square", "vectors"}
        How a 2-D (k, k) array is read: "square" (one k x k RDM), "vectors" (k RDMs of k pairs each,
        possible where k = n (n - 1) / 2, e.g. 3, 6, 10, 15, 21) or "auto": a symmetric matrix with a
        zero diagonal is one square RDM, and any other (k, k) array is refused with a message naming
        both layouts (it is never guessed to be a stack).

    Examples
    --------
    >>> import numpy as np
    >>> rdms_from_matrices(np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0.]])).dissimilarities
    array([[1., 2., 3.]])
    >>> rdms_from_matrices(np.arange(9.).reshape(3, 3), layout="vectors").n_rdms
    3
    """
    if layout not in LAYOUTS:
        raise UnknownNameError(f"layout: got {layout!r}. Choose one of {format_choices(LAYOUTS)}.")
    array = check_numeric(array, name="rdms").astype(np.float64)
    if array.ndim == 0 or array.size == 0 or (array.ndim >= 2 and array.shape[-1] == array.shape[-2] == 1):
        raise ShapeError(
            f"rdms: got {describe(array)}, which holds no dissimilarity. An RDM of n >= 2 conditions is an (n, n) "
            f"matrix or its n (n - 1) / 2 upper-triangle values."
        )
    if array.ndim == 2 and array.shape[0] == array.shape[1] and layout != "vectors":
        return RDMs(_square_vector(array, layout)[None], distance)
    if array.ndim == 3:
        return RDMs(np.stack([_as_vector(a, f"rdms[{i}]") for i, a in enumerate(array)]), distance)
    return RDMs(np.atleast_2d(array), distance)


def _square_vector(array: np.ndarray, layout: str) -> np.ndarray:
    """One (k, k) array as a square RDM; where "auto" meets a non-RDM (k, k) that could be a stack, say so."""
    k = array.shape[0]
    n = (1 + np.sqrt(1 + 8 * k)) / 2
    if layout == "auto" and n == round(n) and not symmetric_with_zero_diagonal(array):
        raise ShapeError(
            f"rdms: got {describe(array)}, which is not a square RDM (not symmetric with a zero diagonal) but "
            f"could be {k} RDMs of {k} pairs ({round(n)} conditions) each. Pass layout='vectors' to read it as "
            f"a stack of upper-triangle vectors, or layout='square' after fixing the matrix."
        )
    return _as_vector(array, "rdms")


def rdms_from_responses(
    responses: np.ndarray, *, distance: str = "correlation", metadata: Any = None, descriptor: str | None = None,
    noise: np.ndarray | None = None,
) -> RDMs:  # fmt: skip
    """RDMs from response arrays, (stimulus, channel) or (stimulus, channel, time): one RDM per time point.

    Uses the same computation as model RDMs (:func:`rnnprobe.analysis.rsa.compute_rdms`), so model
    and brain RDMs are directly comparable; ``descriptor`` averages repeated presentations.

    Examples
    --------
    >>> import numpy as np
    >>> meg = np.random.default_rng(0).normal(size=(20, 30, 50))   # stimuli x sensors x time points
    >>> rdms_from_responses(meg, distance="correlation").n_rdms
    50
    """
    array = np.asarray(responses)
    if array.ndim not in (2, 3):
        raise ShapeError(f"responses: got {describe(array)}. Pass (stimulus, channel) or (stimulus, channel, time).")
    recording = from_responses(array, axes="stimulus unit" + " time" * (array.ndim == 3), metadata=metadata)
    return compute_rdms(recording, "responses", distance=distance, descriptor=descriptor, noise=noise)
