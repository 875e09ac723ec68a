"""Exact unrolled equivalents of ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN``.

PyTorch's fused recurrent modules return only the last layer's output sequence
and the final states; an LSTM's cell state over time and the gate activations
stay hidden. :func:`unrolled_forward` recomputes the module's forward with the
module's own weights as an explicit loop over layers, directions and time
steps, and also returns every per-step state:

LSTM (PyTorch's [i|f|g|o] weight layout)::

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)            (h_t = W_hr h_t with proj_size > 0)

GRU ([r|z|n])::

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

RNN: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or ReLU).

State names are ``l{k}.h``, ``l{k}.c`` (LSTM) and the gates ``l{k}.i``/``.f``/
``.g``/``.o`` (LSTM) or ``.r``/``.z``/``.n`` (GRU) for layer ``k``; the
reverse direction of a bidirectional module is ``l{k}_reverse.*``, aligned to
input time (its state at index t is the one after reading x_t).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ArgumentTypeError, describe

GATES = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n"), "RNN": ()}


def rnn_kind(module: nn.Module) -> str | None:
    """'LSTM', 'GRU' or 'RNN' for torch's fused recurrent modules, else None."""
    if isinstance(module, nn.LSTM):
        return "LSTM"
    if isinstance(module, nn.GRU):
        return "GRU"
    if isinstance(module, nn.RNN):
        return "RNN"
    return None


def state_names(module: nn.RNNBase) -> list[str]:
    """Every per-step state :func:`unrolled_forward` can return for ``module``."""
    kind = rnn_kind(module)
    suffixes = ["", "_reverse"] if module.bidirectional else [""]
    names = []
    for k in range(module.num_layers):
        for sfx in suffixes:
            prefix = f"l{k}{sfx}"
            names.append(f"{prefix}.h")
            if kind == "LSTM":
                names.append(f"{prefix}.c")
            names.extend(f"{prefix}.{g}" for g in GATES[kind])
    return names


