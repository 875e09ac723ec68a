"""Gated and vanilla recurrent networks on the step protocol, and `from_module`.

`LSTM`, `GRU` and `VanillaRNN` keep their weights in a torch ``nn.LSTM``/
``nn.GRU``/``nn.RNN`` (so they load torch weights and run the same arithmetic),
step with the exact cells of :mod:`rnnprobe.models.unrolled` and read out every
step through a linear layer. States are batch-first: ``h`` is (batch, layers,
hidden) and, for the LSTM, ``state = (h, c)``.

LSTM (Hochreiter & Schmidhuber 1997, with forget gate: Gers et al. 2000)::

    [i, f, g, o]_t = [σ, σ, tanh, σ](W_i x_t + b_i + W_h h_{t-1} + b_h)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t)

GRU (Cho et al. 2014)::

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr),  z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn)),  h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

Vanilla (Elman 1990): ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, f = tanh or ReLU.
Every model outputs ``y_t = W_out h_t + b_out`` from the last layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_int
from ..errors import ArgumentError, ArgumentTypeError, describe
from ..recording.tap import Tap
from .base import RecurrentModel, State, embedding
from .unrolled import GATES, gru_cell, layer_weights, lstm_cell, rnn_cell, rnn_kind


class TorchRNNStep(RecurrentModel):
    """The step protocol over a torch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (weights shared, not copied).

    Parameters
    ----------
    module : nn.LSTM, nn.GRU or nn.RNN
        Unidirectional; any number of layers, bias or not, ``proj_size`` for LSTM.
    readout : nn.Module, optional
        Applied to the last layer's ``h_t`` at every step (default: identity,
        so outputs equal the module's own output sequence).
    record_gates : bool
        Also tap the gates (LSTM ``i, f, g, o``; GRU ``r, z, n``) of every layer.

    Notes
    -----
    Taps (recordable states, per layer ``k``): ``l{k}.h``, ``l{k}.c`` (LSTM) and,
    with ``record_gates``, ``l{k}.<gate>``.
    """

    def __init__(
        self,
        module: nn.RNNBase,
        *,
        readout: nn.Module | None = None,
        record_gates: bool = False,
        embed: nn.Module | None = None,
    ) -> None:
        super().__init__()
        kind = rnn_kind(module)
        if kind is None:
            raise ArgumentTypeError(f"module: got {describe(module)}. Pass an nn.LSTM, nn.GRU or nn.RNN.")
        if module.bidirectional:
            raise ArgumentError(
                "module: a bidirectional module reads the sequence backwards too, so it has no step-by-step "
                "recurrence. Use a unidirectional module (record a bidirectional one with rnnprobe.record)."
            )
        self.kind = kind
        self.rnn = module
        self.readout = readout if readout is not None else nn.Identity()
        self.embed = embed if embed is not None else nn.Identity()
        in_features = getattr(self.embed, "in_features", None)
        self.input_size = int(in_features) if in_features is not None else module.input_size
        self.hidden_size = module.hidden_size
        self.num_layers = module.num_layers
        self.state_size = getattr(module, "proj_size", 0) or module.hidden_size
        out_features = getattr(self.readout, "out_features", None)
        self.output_size = int(out_features) if out_features is not None else self.state_size
        parts = ["h"] + (["c"] if kind == "LSTM" else []) + (list(GATES[kind]) if record_gates else [])
        self.record_gates = record_gates
        self.taps = nn.ModuleList(
            nn.ModuleDict({p: Tap(f"l{k}.{p}", observe_only=p in GATES[kind]) for p in parts})
            for k in range(self.num_layers)
        )

    def init_state(self, batch_size: int) -> State:
        """Zero hidden (and cell) states of every layer, for ``batch_size`` sequences."""
        device, dtype = self._like()
        h = torch.zeros(batch_size, self.num_layers, self.state_size, device=device, dtype=dtype)
        if self.kind == "LSTM":
            return h, torch.zeros(batch_size, self.num_layers, self.hidden_size, device=device, dtype=dtype)
        return h

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One step of every layer, with the module's own weights."""
        if self.kind == "LSTM":
            h_all, c_all = state
        else:
            h_all, c_all = state, None
        hs, cs = [], []
        inp = self.embed(x_t)
        for k in range(self.num_layers):
            w = layer_weights(self.rnn, k, reverse=False)
            x_proj = inp @ w["w_ih"].T
            if w["b_ih"] is not None:
                x_proj = x_proj + w["b_ih"]
            taps = self.taps[k]
            if self.kind == "LSTM":
                h, c, gates = lstm_cell(x_proj, h_all[:, k], c_all[:, k], w["w_hh"], w["b_hh"], w["w_hr"])
                cs.append(taps["c"](c))
            elif self.kind == "GRU":
                h, gates = gru_cell(x_proj, h_all[:, k], w["w_hh"], w["b_hh"])
            else:
                h, gates = rnn_cell(x_proj, h_all[:, k], w["w_hh"], w["b_hh"], self.rnn.nonlinearity), ()
            if self.record_gates:
                for name, gate in zip(GATES[self.kind], gates, strict=True):
                    taps[name](gate)
            h = taps["h"](h)  # the tapped h goes on (an intervention on it reaches the next layer and step)
            hs.append(h)
            inp = h
            if self.training and self.rnn.dropout > 0 and k < self.num_layers - 1:
                inp = nn.functional.dropout(inp, p=self.rnn.dropout, training=True)
        h_new = torch.stack(hs, dim=1)
        new_state = (h_new, torch.stack(cs, dim=1)) if self.kind == "LSTM" else h_new
        return self.readout(h_new[:, -1]), new_state

    def connection_parameters(self) -> dict[str, list[list[str]]]:
        """``input`` (W_ih, b_ih), ``recurrent`` (W_hh) of every layer, and ``readout`` if it has weights."""
        found = {
            "input": [[f"rnn.{n}" for n in (f"weight_ih_l{k}", f"bias_ih_l{k}") if hasattr(self.rnn, n)]
                      for k in range(self.num_layers)],
            "recurrent": [[f"rnn.weight_hh_l{k}"] for k in range(self.num_layers)],
        }  # fmt: skip
        readout = [f"readout.{n}" for n, _ in self.readout.named_parameters()]
        if readout:
            found["readout"] = [readout]
        return found

    def fusable(self) -> bool:
        """Whether :meth:`fused_forward` computes what ``forward`` does: this class's own ``forward``, ``step`` and
        ``init_state`` (a subclass's own, such as a learned initial state or noise added in ``forward``, would be
        skipped), the step unpatched (no step counter of :func:`~rnnprobe.models.base.watch_steps`), no hook on any
        part (a recording's taps, an
        intervention, the user's own), a linear (or no) input embedding and readout, and no dropout between
        layers in training (torch's module would draw its masks in another order). An LSTM with projections
        (``proj_size``) steps: torch's CPU kernels do not fuse it (and warn at every call).
        """
        own = (type(self).step, type(self).init_state, type(self).forward)
        if own != (TorchRNNStep.step, TorchRNNStep.init_state, RecurrentModel.forward):
            return False
        if "step" in self.__dict__ or _global_hooks():
            return False
        if getattr(self.rnn, "proj_size", 0):
            return False
        if any(type(m) not in (nn.Identity, nn.Linear) for m in (self.embed, self.readout)):
            return False
        if self.training and self.rnn.dropout > 0 and self.num_layers > 1:
            return False
        return not any(_hooked(m) for m in self.modules() if m is not self)

    def fused_forward(self, x: Tensor, state: State | None = None) -> Tensor:
        """``forward(x, state)`` in one call of the torch module (its fused kernels), not step by step: the same
        arithmetic to float rounding (float32: 1e-5, tested), 2.0-2.6x faster to train (64 units, 40 steps, a batch
        of 64, AMD EPYC, 1 thread). :func:`rnnprobe.train` runs it where :meth:`fusable`; ``model(x)`` always
        steps, so that taps and interventions see every step and results never mix the two roundings.

        Examples
        --------
        >>> import torch
        >>> model = GRU(3, 16, 2)
        >>> x = torch.randn(5, 10, 3)
        >>> bool(torch.allclose(model.fused_forward(x), model(x), atol=1e-6))
        True
        """
        self.check_input(x)
        hx = None if state is None else self.torch_state(state)
        first = self.rnn.batch_first
        out, _ = self.rnn(self.embed(x) if first else self.embed(x).transpose(0, 1), hx)
        return self.readout(out if first else out.transpose(0, 1))

    def torch_state(self, state: State) -> Tensor | tuple[Tensor, Tensor]:
        """A batch-first state in the (layers, batch, size) layout torch modules take as ``hx``."""
        if self.kind == "LSTM":
            return state[0].transpose(0, 1).contiguous(), state[1].transpose(0, 1).contiguous()
        return state.transpose(0, 1).contiguous()


