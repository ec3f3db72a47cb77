"""`make bench`: each lesson's training recipe next to two published peer recipes, on the same data.

For lessons 04, 05 and 06 it trains what the notebook trains in full mode (same model,
optimizer, schedule, batch size and epochs, data held as tensors on the device) and
prints the training seconds and the test accuracy. In the same run it trains:

- the PyTorch "Learn the Basics" quickstart: MLP 784-512-512-10, SGD lr 1e-3, batch 64,
  5 epochs, a DataLoader over torchvision's FashionMNIST with ToTensor();
- Zero to Mastery's TinyVGG: two blocks of two 3×3 convolutions with 10 channels, SGD lr 0.1,
  batch 32, 3 epochs, the same kind of DataLoader (shuffled).

Training seconds count the epochs (data loading included) and no evaluation; every recipe
is evaluated once on the 10,000 test images afterwards. The targets of issue 6 are
printed as figures, not asserted.

Usage: ``python -m benchmarks.lessons [--quick] [--device cpu]``. ``--quick`` runs every
recipe for one epoch on a small real subset (a smoke test, seconds); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, random_split

from helpers import data, training


@dataclass
class Result:
    name: str
    seconds: float
    accuracy: float
    note: str = ""


@dataclass
class Setup:
    device: torch.device
    quick: bool
    n_train: int | None = None  # None: the whole split
    n_test: int | None = None

    def epochs(self, full: int) -> int:
        return 1 if self.quick else full

    def split(self, train: bool, transform=None):
        ds = data.fashion_mnist(train=train, transform=transform)
        n = self.n_train if train else self.n_test
        return data.subset(ds, n, seed=0) if n else ds

    def tensors(self, train: bool):
        return data.as_tensors(self.split(train), device=self.device)


def mlp(hidden=(256, 128)) -> nn.Sequential:
    """Lessons 05 and 06's MLP (784 → 256 → 128 → 10)."""
    layers, width = [nn.Flatten()], 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def reference_cnn(c1: int = 32, c2: int = 64, hidden: int = 128) -> nn.Sequential:
    """Lesson 04's CNN, the answer to its Exercise 5 (kept here, with the instructor: the learner's
    package holds no reference): two conv blocks (5×5 conv, ReLU, 2×2 max-pool, batch norm), flatten
    (c2·4·4), a hidden layer and 10 logits."""
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(cout))

    return nn.Sequential(block(1, c1), block(c1, c2), nn.Flatten(), nn.Linear(c2 * 4 * 4, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


def _test_accuracy(model, setup: Setup) -> float:
    x, y = setup.tensors(train=False)
    model.eval()
    with torch.no_grad():
        correct = sum((model(xb).argmax(1) == yb).sum().item()
                      for xb, yb in training.TensorLoader(x, y, batch_size=1000))
    return correct / len(y)


def _best_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class _EarlyStop:
    """Lesson 06's early stopping as an ``on_epoch`` for ``training.fit``: stop after ``patience`` epochs
    without a lower validation loss, keeping the best epoch's weights."""

    def __init__(self, model: nn.Module, patience: int):
        self.model, self.patience, self.best_epoch, self.state = model, patience, 0, None

    def __call__(self, epoch: int, history) -> bool:
        if self.state is None or history.val_loss[-1] < history.val_loss[self.best_epoch - 1]:
            self.best_epoch = epoch
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        self.model.load_state_dict(self.state)


# ----------------------------------------------------------------------------- lessons


def lesson04(setup: Setup) -> Result:
    """The CNN of lesson 04 section 4: build_cnn(16, 32) channels-last, Adam + OneCycleLR 5e-3, batch 128, 3 epochs."""
    x, y = setup.tensors(train=True)
    torch.manual_seed(0)
    model = reference_cnn(16, 32).to(setup.device, memory_format=torch.channels_last)
    epochs = setup.epochs(3)
    loader = training.TensorLoader(x, y, batch_size=128, shuffle=True, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=epochs * len(loader))
    history = training.fit(model, loader, nn.CrossEntropyLoss(), optimizer, epochs, scheduler=scheduler)
    return Result("lesson 04: CNN 16/32 + batch norm, channels-last, Adam, 3 epochs", history.seconds,
                  _test_accuracy(model, setup))


def lesson05(setup: Setup) -> Result:
    """Lesson 05's MLP, trained as the lesson trains it: Adam 3e-3, cosine per epoch, batch 256, 8 epochs."""
    x, y = setup.tensors(train=True)
    torch.manual_seed(0)
    model = mlp().to(setup.device)
    epochs = setup.epochs(8)
    loader = training.TensorLoader(x, y, batch_size=256, shuffle=True, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = training.fit(model, loader, nn.CrossEntropyLoss(), optimizer, epochs,
                           on_epoch=lambda epoch, h: scheduler.step())  # the schedule steps once per epoch
    return Result("lesson 05: MLP 256/128, Adam + cosine, 8 epochs", history.seconds, _test_accuracy(model, setup))


def lesson06(setup: Setup) -> Result:
    """Lesson 06: 90/10 seeded split, the MLP with Adam 1e-3, early stopping with patience 3 (max 25)."""
    train_part, val_part = random_split(setup.split(train=True), [0.9, 0.1], generator=torch.Generator().manual_seed(0))
    x, y = data.as_tensors(train_part, device=setup.device)
    xv, yv = data.as_tensors(val_part, device=setup.device)
    torch.manual_seed(0)
    model = mlp().to(setup.device)
    stop = _EarlyStop(model, patience=3)
    history = training.fit(model, training.TensorLoader(x, y, batch_size=128, shuffle=True, seed=0),
                           nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3),
                           setup.epochs(25) + (1 if setup.quick else 0), on_epoch=stop,
                           val_loader=training.TensorLoader(xv, yv, batch_size=1000))
    stop.restore()
    note = f"stopped after {len(history.val_loss)} epochs, kept epoch {stop.best_epoch}"
    return Result("lesson 06: MLP + early stopping (validation each epoch)", history.seconds,
                  _test_accuracy(model, setup), note)


# ----------------------------------------------------------------------------- peers


def _peer_train(model, loader, optimizer, epochs: int, device) -> float:
    """The peers' own loop: a DataLoader of ToTensor() images, .to(device) per batch, loss.item() per batch."""
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            loss.item()  # both recipes read the loss every batch (to print or to average it)
    return time.perf_counter() - start


def _peer_test(model, setup: Setup, batch_size: int) -> float:
    from torchvision.transforms import ToTensor

    loader = DataLoader(setup.split(train=False, transform=ToTensor()), batch_size=batch_size)
    correct, model = 0, model.eval()
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images.to(setup.device)).argmax(1).cpu() == labels).sum().item()
    return correct / len(loader.dataset)


