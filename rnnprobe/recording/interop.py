"""Conversions of a `Recording` to xarray and rsatoolbox objects.

Both libraries are imported only when a conversion is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArgumentTypeError, describe

if TYPE_CHECKING:  # pragma: no cover
    from .container import Recording


def _import(module: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{purpose} needs {module.split('.')[0]}: pip install {module.split('.')[0]}") from exc


def _data_array(recording: Recording, layer: str, *, time_dim: str, unit_prefix: str) -> Any:
    xr = _import("xarray", "Recording.to_xarray")
    data = recording.to_dask(layer) if recording.is_dask else recording.get(layer)  # dask layers stay chunked
    unit_dims = [f"{unit_prefix}unit{i}" if data.ndim > 3 else f"{unit_prefix}unit" for i in range(data.ndim - 2)]
    coords: dict[str, Any] = {"stimulus": np.arange(recording.n_stimuli), time_dim: recording.times[layer]}
    for name, column in recording._raw_metadata().items():
        coords[name] = ("stimulus", np.array(column))
    return xr.DataArray(data, dims=["stimulus", time_dim, *unit_dims], coords=coords, name=layer)


def to_xarray(recording: Recording, layer: str | None = None) -> Any:
    """A DataArray ``(stimulus, time, unit...)`` of one layer, or a Dataset of every layer.

    Metadata columns become coordinates along ``stimulus``; provenance becomes ``attrs``.
    In a Dataset, layers with different time coordinates get their own time dimension
    (``time_<layer>``) and each layer's unit dimensions are prefixed with its name.
    """
    import json

    attrs = {"provenance": json.dumps(recording.provenance)}
    if layer is not None:
        array = _data_array(recording, recording.resolve_layer(layer), time_dim="time", unit_prefix="")
        array.attrs.update(attrs)
        return array
    xr = _import("xarray", "Recording.to_xarray")
    times = list(recording.times.values())
    shared_time = all(t.shape == times[0].shape and np.array_equal(t, times[0]) for t in times)
    variables = {
        name: _data_array(recording, name, time_dim="time" if shared_time else f"time_{name}", unit_prefix=f"{name}_")
        for name in recording.layers
    }
    return xr.Dataset(variables, attrs=attrs)


def to_rsatoolbox(recording: Recording, layer: str | None = None, *, time: int | None = None) -> Any:
    """One layer as ``rsatoolbox.data.Dataset`` (one time step) or ``TemporalDataset`` (all steps).

    Observations are stimuli (``obs_descriptors``: ``stimulus`` index plus every metadata
    column), channels are the flattened units (``channel_descriptors``: ``unit``), and
    ``descriptors`` name the layer (and the time step for a Dataset).
    """
    rsd = _import("rsatoolbox.data", "Recording.to_rsatoolbox")
    layer = recording.resolve_layer(layer)
    obs = {"stimulus": np.arange(recording.n_stimuli)}
    obs.update({k: np.array(v) for k, v in recording._raw_metadata().items()})
    n_units = int(np.prod(recording.unit_shape(layer)))
    channels = {"unit": np.arange(n_units)}
    descriptors: dict[str, Any] = {"layer": layer}
    model = recording.provenance.get("model_class")
    if model:
        descriptors["model"] = model
    if time is None:
        data = recording.get(layer, flatten=True)  # (stimulus, time, unit)
        return rsd.TemporalDataset(
            np.ascontiguousarray(data.transpose(0, 2, 1)),
            descriptors=descriptors,
            obs_descriptors=obs,
            channel_descriptors=channels,
            time_descriptors={"time": np.asarray(recording.times[layer])},
        )
    if not isinstance(time, (int, np.integer)) or isinstance(time, bool):
        raise ArgumentTypeError(
            f"time: got {describe(time)}. Pass one time-step index (int), or None for a TemporalDataset."
        )
    data = recording.get(layer, time=int(time), flatten=True)
    descriptors["time_index"] = int(time) % recording.shapes[layer][1]
    descriptors["time"] = recording.times[layer][int(time)].item()
    return rsd.Dataset(data, descriptors=descriptors, obs_descriptors=obs, channel_descriptors=channels)
