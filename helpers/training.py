"""Training and evaluation loops for lessons 04 to 06, written the way the lessons teach them.

The fast path keeps a whole data set as two tensors on the device and makes
mini-batches by indexing (:class:`TensorLoader`): no per-image conversion, no worker
processes, and on a GPU no copy per batch. ``train_one_epoch`` and ``evaluate`` take
any iterable of ``(images, labels)`` batches, so a ``torch.utils.data.DataLoader``
works the same way.

Introduced in lesson 05 (lesson 04 uses :func:`fit` before the loop is explained).
Importing this module seeds nothing and picks no device.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn


def pick_device() -> torch.device:
    """The best device here: CUDA, then Apple's MPS, then the CPU.

    Introduced in lesson 05.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def _device_of(model: nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def train_one_epoch(model: nn.Module, loader: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                    device=None, *, scheduler=None) -> float:
    """One pass over ``loader``: zero_grad, forward, loss, backward, step for every batch.

    Args:
        device: where batches go (default: where the model's parameters are).
        scheduler: a learning-rate scheduler stepped after every batch (OneCycleLR), or None.

    Returns:
        the mean training loss per example.

    Introduced in lesson 05.
    """
    device = _device_of(model, device)
    model.train()
    total, count = torch.zeros((), device=device), 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()          # gradients add up unless reset
        loss = loss_fn(model(images), labels)
        loss.backward()                # d(loss)/d(parameter) into every .grad
        optimizer.step()               # parameter -= lr * gradient (or Adam's version)
        if scheduler is not None:
            scheduler.step()
        total += loss.detach() * len(labels)  # stays on the device: no sync per batch
        count += len(labels)
    return float(total) / max(count, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable, device=None) -> tuple[float, float]:
    """Mean loss and accuracy (a fraction in [0, 1]) of ``model`` on ``loader``, in eval mode.

    Introduced in lesson 05.
    """
    device = _device_of(model, device)
    model.eval()  # dropout off, batch norm uses its running statistics
    total, correct, count = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        total += loss_fn(logits, labels) * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum()
        count += len(labels)
    return float(total) / max(count, 1), float(correct) / max(count, 1)


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and true labels for every example in ``loader``, on the CPU.

    Introduced in lesson 06.
    """
    device = _device_of(model, device)
    model.eval()
    preds, truth = [], []
    for images, labels in loader:
        preds.append(model(images.to(device)).argmax(dim=1).cpu())
        truth.append(labels.cpu())
    return torch.cat(preds), torch.cat(truth)


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch; ``best_epoch`` counts from 1."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int | None = None
    stopped_early: bool = False

    def curves(self) -> dict[str, list[float]]:
        """The loss curves by name, for ``plotting.plot_curves``."""
        out = {"training loss": self.train_loss}
        if self.val_loss:
            out["validation loss"] = self.val_loss
        return out


def fit(model: nn.Module, train_loader: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer,
        epochs: int, *, val_loader: Iterable | None = None, scheduler=None, patience: int | None = None,
        device=None, progress: bool = False, on_epoch: Callable[[int, History], None] | None = None) -> History:
    """Train for ``epochs`` epochs, measuring the validation set (when given) after each.

    Args:
        scheduler: stepped after every batch (e.g. ``OneCycleLR``), or None.
        patience: with ``val_loader``, stop after this many epochs without a lower
            validation loss and restore the weights of the best epoch.
        progress: show a tqdm progress bar over the epochs.
        on_epoch: called as ``on_epoch(epoch, history)`` after every epoch (live plots).

    Returns:
        a :class:`History`; ``seconds`` counts training and validation, not set-up.

    Introduced in lesson 04; explained line by line in lessons 05 and 06.
    """
    history, best_state, best_loss = History(), None, math.inf
    epochs_iter = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="epochs", leave=False)
    start = time.perf_counter()
    for epoch in epochs_iter:
        history.train_loss.append(train_one_epoch(model, train_loader, loss_fn, optimizer, device,
                                                  scheduler=scheduler))
        if val_loader is not None:
            val_loss, val_acc = evaluate(model, val_loader, loss_fn, device)
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
            if val_loss < best_loss:
                best_loss, history.best_epoch = val_loss, epoch
                best_state = copy.deepcopy(model.state_dict()) if patience is not None else None
        if on_epoch is not None:
            on_epoch(epoch, history)
        if patience is not None and history.best_epoch is not None and epoch - history.best_epoch >= patience:
            history.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    return history
