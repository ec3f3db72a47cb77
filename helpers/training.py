"""Training tools for lessons 04 to 06: batches cut from tensors, seeds, and the course's trainer.

The fast path keeps a whole data set as two tensors on the device and makes mini-batches by
indexing (:class:`TensorLoader`): no per-image conversion, no worker processes, and on a GPU
no copy per batch.

:func:`fit` is the trainer that lesson 04 uses before lesson 05 opens the loop, and lesson 06
uses for its experiments. It is a whole run, not a piece of one: it takes the batches where
they are (on the model's device, as :class:`TensorLoader` holds them) and has no one-epoch
or evaluation-only entry point. What lessons 05 and 06 ask learners to write (choosing the
device, one epoch that moves every batch to it, an evaluation, the predictions, the confusion
matrix) is not in this package: the lessons' checks and hidden tests judge those answers.

Importing this module seeds nothing and picks no device.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn


def set_seed(seed: int = 0) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's random numbers; returns a CPU generator seeded the same.

    Example: ``g = set_seed(0)`` then ``random_split(ds, [0.9, 0.1], generator=g)``.

    Introduced in lesson 05.
    """
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is optional for the training loop itself
        pass
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class TensorLoader:
    """Mini-batches ``(images[idx], labels[idx])`` cut from tensors already in memory.

    It iterates like a ``DataLoader`` (and has ``len``, ``batch_size`` and ``dataset``), but a
    batch is one indexing operation instead of ``batch_size`` calls to
    ``__getitem__`` and a collate: on a GPU the data never leaves the device.

    Args:
        images, labels: tensors with the same first dimension, on any device.
        batch_size: examples per batch; the last batch may be smaller.
        shuffle: a new order every epoch, drawn from a generator seeded with ``seed``.

    Introduced in lesson 05.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 128,
                 shuffle: bool = False, seed: int = 0):
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} and {len(labels)}.")
        self.images, self.labels = images, labels
        self.dataset = torch.utils.data.TensorDataset(images, labels)  # so len(loader.dataset) works
        self.batch_size, self.shuffle = int(batch_size), shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.labels.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            # index_select, not images[idx]: the same result, many times faster on the CPU
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False

    def curves(self) -> dict[str, list[float]]:
        """The loss curves by name, for ``plots.plot_curves``."""
        out = {"training loss": self.train_loss}
        if self.val_loss:
            out["validation loss"] = self.val_loss
        return out


def _same_device(device: torch.device | None, images: torch.Tensor) -> None:
    """``device``: where the model's parameters are (None for a model without any)."""
    if device is not None and images.device != device:
        raise ValueError(f"training.fit takes the batches where they are, and this batch is on {images.device} "
                         f"while the model is on {device}: make the loaders from tensors on the model's "
                         "device, for example data.as_tensors(dataset, device=device).")


def fit(model: nn.Module, train_loader: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer,
        epochs: int, *, val_loader: Iterable | None = None, scheduler=None, progress: bool = False,
        on_epoch: Callable[[int, History], bool | None] | None = None) -> History:
    """Train for ``epochs`` epochs, measuring the validation set (when given) after each.

    Every batch must already be on the model's device (``TensorLoader`` over tensors put there
    with ``data.as_tensors(..., device=device)``); ``fit`` moves nothing.

    Args:
        scheduler: stepped after every batch (e.g. ``OneCycleLR``), or None.
        progress: show a tqdm progress bar over the epochs.
        on_epoch: called as ``on_epoch(epoch, history)`` after every epoch (live plots, early
            stopping); when it returns True, training stops there.

    Returns:
        a :class:`History`: the mean training loss per example of every epoch and, with
        ``val_loader``, the validation loss and accuracy; ``seconds`` counts training and
        validation, not set-up.

    Raises:
        ValueError: when ``train_loader`` gives no batch, or a batch is not on the model's device.

    Introduced in lesson 04; lesson 05 writes the loop inside it, lesson 06 its validation.
    """
    history = History()
    first = next(model.parameters(), None)
    device = None if first is None else first.device  # looked up once, not for every batch
    epochs_iter = range(1, int(epochs) + 1)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="epochs", leave=False)
    start = time.perf_counter()
    for epoch in epochs_iter:
        model.train()
        total, count = 0.0, 0
        for images, labels in train_loader:
            _same_device(device, images)
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + loss.detach() * len(labels), count + len(labels)
        if count == 0:
            raise ValueError("training.fit: the training loader gave no batch; give it at least one example.")
        history.train_loss.append(float(total) / count)
        if val_loader is not None:
            model.eval()
            total, correct, count = 0.0, 0, 0
            with torch.no_grad():
                for images, labels in val_loader:
                    _same_device(device, images)
                    outputs = model(images)
                    total = total + loss_fn(outputs, labels) * len(labels)
                    correct = correct + (outputs.argmax(dim=1) == labels).sum()
                    count += len(labels)
            history.val_loss.append(float(total) / max(count, 1))
            history.val_accuracy.append(float(correct) / max(count, 1))
        if on_epoch is not None and on_epoch(epoch, history):
            history.stopped_early = True
            break
    history.seconds = time.perf_counter() - start
    return history
