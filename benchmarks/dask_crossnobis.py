"""Crossnobis RDMs of a layer on disk: read whole in one process vs blockwise on a LocalCluster.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_crossnobis.py [--gb 0.5] [--units 512] [--dir /path/with/space]

A float32 layer of ``--gb`` GB (stimuli x 4 steps x ``--units``, 10 classes appearing over the steps, each
stimulus in one of 4 runs; written by a separate process) gets its crossnobis RDMs of the 10 classes,
cross-validated over the runs (``compute_rdms(distance="crossnobis", descriptor="label",
cv_descriptor="run")``), three ways: in a fresh process that reads it whole (``Recording.load(path)``),
and dask-backed (``Recording.load(path, chunks="auto")``) with a client on a LocalCluster of 1 and of 2
worker processes (1 thread each), where each task reads one block of steps. The dissimilarities are
checked equal first. Printed: the machine, each way's time and the peak resident memory of each process
that held data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _dask_layer import main


def analyse(recording) -> dict:
    from rnnprobe.analysis import compute_rdms

    rdms = compute_rdms(recording, "h", distance="crossnobis", descriptor="label", cv_descriptor="run")
    return {"dissimilarities": rdms.dissimilarities}


if __name__ == "__main__":
    main(__file__, __doc__, analyse, case="compute_rdms(crossnobis)", labelled=True, gb=0.5, units=512)
