"""Long work shows a progress bar on stderr when asked (progress=True), by default only when stderr is a
terminal (progress=None), and never with progress=False."""

import sys

import numpy as np
import pytest

from rnnprobe import Recording
from rnnprobe.analysis.decoding import decode
from rnnprobe.analysis.fixed_points import find_fixed_points
from rnnprobe.analysis.inference import bootstrap_subjects, permutation_test
from rnnprobe.errors import ArgumentTypeError


def _linear(x, u):
    return 0.5 * x + u


def _calls(rng):
    label = np.repeat([0, 1], 15)
    rec = Recording({"h": rng.normal(size=(30, 3, 4)) + label[:, None, None]}, metadata={"label": label})
    truth = rng.random(45)
    data = truth + rng.normal(0, 0.3, size=(4, 45))
    starts = rng.normal(size=(8, 2))
    return {
        "permutations": lambda **kw: decode(rec, "h", "label", cv=3, n_permutations=10, **kw),
        "fixed points": lambda **kw: find_fixed_points(_linear, inputs=[1.0], initial_states=starts, **kw),
        "bootstrap": lambda **kw: bootstrap_subjects(truth, data, n_bootstrap=5, comparison="tau-a", **kw),
        "permutations ": lambda **kw: permutation_test(truth, data, n_permutations=20, **kw),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["permutations", "fixed points", "bootstrap", "permutations "])
def test_progress_bar_on_request_on_a_terminal_and_silenced(rng, capsys, monkeypatch, name):
    call = _calls(rng)[name]
    call(progress=True)
    assert name.strip() in capsys.readouterr().err
    call(progress=False)
    assert capsys.readouterr().err == ""
    call()  # the default: stderr is captured here, not a terminal
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    call()  # a terminal: the bar shows
    assert name.strip() in capsys.readouterr().err


def test_progress_must_be_a_flag(rng):
    with pytest.raises(ArgumentTypeError, match="progress: got 'yes'"):
        _calls(rng)["permutations "](progress="yes")