def from_module(module: nn.RNNBase, *, readout: nn.Module | None = None, record_gates: bool = False) -> TorchRNNStep:
    """The recurrent-step protocol over an existing trained ``nn.RNN``/``nn.GRU``/``nn.LSTM``.

    Weights are shared with ``module`` (not copied). ``forward(x)`` equals the
    module's own output for batch-first ``x`` to float rounding (1e-6).

    Examples
    --------
    >>> import torch
    >>> lstm = torch.nn.LSTM(3, 8, num_layers=2, batch_first=True)
    >>> model = from_module(lstm)
    >>> h, c = model.init_state(4)
    >>> out, (h, c) = model.step(torch.randn(4, 3), (h, c))
    >>> tuple(out.shape), tuple(c.shape)
    ((4, 8), (4, 2, 8))
    """
    return TorchRNNStep(module, readout=readout, record_gates=record_gates)


class _ZooRNN(TorchRNNStep):
    """A torch recurrent module plus a linear readout, built from a config."""

    torch_class: type[nn.RNNBase]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        num_layers: int = 1,
        record_gates: bool = False,
        embedding_size: int | None = None,
        **extra: Any,
    ) -> None:
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size),
                            ("num_layers", num_layers)):  # fmt: skip
            check_int(name, value)
        embed = embedding(input_size, embedding_size)
        module = self.torch_class(
            embedding_size or input_size, hidden_size, num_layers=num_layers, batch_first=True, **extra
        )
        super().__init__(module, readout=nn.Linear(hidden_size, output_size), record_gates=record_gates, embed=embed)
        self.config = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            output_size=output_size,
            num_layers=num_layers,
            record_gates=record_gates,
            embedding_size=embedding_size,
            **extra,
        )


