"""``--scheduler``: the commands' dask client, connected to a running scheduler (no cluster of rnnprobe's own).

``rnnprobe record config.toml --scheduler tcp://host:8786`` records every model in shards of stimuli on the
scheduler's workers (``record(..., client=...)``); ``analyze`` and ``report`` open the stores dask-backed
(``Recording.load(path, chunks="auto")``) so that the blockwise analyses run on the workers (see
docs/scale.md). A factory's module beside the config (``factory = "mymodels:build"`` with ``mymodels.py``)
is sent to the workers, which unpickle the model's class from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ArgumentError

CONNECT_TIMEOUT = "10s"


@contextlib.contextmanager
def cluster_client(address: str | None, config: Any) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address`` (a URL, or a scheduler file written by ``dask
    scheduler --scheduler-file``), closed on exit; None without an address.
    """
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise ArgumentError(
            "--scheduler: dask.distributed is not installed here. pip install 'dask[distributed]' (the same version "
            "as the scheduler's)."
        ) from None
    where = {"scheduler_file": address} if Path(address).is_file() else {"address": address}
    try:
        client = Client(**where, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ArgumentError(
            f"--scheduler: cannot reach a dask scheduler at {address!r} ({type(exc).__name__}: {exc}). Start one there "
            f"(`dask scheduler`, or a dask-jobqueue cluster) and pass its address (tcp://host:8786) or scheduler file."
        ) from None
    with client:
        for module in factory_modules(config):
            client.upload_file(str(module))
        yield client


def factory_modules(config: Any) -> list[Path]:
    """The single-file modules beside the config that its factories import (``mymodels.py`` for "mymodels:build";
    a package's modules must be importable on the workers already).
    """
    base = config.path.parent
    names = {spec.factory.split(":")[0] for spec in config.models if spec.factory is not None}
    return sorted(path for name in names if "." not in name and (path := base / f"{name}.py").is_file())
