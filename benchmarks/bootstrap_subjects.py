"""Bootstraps of subjects vs rsatoolbox's eval_bootstrap_rdm and eval_bootstrap, side by side (1 thread).

Run:  OMP_NUM_THREADS=1 python benchmarks/bootstrap_subjects.py [--repeats 3] [--samples 200]

4 fixed model RDMs against 15 subjects' RDMs of 92 conditions, ``--samples`` bootstrap samples of the
subjects with the noise ceiling of every sample (as rsatoolbox computes it), comparisons corr, cosine,
spearman and tau-a. rsatoolbox draws the subjects from numpy's global generator: its draws are replayed and given to
rnnprobe as ``indices``, and every evaluation and ceiling is checked equal (1e-6) before the times (medians of
``--repeats``). Under corr and cosine rnnprobe evaluates all samples at once from the subjects' products;
under spearman in blocks of samples, ranking each RDM once and each sample's pooled RDMs; under tau-a every model
against every subject once, and each sample's ceiling from RDMs sorted once. Then rsatoolbox's
eval_bootstrap (conditions and subjects drawn together) against ``bootstrap_conditions_and_subjects``, corr,
cosine and spearman, the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # rsatoolbox's bootstrap progress bars
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _machine import Results, median_time, print_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    print_machine()
    import rsatoolbox
    from rsatoolbox.inference import eval_bootstrap_rdm
    from rsatoolbox.model import ModelFixed

    from rnnprobe.analysis import bootstrap_subjects

    rng = np.random.default_rng(0)
    n_cond, n_subjects, n_boot = 92, 15, args.samples
    truth = rng.random(n_cond * (n_cond - 1) // 2)
    data = truth + rng.normal(0, 1.0, size=(n_subjects, truth.size))
    models = np.stack([truth + rng.normal(0, s, truth.size) for s in (0.5, 1, 2, 4)])
    rsa_models = [ModelFixed(f"m{i}", rsatoolbox.rdm.RDMs(m[None])) for i, m in enumerate(models)]
    rsa_data = rsatoolbox.rdm.RDMs(data)
    state = np.random.RandomState(11)  # rsatoolbox's draws, replayed
    draws = np.stack([state.randint(0, n_subjects, size=n_subjects) for _ in range(n_boot)])
    print(f"[eval_bootstrap_rdm: 4 fixed models, {n_subjects} subjects' RDMs, {n_cond} conditions, {n_boot} samples]")
    out = Results(__file__)
    for method in ("corr", "cosine", "spearman", "tau-a"):

        def theirs_run(m=method):
            np.random.seed(11)  # noqa: NPY002
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return eval_bootstrap_rdm(rsa_models, rsa_data, method=m, N=n_boot)

        theirs, ref = median_time(theirs_run, args.repeats)
        ours, res = median_time(lambda m=method: bootstrap_subjects(models, data, comparison=m, indices=draws,
                                                                    progress=False), args.repeats)  # fmt: skip
        np.testing.assert_allclose(res.evaluations, ref.evaluations, rtol=1e-6, atol=1e-9, err_msg=method)
        np.testing.assert_allclose(res.noise_ceiling, ref.noise_ceiling, rtol=1e-6, atol=1e-9, err_msg=method)
        print(f"  {method:9s} rsatoolbox {theirs:8.3f} s   rnnprobe {ours:8.4f} s   {theirs / ours:8.1f}x")
        out.add(f"eval_bootstrap_rdm {method}, {n_subjects} subjects, {n_boot} samples", "rsatoolbox", theirs, ours)
    joint_case(models, data, n_boot, args.repeats, out)
    out.save()


def joint_case(models: np.ndarray, data: np.ndarray, n_boot: int, repeats: int, out) -> None:
    """rsatoolbox's eval_bootstrap (subjects, then conditions, drawn per sample from numpy's global generator,
    replayed) against bootstrap_conditions_and_subjects, corr, cosine and spearman."""
    import rsatoolbox
    from rsatoolbox.inference import eval_bootstrap
    from rsatoolbox.model import ModelFixed

    from rnnprobe.analysis import bootstrap_conditions_and_subjects

    n_subjects, n_cond = data.shape[0], round((1 + np.sqrt(1 + 8 * data.shape[1])) / 2)
    np.random.seed(12)  # noqa: NPY002
    subjects, conditions = [], []
    for _ in range(n_boot):
        subjects.append(np.random.randint(0, n_subjects, size=n_subjects))  # noqa: NPY002
        conditions.append(np.random.randint(0, n_cond, size=n_cond))  # noqa: NPY002
    indices = (np.stack(conditions), np.stack(subjects))
    rsa_models = [ModelFixed(f"m{i}", rsatoolbox.rdm.RDMs(m[None])) for i, m in enumerate(models)]
    rsa_data = rsatoolbox.rdm.RDMs(data)
    print(f"[eval_bootstrap (conditions and subjects): {n_boot} samples]")
    for method in ("corr", "cosine", "spearman"):

        def theirs_run(m=method):
            np.random.seed(12)  # noqa: NPY002
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return eval_bootstrap(rsa_models, rsa_data, method=m, N=n_boot)

        theirs, ref = median_time(theirs_run, repeats)
        ours, res = median_time(lambda m=method: bootstrap_conditions_and_subjects(
            models, data, comparison=m, indices=indices, progress=False), repeats)  # fmt: skip
        np.testing.assert_allclose(res.evaluations, ref.evaluations, rtol=1e-6, atol=1e-9, err_msg=method)
        np.testing.assert_allclose(res.noise_ceiling, ref.noise_ceiling, rtol=1e-6, atol=1e-9, err_msg=method)
        print(f"  {method:9s} rsatoolbox {theirs:8.3f} s   rnnprobe {ours:8.4f} s   {theirs / ours:8.1f}x")
        out.add(f"eval_bootstrap {method}, {n_subjects} subjects, {n_boot} samples", "rsatoolbox", theirs, ours)


if __name__ == "__main__":
    main()
