"""Encoding models: regressions from model features to neurons or voxels, with noise ceilings.

- :func:`fit_encoding`: ridge (a penalty per target by efficient leave-one-out, primal or dual),
  PLS or any scikit-learn regressor, from every layer and model time step to every (neural time,
  target), scored on held-out stimuli; the Brain-Score "neural predictivity" standard over time.
- :func:`split_half_reliability`: split-half noise ceilings with the Spearman-Brown correction.

See docs/analysis/encoding.md for the equations.
"""

from .ceiling import CeilingResult, split_half_reliability
from .fit import EncodingResult, fit_encoding

__all__ = ["CeilingResult", "EncodingResult", "fit_encoding", "split_half_reliability"]
