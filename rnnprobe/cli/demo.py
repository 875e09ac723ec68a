"""``rnnprobe demo``: compare the shipped trained models and write one HTML report.

From the checkpoints shipped in the package (no training, no downloads):

1. the BLT family (B, BK, BF, BL, BLT; Spoerer et al. 2017) on occluded digits: RSA of every
   layer over time against the digit-category RDM, decoding of the digit over time, temporal
   generalization, trajectories and RDMs;
2. LSTM vs fast weights (Ba et al. 2016) on associative retrieval: when does the retrieved value
   become decodable;
3. fixed points of the flip-flop GRU and LSTM (Sussillo & Barak 2013): 8 attractors each;
4. the energy-efficient RNN (Ali et al. 2022): preactivation over a digit sequence and its
   class-specific prediction units.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError

BLT_FAMILY = ("occluded-b", "occluded-bk", "occluded-bf", "occluded-bl", "occluded-blt")
BLT_QUICK = ("occluded-b", "occluded-bl", "occluded-blt")


def category_rdm(labels: Any) -> Any:
    """The categorical model RDM: 0 for two stimuli of the same category, 1 otherwise.

    Examples
    --------
    >>> category_rdm([0, 0, 1]).dissimilarities
    array([[0., 1., 1.]])
    """
    from ..analysis.rsa import RDMs

    labels = np.asarray(labels)
    rows, cols = np.triu_indices(len(labels), k=1)
    return RDMs((labels[rows] != labels[cols]).astype(float)[None], "category", conditions={"category": labels})


def _record(name: str, n: int) -> tuple[Any, Any, Any]:
    import rnnprobe

    model = rnnprobe.models.load(name)
    data = rnnprobe.models.task_from_checkpoint(model).sample(n, split="test")
    return model, data, rnnprobe.record(model, data.x, metadata=data.metadata, progress=False)


def _record_models(names: Any, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(models, recordings) of shipped models by display label, each on n held-out trials of its task."""
    models, recordings = {}, {}
    for name in names:
        models[_label(name)], _, recordings[_label(name)] = _record(name, n)
    return models, recordings


def _test_accuracy(models: dict[str, Any]) -> dict[str, float]:
    return {label: model.checkpoint["metrics"]["test_accuracy"] for label, model in models.items()}


def _label(name: str) -> str:
    """'occluded-blt' -> 'BLT', 'retrieval-fastweights' -> 'fast weights', 'flipflop-gru' -> 'GRU'."""
    tail = name.split("-", 1)[1]
    return {"fastweights": "fast weights"}.get(tail, tail.upper())


def _blt(report: Any, quick: bool, progress: bool) -> str:
    from ..analysis import compare_models

    names = BLT_QUICK if quick else BLT_FAMILY
    n = 200 if quick else 500
    models, recordings = _record_models(names, n)
    accuracy = _test_accuracy(models)
    labels = next(iter(recordings.values())).column("label")
    result = compare_models(recordings, target="label", neural={"digit category": category_rdm(labels)},
                            cv=5, progress=progress)  # fmt: skip
    report.section("BLT family on occluded digits")
    report.add_text(
        f"Recurrent convnets with bottom-up (B), lateral (L) and top-down (T) connections, and the feedforward "
        f"controls with larger kernels (BK) or more maps (BF), trained on digits occluded by debris "
        f"(Spoerer et al. 2017). {n} held-out test digits, 4 time steps. Test accuracy of the shipped checkpoints: "
        + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
        + ". RSA compares every layer's RDM (1 - Pearson r) at every step with the digit-category RDM.",
        name="blt-intro",
    )
    result.to_report(report, prefix="BLT")
    table = result.table()
    best = int(np.argmax(table["decoding: peak accuracy"]))
    return (
        f"BLT family ({', '.join(result.names)}, {n} digits): best digit decoding {table['model'][best]} "
        f"{table['decoding: best layer'][best]} at step {table['decoding: peak time'][best]} "
        f"({table['decoding: peak accuracy'][best]:.3f}); best category RSA "
        + ", ".join(f"{m} {s:.2f}" for m, s in zip(table["model"], table["digit category: similarity"], strict=True))
    )


def _retrieval(report: Any, quick: bool, progress: bool) -> str:
    from ..analysis import compare_models

    n = 300 if quick else 1000
    models, recordings = _record_models(("retrieval-lstm", "retrieval-fastweights"), n)
    accuracy = _test_accuracy(models)
    layers = {"LSTM": ["l0.h", "l0.c"], "fast weights": ["h"]}
    result = compare_models(recordings, layers=layers, target="target", analyses=["pca", "decoding", "generalization"],
                            cv=5, progress=progress)  # fmt: skip
    report.section("LSTM vs fast weights on associative retrieval")
    report.add_text(
        f"Key-value sequences such as c9k8j3f1??c: the network must answer the value stored with the queried key "
        f"(Ba et al. 2016). {n} held-out sequences of 11 steps; the query key arrives at the last step. Test accuracy "
        f"of the shipped checkpoints: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()) + ". Decoding "
        "asks when the answer can be read from each state: only after the query for a network that retrieves.",
        name="retrieval-intro",
    )
    result.to_report(report, prefix="Retrieval")
    table = result.table()
    return "retrieval: peak decoding of the answer " + ", ".join(
        f"{m} {s:.3f} at step {t}"
        for m, s, t in zip(table["model"], table["decoding: peak accuracy"], table["decoding: peak time"], strict=True)
    )


