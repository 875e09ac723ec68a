"""The ``rnnprobe`` command: ``demo``, ``models``, ``record``/``analyze``/``report`` from TOML configs."""

from .main import main

__all__ = ["main"]
