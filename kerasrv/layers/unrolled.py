"""Keras' GRU and ConvLSTM2D written out step by step, for TFLite's converter: the same weights
and outputs, no `while` loop, static shapes (see `kerasrv.export.forms`)."""

import keras

from kerasrv.errors import UsageError


def _holding_weights_of(original, input_shape, make):
    """`make()`, a layer of another form, built for `original`'s input and holding its weights.

    `original` (a recurrent layer, or a Bidirectional one) is built first if it is not yet; the
    new layer's weights must come in the same order and shapes as the original's.
    """
    if not original.built:
        original.build(input_shape)
    layer = make()
    layer.build((None, None, original.weights[0].shape[0]))  # the first weight: the input kernel
    layer.set_weights(original.get_weights())
    return layer


@keras.saving.register_keras_serializable(package="kerasrv")
class UnrolledGRU(keras.layers.Layer):
    """Keras' GRU (`reset_after=True`, its default) written out step by step, for converters.

    Same weights, same outputs as `keras.layers.GRU(units, unroll=True)` (within float32
    rounding), in a form TFLite's full-integer quantization keeps: the input product of every
    step is one matmul over the whole sequence, and the first step, whose state is zero, skips
    the products with that state. Keras' GRU computes `zeros · U + recurrent_bias` there; the
    converter calibrates the zero input to a scale of 0, the int64 bias of that product
    (scaled by input scale × weight scale) becomes 0, and the error runs through every later
    step (row_rnn.gru in 16x8 mode: 0.25 top-1 agreement with Keras; in this form, 1.0).

    Args:
        units: size of the hidden state.
        return_sequences: return every step's state, not only the last.

    Example:
        >>> gru = keras.layers.GRU(16)
        >>> x = keras.ops.ones((2, 5, 3))
        >>> unrolled = UnrolledGRU.like(gru, x.shape)
        >>> bool(keras.ops.all(keras.ops.abs(unrolled(x) - gru(x)) < 1e-6))
        True
    """

    def __init__(self, units, return_sequences=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.return_sequences = return_sequences

    @classmethod
    def like(cls, gru, input_shape=None):
        """An UnrolledGRU holding a built `keras.layers.GRU`'s weights (None if it cannot).

        Only the default GRU has this form: tanh/sigmoid, `reset_after=True`, a bias, forward,
        no returned state. `input_shape` builds `gru` first if it is not built yet.
        """
        cell = gru.cell
        default = (
            cell.reset_after
            and cell.use_bias
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not (gru.go_backwards or gru.return_state or gru.stateful)
        )
        if not default:
            return None
        return _holding_weights_of(
            gru,
            input_shape,
            lambda: cls(
                gru.units,
                return_sequences=gru.return_sequences,
                name=gru.name,
                dtype=gru.dtype_policy,
            ),
        )

    def build(self, input_shape):
        # Named and shaped as GRUCell's weights, so `set_weights(gru.get_weights())` fits.
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], 3 * self.units))
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, 3 * self.units)
        )
        self.bias = self.add_weight(name="bias", shape=(2, 3 * self.units), initializer="zeros")

    def call(self, sequence, mask=None, training=None):
        if mask is not None:
            raise UsageError("UnrolledGRU does not take a mask")
        ops = keras.ops
        units = self.units
        input_bias, recurrent_bias = self.bias[0], self.bias[1]
        # Update and reset gates add both biases outside the reset product: fold them into the
        # input product; the candidate's recurrent bias stays with the recurrent product.
        z_r_bias = input_bias[: 2 * units] + recurrent_bias[: 2 * units]
        candidate_recurrent_bias = recurrent_bias[2 * units :]
        state_bias = ops.concatenate([ops.zeros_like(z_r_bias), candidate_recurrent_bias])
        # One matmul over every step, on the sequence folded to 2-D by its static sizes: a 3-D
        # matmul is a Tensordot that reads the batch at run time (SHAPE → GATHER → REDUCE_PROD).
        steps, features = sequence.shape[1], sequence.shape[2]
        projected = ops.matmul(ops.reshape(sequence, (-1, features)), self.kernel)
        projected = projected + ops.concatenate([z_r_bias, input_bias[2 * units :]])
        projected = ops.unstack(ops.reshape(projected, (-1, steps, 3 * units)), axis=1)
        state, states = None, []
        for step in range(steps):
            x_zr, x_h = ops.split(projected[step], [2 * units], axis=-1)
            if state is None:  # the zero initial state: its products are zero
                z, r = ops.split(ops.sigmoid(x_zr), 2, axis=-1)
                candidate = ops.tanh(x_h + r * candidate_recurrent_bias)
                state = candidate - z * candidate  # (1 - z) · candidate
            else:
                h_zr, h_h = ops.split(
                    ops.matmul(state, self.recurrent_kernel) + state_bias, [2 * units], axis=-1
                )
                # Both gates through one sigmoid: fewer ops, which an interpreter pays for
                z, r = ops.split(ops.sigmoid(x_zr + h_zr), 2, axis=-1)
                candidate = ops.tanh(x_h + r * h_h)
                state = candidate + z * (state - candidate)  # z · state + (1 - z) · candidate
            states.append(state)
        return ops.stack(states, axis=1) if self.return_sequences else state

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:2], self.units)
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        return {**config, "units": self.units, "return_sequences": self.return_sequences}


