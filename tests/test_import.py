import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, rnnprobe; "
        "heavy = [m for m in ('matplotlib', 'sklearn', 'rsatoolbox', 'torch', 'zarr', 'pandas', 'xarray') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_names_resolve_to_objects_not_modules():
    code = (
        "import rnnprobe, types; assert callable(rnnprobe.recordable); "
        "assert not isinstance(rnnprobe.record, types.ModuleType); "
        "assert isinstance(rnnprobe.Tap, type); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_unknown_attribute():
    import pytest

    import rnnprobe

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rnnprobe.nope  # noqa: B018