def quickstart(setup: Setup) -> Result:
    """pytorch.org "Learn the Basics" quickstart, as published."""
    from torchvision.transforms import ToTensor

    loader = DataLoader(setup.split(train=True, transform=ToTensor()), batch_size=64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10)).to(setup.device)
    seconds = _peer_train(model, loader, torch.optim.SGD(model.parameters(), lr=1e-3), setup.epochs(5),
                          setup.device)
    return Result("peer: PyTorch quickstart MLP 512/512, SGD, 5 epochs", seconds, _peer_test(model, setup, 64))


def tiny_vgg(hidden: int = 10) -> nn.Sequential:
    """Zero to Mastery's FashionMNISTModelV2 (TinyVGG) for 1×28×28 images."""
    def block(cin):
        return [nn.Conv2d(cin, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 3, 1, 1), nn.ReLU(),
                nn.MaxPool2d(2, 2)]
    return nn.Sequential(*block(1), *block(hidden), nn.Flatten(), nn.Linear(hidden * 7 * 7, 10))


def ztm_tinyvgg(setup: Setup) -> Result:
    """Zero to Mastery, 03_pytorch_computer_vision, model_2, as published."""
    from torchvision.transforms import ToTensor

    torch.manual_seed(42)
    loader = DataLoader(setup.split(train=True, transform=ToTensor()), batch_size=32, shuffle=True)
    model = tiny_vgg().to(setup.device)
    seconds = _peer_train(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), setup.epochs(3),
                          setup.device)
    return Result("peer: ZTM TinyVGG 10 channels, SGD, 3 epochs", seconds, _peer_test(model, setup, 32))


