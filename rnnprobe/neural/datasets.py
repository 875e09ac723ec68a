"""Loaders for public neural data sets, as `Recording` (responses) or `RDMs`.

Each loader reads the files as distributed (see each folder's DATA.md in the project's shared data)
from a folder given by path; ``folder=None`` looks for ``shared/data/<name>`` beside the working
directory or one of its parents, or in ``$RNNPROBE_DATA``. Nothing is downloaded.

- :func:`load_zhang_desimone`: macaque IT single units (Zhang et al. 2011), 7 objects x 3 positions x
  ~20 repetitions at 1 ms, binned into a pseudo-population `Recording` (time in ms from image onset);
- :func:`load_churchland`: the condition-averaged motor-cortex tensor of Churchland et al. (2012) as a
  `Recording` of (condition, time, neuron);
- :func:`load_cichy_fmri`: per-subject fMRI RDMs of EVC or IT (Cichy et al. 2014; Algonauts 2019);
- :func:`load_kriegeskorte92`: the 92-image RDMs of Kriegeskorte et al. (2008): human IT per subject
  and session, human and monkey IT, and the classic model RDMs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_int, check_option, check_seed
from ..analysis.rsa import RDMs
from ..errors import ArgumentError, ShapeError, StoreNotFoundError, describe
from .rdm_files import load_rdms
from .responses import from_responses

ZHANG = "zhang_desimone2011_it_7objects"
CHURCHLAND = "churchland2012_m1_tme_tensor"
CICHY = "cichy2014_algonauts2019_fmri_rdms"
KRIEGESKORTE = "92imageData"


def data_folder(name: str, folder: str | Path | None = None) -> Path:
    """The folder of data set ``name``: ``folder`` if given, else found under ``shared/data``.

    Examples
    --------
    >>> data_folder("92imageData", "/nowhere")
    Traceback (most recent call last):
    ...
    rnnprobe.errors.StoreNotFoundError: folder: '/nowhere' does not exist. ...
    """
    if folder is not None:
        path = Path(folder)
        if not path.is_dir():
            raise StoreNotFoundError(
                f"folder: {str(folder)!r} does not exist. Pass the folder holding the {name} files (see its DATA.md)."
            )
        return path
    roots = [Path(os.environ["RNNPROBE_DATA"])] if "RNNPROBE_DATA" in os.environ else []
    here = Path.cwd().resolve()
    roots += [base / "shared" / "data" for base in (here, *here.parents)]
    for root in roots:
        if (root / name).is_dir():
            return root / name
    raise StoreNotFoundError(
        f"folder: {name} was not found in $RNNPROBE_DATA or in shared/data beside the working directory or "
        f"its parents. Pass folder= (the folder holding the files)."
    )


def _loadmat(path: Path) -> dict[str, Any]:
    import scipy.io

    return scipy.io.loadmat(path, simplify_cells=True)


def load_zhang_desimone(
    folder: str | Path | None = None,
    *,
    bin_ms: int = 10,
    start_ms: int = -100,
    stop_ms: int = 500,
    n_repetitions: int | None = None,
    seed: int = 0,
) -> Any:
    """Macaque IT pseudo-population (Zhang et al. 2011): firing rates per trial, time bin and neuron.

    The 132 neurons were recorded one after another, so trials of one condition (object x
    position) are matched across neurons at random: for each neuron and condition, its trials are
    shuffled (seeded) and the first ``n_repetitions`` are kept (default: the fewest any neuron has).
    Spikes are counted in bins of ``bin_ms`` from ``start_ms`` to ``stop_ms`` relative to image
    onset (ms 501 of each 1 ms raster) and divided by the bin width: spikes per second.

    Parameters
    ----------
    folder : path, optional
        The ``zhang_desimone2011_it_7objects`` folder (with ``raster_mat/``).
    bin_ms, start_ms, stop_ms : int
        Bin width and the window in ms relative to onset (the rasters span -500..499).
    n_repetitions : int, optional
        Pseudo-trials per condition.
    seed : int
        Seeds the matching of trials.

    Returns
    -------
    Recording
        Layer ``"IT"`` of shape (21 * n_repetitions, n_bins, 132); ``times`` are bin starts in ms;
        metadata ``object``, ``position``, ``condition`` (object_position) and ``repetition``;
        provenance names the neurons (``neurons``) and the settings.
    """
    path = data_folder(ZHANG, folder) / "raster_mat"
    bin_ms = check_int("bin_ms", bin_ms)
    if not (-500 <= start_ms < stop_ms <= 500) or (stop_ms - start_ms) % bin_ms:
        raise ArgumentError(
            f"start_ms, stop_ms: got {start_ms}, {stop_ms}. Pass -500 <= start_ms < stop_ms <= 500 ms (around "
            f"image onset) spanning a whole number of {bin_ms} ms bins."
        )
    rng = np.random.default_rng(check_seed(seed))
    files = sorted(path.glob("*_raster_data.mat"))
    if not files:
        raise StoreNotFoundError(f"folder: no *_raster_data.mat files in {str(path)!r}.")
    neurons = [_loadmat(f) for f in files]
    conditions, onset = _matched_rasters(neurons, files, start_ms, stop_ms)
    counts = [min(int(np.sum(n["raster_labels"]["combined_ID_position"] == c)) for c in conditions) for n in neurons]
    available = min(counts)
    reps = available if n_repetitions is None else check_int("n_repetitions", n_repetitions, maximum=available)
    window = slice(onset + start_ms, onset + stop_ms)
    n_bins = (stop_ms - start_ms) // bin_ms
    rates = np.empty((len(conditions) * reps, n_bins, len(neurons)), dtype=np.float32)
    for j, neuron in enumerate(neurons):
        raster, labels = neuron["raster_data"], neuron["raster_labels"]["combined_ID_position"]
        for c, condition in enumerate(conditions):
            trials = rng.permutation(np.flatnonzero(labels == condition))[:reps]
            spikes = raster[trials, window].reshape(reps, n_bins, bin_ms).sum(axis=2)
            rates[c * reps : (c + 1) * reps, :, j] = spikes * (1000.0 / bin_ms)
    objects, positions = zip(*(c.split("_") for c in conditions), strict=True)
    metadata = {
        "object": np.repeat(objects, reps),
        "position": np.repeat(positions, reps),
        "condition": np.repeat(conditions.astype(str), reps),
        "repetition": np.tile(np.arange(reps), len(conditions)),
    }
    provenance = {
        "data set": "Zhang et al. 2011 (NeuroDecodeR)",
        "neurons": [f.name.split("_raster")[0] for f in files],
        "bin_ms": bin_ms, "start_ms": start_ms, "stop_ms": stop_ms, "seed": seed, "units": "spikes/s",
    }  # fmt: skip
    return from_responses(rates, layer="IT", metadata=metadata, times=np.arange(start_ms, stop_ms, bin_ms),
                          provenance=provenance)  # fmt: skip


def _matched_rasters(neurons: list[dict], files: list[Path], start_ms: int, stop_ms: int) -> tuple[np.ndarray, int]:
    """(the conditions, the 0-based index of the onset ms) that every neuron's raster shares: the same
    conditions, each with a trial, the same alignment, and the window inside every raster; else one error naming
    the first neuron that differs (a pseudo-population of rasters that do not line up would be misaligned or
    mismatched without a sign).
    """
    first = neurons[0]
    conditions = np.unique(first["raster_labels"]["combined_ID_position"])
    onset = int(first["raster_site_info"]["alignment_event_time"]) - 1
    for neuron, file in zip(neurons, files, strict=True):
        own = np.unique(neuron["raster_labels"]["combined_ID_position"])
        aligned = int(neuron["raster_site_info"]["alignment_event_time"]) - 1
        length = np.shape(neuron["raster_data"])[-1]
        if (
            not np.array_equal(own, conditions)
            or aligned != onset
            or not 0 <= onset + start_ms < onset + stop_ms <= length
        ):
            raise ShapeError(
                f"folder: {file.name} does not line up with {files[0].name}: conditions {own.tolist()[:5]} against "
                f"{conditions.tolist()[:5]}, onset at ms {aligned + 1} against {onset + 1}, {length} ms of raster "
                f"for the window {start_ms}..{stop_ms} ms. Pass a folder of rasters of one experiment."
            )
    return conditions, onset


def load_churchland(folder: str | Path | None = None) -> Any:
    """Motor cortex during reaching (Churchland et al. 2012, as packed for TME): condition-averaged rates.

    Returns
    -------
    Recording
        Layer ``"M1"`` of shape (10 conditions, 61 times, 50 neurons), already normalised and
        mean-centred by the data's authors; ``times`` in ms from movement onset (-50..550, 10 ms);
        metadata ``condition``.
    """
    data = _loadmat(data_folder(CHURCHLAND, folder) / "exampleData.mat")
    tensor = np.asarray(data["dataTensor"], dtype=np.float64)
    if tensor.ndim != 3:
        raise ShapeError(f"dataTensor: got {describe(tensor)}; expected (time, neuron, condition).")
    times = np.asarray(data["t"]).ravel().astype(np.int64)
    provenance = {"data set": "Churchland et al. 2012 (TME example data)", "units": "normalised"}
    return from_responses(tensor, axes="time unit stimulus", layer="M1", times=times,
                          metadata={"condition": np.arange(tensor.shape[2])}, provenance=provenance)  # fmt: skip


def load_cichy_fmri(folder: str | Path | None = None, *, region: str = "IT", images: int = 92) -> RDMs:
    """Per-subject fMRI RDMs (Cichy et al. 2014; Algonauts 2019) of EVC or IT for the 92 or 78 images.

    Returns
    -------
    RDMs
        15 RDMs (one per subject, ``rdm_descriptors["subject"]``) over ``images`` conditions, 1 - r.
    """
    check_option("region", region, ("IT", "EVC"))
    check_option("images", images, (92, 78))
    path = data_folder(CICHY, folder) / f"{images}images_fmri_{region}_RDMs.npz"
    rdms = load_rdms(path, distance="correlation")
    return RDMs(rdms.dissimilarities, "correlation", rdm_descriptors={"subject": np.arange(1, rdms.n_rdms + 1)},
                descriptors={"source": str(path), "region": region})  # fmt: skip


@dataclass
class Kriegeskorte92:
    """The 92-image RDMs (Kriegeskorte et al. 2008), all 1 - Pearson r over the same 92 conditions.

    Attributes
    ----------
    sessions : RDMs
        Human IT, 4 subjects x 2 sessions (``rdm_descriptors``: ``name``, ``subject``).
    subjects : RDMs
        Human IT per subject, the two sessions averaged (the noise ceiling's independent samples).
    human_it, monkey_it : RDMs
        The figure-1 RDMs: human IT (316 voxels) and monkey IT (674 neurons).
    models : RDMs
        The classic model RDMs (animacy, ..., RADON), ``rdm_descriptors["name"]``.
    category : ndarray of str
        Each image's category (e.g. "human bodypart").
    images : ndarray of uint8, (92, 175, 175, 3)
        The stimuli, in RDM order.
    """

    sessions: RDMs
    subjects: RDMs
    human_it: RDMs
    monkey_it: RDMs
    models: RDMs
    category: np.ndarray
    images: np.ndarray


def load_kriegeskorte92(folder: str | Path | None = None) -> Kriegeskorte92:
    """The RDMs of the 92-image set (Kriegeskorte et al. 2008), from the rsatoolbox demo files.

    Returns
    -------
    Kriegeskorte92
        Human IT per session and per subject, human and monkey IT, model RDMs, image categories and
        the images.
    """
    path = data_folder(KRIEGESKORTE, folder)
    sessions = load_rdms(path / "92_brainRDMs.mat", variable="RDMs", distance="correlation")
    names = sessions.rdm_descriptors["name"]
    subject_of = np.array([n.split("|")[1].strip() for n in names])
    ids = np.unique(subject_of)
    sessions = RDMs(sessions.dissimilarities, "correlation", rdm_descriptors={"name": names, "subject": subject_of})
    subjects = RDMs(np.stack([sessions.dissimilarities[subject_of == s].mean(axis=0) for s in ids]), "correlation",
                    rdm_descriptors={"subject": ids})  # fmt: skip
    figure1 = load_rdms(path / "Kriegeskorte_Neuron2008_supplementalData.mat", variable="RDMs_mIT_hIT_fig1")
    models = load_rdms(path / "92_modelRDMs.mat", variable="Models", distance="correlation")
    supplement = _loadmat(path / "Kriegeskorte_Neuron2008_supplementalData.mat")
    category = np.array([s["category"] for s in supplement["stimuli_92objs"]])
    images = np.stack([s["image"] for s in supplement["stimuli_92objs"]])
    return Kriegeskorte92(
        sessions=sessions,
        subjects=subjects,
        human_it=RDMs(figure1.dissimilarities[[1]], "correlation", rdm_descriptors={"name": ["hIT"]}),
        monkey_it=RDMs(figure1.dissimilarities[[0]], "correlation", rdm_descriptors={"name": ["mIT"]}),
        models=models,
        category=category,
        images=images,
    )
