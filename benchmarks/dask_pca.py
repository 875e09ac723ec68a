"""PCA of a layer on disk: read whole in one process vs blockwise on a LocalCluster of 1 and 2 workers.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_pca.py [--gb 0.5] [--units 2048] [--dir /path/with/space]

A float32 layer of ``--gb`` GB (stimuli x 4 steps x ``--units``, written by a separate process) is fitted by
``fit_pca`` three ways: in a fresh process that reads it whole (``Recording.load(path)``), and dask-backed
(``Recording.load(path, chunks="auto")``) with a client on a LocalCluster of 1 and of 2 worker processes
(1 thread each), where the layer is never gathered (rnnprobe.analysis.pca_blockwise). The components,
variances, trajectories and participation ratios are checked equal first (1e-8 relative to their scale).
Printed: the machine, each way's time and the peak resident memory of each process that held data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _dask_layer import main

FIELDS = ("components", "explained_variance", "trajectories", "participation_ratio")


def analyse(recording) -> dict:
    from rnnprobe.analysis import fit_pca

    result = fit_pca(recording, "h")
    return {name: getattr(result, name) for name in FIELDS}


if __name__ == "__main__":
    main(__file__, __doc__, analyse, case="fit_pca", labelled=False, gb=0.5, units=2048)
