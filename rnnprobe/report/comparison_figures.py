"""Side-by-side figures of a ComparisonResult: one panel per model, shared axes and colour scales.

Field conventions: chance lines on decoding, noise-ceiling bands on RSA, the unit circle on
eigenvalue plots, labelled axes in time steps, the Okabe-Ito colour-blind-safe palette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis.plotting import OKABE_ITO, category_colors, pyplot

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..analysis.compare import ComparisonResult

PANEL = 3.2  # inches per panel


def _colors(n: int) -> list[str]:
    palette = [c for c in OKABE_ITO if c != "#F0E442"]  # yellow is too faint for lines
    return [palette[i % len(palette)] for i in range(n)]


def _integer_ticks(ax: Any) -> None:
    """Time steps are whole numbers: no ticks at 0.5."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _panels(n: int, *, rows: int = 1, height: float = PANEL, extra: int = 0, **kwargs: Any) -> tuple[Any, np.ndarray]:
    fig, axes = pyplot().subplots(rows, n + extra, figsize=(PANEL * (n + extra) + 0.6, height * rows),
                                  squeeze=False, layout="constrained", **kwargs)  # fmt: skip
    return fig, axes


def pca(c: ComparisonResult) -> Figure:
    """Trajectories of each model's focus layer on its PC1-PC2 (class means when the target is
    categorical), and the participation ratio over time of every model in one panel.
    """
    fig, axes = _panels(len(c.names), extra=1)
    for ax, name in zip(axes[0], c.names, strict=False):
        result = c.pca[name]
        traj = result.trajectories
        if traj.shape[-1] < 2:  # one component: PC2 is zero
            traj = np.pad(traj, ((0, 0), (0, 0), (0, 1)))
        labels = result.metadata.get(c.target) if c.target is not None else None
        if labels is not None and len(np.unique(labels)) <= 20:
            classes = np.unique(labels)
            colors, legend = category_colors(classes)
            for k, color in zip(classes, colors, strict=True):
                mean = traj[labels == k].mean(axis=0)
                ax.plot(mean[:, 0], mean[:, 1], color=color, lw=1.5, marker="o", ms=2.5)
                ax.scatter(mean[-1, 0], mean[-1, 1], color=color, s=18, zorder=3)
            for k, color in legend.items():
                ax.plot([], [], color=color, label=str(k))
            ax.legend(title=c.target, fontsize=6, title_fontsize=7, frameon=False, ncol=2)
        else:
            for path in traj[np.unique(np.linspace(0, len(traj) - 1, min(len(traj), 50)).astype(int))]:
                ax.plot(path[:, 0], path[:, 1], color="#0072B2", lw=0.7, alpha=0.6)
        ratio = result.explained_variance_ratio
        ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
        ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)" if len(ratio) > 1 else "PC2")
        ax.set_title(f"{name}: {result.layer}", fontsize=9)
    ax = axes[0, -1]
    for name, color in zip(c.names, _colors(len(c.names)), strict=True):
        result = c.pca[name]
        ax.plot(result.times, result.participation_ratio, color=color, marker="o", ms=3, label=f"{name} {result.layer}")
    ax.set_xlabel("time step")
    _integer_ticks(ax)
    ax.set_ylabel("participation ratio (dimensions)")
    ax.set_title("dimensionality over time", fontsize=9)
    ax.legend(frameon=False, fontsize=7)
    return fig


def _order(c: ComparisonResult, name: str, rdms: Any) -> np.ndarray:
    """Conditions sorted by the target (block structure), when the conditions are stimuli."""
    n = rdms.n_conditions
    if c.target is None or c.settings.get("descriptor") is not None:
        return np.arange(n)
    labels = np.asarray(c._recordings[name].column(c.target))
    return np.argsort(labels, kind="stable") if len(labels) == n else np.arange(n)


