"""The embedded data: Fashion-MNIST from local IDX files and the sets built from it.

Importing this package registers the tensorflow-datasets builders `fashion_mnist_local`,
`moving_fashion_mnist` and `fashion_mnist_scenes`, so `tfds.load(...)` works offline, and
`pipeline(...)` turns any of them (or any prepared TFDS image-classification dataset) into
(inputs, targets) batches for a model's card.

Example:
    >>> import kerasrv
    >>> ds = kerasrv.data.pipeline(kerasrv.zoo.info("cnn_lstm"), "train", batch_size=128)
    >>> images, labels = kerasrv.data.load_fashion_mnist("test")   # numpy, no TFDS
"""

from kerasrv.data.builders import NAMES as BUILDERS
from kerasrv.data.fine_tuning import coarse_fashion_mnist
from kerasrv.data.idx import DatasetError, load_fashion_mnist
from kerasrv.data.pipeline import arrays, fresh_clips, load_split, pipeline, show

__all__ = [
    "BUILDERS",
    "arrays",
    "DatasetError",
    "fresh_clips",
    "coarse_fashion_mnist",
    "load_fashion_mnist",
    "load_split",
    "pipeline",
    "show",
]
