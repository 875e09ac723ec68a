"""Stratified group k-fold: rnnprobe's folds vs scikit-learn's StratifiedGroupKFold (the same folds).

Run:  OMP_NUM_THREADS=1 python benchmarks/group_folds.py [--repeats 3]

decode(..., groups=...) and memory_decay (each stimulus's steps a group) split classification targets with
StratifiedGroupKFold(k, shuffle=True, random_state=seed). rnnprobe.analysis._group_folds gives the same
(train, test) pairs (checked equal first); cases: memory_decay's pooled samples of 61,035 stimuli x 4 steps
(10 classes, a new class at every step), and 600 groups of 20 trials (4 classes). Medians of --repeats.
"""

from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _machine import Results, median_time, print_machine
from sklearn.model_selection import StratifiedGroupKFold

from rnnprobe.analysis._group_folds import stratified_group_folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_machine()
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    cases = {
        "61,035 groups of 4 samples, 10 classes": (rng.integers(0, 10, 61035 * 4), np.repeat(np.arange(61035), 4)),
        "600 groups of 20 samples, 4 classes": (rng.integers(0, 4, 12000), np.repeat(np.arange(600), 20)),
    }
    results = Results(__file__)
    for name, (y, groups) in cases.items():
        theirs, expected = median_time(
            lambda y=y, g=groups: list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(y, y, g)),
            args.repeats,
        )
        ours, got = median_time(lambda y=y, g=groups: stratified_group_folds(y, g, 5, 0), args.repeats)
        for (train, test), (want_train, want_test) in zip(got, expected, strict=True):  # equal first
            np.testing.assert_array_equal(test, want_test)
            np.testing.assert_array_equal(train, want_train)
        print(f"  {name:42s} scikit-learn {theirs:7.3f} s   rnnprobe {ours:7.3f} s   {theirs / ours:5.1f}x"
              "  (folds equal)")  # fmt: skip
        results.add(f"stratified group 5-fold, {name}", "scikit-learn", theirs, ours)
    results.save()


if __name__ == "__main__":
    main()
