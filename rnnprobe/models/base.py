"""The recurrent-step protocol shared by every model in the zoo.

A model implements::

    init_state(batch_size) -> state
    step(x_t, state) -> (output_t, state)

and inherits ``forward(x)``, which loops ``step`` over the time axis of ``x``
(batch, time, features) and returns the outputs for every step (batch, time,
outputs). A state is a tensor, or a tuple/dict of tensors (LSTM ``(h, c)``,
fast weights ``(h, A)``, BLT per-layer maps). The same ``step`` serves
recording (its :class:`~rnnprobe.Tap` modules mark the recordable states),
training and fixed-point finding (:meth:`pack_state`/:meth:`unpack_state` turn
any state into one vector per batch element and back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_int
from ..errors import ArgumentTypeError, ShapeError, describe

State = Any  # Tensor | tuple[Tensor, ...] | dict[str, Tensor] (nested)


def _leaves(state: State) -> list[Tensor]:
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [leaf for item in state for leaf in _leaves(item)]
    if isinstance(state, Mapping):
        return [leaf for key in state for leaf in _leaves(state[key])]
    raise ArgumentTypeError(f"state: got {describe(state)}. States are tensors or tuples/dicts of tensors.")


def _rebuild(template: State, leaves: list[Tensor]) -> State:
    if isinstance(template, Tensor):
        return leaves.pop(0)
    if isinstance(template, (tuple, list)):
        return type(template)(_rebuild(item, leaves) for item in template)
    return {key: _rebuild(template[key], leaves) for key in template}


def embedding(input_size: int, embedding_size: int | None) -> nn.Module:
    """A learned linear input embedding (no bias, N(0, 1) weights like ``nn.Embedding``), or identity."""
    if embedding_size is None:
        return nn.Identity()
    layer = nn.Linear(input_size, check_int("embedding_size", embedding_size), bias=False)
    nn.init.normal_(layer.weight)
    return layer


class RecurrentModel(nn.Module):
    """Base class of the zoo: a recurrent step, a loop over time, and state packing.

    Subclasses implement :meth:`init_state` and :meth:`step` and set
    ``self.config`` (the constructor's keyword arguments, JSON-serialisable) so
    that checkpoints can rebuild them. ``continuous_time`` is True for models
    whose step is an Euler step of an ODE (stability of fixed points is then
    judged on the continuous-time Jacobian).
    """

    continuous_time: bool = False
    input_size: int
    output_size: int

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    def init_state(self, batch_size: int) -> State:  # pragma: no cover - abstract
        """The state before the first step, for ``batch_size`` sequences."""
        raise NotImplementedError

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:  # pragma: no cover - abstract
        """One time step: (output, next state) for inputs ``x_t`` (batch, features)."""
        raise NotImplementedError

    def check_input(self, x: Tensor) -> None:
        """Raise `ShapeError` unless ``x`` is (batch, time, input_size)."""
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(
                f"x: got {describe(x)}. Pass a torch.Tensor of shape (batch, time, {self.input_size})."
            )
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"x: {type(self).__name__} takes (batch, time, {self.input_size}) inputs, got {describe(x)}. "
                f"Put the batch first and the features last (x.transpose(0, 1) for time-first data)."
            )

    def forward(self, x: Tensor, state: State | None = None, *, return_state: bool = False) -> Any:
        """Run :meth:`step` over the time axis; outputs are (batch, time, output_size)."""
        self.check_input(x)
        if state is None:
            state = self.init_state(x.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            out, state = self.step(x[:, t], state)
            outputs.append(out)
        y = torch.stack(outputs, dim=1)
        return (y, state) if return_state else y

    def _like(self) -> tuple[torch.device, torch.dtype]:
        for p in self.parameters():
            return p.device, p.dtype
        return torch.device("cpu"), torch.get_default_dtype()

    def pack_state(self, state: State) -> Tensor:
        """One vector per batch element: (batch, state_size), leaves flattened in order."""
        leaves = _leaves(state)
        batch = leaves[0].shape[0]
        return torch.cat([leaf.reshape(batch, -1) for leaf in leaves], dim=1)

    def unpack_state(self, vector: Tensor, template: State | None = None) -> State:
        """Inverse of :meth:`pack_state`; ``template`` (default: a fresh state) gives the structure."""
        if template is None:
            template = self.init_state(vector.shape[0])
        leaves = _leaves(template)
        sizes = [leaf[0].numel() for leaf in leaves]
        if vector.dim() != 2 or vector.shape[1] != sum(sizes):
            raise ShapeError(
                f"vector: got {describe(vector)}, but {type(self).__name__}'s state packs into "
                f"(batch, {sum(sizes)}). Pass one packed state per row."
            )
        pieces = torch.split(vector, sizes, dim=1)
        shaped = [piece.reshape(vector.shape[0], *leaf.shape[1:]) for piece, leaf in zip(pieces, leaves, strict=True)]
        return _rebuild(template, shaped)

    def connection_parameters(self) -> dict[str, list[list[str]]]:
        """Named connection types and, per layer, the parameters that carry each.

        Scaling every parameter of a connection scales its contribution (the maps are linear), which
        is what :class:`~rnnprobe.recording.Lesion` does to "cool" one type of connection. Models
        without named connections return ``{}``.
        """
        return {}

    def extra_repr(self) -> str:
        """The model's configuration, shown in its repr."""
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())


@contextlib.contextmanager
def watch_steps(
    model: nn.Module, *, before: Callable[[int], None] | None = None, after: Callable[[int], None] | None = None
) -> Iterator[None]:
    """Call ``before(t)`` and ``after(t)`` around every ``model.step`` call, t counted from each forward call.

    The step method is wrapped on the instance (not the class) and unwrapped on exit, also on error;
    contexts nest. Steps called outside ``model(...)`` count on from the last forward call.

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import GRU
    >>> model, seen = GRU(2, 4, 1), []
    >>> with watch_steps(model, before=seen.append):
    ...     _ = model(torch.randn(3, 5, 2))
    >>> seen
    [0, 1, 2, 3, 4]
    """
    if not callable(getattr(model, "step", None)):
        raise ArgumentTypeError(
            f"model: {type(model).__name__} has no step method. Time steps are known for models on the "
            f"step protocol (init_state/step); see rnnprobe.models.RecurrentModel."
        )
    clock = [0]
    inner = model.step
    saved = model.__dict__.get("step")

    def step(*args: Any, **kwargs: Any) -> Any:
        t = clock[0]
        if before is not None:
            before(t)
        out = inner(*args, **kwargs)
        clock[0] = t + 1
        if after is not None:
            after(t)
        return out

    def reset(module: nn.Module, args: Any) -> None:
        clock[0] = 0

    handle = model.register_forward_pre_hook(reset)
    model.step = step
    try:
        yield
    finally:
        handle.remove()
        if saved is None:
            del model.step
        else:
            model.step = saved
