"""Frame encoders from `keras.applications`, for the video architectures (lrcn, ConvLSTM).

Real video models start from an ImageNet-trained frame encoder (keras-io's CNN-RNN video
classifier reads InceptionV3 features). `application(name, frame_shape, weights)` builds one of
Keras' applications without its classifier, behind a fixed layer that turns the zoo's [0, 1]
inputs into what that application's own `preprocess_input` expects, so the frames need no
preprocessing of their own and a model of it saves, loads and exports like any other.

Example:
    >>> backbone = application("mobilenet_v3_small", (112, 112, 3), weights=None)
    >>> backbone.output_shape
    (None, 4, 4, 576)
"""

import importlib

import keras
import numpy as np

from kerasrv.errors import UsageError


def _constructor(name):
    """The `keras.applications` function of a name, matched without case or underscores."""
    wanted = name.replace("_", "").lower()
    for attribute in dir(keras.applications):
        if attribute[:1].isupper() and attribute.lower() == wanted:
            return getattr(keras.applications, attribute)
    known = sorted(a for a in dir(keras.applications) if a[:1].isupper())
    raise UsageError(
        f"unknown frame encoder {name!r}: expected 'cnn' (the architecture's own), a "
        f"keras.Model, or a keras.applications name ({', '.join(known)})"
    )


def preprocessing(constructor, channels, name="preprocessing"):
    """A fixed, non-trainable layer from [0, 1] inputs to the application's expected input.

    Every `preprocess_input` of `keras.applications` is affine per pixel (scale to [-1, 1],
    subtract the ImageNet mean, divide by its deviation, reorder RGB to BGR, or nothing for
    models that rescale inside), so it is measured once on the colour axes and held as a 1×1
    linear map on [0, 1] inputs, y = x A + b. Grey frames (1 channel) enter as grey in all three
    colours.
    """
    module = importlib.import_module(constructor.__module__)
    probe = np.zeros((4, 1, 1, 3), "float32")
    for i in range(3):
        probe[i + 1, 0, 0, i] = 255.0
    out = np.asarray(module.preprocess_input(probe.copy()), "float32")[:, 0, 0]
    bias = out[0]
    kernel = out[1:] - bias  # a row per input colour: its full intensity (1.0) in each output
    if channels == 1:
        kernel = kernel.sum(axis=0, keepdims=True)
    return keras.layers.Dense(
        3,
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(bias),
        trainable=False,
        name=name,
    )


def application(name, frame_shape, weights=None, *, strides=None, model_name="frame_encoder"):
    """A `keras.applications` model without its top, taking [0, 1] frames of `frame_shape`.

    Args:
        name: a keras.applications name ("mobilenet_v3_small", "resnet50", ...).
        frame_shape: (height, width, channels) of one frame; 1 or 3 channels.
        weights: "imagenet" (needs a network the first time; Keras caches the file) or None.
        strides: None for the last feature map; else the feature maps at these strides (for
            each, the deepest layer whose output is the frame's size divided by it), the skip
            connections of a decoder.
        model_name: the returned model's name.

    Returns:
        A functional `keras.Model` from a frame to the feature map(s).
    """
    constructor = _constructor(name)
    height, width, channels = frame_shape
    if channels not in (1, 3):
        raise UsageError(f"an ImageNet frame encoder takes 1 or 3 channels, got {channels}")
    frame = keras.Input(frame_shape, name="frame")
    x = preprocessing(constructor, channels)(frame)
    backbone = constructor(include_top=False, weights=weights, input_shape=(height, width, 3))
    if strides is not None:
        found = {}
        for layer in backbone.layers:
            shape = layer.output.shape
            for stride in strides:
                if len(shape) == 4 and shape[1] is not None and shape[1] * stride == height:
                    found[stride] = layer.output
        missing = [s for s in strides if s not in found]
        if missing:
            raise UsageError(
                f"{name} has no feature map at stride {missing} for frames of {height}×{width}"
            )
        backbone = keras.Model(
            backbone.input, [found[s] for s in strides], name=f"{backbone.name}_stages"
        )
    return keras.Model(frame, backbone(x), name=model_name)