def lstm_cell(
    x_proj: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, w_hr: Tensor | None
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """One LSTM step given the input projection ``W_ih x_t + b_ih``; returns (h, c, gates)."""
    pre = x_proj + h @ w_hh.T
    if b_hh is not None:
        pre = pre + b_hh
    i, f, g, o = pre.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = h @ w_hr.T
    return h, c, (i, f, g, o)


def gru_cell(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One GRU step given ``W_ih x_t + b_ih``; returns (h, (r, z, n))."""
    hh = h @ w_hh.T
    if b_hh is not None:
        hh = hh + b_hh
    xr, xz, xn = x_proj.chunk(3, dim=-1)
    hr, hz, hn = hh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h, (r, z, n)


def rnn_cell(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, nonlinearity: str) -> Tensor:
    """One Elman RNN step given ``W_ih x_t + b_ih``."""
    pre = x_proj + h @ w_hh.T
    if b_hh is not None:
        pre = pre + b_hh
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def layer_weights(module: nn.RNNBase, layer: int, reverse: bool) -> dict[str, Tensor | None]:
    """The weights of one layer and direction, by role (w_ih, w_hh, b_ih, b_hh, w_hr)."""
    sfx = f"l{layer}{'_reverse' if reverse else ''}"
    get = lambda name: getattr(module, f"{name}_{sfx}", None)  # noqa: E731
    return {
        "w_ih": get("weight_ih"),
        "w_hh": get("weight_hh"),
        "b_ih": get("bias_ih") if module.bias else None,
        "b_hh": get("bias_hh") if module.bias else None,
        "w_hr": get("weight_hr") if getattr(module, "proj_size", 0) else None,
    }


def unrolled_forward(
    module: nn.RNNBase,
    input: Tensor,
    hx: Tensor | tuple[Tensor, Tensor] | None = None,
    *,
    keep: set[str] | None = None,
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor], dict[str, Tensor]]:
    """Recompute ``module(input, hx)`` step by step, also returning per-step states.

    Parameters
    ----------
    module : nn.LSTM, nn.GRU or nn.RNN
        Any configuration: layers, bidirectional, batch_first, bias, proj_size.
    input : Tensor
        As for the module: (T, B, F), (B, T, F) if ``batch_first``, or unbatched (T, F).
    hx : Tensor or (Tensor, Tensor), optional
        Initial states as for the module.
    keep : set of str, optional
        Which of :func:`state_names` to return (all if None).

    Returns
    -------
    output, hidden, states
        ``output`` and ``hidden`` equal the module's own (to float rounding);
        ``states[name]`` has shape (B, T, size) (``(T, size)`` for unbatched input).

    Examples
    --------
    >>> import torch
    >>> lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
    >>> x = torch.randn(4, 7, 3)
    >>> out, (h_n, c_n), states = unrolled_forward(lstm, x)
    >>> bool(torch.allclose(out, lstm(x)[0], atol=1e-6)), tuple(states["l1.c"].shape)
    (True, (4, 7, 5))
    """
    kind = rnn_kind(module)
    if kind is None:
        raise ArgumentTypeError(f"module: got {describe(module)}. Pass an nn.LSTM, nn.GRU or nn.RNN.")
    if isinstance(input, nn.utils.rnn.PackedSequence):
        raise ArgumentTypeError(
            "input: got a PackedSequence, which the unrolled recurrence does not support. Pad the "
            "sequences (nn.utils.rnn.pad_packed_sequence) and pass a tensor."
        )
    unbatched = input.dim() == 2
    x = input.unsqueeze(1) if unbatched else input
    if module.batch_first and not unbatched:
        x = x.transpose(0, 1)  # -> (T, B, F)
    batch = x.shape[1]
    n_dirs = 2 if module.bidirectional else 1
    hidden_size = module.hidden_size
    out_size = getattr(module, "proj_size", 0) or hidden_size
    h0, c0 = _initial_states(module, hx, kind, unbatched, batch, n_dirs, out_size, x)

    wanted = set(state_names(module)) if keep is None else set(keep)
    states: dict[str, Tensor] = {}
    h_n, c_n = [], []
    layer_input = x
    for k in range(module.num_layers):
        outputs = []
        for d in range(n_dirs):
            prefix = f"l{k}{'_reverse' if d else ''}"
            c = c0[k * n_dirs + d] if c0 is not None else None
            names = [name for name in wanted if name.startswith(prefix + ".")]
            out, h, c, collected = _direction(module, kind, layer_input, layer_weights(module, k, bool(d)),
                                              h0[k * n_dirs + d], c, names, reverse=bool(d))  # fmt: skip
            outputs.append(out)
            h_n.append(h)
            if c is not None:
                c_n.append(c)
            states.update(collected)
        layer_input = torch.cat(outputs, dim=-1) if n_dirs > 1 else outputs[0]
        if module.training and module.dropout > 0 and k < module.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, p=module.dropout, training=True)

    output = layer_input
    if module.batch_first and not unbatched:
        output = output.transpose(0, 1)
    hidden_h = torch.stack(h_n)
    if unbatched:
        output = output.squeeze(1)
        hidden_h = hidden_h.squeeze(1)
        states = {name: s.squeeze(0) for name, s in states.items()}
    if kind == "LSTM":
        hidden_c = torch.stack(c_n)
        if unbatched:
            hidden_c = hidden_c.squeeze(1)
        return output, (hidden_h, hidden_c), states
    return output, hidden_h, states


def _direction(
    module: nn.RNNBase,
    kind: str,
    layer_input: Tensor,
    w: dict[str, Tensor | None],
    h: Tensor,
    c: Tensor | None,
    names: list[str],
    *,
    reverse: bool,
) -> tuple[Tensor, Tensor, Tensor | None, dict[str, Tensor]]:
    """One layer in one direction over the (T, B, F) ``layer_input``: (output (T, B, out), final h, final c,
    the states in ``names`` as (B, T, size)).
    """
    seq = layer_input.flip(0) if reverse else layer_input
    x_proj = seq @ w["w_ih"].T
    if w["b_ih"] is not None:
        x_proj = x_proj + w["b_ih"]
    collect: dict[str, list[Tensor]] = {name: [] for name in names}
    hs = []
    for t in range(seq.shape[0]):
        if kind == "LSTM":
            h, c, gates = lstm_cell(x_proj[t], h, c, w["w_hh"], w["b_hh"], w["w_hr"])
            step = {"h": h, "c": c, **dict(zip(GATES["LSTM"], gates, strict=True))}
        elif kind == "GRU":
            h, gates = gru_cell(x_proj[t], h, w["w_hh"], w["b_hh"])
            step = {"h": h, **dict(zip(GATES["GRU"], gates, strict=True))}
        else:
            h = rnn_cell(x_proj[t], h, w["w_hh"], w["b_hh"], module.nonlinearity)
            step = {"h": h}
        hs.append(h)
        for name, values in collect.items():
            values.append(step[name.split(".", 1)[1]])
    out = torch.stack(hs)  # (T, B, out)
    states = {name: torch.stack(values) for name, values in collect.items()}
    if reverse:
        out = out.flip(0)
        states = {name: value.flip(0) for name, value in states.items()}
    return out, h, c, {name: value.transpose(0, 1) for name, value in states.items()}


def _initial_states(
    module: nn.RNNBase, hx, kind: str, unbatched: bool, batch: int, n_dirs: int, out_size: int, x: Tensor
) -> tuple[Tensor, Tensor | None]:
    n = module.num_layers * n_dirs
    if hx is None:
        h0 = x.new_zeros(n, batch, out_size)
        c0 = x.new_zeros(n, batch, module.hidden_size) if kind == "LSTM" else None
        return h0, c0
    if kind == "LSTM":
        h0, c0 = hx
        if unbatched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        return h0, c0
    return (hx.unsqueeze(1) if unbatched else hx), None