class LSTM(_ZooRNN):
    """LSTM with a linear readout at every step (see the module docstring for the equations).

    Examples
    --------
    >>> import torch
    >>> model = LSTM(3, 16, 2, num_layers=2)
    >>> model(torch.randn(5, 10, 3)).shape
    torch.Size([5, 10, 2])
    """

    torch_class = nn.LSTM


class GRU(_ZooRNN):
    """GRU with a linear readout at every step (see the module docstring for the equations).

    Examples
    --------
    >>> import torch
    >>> GRU(3, 16, 2)(torch.randn(5, 10, 3)).shape
    torch.Size([5, 10, 2])
    """

    torch_class = nn.GRU


class VanillaRNN(_ZooRNN):
    """Elman RNN (``nonlinearity="tanh"`` or ``"relu"``) with a linear readout at every step.

    Examples
    --------
    >>> import torch
    >>> VanillaRNN(3, 16, 2, nonlinearity="relu")(torch.randn(5, 10, 3)).shape
    torch.Size([5, 10, 2])
    """

    torch_class = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        nonlinearity: str = "tanh",
        num_layers: int = 1,
        record_gates: bool = False,
        embedding_size: int | None = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ArgumentError(f"nonlinearity: got {describe(nonlinearity)}. Pass 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, output_size, num_layers=num_layers, record_gates=record_gates,
                         embedding_size=embedding_size, nonlinearity=nonlinearity)  # fmt: skip


def _hooked(module: nn.Module) -> bool:
    """Whether ``module`` has a forward or backward hook (before or after) of its own."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)  # fmt: skip


def _global_hooks() -> bool:
    """Whether a hook is registered for every module (``torch.nn.modules.module.register_module_forward_hook``...)."""
    from torch.nn.modules import module

    return bool(module._global_forward_hooks or module._global_forward_pre_hooks or module._global_backward_hooks
                or module._global_backward_pre_hooks)  # fmt: skip
