"""Trained checkpoints shipped inside the package (retrain: scripts/train_checkpoints.py)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import UnknownNameError, format_choices

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


def available() -> list[str]:
    """Names of the shipped trained models.

    Examples
    --------
    >>> "flipflop-gru" in available()
    True
    """
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.pt"))


def load(name: str) -> nn.Module:
    """A shipped trained model, in eval mode; ``model.checkpoint`` has its task, metrics and history.

    Examples
    --------
    >>> model = load("flipflop-gru")
    >>> model.checkpoint["task_class"], model.checkpoint["metrics"]["test_sign_accuracy"] > 0.99
    ('FlipFlop', True)
    """
    from .checkpoint import load_checkpoint

    names = available()
    if name not in names:
        raise UnknownNameError(
            f"name: {name!r} is not a shipped model. Available: {format_choices(names)}. "
            f"Load your own files with rnnprobe.models.load_checkpoint(path)."
        )
    return load_checkpoint(CHECKPOINT_DIR / f"{name}.pt")
