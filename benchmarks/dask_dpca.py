"""dPCA and its significance of trials on disk: read whole in one process vs blockwise on a LocalCluster.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_dpca.py [--gb 0.5] [--units 256] [--dir /path/with/space]

A float32 layer of ``--gb`` GB (trials x 4 steps x ``--units``: a low-rank signal plus noise, a class label per
trial whose mean shifts the signal over the steps; written by a separate process) is demixed by ``fit_dpca``
(parameter: the label, 3 components) and tested by ``dpca_significance`` (20 label shuffles x 5 held-out
splits). Three ways: in a fresh process that reads it whole (``Recording.load(path)``), and dask-backed
(``Recording.load(path, chunks="auto")``) with a client on a LocalCluster of 1 and of 2 worker processes (1
thread each), where the trials are never gathered: the conditions' sums (the shuffles' too, several per
pass) are indicator products with chunks of trials, and only the held-out trials are read
(rnnprobe.analysis.dpca.trials). The decoders and the significance are checked equal first. Printed: the
machine, each way's time and the peak resident memory of each process that held data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _dask_layer import main


def analyse(recording) -> dict:
    from rnnprobe.analysis import dpca_significance, fit_dpca

    fit = fit_dpca(recording, "h", parameters="label", n_components=3)
    tested = dpca_significance(recording, fit, n_shuffles=20, n_splits=5)
    return {"decoders": fit.decoders["label"], "significance": tested.significance["label"].astype(float)}


if __name__ == "__main__":
    main(__file__, __doc__, analyse, case="dpca_significance", labelled=True, gb=0.5, units=256)
