"""Forms of Keras layers whose graphs need no shape read at run time, for converters.

A TFLite file with a dynamic batch is planned once for each batch size, as long as every
tensor's shape follows from the input's by the ops themselves. Three of Keras' layers read the
batch size while running instead: `Conv2DTranspose` passes the output shape to
`conv2d_transpose` as a tensor (SHAPE → PACK → TRANSPOSE_CONV), `Dense` on an input of more
than two axes reshapes by the input's run-time shape (Tensordot's SHAPE → GATHER → REDUCE_PROD
→ RESHAPE), and `Flatten` reshapes to (the batch read at run time, -1). Each such tensor is
"dynamic" in LiteRT: allocated while the file runs, with the graph after it prepared again, and
never taken by the XNNPACK delegate. The forms here compute the same outputs from the same
weights with shapes fixed by the ops: the transposed convolution as a sub-pixel convolution,
the Dense layer over folded leading axes, the Flatten layer by its static item size.
"""

import keras
import numpy as np
from keras import ops


def _phase_taps(kernel, stride, pad_before):
    """Per output phase, the (input offset, kernel tap) pairs of a 1-D transposed convolution.

    A transposed convolution adds input i times tap k into output p = stride·i + k − pad_before.
    For the output p = stride·m + a (phase a), tap k reads input m + (a − k + pad_before) / stride
    wherever that division is exact.
    """
    taps = {a: [] for a in range(stride)}
    for k in range(kernel):
        a = (k - pad_before) % stride
        taps[a].append(((a - k + pad_before) // stride, k))
    return taps


@keras.saving.register_keras_serializable(package="kerasrv")
class SubPixelConv2DTranspose(keras.layers.Layer):
    """Keras' `Conv2DTranspose` ("same" padding) as a convolution and a depth-to-space shuffle.

    The sub-pixel convolution of Shi et al. (2016, "Real-Time Single Image and Video
    Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network"): a stride-s
    transposed convolution is s² ordinary convolutions, one per output phase, over the same
    small input neighbourhood. They run as one convolution with s²·filters outputs on the
    padded input, and a depth-to-space shuffle interleaves the phases. Same outputs as the
    transposed convolution (within float32 rounding), with only static shapes (see the module
    docstring).

    Args:
        filters: output channels.
        kernel_size: (height, width) of the phase convolution.
        strides: (height, width) upsampling factors.
        paddings: ((top, bottom), (left, right)) zeros around the input.
        use_bias: add one bias per output channel.
        activation: applied to the output, as in Conv2DTranspose.

    Example:
        >>> deconv = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
        >>> x = keras.random.normal((2, 5, 5, 3))
        >>> form = SubPixelConv2DTranspose.like(deconv, x.shape)
        >>> bool(keras.ops.max(keras.ops.abs(form(x) - deconv(x))) < 1e-5)
        True
    """

    def __init__(
        self, filters, kernel_size, strides, paddings, use_bias=True, activation=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.paddings = tuple(tuple(p) for p in paddings)
        self.use_bias = use_bias
        self.activation = keras.activations.get(activation)

    @classmethod
    def like(cls, deconv, input_shape=None):
        """The form of a `keras.layers.Conv2DTranspose`, holding its weights, or None.

        Only "same" padding, no output padding, dilation 1, channels last have this form (with
        equal strides on both axes: `depth_to_space` takes one block size).
        """
        if not isinstance(deconv, keras.layers.Conv2DTranspose):
            return None
        strides = tuple(deconv.strides)
        if (
            deconv.padding != "same"
            or deconv.output_padding is not None
            or tuple(deconv.dilation_rate) != (1, 1)
            or deconv.data_format != "channels_last"
            or strides[0] != strides[1]
        ):
            return None
        if not deconv.built:
            deconv.build(input_shape)
        kernel = keras.ops.convert_to_numpy(deconv.kernel)  # (kh, kw, filters, in_channels)
        taps, offsets = [], []
        for size, stride in zip(kernel.shape[:2], strides):
            # "same": the padding of the stride-s convolution this one is the transpose of
            axis_taps = _phase_taps(size, stride, max(size - stride, 0) // 2)
            taps.append(axis_taps)
            offsets.append([d for pairs in axis_taps.values() for d, _ in pairs])
        low = [min(0, *o) for o in offsets]
        high = [max(0, *o) for o in offsets]
        shape = [h - lo + 1 for lo, h in zip(low, high)]
        filters, channels = kernel.shape[2], kernel.shape[3]
        stride = strides[0]
        phase_kernel = np.zeros((*shape, channels, stride * stride * filters), kernel.dtype)
        for a_y, pairs_y in taps[0].items():
            for a_x, pairs_x in taps[1].items():
                phase = (a_y * stride + a_x) * filters  # depth_to_space's channel order
                for d_y, k_y in pairs_y:
                    for d_x, k_x in pairs_x:
                        phase_kernel[d_y - low[0], d_x - low[1], :, phase : phase + filters] = (
                            kernel[k_y, k_x].T
                        )
        layer = cls(
            filters,
            shape,
            strides,
            ((-low[0], high[0]), (-low[1], high[1])),
            use_bias=deconv.use_bias,
            activation=deconv.activation,
            name=deconv.name,
            dtype=deconv.dtype_policy,
        )
        layer.build((None, None, None, channels))
        weights = [phase_kernel] + ([deconv.get_weights()[1]] if deconv.use_bias else [])
        layer.set_weights(weights)
        return layer

    def build(self, input_shape):
        phases = self.strides[0] * self.strides[1]
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, input_shape[-1], phases * self.filters)
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )

    def call(self, x):
        x = ops.pad(x, ((0, 0), *self.paddings, (0, 0)))
        x = ops.conv(x, self.kernel, padding="valid")
        if self.strides[0] > 1:
            x = self._depth_to_space(x, self.strides[0])
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x)

    def _depth_to_space(self, x, block):
        # `depth_to_space` as reshapes around one 5-D transpose: TFLite's 16x8 quantization has
        # no DEPTH_TO_SPACE kernel. Channel (by·block + bx)·filters + f goes to pixel
        # (y·block + by, x·block + bx); y rides with the batch, where it stays in order.
        _, height, width, _ = x.shape
        x = ops.reshape(x, (-1, width, block, block, self.filters))  # (b·y, x, by, bx, f)
        x = ops.transpose(x, (0, 2, 1, 3, 4))  # (b·y, by, x, bx, f)
        return ops.reshape(x, (-1, height * block, width * block, self.filters))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        scaled = [None if d is None else d * s for d, s in zip((height, width), self.strides)]
        return (batch, *scaled, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "paddings": self.paddings,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        }


def _static_input_shape(layer, input_shape=None):
    """`input_shape`, or the shape `layer` was called on, if all but its batch axis are static;
    else None (also for a layer never called, or called on several inputs)."""
    if input_shape is None:
        try:
            input_shape = layer.input.shape
        except (AttributeError, ValueError):
            return None
    return None if any(d is None for d in input_shape[1:]) else tuple(input_shape)


@keras.saving.register_keras_serializable(package="kerasrv")
class FoldedDense(keras.layers.Layer):
    """Keras' `Dense` on an input of three or more axes, with the leading axes folded by -1.

    (B, ..., C) → reshape (-1, C) → matmul → reshape (-1, ..., units): the axes between the
    batch and the channels must be static, and then no shape is read at run time.

    Args:
        units: output channels.
        use_bias: add a bias.
        activation: applied to the output, as in Dense.
    """

    def __init__(self, units, use_bias=True, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = use_bias
        self.activation = keras.activations.get(activation)

    @classmethod
    def like(cls, dense, input_shape=None):
        """The form of a `keras.layers.Dense` whose input has static middle axes, or None.

        A Dense on a matrix (batch, channels) already has static shapes: it gets None too, as
        does a quantized or LoRA-enabled one.
        """
        if type(dense) is not keras.layers.Dense or getattr(dense, "lora_enabled", False):
            return None
        if getattr(dense, "quantization_mode", None):
            return None
        shape = _static_input_shape(dense, input_shape)
        if shape is None or len(shape) < 3:
            return None
        if not dense.built:
            dense.build(shape)
        layer = cls(
            dense.units,
            use_bias=dense.use_bias,
            activation=dense.activation,
            name=dense.name,
            dtype=dense.dtype_policy,
        )
        layer.build(shape)
        layer.set_weights(dense.get_weights())
        return layer

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
            if self.use_bias
            else None
        )

    def call(self, x):
        middle = x.shape[1:-1]
        y = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(ops.reshape(y, (-1, *middle, self.units)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package="kerasrv")
class StaticFlatten(keras.layers.Layer):
    """Keras' `Flatten` (channels last) as a reshape to (-1, the static size of one item)."""

    @classmethod
    def like(cls, flatten, input_shape=None):
        """The form of a channels-last `keras.layers.Flatten` with a static item shape, or None."""
        if type(flatten) is not keras.layers.Flatten or flatten.data_format != "channels_last":
            return None
        shape = _static_input_shape(flatten, input_shape)
        if shape is None or len(shape) < 2:
            return None
        return cls(name=flatten.name, dtype=flatten.dtype_policy)

    def call(self, x):
        return ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))
