"""Memory decay of a layer on disk: read whole in one process vs ridge from sums over blocks on a LocalCluster.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_memory_decay.py [--gb 0.5] [--units 512] [--dir /path/with/space]

A float32 layer of ``--gb`` GB (stimuli x 4 steps x ``--units``, 10 classes appearing over the steps;
written by a separate process) is analysed with ``memory_decay(..., lags=[0, 1, 2])`` (ridge, 5 folds that
keep each stimulus's steps together), the input at every step being the stimulus's class, three ways: in a
fresh process that reads it whole (``Recording.load(path)``: every lag's pooled samples in memory), and
dask-backed (``Recording.load(path, chunks="auto")``) with a client on a LocalCluster of 1 and of 2 worker
processes (1 thread each), where each fold's decoder is solved from sums over blocks of stimuli
(rnnprobe.analysis.memory_decay_blockwise). The scores are checked equal first. Printed: the machine, each
way's time and the peak resident memory of each process that held data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _dask_layer import main


def analyse(recording, estimator: str = "ridge") -> dict:
    from rnnprobe.analysis import memory_decay

    label = recording.column("label")
    inputs = np.repeat(label[:, None], recording.shapes["h"][1], axis=1)
    return {"scores": memory_decay(recording, "h", inputs, lags=[0, 1, 2], estimator=estimator).scores}


if __name__ == "__main__":
    main(__file__, __doc__, analyse, case="memory_decay(lags=[0, 1, 2])", labelled=True, gb=0.5, units=512)
