"""Checking and unpacking the IDX files that MNIST-style data sets are stored in.

An IDX file starts with a magic number (two zero bytes, a type code, the number of
dimensions), then one big-endian int32 per dimension, then the values. A file whose
size disagrees with its header is truncated or corrupt, and must never be read as data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import zlib
from pathlib import Path

# The four files of an MNIST-style data set and the shape each must have.
IDX_FILES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}


# md5 of the unpacked Fashion-MNIST files. The .gz md5s in torchvision's
# ``FashionMNIST.resources`` cannot be used: Debian recompressed the files, so its .gz
# bytes differ from the original ones, while the bytes inside are the same.
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


class BadFile(Exception):
    """A data file is missing, truncated or corrupt; the text says which and how."""


def md5(path: Path) -> str:
    """The md5 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_idx(path: Path, shape: tuple[int, ...], md5_hex: str | None = None) -> None:
    """Raise BadFile unless ``path`` is an unsigned-byte IDX file of exactly ``shape`` (and checksum)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4 + 4 * len(shape))
    except OSError as err:
        raise BadFile(f"{path} cannot be read: {err.strerror}") from None
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] != len(shape):
        raise BadFile(f"{path} is not an IDX file of unsigned bytes (wrong header): it is corrupt")
    dims = struct.unpack(f">{len(shape)}i", head[4:]) if len(head) == 4 + 4 * len(shape) else ()
    if tuple(dims) != tuple(shape):
        raise BadFile(f"{path} holds shape {tuple(dims)}, expected {tuple(shape)}: it is corrupt")
    expected = len(head) + _prod(shape)
    if size != expected:
        raise BadFile(f"{path} has {size:,} bytes, expected {expected:,}: it is truncated or corrupt")
    if md5_hex is not None and md5(path) != md5_hex:
        raise BadFile(f"{path} has the right size but not the published checksum: it is corrupt")


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def gunzip_verified(src: Path, dest: Path, md5_hex: str | None, shape: tuple[int, ...]) -> None:
    """Unpack ``src`` into ``dest`` atomically; the unpacked bytes must have ``shape`` and ``md5_hex``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                out.write(block)
        try:
            check_idx(Path(tmp), shape, md5_hex)
        except BadFile as err:
            raise BadFile(f"{src} unpacks to a damaged file ({str(err).split(': ')[-1]})") from None
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise BadFile(f"{src} cannot be unpacked: {err}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
