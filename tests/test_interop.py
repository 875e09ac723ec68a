import numpy as np
import pytest

from rnnprobe import Recording
from rnnprobe.errors import ArgumentTypeError


@pytest.fixture
def rec(rng):
    return Recording(
        {"conv": rng.normal(size=(8, 3, 2, 2, 2)), "h": rng.normal(size=(8, 5, 4)).astype(np.float32)},
        metadata={"label": np.arange(8) % 4, "image": [f"im{i}" for i in range(8)]},
        times={"conv": np.array([0.0, 0.5, 1.0])},
        provenance={"model_class": "pkg.BLT"},
    )


def _corr_rdm(x):
    """Brute-force 1 - Pearson r between rows (the rsatoolbox 'correlation' RDM)."""
    n = x.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = 1 - np.corrcoef(x[i], x[j])[0, 1]
    return out[np.triu_indices(n, 1)]


# rsatoolbox's own condition averaging fills an int array with NaN; not caused by rnnprobe
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_to_rsatoolbox_dataset(rec):
    import rsatoolbox

    ds = rec.to_rsatoolbox("conv", time=-1)
    assert isinstance(ds, rsatoolbox.data.Dataset)
    assert ds.measurements.shape == (8, 8)  # units (2, 2, 2) flattened into channels
    np.testing.assert_array_equal(ds.obs_descriptors["label"], np.arange(8) % 4)
    assert list(ds.obs_descriptors["image"]) == [f"im{i}" for i in range(8)]
    np.testing.assert_array_equal(ds.obs_descriptors["stimulus"], np.arange(8))
    np.testing.assert_array_equal(ds.channel_descriptors["unit"], np.arange(8))
    assert ds.descriptors == {"layer": "conv", "model": "pkg.BLT", "time_index": 2, "time": 1.0}
    rdm = rsatoolbox.rdm.calc_rdm(ds, method="correlation")
    np.testing.assert_allclose(rdm.get_vectors()[0], _corr_rdm(rec["conv"][:, 2].reshape(8, -1)), rtol=1e-10)
    # condition averaging by a metadata column works through rsatoolbox descriptors
    averaged = rsatoolbox.rdm.calc_rdm(ds, method="euclidean", descriptor="label")
    assert averaged.n_cond == 4


@pytest.mark.filterwarnings("ignore:.concat. Multiple pattern descriptors:UserWarning")
def test_to_rsatoolbox_temporal(rec):
    import rsatoolbox

    tds = rec.to_rsatoolbox("h")
    assert isinstance(tds, rsatoolbox.data.TemporalDataset)
    assert tds.measurements.shape == (8, 4, 5)  # (observation, channel, time)
    np.testing.assert_array_equal(tds.time_descriptors["time"], np.arange(5))
    rdms = rsatoolbox.rdm.calc_rdm_movie(tds, method="correlation")
    assert rdms.n_rdm == 5
    for t in range(5):
        np.testing.assert_allclose(rdms.get_vectors()[t], _corr_rdm(rec["h"][:, t].astype(np.float64)), rtol=1e-5)


def test_to_rsatoolbox_bad_time(rec):
    with pytest.raises(ArgumentTypeError, match=r"time: got 1.5"):
        rec.to_rsatoolbox("h", time=1.5)


def test_to_xarray(rec):
    xr = pytest.importorskip("xarray")
    da = rec.to_xarray("conv")
    assert isinstance(da, xr.DataArray)
    assert da.dims == ("stimulus", "time", "unit0", "unit1", "unit2")
    np.testing.assert_array_equal(da.coords["time"], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(da.sel(time=0.5).values, rec["conv"][:, 1])
    assert list(da.coords["image"].values) == [f"im{i}" for i in range(8)]
    ds = rec.to_xarray()
    assert set(ds.data_vars) == {"conv", "h"}
    assert ds["h"].dims == ("stimulus", "time_h", "h_unit")  # times differ between layers
    np.testing.assert_array_equal(ds["h"].values, rec["h"])
    same_time = rec.select("h").to_xarray()
    assert same_time["h"].dims == ("stimulus", "time", "h_unit")
    assert '"model_class": "pkg.BLT"' in ds.attrs["provenance"]
