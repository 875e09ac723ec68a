"""Where recorded batches go: preallocated memory, or a zarr store written as it fills."""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from .container import Recording
from .store import StoreWriter, load_recording


class MemoryDestination:
    """Preallocated in-memory arrays; later batches are copied straight into them by the hooks.

    Writing states into fresh memory costs a page fault per page, which on some machines is
    slower than the copy itself. A helper thread touches the next batch's rows while the model
    computes the current batch, so the faults overlap with the forward pass; it also counts the
    finished batches' non-finite values.
    """

    def __init__(self, n_stimuli: int, metadata: Mapping[str, np.ndarray]) -> None:
        self.n_stimuli = n_stimuli
        self.metadata = metadata
        self.arrays: dict[str, np.ndarray] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._prefaulted: Future | None = None
        self._counting: list[Future] = []

    def open(self, blocks: Mapping[str, np.ndarray], provenance: dict[str, Any]) -> None:
        self.provenance = provenance
        for name, block in blocks.items():
            self.arrays[name] = np.empty((self.n_stimuli, *block.shape[1:]), dtype=block.dtype)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnprobe-prefault")
        first = next(iter(blocks.values())).shape[0]
        self._prefault(first, 2 * first)
        for name, block in blocks.items():
            self.arrays[name][:first] = block

    def _prefault(self, start: int, stop: int) -> None:
        if self._pool is not None and start < self.n_stimuli:
            regions = [array[start:stop] for array in self.arrays.values()]
            self._prefaulted = self._pool.submit(_touch_pages, regions)

    def views(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        if self._prefaulted is not None:  # never let the helper write into rows the hooks are filling
            self._prefaulted.result()
            self._prefaulted = None
        self._prefault(stop, stop + (stop - start))
        return {name: torch.from_numpy(array[start:stop]) for name, array in self.arrays.items()}

    def write(self, blocks: Mapping[str, np.ndarray]) -> None:
        """Nothing to do: the blocks are views of the arrays."""

    def count_nonfinite(self, counter: Any, blocks: Mapping[str, np.ndarray]) -> None:
        """``counter.update(blocks)`` on the helper thread, beside the next batch's forward pass (the rows are
        final and never written again); :meth:`result` and :meth:`abort` wait for it.
        """
        if self._pool is None:
            counter.update(blocks)
        else:
            self._counting.append(self._pool.submit(counter.update, blocks))

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def result(self) -> Recording:
        self._shutdown()
        for counted in self._counting:  # an error while counting is raised here, not lost
            counted.result()
        return Recording(self.arrays, metadata=self.metadata, provenance=self.provenance)

    def abort(self) -> None:
        self._shutdown()
        self.arrays.clear()


def _touch_pages(regions: list[np.ndarray]) -> None:
    """Write one byte per memory page of each (contiguous) region, faulting the pages in."""
    for region in regions:
        if region.size:
            region.reshape(-1).view(np.uint8)[:: mmap.PAGESIZE] = 0


class StoreDestination:
    """A zarr store written batch by batch through a reused staging buffer."""

    def __init__(
        self,
        writer: StoreWriter,
        n_stimuli: int,
        metadata: Mapping[str, np.ndarray],
        *,
        batch_size: int,
        chunk_stimuli: int | None,
    ) -> None:
        self.writer = writer
        self.n_stimuli = n_stimuli
        self.metadata = metadata
        self.batch_size = batch_size
        self.chunk_stimuli = chunk_stimuli
        self.staging: dict[str, np.ndarray] = {}

    def open(self, blocks: Mapping[str, np.ndarray], provenance: dict[str, Any]) -> None:
        self.writer.create(
            n_stimuli=self.n_stimuli,
            layers={name: (block.shape[1:], block.dtype) for name, block in blocks.items()},
            times={name: np.arange(block.shape[1]) for name, block in blocks.items()},
            metadata=self.metadata,
            provenance=provenance,
            chunk_stimuli=self.chunk_stimuli,
        )
        self.staging = {
            name: np.empty((self.batch_size, *block.shape[1:]), dtype=block.dtype) for name, block in blocks.items()
        }

    def views(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array[: stop - start]) for name, array in self.staging.items()}

    def write(self, blocks: Mapping[str, np.ndarray]) -> None:
        self.writer.append(blocks)

    def count_nonfinite(self, counter: Any, blocks: Mapping[str, np.ndarray]) -> None:
        """``counter.update(blocks)`` now: the staging buffers are reused by the next batch."""
        counter.update(blocks)

    def result(self) -> Recording:
        self.writer.close()
        return load_recording(self.writer.path)

    def abort(self) -> None:
        self.writer.abort()
