"""Tasks built from Fashion-MNIST that no zoo entry was trained for (for fine-tuning)."""

import numpy as np

from kerasrv.data.idx import load_fashion_mnist
from kerasrv.labels import COARSE_OF_CLASS


def coarse_fashion_mnist(split="train", count=None, seed=0):
    """Fashion-MNIST with labels regrouped into 4 coarse categories (`labels.COARSE_CLASSES`).

    Args:
        split: "train" or "test".
        count: how many examples, drawn at random (seeded) without replacement; None for all.
        seed: the draw's seed.

    Returns:
        (images, labels): float32 (N, 28, 28, 1) in [0, 1] and int32 (N,) coarse class ids.

    Example:
        >>> x, y = coarse_fashion_mnist("train", count=500)
        >>> model = kerasrv.zoo.load("cnn_lstm", num_classes=4)
        >>> model.fit(x, y, epochs=3)
    """
    images, labels = load_fashion_mnist(split)
    index = np.arange(len(images))
    if count is not None:
        index = np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))
    x = images[index][..., None].astype("float32") / 255.0
    y = np.asarray(COARSE_OF_CLASS, dtype="int32")[labels[index]]
    return x, y
