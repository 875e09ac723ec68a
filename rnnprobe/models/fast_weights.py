"""Fast-weights RNN (Ba, Hinton, Mnih, Leibo & Ionescu 2016, "Using fast weights to attend to the recent past", NIPS).

Slow weights W (recurrent) and C (input) are learned; the fast weight matrix A
is a decaying sum of outer products of past hidden states, rewritten every step::

    A(t) = lambda A(t-1) + eta h(t) h(t)^T
    h_0(t+1) = f(W h(t) + C x(t))                                  (preliminary vector)
    h_{s+1}(t+1) = f(LN[W h(t) + C x(t) + A(t) h_s(t+1)]),   s = 0 .. S-1
    h(t+1) = h_S(t+1),      y(t+1) = W_out h(t+1)

with f = ReLU, LN layer normalisation over the hidden units of each sample (not
over the batch, a known bug in public ports) and the paper's defaults
lambda = 0.95, eta = 0.5, S = 1. A(t) is kept per sample, so the state is
(h, A) with A of shape (batch, hidden, hidden).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import check_int
from ..errors import ArgumentError, describe
from ..recording.tap import Tap
from .base import RecurrentModel, embedding


class FastWeightsRNN(RecurrentModel):
    """Fast-weights RNN (see the module docstring for the equations).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    decay : float
        lambda, the fast weights' decay per step (0 < lambda < 1).
    fast_lr : float
        eta, the fast learning rate.
    inner_steps : int
        S, the number of inner-loop iterations.
    record_fast_weights : bool
        Also tap A(t) (hidden x hidden per sample per step: large).
    embedding_size : int, optional
        Encode inputs with a learned linear embedding first (no bias, N(0, 1)
        initialisation), as Ba et al. did for characters (100 dimensions). With
        one-hot inputs and no embedding, C x is small next to A(t) h_s inside the
        layer norm, and associative retrieval does not train (measured: 60% error
        after 20,000 steps at R=20); the embedding gives the input its weight.

    Notes
    -----
    Taps: ``h`` (h(t+1)), ``inner`` (the inner-loop states h_1..h_S, shape (S, hidden) per step)
    and, optionally, ``A``.

    Examples
    --------
    >>> import torch
    >>> model = FastWeightsRNN(37, 20, 10)
    >>> y, (h, A) = model(torch.randn(2, 11, 37), return_state=True)
    >>> tuple(y.shape), tuple(A.shape)
    ((2, 11, 10), (2, 20, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        decay: float = 0.95,
        fast_lr: float = 0.5,
        inner_steps: int = 1,
        record_fast_weights: bool = False,
        embedding_size: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size),
                            ("inner_steps", inner_steps)):  # fmt: skip
            check_int(name, value)
        if not 0 < decay < 1:
            raise ArgumentError(f"decay: got {describe(decay)}. Pass lambda with 0 < lambda < 1.")
        if not fast_lr > 0:
            raise ArgumentError(f"fast_lr: got {describe(fast_lr)}. Pass eta > 0.")
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.decay, self.fast_lr, self.inner_steps = float(decay), float(fast_lr), inner_steps
        self.embed = embedding(input_size, embedding_size)
        self.input = nn.Linear(embedding_size or input_size, hidden_size)
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)
        nn.init.eye_(self.recurrent.weight)  # Ba et al. initialise W to the identity scaled by 0.05
        with torch.no_grad():
            self.recurrent.weight.mul_(0.05)
        self.norm = nn.LayerNorm(hidden_size)  # normalises over units, per sample
        self.readout = nn.Linear(hidden_size, output_size)
        self.tap_h, self.tap_inner = Tap("h"), Tap("inner", observe_only=True)
        self.record_fast_weights = record_fast_weights
        self.tap_A = Tap("A", observe_only=True) if record_fast_weights else None
        self.config = dict(
            input_size=input_size, hidden_size=hidden_size, output_size=output_size, decay=self.decay,
            fast_lr=self.fast_lr, inner_steps=inner_steps, record_fast_weights=record_fast_weights,
            embedding_size=embedding_size,
        )  # fmt: skip

    def connection_parameters(self) -> dict[str, list[list[str]]]:
        """``input`` (C), ``recurrent`` (the slow weights W) and ``readout``; the fast weights are state."""
        return {
            "input": [["input.weight", "input.bias"]],
            "recurrent": [["recurrent.weight"]],
            "readout": [["readout.weight", "readout.bias"]],
        }

    def init_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Zero hidden state and zero fast-weight matrix, for ``batch_size`` sequences."""
        device, dtype = self._like()
        h = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return h, torch.zeros(batch_size, self.hidden_size, self.hidden_size, device=device, dtype=dtype)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step: decay and Hebbian update of the fast weights, then the inner loop of h."""
        h, fast = state
        fast = self.decay * fast + self.fast_lr * h.unsqueeze(2) * h.unsqueeze(1)  # A(t)
        slow = self.recurrent(h) + self.input(self.embed(x_t))  # W h(t) + C x(t)
        hs = torch.relu(slow)  # h_0(t+1)
        inner = []
        for _ in range(self.inner_steps):
            hs = torch.relu(self.norm(slow + torch.bmm(fast, hs.unsqueeze(2)).squeeze(2)))
            inner.append(hs)
        self.tap_inner(torch.stack(inner, dim=1))
        if self.tap_A is not None:
            self.tap_A(fast)
        h_new = self.tap_h(hs)
        return self.readout(h_new), (h_new, fast)
