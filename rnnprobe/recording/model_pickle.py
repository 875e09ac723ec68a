"""The caller's objects as bytes for dask's workers, with the code of the caller's own modules inside.

A worker rebuilds a model (or a ``forward`` function, or an analysis's estimator) from its pickle. A plain
pickle names each class and function by its module, so a worker could only rebuild those of modules it can
import: a class defined in the calling script or notebook (``__main__``), in a file beside it (``from mynet
import Net``), or in a module that such a file imports, failed on workers started elsewhere (``dask worker`` on
other machines, in folders of their own). Here the modules that are the caller's own code go by value
(cloudpickle, dask's own): every module loaded from a ``.py`` file outside the standard library and the
installed packages (site-packages, or a distribution such as an editable install). Installed packages (torch,
scikit-learn, rnnprobe, a model zoo) go by name, as in a plain pickle: the workers need them installed, and a
class a worker cannot import is one error naming the fix. Sending code by value also keeps a long-lived cluster
from running an older copy of a module the user has since edited.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import pickle
import site
import sys
import sysconfig
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ArgumentError

# cloudpickle keeps the modules it sends by value in one set of its own: registrations made for one pickle are
# undone after it, one pickle at a time (two threads recording at once would otherwise undo each other's)
_REGISTRATION = threading.Lock()
ALWAYS_BY_NAME = ("rnnprobe", "__main__")  # the workers run rnnprobe's own code; cloudpickle sends __main__'s
_BY_NAME = frozenset(ALWAYS_BY_NAME) | sys.stdlib_module_names  # top-level names never sent by value


def pickled(value: Any, *, what: str = "model") -> bytes:
    """``value`` (a model with record's settings, whose ``forward`` may be the caller's code; an analysis's
    arguments) pickled by cloudpickle with the caller's own modules (:func:`own_modules`) sent by value; a
    module the caller registered by value itself stays registered. A model is not handed to dask as it is:
    dask's torch serializer rebuilds modules with plain dicts as hook tables, which torch's hooks cannot use.

    Where a module of the caller's own holds what no pickle takes (an open file or lock in a global that the
    value's code uses), its code cannot go by value: the modules go by name then, as in a plain pickle (the
    workers import them, from an installed project, say). A value that cannot be pickled either way is one
    error (``what``: the argument, for the message).
    """
    import cloudpickle

    with _REGISTRATION:
        added = [module for module in own_modules() if not _registered(module)]
        for module in added:
            cloudpickle.register_pickle_by_value(module)
        try:
            return cloudpickle.dumps(value)
        except (pickle.PicklingError, TypeError) as exc:
            failure = exc
        finally:
            for module in added:
                cloudpickle.unregister_pickle_by_value(module)
    if added:  # by name (outside the lock, the registrations undone); with none added, the same pickle again
        try:
            return cloudpickle.dumps(value)
        except (pickle.PicklingError, TypeError) as exc:
            failure = exc
    raise ArgumentError(
        f"{what}: cannot be sent to the dask workers: it does not pickle ({type(failure).__name__}: {failure}). "
        f"Everything it holds must pickle (no open files, locks or connections among its attributes); "
        f"open such resources on first use instead."
    ) from None


def unpickled(data: bytes, *, what: str = "model: the model's class or forward function") -> Any:
    """On a worker: the value of :func:`pickled`'s bytes; a class or function the worker cannot import is one
    error (``what``: "argument: what of it", for the message).
    """
    try:
        return pickle.loads(data)
    except (ImportError, AttributeError) as exc:
        argument, _, thing = what.partition(": ")
        raise ArgumentError(
            f"{argument}: the worker on {os.uname().nodename} cannot import {thing} ({type(exc).__name__}: {exc}). "
            f"Install the package that defines it on every worker (the same version as here); the code of the "
            f"calling script and of modules loaded from files outside the installed packages is sent as it is."
        ) from None


def own_modules() -> list[ModuleType]:
    """The loaded modules that are the caller's own code: loaded from a ``.py`` file that lies outside the
    standard library and the site-packages folders, and not part of an installed distribution; rnnprobe's and
    ``__main__`` (which cloudpickle sends by value already) are never among them.
    """
    return [
        module
        for name, module in list(sys.modules.items())
        if isinstance(module, ModuleType)
        and name.partition(".")[0] not in _BY_NAME
        and isinstance(file := getattr(module, "__file__", None), str)
        and file.endswith(".py")
        and _own_file(name.partition(".")[0], file)
    ]


@functools.lru_cache(maxsize=4096)
def _own_file(package: str, file: str) -> bool:
    """Whether a module of top-level ``package`` loaded from ``file`` is the caller's own code. Cached: a loaded
    module's file and the installed packages stay as they are while the process runs, and each resolved path
    costs system calls (a few thousand modules are loaded with torch and dask).
    """
    path = Path(file).resolve()
    return not any(path.is_relative_to(folder) for folder in _installed_folders()) and package not in _distributed()


@functools.lru_cache(maxsize=1)
def _distributed() -> frozenset[str]:
    """The top-level names of the installed distributions (an editable install's too; 0.3 s, once)."""
    return frozenset(importlib.metadata.packages_distributions())


@functools.lru_cache(maxsize=1)
def _installed_folders() -> tuple[Path, ...]:
    """The standard library's and the installed packages' folders of this interpreter."""
    paths = sysconfig.get_paths()
    folders = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    folders += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    folders.append(site.getusersitepackages())
    return tuple(Path(folder).resolve() for folder in dict.fromkeys(folders))


def _registered(module: ModuleType) -> bool:
    """Whether cloudpickle sends ``module`` by value already (registered by the caller)."""
    from cloudpickle import cloudpickle as implementation

    return module.__name__ in getattr(implementation, "_PICKLE_BY_VALUE_MODULES", ())
