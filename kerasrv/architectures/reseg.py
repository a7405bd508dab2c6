"""ReSeg (Visin et al., 2016): per-pixel segmentation with ReNet sweeps.

A recurrent segmenter has to keep the spatial layout (a "conv → Flatten → LSTM" stack gives one
label, not a mask): a conv encoder, ReNet layers so every position sees the whole image, and an
upsampling decoder back to the input resolution with a per-pixel softmax. The LSTMs keep tanh
activations: a `relu` LSTM leaves the cuDNN kernel and its state grows without bound.
"""

import keras

from kerasrv.labels import SEGMENTATION_CLASSES
from kerasrv.layers import ReNet, conv_block, segmentation_head, upsample_block
from kerasrv.registry import architecture, register


@architecture
def reseg(
    input_shape=(64, 64, 1),
    num_classes=11,
    *,
    filters=(32, 64),
    renet_units=(64, 64),
    cell="lstm",
    skips=True,
):
    """Conv encoder → ReNet layers → transposed-conv decoder → per-pixel softmax.

    The default input is a 64×64 canvas (the scenes dataset: 2–4 Fashion-MNIST items of 28×28 on
    one canvas); any size divisible by 2**(len(filters)+1) works. The encoder halves the
    resolution len(filters)+1 times (the first time with a stride-2 convolution), the ReNet
    layers run at the smallest resolution, and the decoder mirrors the encoder.

    Args:
        input_shape: (height, width, channels).
        num_classes: per-pixel classes, background included.
        filters: channels of each encoder block (two Conv-BN-ReLU at half the resolution of
            the block before); the decoder mirrors them.
        renet_units: hidden size per direction of each ReNet layer at the encoder's resolution.
        cell: "lstm" or "gru".
        skips: concatenate each encoder block's features into the decoder at the same
            resolution (sharper mask boundaries; ReSeg's paper has none).

    Returns:
        An uncompiled `keras.Model` from `image` (B, H, W, C) in [0, 1] to `mask`, per-pixel class
        probabilities (B, H, W, num_classes).

    Example:
        >>> model = reseg()
        >>> model(keras.ops.zeros((2, 64, 64, 1))).shape
        (2, 64, 64, 11)
    """
    image = keras.Input(input_shape, name="image")
    x = image
    encoded = []
    for b, width in enumerate(filters, start=1):
        if b == 1:  # a stride-2 first convolution: full resolution is the costliest place
            x = conv_block(x, width, strides=2, name="encoder1_0")
        else:
            x = keras.layers.MaxPooling2D(2, name=f"encoder{b}_pool")(x)
        x = conv_block(x, width, name=f"encoder{b}_1")
        x = conv_block(x, width, name=f"encoder{b}_2")
        encoded.append(x)
    x = keras.layers.MaxPooling2D(2, name="encoder_pool")(x)
    for i, width in enumerate(renet_units, start=1):
        x = ReNet(width, cell=cell, name=f"renet{i}")(x)
    for b in range(len(filters), 0, -1):
        x = upsample_block(x, filters[b - 1], name=f"decoder{b}_up")
        if skips:
            x = keras.layers.Concatenate(name=f"decoder{b}_skip")([x, encoded[b - 1]])
        x = conv_block(x, filters[b - 1], name=f"decoder{b}")
    # Back at full resolution beside the raw image: its intensities mark an item's pixels exactly.
    x = upsample_block(x, filters[0], name="decoder0_up")
    x = keras.layers.Concatenate(name="decoder0_skip")([x, image])
    x = segmentation_head(x, num_classes)
    mask = keras.layers.Activation("softmax", dtype="float32", name="mask")(x)
    return keras.Model(image, mask, name="reseg")


register(
    "reseg.scenes",
    default=True,
    description="conv encoder → 2 ReNet (BiLSTM 64) → decoder; 2–4 items on a 64×64 canvas",
    recipe={"epochs": 15, "batch_size": 32, "augment": True},
    input_shape=(64, 64, 1),
    num_classes=len(SEGMENTATION_CLASSES),
    task="segmentation",
    dataset="fashion_mnist_scenes",
    target="mask",
    class_names=SEGMENTATION_CLASSES,
)
