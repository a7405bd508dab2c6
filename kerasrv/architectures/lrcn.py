"""LRCN (Donahue et al., 2015): a per-frame CNN, then an LSTM over the frames.

The common TimeDistributed CNN + RNN recipe for video: every frame goes through one CNN encoder
(batch and time folded together, see `kerasrv.layers.FrameWise`), and an LSTM reads the
sequence of frame features to classify the clip: on Moving Fashion-MNIST, the direction an item
moves, which no single frame shows.
"""

import keras

from kerasrv.architectures import encoders
from kerasrv.labels import MOTION_DIRECTIONS
from kerasrv.layers import FrameWise, conv_block, recurrent
from kerasrv.registry import architecture, register


def _with_features(base, frame_shape, features, weights):
    """A given frame encoder (a keras.applications name or a model), then `features` units."""
    if isinstance(base, str):
        base = encoders.application(base, frame_shape, weights, model_name="backbone")
    frame = keras.Input(frame_shape, name="frame")
    x = base(frame)
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(features, activation="relu", name="features")(x)
    return keras.Model(frame, x, name="frame_encoder")


def cnn_encoder(frame_shape, filters, features, name="frame_encoder", grid=None):
    """A CNN mapping one frame (H, W, C) to a feature vector that keeps where things are.

    Conv-BN-ReLU blocks that each halve the resolution (the first with a stride-2 convolution,
    the cheapest place to shrink a frame; the others with 2×2 max pooling), then Flatten (not
    global pooling: positions matter for motion) and a dense layer. `grid` fixes the feature
    map the dense layer reads, so frames of another size fit it (average-pooled to the grid).
    """
    frame = keras.Input(frame_shape, name="frame")
    x = frame
    for b, width in enumerate(filters, start=1):
        if b == 1:
            x = conv_block(x, width, strides=2, name=f"block{b}")
        else:
            x = conv_block(x, width, name=f"block{b}")
            x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    if grid is not None and tuple(x.shape[1:3]) != tuple(grid):
        x = keras.layers.AdaptiveAveragePooling2D(tuple(grid), name="grid")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(features, activation="relu", name="features")(x)
    return keras.Model(frame, x, name=name)


@architecture
def lrcn(
    input_shape=(10, 64, 64, 1),
    num_classes=8,
    *,
    filters=(16, 32, 64),
    features=256,
    units=128,
    cell="lstm",
    dropout=0.3,
    feature_grid=None,
    frame_encoder="cnn",
    encoder_weights=None,
):
    """Per-frame CNN encoder → recurrent layer → softmax over the clip.

    Any clip length works; `feature_grid` lets frames of other sizes reuse the encoder's dense
    layer (see `frame_encoder`). The encoder can also be one of `keras.applications`, trained on
    ImageNet (`frame_encoder="mobilenet_v3_small", encoder_weights="imagenet"`), or any
    `keras.Model` of a frame; its feature map is flattened into `features` as the own CNN's is.

    Args:
        input_shape: (frames, height, width, channels); height and width divisible by
            2**len(filters).
        num_classes: classes of the clip (8 motion directions on Moving Fashion-MNIST).
        filters: channels of the encoder's conv blocks.
        features: size of each frame's feature vector.
        units: hidden size of the recurrent layer.
        cell: "lstm" or "gru".
        dropout: dropout before the head.
        feature_grid: (rows, columns) of the encoder's last feature map (None: whatever the
            frame size gives).
        frame_encoder: "cnn" (the conv blocks of `filters`), a keras.applications name, or a
            `keras.Model` from one frame to a feature map or vector.
        encoder_weights: for a keras.applications encoder: "imagenet" (downloaded once by
            Keras, so it needs a network) or None.

    Returns:
        An uncompiled `keras.Model` from `frames` (B, T, H, W, C) in [0, 1] to `probabilities`.

    Example:
        >>> model = lrcn()
        >>> model(keras.ops.zeros((2, 10, 64, 64, 1))).shape
        (2, 8)
    """
    frames = keras.Input(input_shape, name="frames")
    if isinstance(frame_encoder, str) and frame_encoder == "cnn":
        encoder = cnn_encoder(input_shape[1:], filters, features, grid=feature_grid)
    else:
        encoder = _with_features(frame_encoder, input_shape[1:], features, encoder_weights)
    x = FrameWise(encoder, name="encoder")(frames)
    x = recurrent(cell, units, name=cell)(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(num_classes, name="head")(x)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(frames, probabilities, name="lrcn")


register(
    "lrcn.motion",
    default=True,
    description="per-frame CNN → LSTM(128): which of 8 directions the item moves",
    recipe={"epochs": 20, "batch_size": 32},
    input_shape=(10, 64, 64, 1),
    num_classes=len(MOTION_DIRECTIONS),
    feature_grid=(8, 8),
    task="video_classification",
    dataset="moving_fashion_mnist",
    target="motion",
    class_names=MOTION_DIRECTIONS,
)
