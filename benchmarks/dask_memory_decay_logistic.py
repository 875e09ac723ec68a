"""Memory decay by logistic regression of a layer on disk: read whole in one process vs passes over blocks of
stimuli on a LocalCluster (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_memory_decay_logistic.py [--gb 0.25] [--units 512] [--dir /path]

As ``dask_memory_decay.py`` with ``estimator="logistic"`` (a StandardScaler and multinomial logistic regression of
the 10 classes; 5 folds that keep each stimulus's steps together): in a fresh process that reads the layer whole
(every lag's pooled samples fitted in memory by decode's Newton solver), and dask-backed on a LocalCluster of 1
and of 2 worker processes (1 thread each), where a task per lag runs the same solver over the lag's samples read
in blocks of stimuli (``_logistic_rows``: the first pass keeps the blocks in a temporary folder in the worker's
local directory, which the later passes read). The scores are checked equal first. Printed: the machine, each
way's time and the peak resident memory of each process that held data.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _dask_layer import main
from dask_memory_decay import analyse

if __name__ == "__main__":
    main(__file__, __doc__, functools.partial(analyse, estimator="logistic"),
         case="memory_decay(lags=[0, 1, 2], estimator='logistic')", labelled=True, gb=0.25, units=512)  # fmt: skip
