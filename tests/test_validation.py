"""The validation layer: each check against what it must accept and refuse, and the public functions
that route their arguments through it (device strings, finite states, time selections)."""

import numpy as np
import pytest
import torch

import rnnprobe
from rnnprobe import Recording, _validation
from rnnprobe.analysis import compute_rdms, decode, find_fixed_points, fit_pca
from rnnprobe.errors import ArgumentError, ArgumentTypeError, NonFiniteError, UnknownNameError
from rnnprobe.testing import make_recording

NO_CUDA = not torch.cuda.is_available()


def _half(x, u):
    return 0.5 * x


@pytest.mark.parametrize("value", [1, 0.5, np.float32(2.0), np.int64(3)])
def test_check_number_accepts_finite_numbers(value):
    assert _validation.check_number("x", value, minimum=0) == float(value)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, "1", None, True, [1.0]])
def test_check_number_refuses_non_numbers(value):
    with pytest.raises(ArgumentError, match=r"x: got .*Pass a finite number"):
        _validation.check_number("x", value)


def test_check_number_bounds():
    assert _validation.check_number("alpha", 0, minimum=0) == 0.0
    with pytest.raises(ArgumentError, match=r"alpha: got 0\. Pass a finite number > 0\."):
        _validation.check_number("alpha", 0, minimum=0, inclusive=False)
    with pytest.raises(ArgumentError, match=r"Pass a finite number >= 0 and <= 1\."):
        _validation.check_number("p", 1.5, minimum=0, maximum=1)


@pytest.mark.parametrize("level", [0, 1, -0.5, 1.5, np.nan])
def test_check_probability_is_open_unit_interval(level):
    with pytest.raises(ArgumentError, match="level"):
        _validation.check_probability("level", level)


@pytest.mark.parametrize("seed", ["x", 2**70, -1, 1.5])
def test_check_seed_refuses(seed):
    with pytest.raises(ArgumentError, match="seed"):
        _validation.check_seed(seed)


def test_check_option_with_unhashable_value():
    with pytest.raises(UnknownNameError, match=r"distance: got \['a'\]"):
        _validation.check_option("distance", ["a"], ("a", "b"))


@pytest.mark.parametrize("device", ["nonsense", 5, "tpu"])
def test_check_device_refuses_unknown(device):
    with pytest.raises(ArgumentError, match="device: got"):
        _validation.check_device(device)


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA device is present")
def test_cuda_without_a_gpu_says_so_in_every_device_path():
    rec = make_recording(n_stimuli=12, n_time=3, n_units=4, seed=0)
    calls = {
        "record": lambda: rnnprobe.record(torch.nn.LSTM(2, 3, batch_first=True), torch.zeros(2, 3, 2), device="cuda"),
        "compute_rdms": lambda: compute_rdms(rec, "h", device="cuda"),
        "decode": lambda: decode(rec, "h", "label", cv=2, device="cuda"),
        "find_fixed_points": lambda: find_fixed_points(_half, initial_states=np.zeros((2, 2)), device="cuda"),
        "fit_pca": lambda: fit_pca(rec, "h", n_components=2, device="cuda"),
    }
    for name, call in calls.items():
        with pytest.raises(ArgumentError, match="no CUDA device on this machine"):
            call()
        assert name


def test_check_progress():
    assert _validation.check_progress(True) and not _validation.check_progress(False)
    with pytest.raises(ArgumentTypeError, match="progress"):
        _validation.check_progress("yes")


def test_check_finite_names_the_layer_count_and_positions():
    states = np.zeros((4, 3, 2))
    states[1, 2, 0] = np.nan
    states[3, 0, 1] = np.inf
    with pytest.raises(
        NonFiniteError, match=r"layer 'h' holds 2 non-finite value\(s\).*first at \(1, 2, 0\), \(3, 0, 1\)"
    ):
        _validation.check_finite(states, name="recording", layer="h")
    assert _validation.check_finite(np.zeros(3), name="x") is not None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_all_finite_agrees_with_isfinite_wherever_the_bad_value_is(dtype, layout):
    """A NaN, +inf or -inf in a full row of dot products or in the tail, each alone and +inf with -inf;
    overflowing squares of finite values; against ``np.isfinite(...).all()``."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(7, 5, 611)).astype(dtype)  # 21,385 values: two rows of 8192 and a tail
    assert base.size > 2 * _validation.DOT_ROWS and base.size % _validation.DOT_ROWS
    places = [(0, 0, 0), (3, 2, 100), (6, 4, 610)]  # first row, second row, tail (C order)

    def arranged(a):
        return {"C": a, "F": np.asfortranarray(a), "strided": a[:, ::2]}[layout]

    assert _validation.all_finite(arranged(base))
    cases = [{p: bad} for p in places for bad in (np.nan, np.inf, -np.inf)]
    cases += [{places[0]: np.inf, places[1]: -np.inf}, {places[1]: np.finfo(dtype).max}]
    for case in cases:
        array = base.copy()
        for place, value in case.items():
            array[place] = value
        array = arranged(array)
        assert _validation.all_finite(array) is bool(np.isfinite(array).all()), case
    huge = np.full((3, 8192), np.finfo(dtype).max / 2, dtype=dtype)  # squares overflow, values finite
    assert _validation.all_finite(huge)
    assert _validation.all_finite(np.arange(5)) and _validation.all_finite(np.zeros((0, 3)))
    assert not _validation.all_finite(np.array([1 + 1j, complex(np.nan, 0)]))


def test_layer_states_checks_and_reads():
    rec = make_recording(n_stimuli=6, n_time=4, n_units=3, seed=1)
    layer, positions, states = _validation.layer_states(rec, None, time=slice(1, 3))
    assert layer == "h" and positions.tolist() == [1, 2] and states.shape == (6, 2, 3)
    np.testing.assert_array_equal(states, rec.get("h", time=[1, 2]))
    with pytest.raises(ArgumentTypeError, match="recording: got"):
        _validation.layer_states(np.zeros((2, 3, 4)), None)


def test_time_positions_refuses_empty_selection_with_the_step_count():
    rec = Recording({"h": np.zeros((3, 30, 2))})
    with pytest.raises(ArgumentError, match=r"selects no time step of layer 'h' \(30 steps, 0..29\)"):
        rec.time_positions("h", slice(40, 50))
    with pytest.raises(ArgumentError, match="selects no time step"):
        fit_pca(rec, time=slice(40, 50))


def test_resolve_layer():
    rec = Recording({"a": np.zeros((2, 1, 1)), "b": np.zeros((2, 1, 1))})
    assert rec.resolve_layer("b") == "b"
    with pytest.raises(ArgumentError, match="this recording has 2 layers"):
        rec.resolve_layer()
    with pytest.raises(UnknownNameError, match="'c' is not in this recording"):
        rec.resolve_layer("c")
    with pytest.raises(ArgumentTypeError, match="Pass a layer name"):
        rec.resolve_layer(3)