@keras.saving.register_keras_serializable(package="kerasrv")
class UnrolledConvLSTM2D(keras.layers.Layer):
    """Keras' ConvLSTM2D written out step by step, for converters: no runtime-shaped state.

    Same weights, same outputs as `keras.layers.ConvLSTM2D(..., unroll=True)` (within float32
    rounding). Keras builds the zero initial state with the batch size read at run time, which
    in a TFLite file with a dynamic batch is a SHAPE → FILL chain: a tensor whose size is known
    only when the file runs, so the interpreter re-plans the graph after it on every call with
    a new batch, and the XNNPACK delegate cannot take it. Here the first step, whose state is
    zero, skips the recurrent convolution (and the forget gate, which multiplies a zero cell),
    so no state is made; and the input convolution of every frame is one convolution over the
    frames folded into the batch, where Keras' cell makes four per step (one per gate).

    Only the default cell has this form: tanh/sigmoid, a bias, stride and dilation 1, channels
    last, forward, no returned state.

    Args:
        filters: channels of the hidden state.
        kernel_size: (height, width) of both convolutions.
        padding: the input convolution's padding ("same" or "valid"); the recurrent one's is
            always "same", as in Keras.
        return_sequences: return every step's state, not only the last.
    """

    def __init__(self, filters, kernel_size, padding="same", return_sequences=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = tuple(kernel_size)
        self.padding = padding
        self.return_sequences = return_sequences

    @classmethod
    def like(cls, convlstm):
        """An UnrolledConvLSTM2D holding a built `keras.layers.ConvLSTM2D`'s weights, or None."""
        cell = getattr(convlstm, "cell", None)
        default = (
            isinstance(convlstm, keras.layers.ConvLSTM2D)
            and convlstm.built
            and cell.use_bias
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and tuple(cell.strides) == (1, 1)
            and tuple(cell.dilation_rate) == (1, 1)
            and cell.data_format == "channels_last"
            and not (convlstm.go_backwards or convlstm.return_state or convlstm.stateful)
        )
        if not default:
            return None
        layer = cls(
            cell.filters,
            cell.kernel_size,
            padding=cell.padding,
            return_sequences=convlstm.return_sequences,
            name=convlstm.name,
            dtype=convlstm.dtype_policy,
        )
        layer.build((None, None, None, None, cell.kernel.shape[2]))
        layer.set_weights(convlstm.get_weights())
        return layer

    def build(self, input_shape):
        # Named and shaped as ConvLSTMCell's weights, so `set_weights(layer.get_weights())` fits.
        gates = 4 * self.filters
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, input_shape[-1], gates)
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(*self.kernel_size, self.filters, gates)
        )
        self.bias = self.add_weight(name="bias", shape=(gates,), initializer="zeros")

    def call(self, frames, mask=None, training=None):
        if mask is not None:
            raise UsageError("UnrolledConvLSTM2D does not take a mask")
        ops = keras.ops
        steps = frames.shape[1]
        # Every frame's input product at once: time folded into the batch (static reshapes).
        folded = ops.reshape(frames, (-1, *frames.shape[2:]))
        projected = ops.conv(folded, self.kernel, padding=self.padding) + self.bias
        projected = ops.reshape(projected, (-1, steps, *projected.shape[1:]))
        state = carry = None
        states = []
        for step in range(steps):
            x_i, x_f, x_c, x_o = ops.split(projected[:, step], 4, axis=-1)
            if state is None:  # the zero initial state: its products and f · c are zero
                carry = ops.sigmoid(x_i) * ops.tanh(x_c)
                gate_o = ops.sigmoid(x_o)
            else:
                recurrent = ops.conv(state, self.recurrent_kernel, padding="same")
                h_i, h_f, h_c, h_o = ops.split(recurrent, 4, axis=-1)
                carry = ops.sigmoid(x_f + h_f) * carry + ops.sigmoid(x_i + h_i) * ops.tanh(
                    x_c + h_c
                )
                gate_o = ops.sigmoid(x_o + h_o)
            state = gate_o * ops.tanh(carry)
            states.append(state)
        return ops.stack(states, axis=1) if self.return_sequences else state

    def compute_output_shape(self, input_shape):
        batch, steps, height, width, _ = input_shape
        if self.padding == "valid":
            height = None if height is None else height - self.kernel_size[0] + 1
            width = None if width is None else width - self.kernel_size[1] + 1
        frame = (height, width, self.filters)
        return (batch, steps, *frame) if self.return_sequences else (batch, *frame)

    def get_config(self):
        config = super().get_config()
        return {
            **config,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "return_sequences": self.return_sequences,
        }
