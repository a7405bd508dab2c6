"""ReNet classifier (Visin et al., 2015): recurrent sweeps replace convolution and pooling."""

import keras

from kerasrv.errors import UsageError
from kerasrv.labels import FASHION_MNIST_CLASSES
from kerasrv.layers import ReNet
from kerasrv.registry import architecture, register


@architecture
def renet(
    input_shape=(28, 28, 1),
    num_classes=10,
    *,
    units=(64, 64),
    patch_sizes=(2, 2),
    cell="lstm",
    dense_units=256,
    dropout=0.3,
    feature_grid=None,
    stem_filters=(),
):
    """Stacked ReNet layers, then a dense classifier.

    Each ReNet layer reads non-overlapping patches with a bidirectional sweep along the rows and
    one along the columns, so after the first layer every feature sees the whole image. The
    sweeps take any size; the dense classifier reads a fixed grid, which `feature_grid` keeps
    for other sizes (average-pooled to it; nothing is added at the trained size).

    The paper's ReNet reads raw pixels. `stem_filters` puts 3×3 convolutions (ReLU) in front at
    full resolution, as ReSeg (Visin et al., 2016) puts a conv encoder in front of its sweeps:
    the first sweep then reads local edge and texture features instead of 2×2 pixel values.

    Args:
        input_shape: (height, width, channels), divisible by the product of `patch_sizes`.
        num_classes: classes of the softmax head.
        units: hidden size per direction of each ReNet layer.
        patch_sizes: patch side of each ReNet layer (same length as `units`).
        cell: "lstm" or "gru".
        dense_units: width of the fully connected layer before the head.
        dropout: dropout before the fully connected layer and before the head.
        feature_grid: (rows, columns) of the grid the classifier reads (None: whatever the
            input gives).
        stem_filters: channels of each 3×3 convolution before the first ReNet layer (none by
            default: the paper's pixel-reading ReNet).

    Returns:
        An uncompiled `keras.Model` from `image` (B, H, W, C) in [0, 1] to `probabilities`.

    Example:
        >>> model = renet()
        >>> model(keras.ops.zeros((2, 28, 28, 1))).shape
        (2, 10)
    """
    if len(units) != len(patch_sizes):
        raise UsageError(
            f"renet expects one patch size per ReNet layer, got units={units} and "
            f"patch_sizes={patch_sizes}"
        )
    image = keras.Input(input_shape, name="image")
    x = image
    for i, filters in enumerate(stem_filters, start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"stem{i}")(x)
    for i, (width, patch) in enumerate(zip(units, patch_sizes), start=1):
        x = ReNet(width, patch_size=patch, cell=cell, name=f"renet{i}")(x)
    if feature_grid is not None and tuple(x.shape[1:3]) != tuple(feature_grid):
        x = keras.layers.AdaptiveAveragePooling2D(tuple(feature_grid), name="feature_grid")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout1")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="fc")(x)
    x = keras.layers.Dropout(dropout, name="dropout2")(x)
    x = keras.layers.Dense(num_classes, name="head")(x)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(image, probabilities, name="renet")


register(
    "renet.fmnist",
    default=True,
    description="3×3 conv stem (32) → 2 ReNet layers (2×2 patches, BiLSTM 64) → dense classifier",
    recipe={"epochs": 20, "batch_size": 158, "augment": True},
    input_shape=(28, 28, 1),
    num_classes=10,
    feature_grid=(7, 7),
    # a conv stem before the sweeps: measured against none in bench/findings.md
    stem_filters=(32,),
    task="classification",
    dataset="fashion_mnist_local",
    target="label",
    class_names=FASHION_MNIST_CLASSES,
)
