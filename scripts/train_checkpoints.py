"""Retrain the shipped checkpoints from scratch, reproducibly (seed 0, 1 thread, fixed step budgets).

Run:  OMP_NUM_THREADS=1 python scripts/train_checkpoints.py [NAME ...] [--out DIR]

Without names, trains every recipe in rnnprobe.models.recipes.RECIPES and writes
rnnprobe/models/checkpoints/<name>.pt with the held-out metrics and the training history.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from rnnprobe.models.checkpoint import save_checkpoint
from rnnprobe.models.recipes import RECIPES, evaluate_recipe
from rnnprobe.models.shipped import CHECKPOINT_DIR
from rnnprobe.models.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"recipes to train (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.names or list(RECIPES):
        recipe = RECIPES[name]
        model, task = recipe.build(args.seed)
        start = time.perf_counter()
        history = train(model, task, steps=recipe.steps, lr=recipe.lr, batch_size=recipe.batch_size,
                        seed=args.seed, progress=False, log_every=50, **recipe.train_kwargs)  # fmt: skip
        metrics = evaluate_recipe(name, model, task)
        metrics.update(train_seconds=round(time.perf_counter() - start, 1), steps=recipe.steps, seed=args.seed)
        path = save_checkpoint(args.out / f"{name}.pt", model, task=task, metrics=metrics,
                               history=history.to_dict())  # fmt: skip
        print(f"{name}: {json.dumps(metrics)} -> {path}", flush=True)


if __name__ == "__main__":
    main()