def rdms(c: ComparisonResult, max_times: int = 6) -> Figure:
    """RDMs of each model's focus layer over time: a row per model, shared colour scale."""
    chosen = {name: c.rdms[name][c.focus[name]] for name in c.names}
    n_cols = max(min(r.n_rdms, max_times) for r in chosen.values())
    fig, axes = _panels(n_cols, rows=len(c.names), height=2.4)
    mats = {name: r.matrices() for name, r in chosen.items()}
    finite = np.concatenate([m[np.isfinite(m)] for m in mats.values()])
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    image = None
    for row, name in enumerate(c.names):
        r = chosen[name]
        order = _order(c, name, r)
        picks = np.unique(np.linspace(0, r.n_rdms - 1, min(r.n_rdms, max_times)).astype(int))
        times = r.rdm_descriptors.get("time", np.arange(r.n_rdms))
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(picks):
                ax.axis("off")
                continue
            mat = mats[name][picks[col]][np.ix_(order, order)]
            image = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_title(f"t = {times[picks[col]]}", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{name}\n{r.descriptors.get('layer', '')}", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.7, label=f"dissimilarity ({c.settings['distance']})")
    sort = f", conditions sorted by {c.target}" if c.target is not None and c.settings.get("descriptor") is None else ""
    fig.suptitle(f"RDMs over time{sort}", fontsize=10)
    return fig


def rsa(c: ComparisonResult, neural: str) -> Figure:
    """Model-vs-neural RDM similarity: per model, one line per layer over model time with the
    noise-ceiling band (one neural RDM), or the best layer's model-time x data-time matrix.
    """
    per_model = c.rsa[neural]
    first = next(iter(per_model[c.names[0]].values()))
    if len(first.data_times) == 1:
        fig, axes = _panels(len(c.names), sharey=True)
        for ax, name in zip(axes[0], c.names, strict=False):
            layers = per_model[name]
            ceiling = next(iter(layers.values())).noise_ceiling
            if ceiling is not None:
                ax.axhspan(*ceiling, color="#999999", alpha=0.35, lw=0, label="noise ceiling")
            for (layer, comp), color in zip(layers.items(), _colors(len(layers)), strict=True):
                ax.plot(comp.model_times, comp.similarity[:, 0], color=color, marker="o", ms=3, label=layer)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_xlabel("model time step")
            _integer_ticks(ax)
            ax.set_title(name, fontsize=9)
            ax.legend(frameon=False, fontsize=7)
        axes[0, 0].set_ylabel(f"similarity to {neural} ({c.settings['comparison']})")
        return fig
    fig, axes = _panels(len(c.names))
    best = {name: _shown_rsa_layer(c, neural, name) for name in c.names}
    magnitudes = np.concatenate([np.abs(per_model[n][best[n]].similarity).ravel() for n in c.names])
    limit = float(np.nanmax(magnitudes)) if not np.isnan(magnitudes).all() else 1.0
    image = None
    for ax, name in zip(axes[0], c.names, strict=False):
        comp = per_model[name][best[name]]
        image = ax.imshow(comp.similarity, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xlabel(f"{neural} time point (index)")
        ax.set_ylabel(f"{name} {best[name]} time step (index)")
        ax.set_title(f"{name}: {best[name]}", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label=f"RDM similarity ({c.settings['comparison']})")
    return fig


def _shown_rsa_layer(c: ComparisonResult, neural: str, name: str) -> str:
    """The model's best-matching layer for ``neural``, or its first where no layer has a defined similarity."""
    return c.best_rsa(neural, name)["layer"] or next(iter(c.rsa[neural][name]))


def decoding(c: ComparisonResult) -> Figure:
    """Decoding score over time, per model a panel with one line per layer and the chance line."""

    def one(ax: Any, name: str) -> None:
        results = c.decoding[name]
        for i, ((layer, result), color) in enumerate(zip(results.items(), _colors(len(results)), strict=True)):
            result.draw(ax, color=color, label=layer, chance_line=i == len(results) - 1)
        ax.legend(frameon=False, fontsize=7)

    return _over_time_panels(c, one, f"decoding {c.target} over time")


def _over_time_panels(c: ComparisonResult, draw: Any, title: str) -> Figure:
    """A panel per model over time steps, sharing the y axis (labelled on the first panel only)."""
    fig, axes = _panels(len(c.names), sharey=True)
    for ax, name in zip(axes[0], c.names, strict=False):
        draw(ax, name)
        ax.set_title(name, fontsize=9)
        _integer_ticks(ax)
        if ax is not axes[0, 0]:
            ax.set_ylabel("")
    fig.suptitle(title, fontsize=10)
    return fig


def generalization(c: ComparisonResult) -> Figure:
    """Temporal generalization matrices of the focus layers, coloured around chance on a shared scale."""
    fig, axes = _panels(len(c.names))
    results = [c.generalization[name] for name in c.names]
    span = max(float(np.nanmax(np.abs(r.scores - r.chance))) for r in results)
    image = None
    for ax, name, result in zip(axes[0], c.names, results, strict=False):
        image = result.draw(ax, span=span)
        ax.set_title(f"{name}: {result.layer}", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label=f"{results[0].scoring} (chance {results[0].chance:.2f})")
    fig.suptitle(f"temporal generalization of {c.target}", fontsize=10)
    return fig


def encoding(c: ComparisonResult, responses: str) -> Figure:
    """Per model a panel: the median held-out r of each layer over model time (at its best neural time)."""
    return _over_time_panels(
        c, lambda ax, name: c.encoding[responses][name].draw(ax), f"encoding models of {responses}"
    )


def alignment(c: ComparisonResult) -> Figure:
    """The distance matrix of every model's layers (last time step) and their MDS map."""
    return c.alignment.plot()


def population(c: ComparisonResult, analysis: str) -> Figure:
    """JPCA (first jPC plane), TDR (trajectories on the first two axes) or dPCA (first component of the
    first marginalisation after time), one panel per model where it ran.
    """
    results = {n: r for n, r in getattr(c, analysis).items() if not isinstance(r, str)}
    fig, axes = _panels(len(results))
    for ax, (name, result) in zip(axes[0], results.items(), strict=True):
        if analysis == "dpca":
            result.draw(ax, next((m for m in result.components if m != "time"), None))
        else:
            result.draw(ax)
        ax.set_title(f"{name}: {ax.get_title()}" if ax.get_title() else name, fontsize=9)
    return fig


def dsa(c: ComparisonResult) -> Figure:
    """The DSA distance matrix of the models' focus layers over time and their MDS map."""
    return c.dsa.plot()


def fixed_points(c: ComparisonResult) -> Figure:
    """Per model: fixed points on the recorded trajectories' PC1-PC2 (stable filled, unstable open
    with their unstable directions), and the Jacobian eigenvalues with the unit circle.
    """
    found = [name for name in c.names if name in c.fixed_points and not isinstance(c.fixed_points[name], str)]
    fig, axes = _panels(len(found), rows=2, height=3.0)
    for col, name in enumerate(found):
        fp = c.fixed_points[name]
        layers = c._fp_layers[name]
        rec = c._recordings[name]
        traj = np.concatenate([np.asarray(rec.get(layer, flatten=True), dtype=float) for layer in layers], axis=-1)
        fp.draw_points(axes[0, col], traj)
        axes[0, col].set_title(f"{name}: {len(fp)} fixed points ({int(fp.stable.sum())} stable)", fontsize=9)
        fp.draw_spectrum(axes[1, col])
    return fig


def speed_accuracy(c: ComparisonResult) -> Figure:
    """Accuracy against mean FLOPs of every model (confidence-threshold stopping), and the compute-matched
    accuracy differences with their intervals.
    """
    fig, axes = _panels(1 + (c.compute_matched is not None), height=3.6)
    for name in c.names:
        if name in c.speed_accuracy:
            c.speed_accuracy[name].draw(axes[0, 0])
    axes[0, 0].set_xscale("log")
    if c.compute_matched is not None:
        c.compute_matched.draw(axes[0, 1])
    return fig


def intervention(c: ComparisonResult, name: str) -> Figure:
    """One intervention's effect over time: the score, and the focus layer's RDM correlation with the intact model."""
    fig = c.interventions[name].plot()
    fig.suptitle(name, fontsize=10)
    return fig


def overview(c: ComparisonResult, *, timings: bool = False) -> str:
    parts = [f"{len(c.names)} models ({', '.join(c.names)}), the same settings for each: {', '.join(c.analyses)}."]
    if "rdms" in c.analyses or "rsa" in c.analyses:
        compared = f", compared with the neural RDMs by {c.settings['comparison']}" if "rsa" in c.analyses else ""
        parts.append(f"RDMs: {c.settings['distance']} distance{compared}.")
    if c.alignment is not None:
        parts.append(f"Alignment: {c.settings['metric']} distances between the layers at the last time step.")
    if c.dsa is not None:
        parts.append(f"DSA: {c.settings['dsa_delays']} delays, rank {c.settings['dsa_rank']}, over each model's "
                     f"focus layer in time.")  # fmt: skip
    if c.target is not None:
        parts.append(f"Decoded variable: {c.target!r} ({c.settings['estimator']}, {c.settings['cv']}-fold).")
    if c.settings.get("device") is not None:
        parts.append(f"Computed on {c.settings['device']!r} where an analysis has a device path (RDMs, decoding, "
                     f"encoding, PCA, alignment, fixed points).")  # fmt: skip
    for neural, (low, high) in c.noise_ceilings().items():
        parts.append(f"Noise ceiling of {neural} ({c.settings['comparison']}): {low:.3f} to {high:.3f}.")
    if timings:  # off by default: the same analyses give the same report, byte for byte
        parts.append(
            "Seconds per analysis (all models): " + ", ".join(f"{k} {v:.1f}" for k, v in c.seconds.items()) + "."
        )
    return " ".join(parts)


def sections(c: ComparisonResult) -> dict[str, tuple[str, str]]:
    """Figure name -> (section heading, caption)."""
    out = {
        "pca": ("Trajectories and dimensionality",
                "Left: states of each model's focus layer on its first two principal components"
                + (f" (mean per {c.target})" if c.target else "") + "; dot: last step. Right: participation "
                "ratio (effective number of dimensions) across stimuli at each time step."),
        "rdms": ("RDMs over time", "Representational dissimilarity matrices of each model's focus layer, shared "
                 "colour scale."),
    }  # fmt: skip
    for neural in c.rsa:
        out[f"rsa-{neural}"] = (
            f"RSA: {neural}",
            f"Similarity ({c.settings['comparison']}) between each layer's RDM at each model time step and "
            f"{neural}; grey band: noise ceiling (lower to upper bound), where subject RDMs were given.",
        )
    for responses in c.encoding:
        out[f"encoding-{responses}"] = (
            f"Encoding models: {responses}",
            f"Ridge regressions from each layer at each model time step to every target of {responses} "
            f"({c.settings['cv']}-fold, a penalty per target by leave-one-out): the median held-out Pearson r over "
            f"targets, at the neural time where it peaks.",
        )
    out["decoding"] = ("Decoding over time", f"Cross-validated decoding of {c.target} from each layer at each time "
                       "step (mean over folds, band: s.e.m.); dashed: chance.")  # fmt: skip
    out["generalization"] = ("Temporal generalization", "Decoders trained at each time step (rows) and tested at "
                             "each (columns), focus layers; dotted: the diagonal.")  # fmt: skip
    out["alignment"] = ("Alignment between models", f"Distances ({c.settings.get('metric', 'shape')}) between every "
                        "model's layers at the last time step, and their map (classical MDS).")  # fmt: skip
    out["dsa"] = ("Dynamical similarity (DSA)", "Angular distances between the models' dynamics (the linear "
                  "operators of their focus layers' delay embeddings, compared up to any rotation or reflection), "
                  "and their map (classical MDS).")  # fmt: skip
    out["jpca"] = ("Rotational dynamics (jPCA)", f"Each model's focus layer averaged per value of {c.target}, in "
                   "its first jPC plane (Churchland et al. 2012); circle: start.")  # fmt: skip
    out["tdr"] = ("Targeted dimensionality reduction", "Condition averages on the first two task axes of each "
                  f"model's focus layer (variables: {c.settings.get('variables')}).")  # fmt: skip
    out["dpca"] = ("Demixed PCA", "The first demixed component of each model's focus layer (parameters: "
                   f"{c.settings.get('parameters')}), over time, per condition.")  # fmt: skip
    out["fixed-points"] = ("Fixed points", "Fixed points at the constant input on the recorded trajectories (grey); "
                           "filled: stable, open: unstable with unstable eigenvectors (orange). Below: Jacobian "
                           "eigenvalues with the unit circle.")  # fmt: skip
    out["speed-accuracy"] = (
        "Speed-accuracy and compute",
        f"Accuracy of each model's readout ({c.target}) when each stimulus stops at the first step whose normalised "
        "entropy falls below a threshold, against mean FLOPs per stimulus (torch's count; dots: every stimulus "
        "stopped at one step). Right: each model's accuracy at another's compute minus that model's best accuracy, "
        "with 95% bootstrap intervals over stimuli (n/a: cannot run that cheaply).",
    )
    for name, effect in c.interventions.items():
        n = effect.control_effects.shape[0]
        controls = f", and {n} random controls (band: their 2.5-97.5%)" if n else ""
        out[f"intervention-{name}"] = (
            f"Intervention: {name}",
            f"{effect.score_name} over time, intact and changed (band: 95% bootstrap interval of the change over "
            f"stimuli){controls}; right: correlation of the changed model's RDMs with the intact model's at each step.",
        )
    return out


def numbers(c: ComparisonResult, key: str) -> dict[str, list[Any]] | None:
    """Each model's key numbers for one figure (its result's summary()), as a table."""
    if key == "pca":
        results = {name: c.pca[name] for name in c.names}
    elif key == "generalization":
        results = {name: c.generalization[name] for name in c.names}
    elif key == "fixed-points":
        results = {n: fp for n, fp in c.fixed_points.items() if not isinstance(fp, str)}
    elif key == "decoding":
        results = {name: c.decoding[name][c.focus[name]] for name in c.names}
    elif key.startswith("encoding-"):
        results = {name: c.encoding[key[9:]][name] for name in c.names}
    elif key == "alignment":
        results = {"all models": c.alignment}
    elif key == "dsa":
        results = {"all models": c.dsa}
    elif key in ("jpca", "tdr", "dpca"):
        results = {n: r for n, r in getattr(c, key).items() if not isinstance(r, str)}
    elif key == "speed-accuracy":
        results = dict(c.speed_accuracy)
    elif key.startswith("intervention-"):
        return c.interventions[key[13:]].table()
    elif key.startswith("rsa-"):
        neural = key[4:]
        results = {name: c.rsa[neural][name][_shown_rsa_layer(c, neural, name)] for name in c.names}
    else:
        return None
    rows = [{"model": name, **result.summary()} for name, result in results.items()]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}