# ----------------------------------------------------------------------------- report


RECIPES: dict[str, Callable[[Setup], Result]] = {
    "04": lesson04, "05": lesson05, "06": lesson06, "quickstart": quickstart, "tinyvgg": ztm_tinyvgg,
}


def _warm_up(device: torch.device) -> None:
    """One small step of a CNN, so that start-up costs (CUDA context, cuDNN) count for nobody."""
    model = tiny_vgg().to(device)
    x = torch.rand(8, 1, 28, 28, device=device)
    nn.functional.cross_entropy(model(x), torch.zeros(8, dtype=torch.long, device=device)).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()


def targets(results: dict[str, Result], device: torch.device) -> list[tuple[str, bool, str]]:
    """Issue 6's targets as (statement, holds, figures)."""
    r04, r05 = results["04"], results["05"]
    peers = [results["quickstart"], results["tinyvgg"]]

    def beats(r):
        return all(r.accuracy > p.accuracy and r.seconds < p.seconds for p in peers)

    def fig(r):
        return f"{r.accuracy:.1%} in {r.seconds:.1f} s"

    slowest_factor = min(p.seconds for p in peers)
    rows = [
        ("lesson 05 reaches >= 88% test accuracy in <= 15 s", r05.accuracy >= 0.88 and r05.seconds <= 15, fig(r05)),
        ("lesson 04 CNN reaches >= 91% test accuracy in <= 60 s", r04.accuracy >= 0.91 and r04.seconds <= 60,
         fig(r04)),
        ("lesson 04 beats both peers (higher accuracy, shorter time)", beats(r04), fig(r04)),
        ("lesson 05 beats both peers (higher accuracy, shorter time)", beats(r05), fig(r05)),
    ]
    if device.type != "cpu":
        for key in ("04", "05"):
            r = results[key]
            factor = slowest_factor / max(r.seconds, 1e-9)
            rows.append((f"on {device.type}, lesson {key} trains >= 10x faster than both peers", factor >= 10,
                         f"{factor:.1f}x the faster peer"))
    return rows


def report(results: dict[str, Result], device: torch.device, quick: bool, out=sys.stdout) -> None:
    threads = f", {torch.get_num_threads()} CPU threads" if device.type == "cpu" else ""
    print(f"\nFashion-MNIST, device {device}{threads}{' (QUICK smoke test: figures mean nothing)' if quick else ''}",
          file=out)
    print(f"{'recipe':<66} {'train s':>8} {'test acc':>9}", file=out)
    for r in results.values():
        print(f"{r.name:<66} {r.seconds:8.1f} {r.accuracy:9.1%}" + (f"  ({r.note})" if r.note else ""), file=out)
    print("\ntargets (issue 6)", file=out)
    for statement, holds, figures in targets(results, device):
        print(f"  [{'met' if holds else 'MISSED'}] {statement}: {figures}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lessons", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one epoch on 2,000 images: a smoke test")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--only", nargs="*", choices=list(RECIPES), default=list(RECIPES), help="recipes to run")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else _best_device()
    setup = Setup(device, args.quick, *((2000, 500) if args.quick else (None, None)))
    try:
        data.fashion_mnist(train=True), data.fashion_mnist(train=False)  # fail early, with the fix
    except data.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _warm_up(device)
    results = {}
    for key in args.only:
        results[key] = RECIPES[key](setup)
        r = results[key]
        print(f"{r.name}: {r.seconds:.1f} s, test accuracy {r.accuracy:.1%}", flush=True)
    if set(RECIPES) <= set(results):
        report(results, device, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
