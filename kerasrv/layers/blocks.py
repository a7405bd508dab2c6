"""Convolution blocks the architectures share (functions on Keras tensors, not layers)."""

import math

import keras

from kerasrv.layers.normalization import BatchNormalization


def conv_block(x, filters, *, name, kernel_size=3, strides=1):
    """Conv2D → BatchNorm → ReLU, 'same' padding so masks keep the input's size.

    Args:
        x: a Keras tensor (B, H, W, C).
        filters: output channels.
        name: prefix of the three layers' names.
        kernel_size: convolution kernel side.
        strides: convolution stride (2 halves H and W).

    Returns:
        The block's output tensor.
    """
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def upsample_block(x, filters, *, name):
    """Transposed conv (×2) → BatchNorm → ReLU: the decoders' upsampling step.

    Args:
        x: a Keras tensor (B, H, W, C).
        filters: output channels.
        name: prefix of the layers' names.

    Returns:
        A tensor (B, 2H, 2W, filters).
    """
    x = keras.layers.Conv2DTranspose(
        filters, 3, strides=2, padding="same", use_bias=False, name=f"{name}_deconv"
    )(x)
    x = BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def segmentation_head(x, num_classes, *, background=0.8, name="head"):
    """The per-pixel classifier: a Dense layer over channels whose bias starts at the class prior.

    Background covers most pixels; starting its probability at `background` (the rest shared by
    the other classes, as RetinaNet's prior initialisation does) spares the first hundreds of
    steps spent learning just that, and keeps early gradients on the items.

    Args:
        x: a Keras tensor (..., channels).
        num_classes: classes, background (class 0) included.
        background: initial probability of class 0.
        name: the layer's name ("head" is what `kerasrv.zoo.load(num_classes=...)` replaces).

    Returns:
        Logits (..., num_classes).
    """
    bias = [0.0] * num_classes
    if num_classes > 1:
        bias[0] = math.log(background / ((1.0 - background) / (num_classes - 1)))
    return keras.layers.Dense(
        num_classes, bias_initializer=keras.initializers.Constant(bias), name=name
    )(x)
