"""Tasks built on scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).

`OccludedDigits` (after the digit-debris task of Spoerer, McClure & Kriegeskorte
2017): digits upsampled to ``image_size`` with occluding fragments cut from other
digits pasted on top, at several occlusion levels. `DigitSequences` (after Ali
et al. 2022): sequences of digit images in ascending order, for the energy-
efficient RNN. Train and test use disjoint images (a fixed split of the 1797).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int
from ..errors import ArgumentError, describe
from .base import Task, TaskData, as_tensor, last_step_accuracy, summed_cross_entropy

TEST_FRACTION = 0.25


@functools.lru_cache(maxsize=4)
def _digits(image_size: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(images in [0, 1] at image_size, labels, split -> image indices); fixed split, independent of seeds."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    if image_size != 8:
        images = np.clip(zoom(images, (1, image_size / 8, image_size / 8), order=1), 0, 1).astype(np.float32)
    order = np.random.default_rng(20170912).permutation(len(images))
    n_test = round(TEST_FRACTION * len(images))
    splits = {"test": np.sort(order[:n_test]), "train": np.sort(order[n_test:])}
    images.setflags(write=False)
    return images, digits.target.astype(np.int64), splits


class OccludedDigits(Task):
    """Digits with occluding debris: fragments of other digits pasted on top (combined by max).

    Parameters
    ----------
    image_size : int
        Side of the (square) images; the 8x8 digits are upsampled bilinearly.
    levels : tuple of int
        Occlusion levels as numbers of fragments; each trial draws one uniformly.
    fragment_size : int
        Side of each square fragment, in pixels of the upsampled image.
    seed : int

    Notes
    -----
    Metadata: ``label``, ``occlusion`` (number of fragments), ``image_id`` (index into
    scikit-learn's digits).

    Examples
    --------
    >>> task = OccludedDigits(image_size=16, levels=(0, 6))
    >>> data = task.sample(5)
    >>> tuple(data.x.shape), sorted(set(data.metadata["occlusion"].tolist())) <= [0, 6]
    ((5, 1, 16, 16), True)
    """

    def __init__(
        self, *, image_size: int = 32, levels: tuple[int, ...] = (0, 4, 8, 12), fragment_size: int | None = None,
        seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(seed)
        check_int("image_size", image_size, minimum=8)
        levels = tuple(levels)
        if not levels or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in levels):
            raise ArgumentError(f"levels: got {describe(levels)}. Pass numbers of fragments (integers >= 0).")
        fragment_size = fragment_size if fragment_size is not None else image_size // 4
        if not isinstance(fragment_size, int) or not 1 <= fragment_size <= image_size:
            raise ArgumentError(f"fragment_size: got {describe(fragment_size)}. Pass 1 to {image_size} pixels.")
        self.image_size, self.levels, self.fragment_size = image_size, levels, fragment_size
        self.input_size, self.output_size = image_size * image_size, 10
        self.config.update(image_size=image_size, levels=list(levels), fragment_size=fragment_size)

    def _generate(self, n: int, rng: np.random.Generator, split: str) -> TaskData:
        images, labels, splits = _digits(self.image_size)
        pool = splits[split]
        ids = rng.choice(pool, size=n)
        occlusion = rng.choice(np.asarray(self.levels), size=n)
        x = images[ids].copy()
        size, frag = self.image_size, self.fragment_size
        for i in range(n):
            for _ in range(int(occlusion[i])):
                donor = images[rng.choice(pool)]
                sy, sx = rng.integers(0, size - frag + 1, size=2)
                ty, tx = rng.integers(0, size - frag + 1, size=2)
                region = x[i, ty : ty + frag, tx : tx + frag]
                np.maximum(region, donor[sy : sy + frag, sx : sx + frag], out=region)
        return TaskData(
            as_tensor(x[:, None]), torch.from_numpy(labels[ids]), None,
            metadata={"label": labels[ids], "occlusion": occlusion, "image_id": ids},
        )  # fmt: skip

    def loss(self, output: Tensor, data: TaskData) -> Tensor:
        """Cross-entropy summed over time steps (per-step readouts, as in Spoerer et al. 2017)."""
        return summed_cross_entropy(output, data.y)

    def metric(self, output: Tensor, data: TaskData) -> float:
        """Accuracy at the final time step."""
        return last_step_accuracy(output, data.y)


class DigitSequences(Task):
    """Sequences of 8x8 digit images (64 pixels in [0, 1]) in ascending order, wrapping 9 -> 0.

    Each sequence starts at a random digit; each digit is a random image of that
    class, shown for ``steps_per_digit`` steps. There are no targets: the energy-
    efficient RNN is trained to minimise its own preactivation.

    Notes
    -----
    Metadata: ``start`` (first digit) and ``last`` (last digit shown).

    Examples
    --------
    >>> data = DigitSequences(length=10).sample(4)
    >>> tuple(data.x.shape), data.y is None
    ((4, 10, 64), True)
    """

    metric_name = "mean |preactivation|"

    def __init__(self, *, length: int = 10, steps_per_digit: int = 1, seed: int = 0) -> None:
        super().__init__(seed)
        for name, value in (("length", length), ("steps_per_digit", steps_per_digit)):
            check_int(name, value)
        self.length, self.steps_per_digit = length, steps_per_digit
        self.n_steps = length * steps_per_digit
        self.input_size = self.output_size = 64
        self.config.update(length=length, steps_per_digit=steps_per_digit)

    def _generate(self, n: int, rng: np.random.Generator, split: str) -> TaskData:
        images, labels, splits = _digits(8)
        pool = splits[split]
        by_class = [pool[labels[pool] == c] for c in range(10)]
        start = rng.integers(0, 10, size=n)
        classes = (start[:, None] + np.arange(self.length)[None]) % 10
        ids = np.stack([[rng.choice(by_class[c]) for c in row] for row in classes])
        x = images[ids].reshape(n, self.length, 64)
        x = np.repeat(x, self.steps_per_digit, axis=1)
        return TaskData(as_tensor(x), None, None, metadata={"start": start, "last": classes[:, -1]})

    def loss(self, output: Tensor, data: TaskData) -> Tensor:
        """Sum over time of the mean absolute preactivation (the model's outputs)."""
        return output.abs().mean(dim=(0, 2)).sum()

    def metric(self, output: Tensor, data: TaskData) -> float:
        """Mean |preactivation| after the first step (lower: more of the input is predicted)."""
        return float(output[:, 1:].abs().mean())
