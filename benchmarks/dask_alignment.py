"""Alignment metrics of a layer on disk: read whole in one process vs blockwise on a LocalCluster.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_alignment.py [--gb 0.5] [--units 512] [--dir /path/with/space]

A float32 layer of ``--gb`` GB (stimuli x 4 steps x ``--units``: a low-rank signal plus noise; written by a
separate process) is compared with itself by ``compare_representations``: linear CKA in sample at every
pair of steps, and the shape distance (alpha=0.5) with 3-fold cross-validation of steps 0-1 against 2-3.
Three ways: in a fresh process that reads it whole (``Recording.load(path)``), and dask-backed (``Recording.load(path,
chunks="auto")``) with a client on a LocalCluster of 1 and of 2 worker processes (1 thread each), where the
layer is never gathered. With fewer units than stimuli (the default) the blockwise path sums moments over
chunks of stimuli (rnnprobe.analysis.alignment.moments); with more (e.g. ``--units 65536``) it sums the
stimuli's Gram matrices (rnnprobe.analysis.alignment.blockwise). The values are checked equal first.
Printed: the machine, each way's time and the peak resident memory of each process that held data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _dask_layer import main


def analyse(recording) -> dict:
    from rnnprobe.analysis import compare_representations

    cka = compare_representations(recording, recording, metric="cka", progress=False)
    # steps 0-1 against steps 2-3: a step against itself has shape distance ~0, where arccos turns rounding of
    # 1e-16 into 1e-8
    shape = compare_representations(recording, recording, time=(slice(0, 2), slice(2, 4)), metric="shape",
                                    alpha=0.5, cv=3, progress=False)  # fmt: skip
    return {"cka": cka.values, "shape_cv": shape.values}


if __name__ == "__main__":
    main(
        __file__,
        __doc__,
        analyse,
        case="compare_representations",
        labelled=False,
        gb=0.5,
        units=512,
        variant=lambda n, units: "moments (units <= stimuli)" if units <= n else "Gram (units > stimuli)",
    )