def _flipflop(report: Any, quick: bool, progress: bool) -> str:
    from ..analysis import compare_models

    models, recordings = _record_models(("flipflop-gru", "flipflop-lstm"), 32 if quick else 64)
    result = compare_models(recordings, models=models, analyses=["pca", "fixed_points"],
                            n_initial=256 if quick else 1024, progress=progress)  # fmt: skip
    report.section("Fixed points of flip-flop networks")
    report.add_text(
        "Networks trained to hold 3 bits, each flipped by a pulse on its input (Sussillo & Barak 2013). Fixed "
        "points at zero input, searched from states sampled along the recorded trajectories: the 8 bit patterns "
        "should be 8 stable fixed points, with saddles between them.",
        name="flipflop-intro",
    )
    result.to_report(report, prefix="Flip-flop")
    table = result.table()
    counts = zip(table["model"], table["fixed points"], table["stable fixed points"], strict=True)
    return "flip-flop fixed points: " + ", ".join(f"{m} {k} ({s} stable)" for m, k, s in counts)


def _energy(report: Any, quick: bool) -> str:
    from ..analysis.plotting import pyplot
    from ..models.energy import error_units, prediction_units

    _, data, rec = _record("energy-efficient", 500 if quick else 2000)
    a = np.asarray(rec.get("a"), dtype=float)  # (sequence, step, unit)
    energy = np.abs(a).mean(axis=(0, 2))
    baseline = float(np.abs(np.asarray(data.x)).mean())
    # as the checkpoint's metrics (rnnprobe.models.recipes): class-specific units at the last step,
    # by the digit shown there
    predicted = rec.column("last")
    units = prediction_units(a[:, -1], predicted)
    n_pred = len(set().union(*(set(u.tolist()) for u in units.values())))
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    ax.plot(np.arange(1, len(energy) + 1), energy, color="#0072B2", marker="o", ms=3, label="network")
    ax.axhline(baseline, color="black", ls="--", lw=0.8, label="input only (no prediction)")
    ax.set_xlabel("time step (digit)")
    ax.set_ylabel("mean |preactivation|")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("energy over a sequence")
    medians = np.stack([np.median(a[predicted == c, -1], axis=0) for c in range(10)])
    limit = float(np.abs(medians).max())
    image = ax2.imshow(medians, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax2.set_xlabel("unit (8 x 8 pixels, row-major)")
    ax2.set_ylabel("digit shown at the last step")
    ax2.set_yticks(range(10))
    ax2.set_title(f"median last-step preactivation; {n_pred} prediction units")
    fig.colorbar(image, ax=ax2, label="preactivation")
    report.section("Energy-efficient RNN: prediction units")
    report.add_text(
        "A recurrent network trained only to minimise its own preactivation on ascending digit sequences (Ali et "
        "al. 2022) learns to predict the next digit: its recurrent input cancels the expected input. Prediction "
        "units carry a class-specific signal (a median preactivation per digit more than 2.576 robust SDs from the "
        "other units'); error units carry none.",
        name="energy-intro",
    )
    caption = ("Left: mean |preactivation| per step against the input alone. Right: each unit's median "
               "preactivation at the last step, by the digit shown there.")  # fmt: skip
    report.add_figure(fig, caption=caption, name="energy")
    report.add_table({"digit": list(units), "prediction units": [len(v) for v in units.values()]},
                     caption=f"Prediction units per digit; error units: {len(error_units(a[:, -1], predicted))}.",
                     name="prediction-units")  # fmt: skip
    return (
        f"energy-efficient RNN: mean |preactivation| {energy[-1]:.3f} at the last step vs {baseline:.3f} from the "
        f"input alone; {n_pred} prediction units"
    )


def run_demo(*, out: str | Path | None = None, quick: bool = False, progress: bool | None = None) -> Path:
    """Compare the shipped models and write ``report.html`` (and ``report.json``) into ``out``.

    Returns the report's path. Nothing is written unless every part ran.
    """
    import matplotlib
    import torch

    from ..report import Report

    out_dir = Path(out) if out is not None else Path("rnnprobe-demo")
    if out_dir.exists() and not out_dir.is_dir():
        raise ArgumentError(f"--out: {str(out_dir)!r} is a file. Pass a folder for the report.")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    backend = matplotlib.get_backend()
    matplotlib.use("Agg")
    started = time.perf_counter()
    try:
        report = Report("rnnprobe demo: the shipped models compared")
        report.section("About")
        report.add_text(
            "Made by `rnnprobe demo`" + (" --quick" if quick else "") + " from the trained checkpoints shipped with "
            "rnnprobe. Every number in this report is in report.json next to it.",
            name="about",
        )
        lines = [_blt(report, quick, progress), _retrieval(report, quick, progress), _flipflop(report, quick, progress),
                 _energy(report, quick)]  # fmt: skip
        out_dir.mkdir(parents=True, exist_ok=True)
        path = report.save(out_dir / "report.html", data=True)
    finally:
        torch.set_num_threads(threads)
        matplotlib.use(backend)
        import matplotlib.pyplot as plt

        plt.close("all")
    for line in lines:
        print(line)
    print(f"report written in {time.perf_counter() - started:.0f} s: {path.resolve()}")
    return path
