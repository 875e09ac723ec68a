import subprocess
import sys


def _printed(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (which must exit cleanly)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_is_light():
    code = (
        "import sys, rnnprobe; "
        "heavy = [m for m in ('matplotlib', 'sklearn', 'rsatoolbox', 'torch', 'zarr', 'pandas', 'xarray') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    assert _printed(code) == ""


def test_lazy_names_resolve_to_objects_not_modules():
    code = (
        "import rnnprobe, types; assert callable(rnnprobe.recordable); "
        "assert not isinstance(rnnprobe.record, types.ModuleType); "
        "assert isinstance(rnnprobe.Tap, type); assert callable(rnnprobe.train); "
        "assert rnnprobe.models.LSTM and rnnprobe.tasks.FlipFlop; print('ok')"
    )
    assert _printed(code) == "ok"


def test_unknown_attribute():
    import pytest

    import rnnprobe

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rnnprobe.nope  # noqa: B018


def test_importing_submodules_does_not_shadow_functions():
    code = (
        "import rnnprobe.recording.recorder, rnnprobe.models.training, rnnprobe, torch, types; "
        "rec = rnnprobe.record(torch.nn.Sequential(rnnprobe.Tap()), torch.zeros(2, 3), progress=False); "
        "assert rec.shapes == {'0': (2, 1, 3)}; assert callable(rnnprobe.train); "
        "assert isinstance(rnnprobe.record, types.FunctionType); print('ok')"
    )
    assert _printed(code) == "ok"


def test_rank_comparisons_of_short_rdms_import_no_torch():
    # RSA-only work (spearman of RDMs with ties, ranked by numpy) pays no torch import; weighted bootstrap
    # ranks and long rows (the radix sort) import it when they run
    code = (
        "import sys, numpy as np; from rnnprobe.analysis.rsa import compare_rdms; "
        "a = np.array([[1.0, 2.0, 2.0, 3.0, 1.0, 0.0]]); compare_rdms(a, a[:, ::-1], comparison='spearman'); "
        "print('torch' in sys.modules)"
    )
    assert _printed(code) == "False"


def test_encoding_fits_import_no_torch():
    # ridge (leave-one-out, inner_cv, primal from sums, dual) and PLS need numpy alone: torch would cost each dask
    # worker that fits an encoding model 0.18 GiB (twenty-sixth session)
    code = (
        "import sys, numpy as np; from rnnprobe.analysis import fit_encoding; rng = np.random.default_rng(0); "
        "x = rng.normal(size=(60, 8)); y = x[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(size=(60, 4)); "
        "fit_encoding(x, y, ceiling=False); fit_encoding(x, y, inner_cv=3, ceiling=False); "
        "fit_encoding(x, y, estimator='pls', n_components=3, ceiling=False); "
        "fit_encoding(rng.normal(size=(30, 50)), y[:30], estimator='pls_nipals', n_components=2, ceiling=False); "
        "print('torch' in sys.modules)"
    )
    assert _printed(code) == "False"
