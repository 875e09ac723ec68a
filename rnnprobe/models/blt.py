"""Recurrent convolutional networks with bottom-up, lateral and top-down connections (BLT).

Spoerer, McClure & Kriegeskorte 2017 (Front Psychol 8:1551), Spoerer et al. 2020
(PLoS Comput Biol 16:e1008215), Kietzmann et al. 2019 (PNAS 116:21854). For
layer l at time step t, with the image x as layer 0's bottom-up input::

    a_l(t) = norm(ReLU(W_B * pool(a_{l-1}(t)) + W_L * a_l(t-1) + W_T * up(a_{l+1}(t-1))))
    y(t) = W_out mean_xy(a_L(t))          (a readout at every step)

``pool`` is 2x2 max pooling (layer 0 sees the image itself), ``up`` a stride-2
transposed convolution; lateral and top-down inputs start at t = 1 (no bias, so
an empty state adds nothing). Connection sets: "B" (feedforward), "BL", "BT",
"BLT", and the feedforward controls "B-K" (larger kernels) and "B-F" (more
feature maps), whose kernel size or map count is chosen so that their number of
parameters is closest to that of "BL" with the same settings. The training
loss is summed over time steps (:meth:`BLT.sequence_loss`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import check_int, check_option
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, describe
from ..recording.tap import Tap
from ..tasks.base import summed_cross_entropy
from .base import RecurrentModel

CONNECTIONS = ("B", "BL", "BT", "BLT", "B-K", "B-F")
NORMS = ("lrn", "group", "layer", "none")


def _norm(kind: str, maps: int) -> nn.Module:
    if kind == "lrn":
        return nn.LocalResponseNorm(size=5, alpha=1e-3, beta=0.5, k=1.0)
    if kind == "group":
        return nn.GroupNorm(min(8, maps), maps)
    if kind == "layer":
        return nn.GroupNorm(1, maps)
    return nn.Identity()


class _Layers(nn.Module):
    """The convolutions of one network: bottom-up, lateral and top-down per layer."""

    def __init__(self, connections: str, in_channels: int, n_layers: int, maps: int, kernel: int, norm: str) -> None:
        super().__init__()
        pad = kernel // 2
        lateral, top_down = "L" in connections.split("-")[0], "T" in connections.split("-")[0]
        self.bottom_up = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else maps, maps, kernel, padding=pad) for i in range(n_layers)
        )
        self.lateral = nn.ModuleList(
            nn.Conv2d(maps, maps, kernel, padding=pad, bias=False) for _ in range(n_layers if lateral else 0)
        )
        self.top_down = nn.ModuleList(
            nn.ConvTranspose2d(maps, maps, kernel, stride=2, padding=pad, output_padding=1, bias=False)
            for _ in range(n_layers - 1 if top_down else 0)
        )
        self.norms = nn.ModuleList(_norm(norm, maps) for _ in range(n_layers))


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class BLT(RecurrentModel):
    """BLT-family recurrent convnet (see the module docstring for the equations).

    Parameters
    ----------
    connections : {"B", "BL", "BT", "BLT", "B-K", "B-F"}
    in_channels, image_size : int
        Input images are (batch, in_channels, image_size, image_size); image_size
        must be divisible by 2 ** (layers - 1).
    n_classes : int
        Readout size.
    layers, maps, kernel_size : int
        Convolutional layers, feature maps per layer, kernel size (odd).
    steps : int
        Time steps the image is presented for (``forward`` repeats it).
    norm : {"lrn", "group", "layer", "none"}
        Local response normalisation (as in Spoerer et al. 2017) or group/layer norm.

    Notes
    -----
    Taps: ``layer{l}`` (each layer's maps at every step) and ``readout``.

    Examples
    --------
    >>> import torch
    >>> model = BLT("BLT", image_size=16, maps=8, steps=3)
    >>> model(torch.rand(2, 1, 16, 16)).shape
    torch.Size([2, 3, 10])
    >>> BLT("B-K", maps=8).kernel_size, BLT("B-F", maps=8).maps
    (5, 14)
    """

    def __init__(
        self,
        connections: str = "BLT",
        *,
        in_channels: int = 1,
        image_size: int = 32,
        n_classes: int = 10,
        layers: int = 2,
        maps: int = 32,
        kernel_size: int = 3,
        steps: int = 4,
        norm: str = "lrn",
    ) -> None:
        super().__init__()
        check_option("connections", connections, CONNECTIONS)
        check_option("norm", norm, NORMS)
        for name, value in (("in_channels", in_channels), ("image_size", image_size), ("n_classes", n_classes),
                            ("layers", layers), ("maps", maps), ("steps", steps)):  # fmt: skip
            check_int(name, value)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ArgumentError(f"kernel_size: got {describe(kernel_size)}. Pass an odd positive integer.")
        if image_size % 2 ** (layers - 1):
            raise ArgumentError(
                f"image_size: got {image_size}, which {layers} layers cannot halve {layers - 1} times. Pass a "
                f"multiple of {2 ** (layers - 1)}."
            )
        kernel, n_maps = kernel_size, maps
        if connections in ("B-K", "B-F"):
            target = _n_params(_Layers("BL", in_channels, layers, maps, kernel_size, norm))

            def mismatch(n: int, k: int) -> int:
                return abs(_n_params(_Layers("B", in_channels, layers, n, k, norm)) - target)

            if connections == "B-K":
                kernel = min(range(kernel_size, kernel_size + 20, 2), key=lambda k: mismatch(maps, k))
            else:
                n_maps = min(range(maps, 4 * maps + 1), key=lambda n: mismatch(n, kernel_size))
        self.connections, self.kernel_size, self.maps = connections, kernel, n_maps
        self.in_channels, self.image_size, self.n_layers, self.steps = in_channels, image_size, layers, steps
        self.input_size, self.output_size = in_channels * image_size * image_size, n_classes
        self.conv = _Layers(connections, in_channels, layers, n_maps, kernel, norm)
        self.pool = nn.MaxPool2d(2)
        self.classifier = nn.Linear(n_maps, n_classes)
        self.taps = nn.ModuleList(Tap(f"layer{i}") for i in range(layers))
        self.tap_readout = Tap("readout")
        self.config = dict(
            connections=connections, in_channels=in_channels, image_size=image_size, n_classes=n_classes,
            layers=layers, maps=maps, kernel_size=kernel_size, steps=steps, norm=norm,
        )  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input image (channels, size, size); ``input_size`` is its pixel count."""
        return (self.in_channels, self.image_size, self.image_size)

    def check_input(self, x: Tensor) -> None:
        """Refuse inputs that are not (batch, channels, size, size) images of this model."""
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(f"x: got {describe(x)}. Pass a torch.Tensor of images.")
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ShapeError(
                f"x: {type(self).__name__} takes images of shape (batch, {', '.join(map(str, expected))}), "
                f"got {describe(x)}. Add a channel axis with x[:, None] for grey images."
            )

    def init_state(self, batch_size: int) -> tuple[Tensor, ...]:
        """Zero feature maps of every layer, for ``batch_size`` images."""
        device, dtype = self._like()
        return tuple(
            torch.zeros(batch_size, self.maps, self.image_size >> i, self.image_size >> i, device=device, dtype=dtype)
            for i in range(self.n_layers)
        )

    def step(self, x_t: Tensor, state: tuple[Tensor, ...] | None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One time step given the image ``x_t`` (batch, channels, size, size).

        ``state=None`` is the empty initial state: lateral and top-down inputs are zero (the
        convolutions have no bias), so they are not computed. ``forward`` starts this way, which
        gives the same values as ``init_state`` and spends no FLOPs on recurrence at the first step.
        """
        conv = self.conv
        new: list[Tensor] = []
        below = x_t
        for i in range(self.n_layers):
            pre = conv.bottom_up[i](below if i == 0 else self.pool(below))
            if len(conv.lateral) and state is not None:
                pre = pre + conv.lateral[i](state[i])
            if len(conv.top_down) and i < self.n_layers - 1 and state is not None:
                pre = pre + conv.top_down[i](state[i + 1])
            a = self.taps[i](conv.norms[i](torch.relu(pre)))
            new.append(a)
            below = a
        y = self.tap_readout(self.classifier(new[-1].mean(dim=(2, 3))))
        return y, tuple(new)

    def forward(self, x: Tensor, state: tuple[Tensor, ...] | None = None, *, return_state: bool = False):
        """Present the image for ``steps`` steps; logits are (batch, steps, n_classes)."""
        self.check_input(x)
        outputs = []
        for _ in range(self.steps):
            y, state = self.step(x, state)
            outputs.append(y)
        y = torch.stack(outputs, dim=1)
        return (y, state) if return_state else y

    def connection_parameters(self) -> dict[str, list[list[str]]]:
        """``bottom-up``, ``lateral``, ``top-down`` (those the architecture has) and ``readout``, per layer.

        A layer's top-down connection is the one it receives from the layer above.
        """

        def per_layer(prefix: str, modules: nn.ModuleList) -> list[list[str]]:
            return [[f"{prefix}.{i}.{n}" for n, _ in m.named_parameters()] for i, m in enumerate(modules)]

        found = {"bottom-up": per_layer("conv.bottom_up", self.conv.bottom_up)}
        if len(self.conv.lateral):
            found["lateral"] = per_layer("conv.lateral", self.conv.lateral)
        if len(self.conv.top_down):
            found["top-down"] = per_layer("conv.top_down", self.conv.top_down)
        found["readout"] = [["classifier.weight", "classifier.bias"]]
        return found

    @staticmethod
    def sequence_loss(logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy summed over time steps, averaged over the batch (Spoerer et al. 2017)."""
        return summed_cross_entropy(logits, labels)
