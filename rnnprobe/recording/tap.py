"""`Tap`: an identity module that marks a recordable state inside a model."""

from __future__ import annotations

from torch import nn

from ..errors import ArgumentError, describe

SEP = ":"  # separates a module name from a part of its output in layer names ("lstm:h_n")


class Tap(nn.Identity):
    """An identity module that marks a recordable state inside a model.

    Call it on a state wherever the state is computed (e.g. once per step in a
    recurrent loop); :func:`record` then records every call as a time step,
    and a model with taps records exactly its taps by default.

    Examples
    --------
    >>> import torch
    >>> class Loop(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.cell = torch.nn.RNNCell(2, 4)
    ...         self.h = Tap()
    ...     def forward(self, x):
    ...         h = torch.zeros(x.shape[0], 4)
    ...         for t in range(x.shape[1]):
    ...             h = self.h(self.cell(x[:, t], h))
    ...         return h
    >>> from rnnprobe import record
    >>> record(Loop(), torch.randn(5, 3, 2), progress=False).shapes
    {'h': (5, 3, 4)}

    A tap may carry its own name, used instead of its module path (handy for
    taps kept in a ``ModuleList``): ``Tap("l0.c")`` records as ``"l0.c"``.

    Call a tap on the tensor the computation goes on with (``h = tap(h)``), so that
    an intervention on it (:func:`rnnprobe.recording.intervene`) changes what
    follows. A tap on a value that nothing downstream uses (an LSTM's gates,
    kept inside its cell) is made with ``observe_only=True``: it records, and
    interventions on it are refused rather than silently having no effect.
    """

    def __init__(self, name: str | None = None, *, observe_only: bool = False) -> None:
        super().__init__()
        if name is not None and (not isinstance(name, str) or not name or SEP in name):
            raise ArgumentError(f"name: got {describe(name)}. Pass a non-empty string without {SEP!r}.")
        self.name = name
        self.observe_only = bool(observe_only)

    def extra_repr(self) -> str:
        """The tap's own name, shown in its repr."""
        text = repr(self.name) if self.name else ""
        return f"{text}, observe_only=True" if self.observe_only else text
