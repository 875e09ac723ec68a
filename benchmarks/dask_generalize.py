"""Temporal generalization of a layer on disk: read whole in one process vs blockwise on a LocalCluster.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_generalize.py [--gb 0.5] [--units 1024] [--dir /path/with/space]

A float32 layer of ``--gb`` GB (stimuli x 4 steps x ``--units``, 10 classes appearing over the steps; written
by a separate process) is decoded with ``decode(..., generalize=True)`` (ridge, 5 stratified folds) three
ways: in a fresh process that reads it whole (``Recording.load(path)``), and dask-backed
(``Recording.load(path, chunks="auto")``) with a client on a LocalCluster of 1 and of 2 worker processes
(1 thread each), where the layer is never gathered: decoders fitted on blocks of steps as tasks, then
scored on blocks of steps as tasks (rnnprobe.analysis.decoding_blockwise). The fold scores are checked
equal first. Printed: the machine, each way's time and the peak resident memory of each process that
held data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _dask_layer import main


def analyse(recording) -> dict:
    from rnnprobe.analysis import decode

    result = decode(recording, "h", "label", generalize=True, progress=False)
    return {"fold_scores": result.fold_scores}


if __name__ == "__main__":
    main(__file__, __doc__, analyse, case="decode(generalize=True)", labelled=True, gb=0.5, units=1024)
