"""The bridge from zoo's datasets to torch: in-memory arrays as tensors, lazy files through DataLoader workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from zoo.data.lazy import LazyImages


class LazyImageDataset:
    """A torch map-style dataset over :class:`LazyImages` and their labels (one file read per item)."""

    def __init__(self, images: LazyImages, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        return torch.from_numpy(self.images[index]), torch.tensor(int(self.labels[index]))


def torch_dataset(images: Any, labels: np.ndarray) -> Any:
    """A torch dataset for a split: tensors for arrays, file reads for lazy images."""
    import torch
    from torch.utils.data import TensorDataset

    if isinstance(images, LazyImages):
        return LazyImageDataset(images, labels)
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


def loader_workers(images: Any) -> int:
    """Worker processes for reading a split: none for arrays in memory, a few for files."""
    if not isinstance(images, LazyImages):
        return 0
    return max(1, min(4, (os.cpu_count() or 2)))


def epoch_batches(images: Any, labels: Any, index_batches: list[Any], device: Any, workers: int | None = None,
                  pin_memory: bool = True) -> Iterator[tuple[Any, Any]]:
    """The batches named by ``index_batches``, in order, on ``device``.

    Tensors already on the device are indexed directly; lazy images are read by DataLoader worker
    processes (the order is still exactly ``index_batches``, so resuming stays exact).
    """
    if not isinstance(images, LazyImages):
        for index in index_batches:
            yield images[index], labels[index]
        return
    import torch
    from torch.utils.data import DataLoader

    workers = loader_workers(images) if workers is None else workers
    loader = DataLoader(LazyImageDataset(images, labels.numpy()), batch_sampler=[i.tolist() for i in index_batches],
                        num_workers=workers, pin_memory=pin_memory and torch.device(device).type == "cuda")
    for x, y in worker_errors_as_one_line(loader):
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def worker_errors_as_one_line(loader: Any) -> Iterator[Any]:
    """A worker's :class:`DataError` (a file gone or broken mid-run) re-raised as itself, not as torch's
    multi-line "Caught DataError in DataLoader worker process" wrapping of its traceback."""
    from zoo.data.readers import DataError

    iterator = iter(loader)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except DataError as exc:
            text = str(exc)
            marker = "DataError: "
            raise DataError(text.rsplit(marker, 1)[-1].strip() if marker in text else text) from exc
        yield item
