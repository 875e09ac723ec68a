"""The caller's model as bytes for dask's workers, with the code of the caller's own modules inside.

A worker rebuilds the model from its pickle. A plain pickle names each class by its module, so a worker could
only rebuild classes of modules it can import: a class defined in the calling script or notebook (``__main__``),
in a file beside it (``from mynet import Net``), or in a module that such a file imports, failed on workers
started elsewhere (``dask worker`` on other machines, in folders of their own). Here the modules that are the
caller's own code go by value (cloudpickle, dask's own): every module loaded from a ``.py`` file outside the
standard library and the installed packages (site-packages, or a distribution such as an editable install).
Installed packages (torch, rnnprobe, a model zoo) go by name, as in a plain pickle: the workers need them
installed, and a class a worker cannot import is one error naming the fix. Sending code by value also keeps a
long-lived cluster from running an older copy of a module the user has since edited.
"""

from __future__ import annotations

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


def pickled_model(model: Any) -> bytes:
    """``model`` (or the model with record's settings, whose ``forward`` may be the caller's code) pickled by
    cloudpickle with the caller's own modules (:func:`own_modules`) sent by value; a module the caller registered
    by value itself stays registered. The model is not handed to dask as it is:
    dask's torch serializer rebuilds modules with plain dicts as hook tables, which torch's hooks cannot use.
    """
    import cloudpickle

    with _REGISTRATION:
        added = [module for module in own_modules() if not _registered(module)]
        for module in added:
            cloudpickle.register_pickle_by_value(module)
        try:
            return cloudpickle.dumps(model)
        finally:
            for module in added:
                cloudpickle.unregister_pickle_by_value(module)


def unpickled_model(model: bytes) -> Any:
    """On a worker: the model from :func:`pickled_model`'s bytes; a class the worker cannot import is one error."""
    try:
        return pickle.loads(model)
    except (ImportError, AttributeError) as exc:
        raise ArgumentError(
            f"model: the worker on {os.uname().nodename} cannot import the model's class or forward function "
            f"({type(exc).__name__}: {exc}). Install the package that defines it on every worker (the same version "
            f"as here); the code of the calling script and of modules loaded from files outside the installed "
            f"packages is sent as it is."
        ) from None


def own_modules() -> list[ModuleType]:
    """The loaded modules that are the caller's own code: loaded from a ``.py`` file that lies outside the
    standard library and the site-packages folders, and not part of an installed distribution; rnnprobe's and
    ``__main__`` (which cloudpickle sends by value already) are never among them.
    """
    installed = _installed_folders()
    candidates = [
        module
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] not in ALWAYS_BY_NAME
        and name.partition(".")[0] not in sys.stdlib_module_names
        and (path := _source_file(module)) is not None
        and not any(path.is_relative_to(folder) for folder in installed)
    ]
    if not candidates:
        return []
    distributed = set(importlib.metadata.packages_distributions())  # (0.3 s: only when there are candidates)
    return [module for module in candidates if module.__name__.partition(".")[0] not in distributed]


def _source_file(module: Any) -> Path | None:
    """The resolved ``.py`` file a module was loaded from, or None (built-in, compiled, namespace, not a module)."""
    file = getattr(module, "__file__", None) if isinstance(module, ModuleType) else None
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    return Path(file).resolve()


def _installed_folders() -> list[Path]:
    """The standard library's and the installed packages' folders of this interpreter."""
    paths = sysconfig.get_paths()
    folders = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    folders += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    folders.append(site.getusersitepackages())
    return [Path(folder).resolve() for folder in dict.fromkeys(folders)]


def _registered(module: ModuleType) -> bool:
    """Whether cloudpickle sends ``module`` by value already (registered by the caller)."""
    from cloudpickle import cloudpickle as implementation

    return module.__name__ in getattr(implementation, "_PICKLE_BY_VALUE_MODULES", ())
