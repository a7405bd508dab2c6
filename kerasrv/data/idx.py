"""Reads Fashion-MNIST from its IDX files (Debian's `dataset-fashion-mnist`), with numpy alone."""

import functools
import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np

from kerasrv.errors import DatasetError, UsageError  # kerasrv.data.DatasetError too

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_DIR = "KERASRV_FASHION_MNIST_DIR"

# split → (images file, labels file, number of examples)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
INSTALL_HINT = (
    "install Debian's package (sudo apt-get install dataset-fashion-mnist) or set "
    f"{ENV_DIR} to a directory holding the four Fashion-MNIST IDX files (gzip or raw)"
)


def data_dir(directory=None):
    """The Fashion-MNIST directory: the argument, else $KERASRV_FASHION_MNIST_DIR, else Debian's."""
    return Path(directory or os.environ.get(ENV_DIR) or DEFAULT_DIR)


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise DatasetError(f"Fashion-MNIST file {directory / stem}[.gz] is missing; {INSTALL_HINT}")


def read_idx(path, magic, shape):
    """Reads one IDX file of unsigned bytes and checks it.

    Args:
        path: the file, gzip-compressed (name ends in .gz) or raw.
        magic: the expected magic number (2051 for images, 2049 for labels).
        shape: the expected dimensions.

    Returns:
        A read-only uint8 array of `shape`.

    Raises:
        DatasetError: the file is missing, truncated, not gzip, or has the wrong magic number,
            dimensions or length; the message names the file.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DatasetError(f"Fashion-MNIST file {path} is missing; {INSTALL_HINT}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DatasetError(
            f"Fashion-MNIST file {path} is corrupt or truncated ({error}); {INSTALL_HINT}"
        ) from None
    header = 4 + 4 * len(shape)
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated: {len(raw)} bytes, shorter than its header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise DatasetError(f"{path} has magic number {found:#010x}, expected {magic:#010x}")
    dims = struct.unpack(f">{len(shape)}I", raw[4:header])
    if tuple(dims) != tuple(shape):
        raise DatasetError(f"{path} holds an array of shape {dims}, expected {tuple(shape)}")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DatasetError(
            f"{path} is truncated or padded: {len(raw)} bytes, expected {expected}; {INSTALL_HINT}"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    array.flags.writeable = False
    return array


@functools.lru_cache(maxsize=4)
def _load(split, images_path, labels_path, stamps):
    del stamps  # part of the cache key only: a file changed on disk is read again
    count = FILES[split][2]
    images = read_idx(images_path, IMAGES_MAGIC, (count, 28, 28))
    labels = read_idx(labels_path, LABELS_MAGIC, (count,))
    if labels.max() > 9:
        raise DatasetError(f"{labels_path} holds label {labels.max()}, expected 0–9")
    return images, labels


def fingerprint(directory=None):
    """The sha256 of the four Fashion-MNIST files as they are now: what the builders were made of.

    A prepared TFDS dataset built from other files (another $KERASRV_FASHION_MNIST_DIR, a
    replaced file) carries another fingerprint, so it is built again rather than read stale.

    Raises:
        DatasetError: a file is missing.
    """
    directory = data_dir(directory).resolve()
    paths = [
        _find(directory, stem) for images, labels, _ in FILES.values() for stem in (images, labels)
    ]
    stamps = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _fingerprint(stamps)


@functools.lru_cache(maxsize=4)
def _fingerprint(stamps):
    digest = hashlib.sha256()
    for path, _, _ in stamps:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_fashion_mnist(split="train", directory=None):
    """Fashion-MNIST images and labels, read from the local IDX files.

    Args:
        split: "train" (60,000 examples) or "test" (10,000).
        directory: where the IDX files are; default $KERASRV_FASHION_MNIST_DIR, else
            /usr/share/datasets/fashion-mnist.

    Returns:
        (images, labels): read-only uint8 arrays of shape (N, 28, 28) and (N,).

    Raises:
        DatasetError: a file is missing, truncated or corrupt (the message says which and how to
            install the data).

    Example:
        >>> images, labels = load_fashion_mnist("test")
        >>> images.shape, labels[:3]
        ((10000, 28, 28), array([9, 2, 1], dtype=uint8))
    """
    if split not in FILES:
        raise UsageError(f"Fashion-MNIST has splits 'train' and 'test', got {split!r}")
    directory = data_dir(directory).resolve()
    images_stem, labels_stem, _ = FILES[split]
    paths = (_find(directory, images_stem), _find(directory, labels_stem))
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _load(split, *paths, stamps)
