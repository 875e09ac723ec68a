"""Show the zoo models learn what the papers say, on fixed step budgets (1 thread).

Run:  OMP_NUM_THREADS=1 python benchmarks/models_reproduce.py [--seeds 3] [--jobs 2] [--only GROUP ...]

Groups (recipes in rnnprobe.models.recipes):
  flipflop   GRU, LSTM and vanilla RNN reach >= 99.5% sign accuracy on held-out trials
  retrieval  associative retrieval with R=20, same budget: fast weights error < 30%, LSTM > 50%
  occluded   BL and BLT beat B, B-K and B-F in final-step accuracy on heavy occlusion (>= 3 seeds)
  energy     energy-efficient RNN: mean |preactivation| after step 1 below the input-only baseline;
             prediction units are found
Each (recipe, seed) trains from scratch in a worker process; results are printed as a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from _machine import print_machine

os.environ.setdefault("OMP_NUM_THREADS", "1")

GROUPS = {
    "flipflop": ["flipflop-gru", "flipflop-lstm", "flipflop-rnn"],
    "retrieval": ["retrieval-fastweights", "retrieval-lstm"],
    "occluded": ["occluded-b", "occluded-bk", "occluded-bf", "occluded-bl", "occluded-blt"],
    "energy": ["energy-efficient"],
}


def run(name: str, seed: int, save_dir: str | None = None) -> tuple[str, int, dict]:
    import torch

    from rnnprobe.models.checkpoint import save_checkpoint
    from rnnprobe.models.recipes import RECIPES, evaluate_recipe
    from rnnprobe.models.training import train

    torch.set_num_threads(1)
    recipe = RECIPES[name]
    model, task = recipe.build(seed)
    start = time.perf_counter()
    history = train(model, task, steps=recipe.steps, lr=recipe.lr, batch_size=recipe.batch_size, seed=seed,
                    progress=False, log_every=50, **recipe.train_kwargs)  # fmt: skip
    metrics = evaluate_recipe(name, model, task)
    seconds = time.perf_counter() - start
    if save_dir is not None and seed == 0:  # the same model scripts/train_checkpoints.py makes
        saved = dict(metrics, train_seconds=round(seconds, 1), steps=recipe.steps, seed=seed)
        save_checkpoint(f"{save_dir}/{name}.pt", model, task=task, metrics=saved, history=history.to_dict())
    metrics["seconds"] = seconds
    return name, seed, metrics


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per recipe (occluded digits: at least 3)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (1 torch thread each)")
    parser.add_argument("--only", nargs="*", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument("--save-checkpoints", metavar="DIR", help="also save each recipe's seed-0 model there")
    args = parser.parse_args()
    jobs = [(name, seed) for group in args.only for name in GROUPS[group] for seed in range(args.seeds)]
    results: dict[str, list[dict]] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        names, seeds = zip(*jobs, strict=True)
        for name, seed, metrics in pool.map(run, names, seeds, [args.save_checkpoints] * len(jobs)):
            results.setdefault(name, []).append(metrics)
            print(f"  done {name} seed {seed} ({metrics['seconds']:.0f} s)", file=sys.stderr, flush=True)

    def summary(name: str, key: str) -> str:
        values = [m[key] for m in results[name]]
        return f"{statistics.mean(values):.3f} (" + ", ".join(f"{v:.3f}" for v in values) + ")"

    print(f"seeds: {args.seeds}; each cell: mean (per seed)")
    if "flipflop" in args.only:
        print("\n[flip-flop, 3 bits, 100 steps] held-out sign accuracy (goal >= 0.995)")
        for name in GROUPS["flipflop"]:
            print(f"  {name:24s} {summary(name, 'test_sign_accuracy')}")
    if "retrieval" in args.only:
        print(
            "\n[associative retrieval, 4 pairs, R=20, same budget] test error (goal: fast weights < 0.30, LSTM > 0.50)"
        )
        for name in GROUPS["retrieval"]:
            print(f"  {name:24s} {summary(name, 'test_error')}")
    if "occluded" in args.only:
        from rnnprobe.models.recipes import RECIPES

        heavy = max(RECIPES["occluded-b"].make_task().levels)
        print(
            f"\n[occluded digits] final-step accuracy, heavy occlusion ({heavy} fragments) and all levels "
            f"(goal: BL and BLT above B, B-K and B-F)"
        )
        for name in GROUPS["occluded"]:
            print(
                f"  {name:24s} heavy {summary(name, f'test_accuracy_occlusion_{heavy}')}   "
                f"all {summary(name, 'test_accuracy')}"
            )
    if "energy" in args.only:
        print("\n[energy-efficient RNN on ascending digit sequences]")
        for key in ("mean_abs_preactivation_after_first_step", "input_only_baseline", "n_prediction_units"):
            print(f"  {key:42s} {summary('energy-efficient', key)}")


if __name__ == "__main__":
    main()
