"""Associative retrieval (Ba, Hinton, Mnih, Leibo & Ionescu 2016).

A sequence of ``n_pairs`` letter-digit pairs with distinct letters, then "??",
then one of the letters; the answer is its digit: "c9k8j3f1??c" -> 9. Symbols:
26 letters, 10 digits and "?" (37), one-hot coded.
"""

from __future__ import annotations

import string

import numpy as np
import torch
from torch import Tensor, nn

from .._validation import check_int
from .base import Task, TaskData, as_tensor, last_step_accuracy

SYMBOLS = string.ascii_lowercase + string.digits + "?"


class AssociativeRetrieval(Task):
    """The key-value retrieval task of Ba et al. 2016.

    Examples
    --------
    >>> task = AssociativeRetrieval(n_pairs=4)
    >>> data = task.sample(2)
    >>> tuple(data.x.shape), task.decode(data.x[0])[-3:-1], int(data.y[0]) in range(10)
    ((2, 11, 37), '??', True)
    """

    def __init__(self, n_pairs: int = 4, *, seed: int = 0) -> None:
        super().__init__(seed)
        check_int("n_pairs", n_pairs, maximum=26)
        self.n_pairs = n_pairs
        self.n_steps = 2 * n_pairs + 3
        self.input_size, self.output_size = len(SYMBOLS), 10
        self.config.update(n_pairs=n_pairs)

    def _generate(self, n: int, rng: np.random.Generator, split: str) -> TaskData:
        keys = np.argsort(rng.random((n, 26)), axis=1)[:, : self.n_pairs]  # distinct letters
        values = rng.integers(0, 10, size=(n, self.n_pairs))
        query = rng.integers(0, self.n_pairs, size=n)
        seq = np.empty((n, self.n_steps), dtype=np.int64)
        seq[:, 0 : 2 * self.n_pairs : 2] = keys
        seq[:, 1 : 2 * self.n_pairs : 2] = 26 + values
        seq[:, -3:-1] = 36
        seq[:, -1] = keys[np.arange(n), query]
        x = np.eye(len(SYMBOLS), dtype=np.float32)[seq]
        target = values[np.arange(n), query]
        return TaskData(as_tensor(x), as_tensor(target, dtype=torch.long), None,
                        metadata={"target": target, "query_position": query})  # fmt: skip

    def decode(self, x: Tensor) -> str:
        """One trial's one-hot input (time, 37) as text."""
        return "".join(SYMBOLS[i] for i in x.argmax(-1).tolist())

    def loss(self, output: Tensor, data: TaskData) -> Tensor:
        """Cross-entropy of the last step's output over the 10 digits."""
        return nn.functional.cross_entropy(output[:, -1], data.y)

    def metric(self, output: Tensor, data: TaskData) -> float:
        """Accuracy of the retrieved value at the last step."""
        return last_step_accuracy(output, data.y)
