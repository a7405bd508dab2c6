"""One constructor for the zoo's recurrent layers, chosen by cell name, and the forms of Keras'
recurrent layers that TFLite's converter needs (same weights, same outputs)."""

import contextlib
import uuid

import keras

from kerasrv.errors import UsageError
from kerasrv.layers.peephole import PeepholeLSTMCell

CELLS = ("lstm", "gru", "simple", "peephole")


def recurrent(cell, units, *, return_sequences=False, unroll=False, name=None, dtype=None):
    """Builds a recurrent layer by cell name.

    LSTM and GRU keep Keras' defaults, which are the cuDNN conditions on a GPU (tanh and sigmoid
    activations, no recurrent dropout, `use_bias=True`, GRU `reset_after=True`), as long as
    `unroll` stays False. `unroll=True` is for export (static graphs without a loop).

    Args:
        cell: "lstm", "gru", "simple" (h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)) or "peephole"
            (`PeepholeLSTMCell`).
        units: size of the hidden state.
        return_sequences: return every step's output, not only the last.
        unroll: unroll the time loop (needs a static number of steps).
        name: layer name.
        dtype: dtype policy (default: the global policy).

    Returns:
        A `keras.layers.RNN` subclass instance.

    Example:
        >>> layer = recurrent("gru", 64, return_sequences=True)
        >>> tuple(layer(keras.ops.zeros((2, 28, 28))).shape)
        (2, 28, 64)
    """
    common = {"return_sequences": return_sequences, "unroll": unroll, "name": name, "dtype": dtype}
    if cell == "lstm":
        return keras.layers.LSTM(units, **common)
    if cell == "gru":
        return keras.layers.GRU(units, reset_after=True, **common)
    if cell == "simple":
        return keras.layers.SimpleRNN(units, **common)
    if cell == "peephole":
        return keras.layers.RNN(PeepholeLSTMCell(units, dtype=dtype), **common)
    raise UsageError(f"unknown recurrent cell {cell!r}; expected one of {', '.join(CELLS)}")


def bidirectional(layer, **kwargs):
    """`keras.layers.Bidirectional(layer)`, safe to build inside a layer's `__init__`.

    Bidirectional copies `layer` by serializing it twice (forward, then backward with
    `go_backwards=True`). Inside `keras.saving.load_model`, Keras tracks serialized objects by
    `id()` to rebuild shared ones, so when a freed temporary of an earlier sweep and this `layer`
    happen to share an address, the backward copy comes back as the forward one and loading fails
    ("Forward layer and backward layer should have different `go_backwards` value"), now and then,
    depending on the allocator. A layer built in `__init__` is never a shared object (its config
    is its constructor's arguments), so it is built with that tracking switched off.
    """
    with _outside_object_sharing():
        return keras.layers.Bidirectional(layer, **kwargs)


@contextlib.contextmanager
def _outside_object_sharing():
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # a Keras without this tracking has nothing to switch off
        yield
        return
    keys = ("shared_objects/id_to_obj_map", "shared_objects/id_to_config_map")
    saved = [global_state.get_global_attribute(key) for key in keys]
    for key in keys:
        global_state.set_global_attribute(key, None)
    try:
        yield
    finally:
        for key, value in zip(keys, saved):
            global_state.set_global_attribute(key, value)


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


class _LSTMForm(keras.layers.Layer):
    """What the forms of an LSTM share: LSTMCell's weights (gate order i, f, c, o), named and
    shaped as Keras', so `set_weights(lstm.get_weights())` fits, and a sequence in, the last
    output or every output out, read forwards or backwards."""

    def __init__(self, units, return_sequences=False, go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards

    @classmethod
    def like(cls, rnn, input_shape=None):
        """This form holding a recurrent layer's weights (None if the layer has no such form)."""
        options = cls._options_for(rnn)
        if options is None:
            return None
        return _holding_weights_of(
            rnn,
            input_shape,
            lambda: cls(
                rnn.cell.units,
                return_sequences=rnn.return_sequences,
                go_backwards=rnn.go_backwards,
                name=rnn.name,
                dtype=rnn.dtype_policy,
                **options,
            ),
        )

    @classmethod
    def _options_for(cls, rnn):
        """The form's own arguments for `rnn`, or None where it has no such form."""
        return {} if _is_default_lstm(rnn) else None

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], 4 * self.units))
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, 4 * self.units)
        )
        self.bias = self.add_weight(name="bias", shape=(4 * self.units,), initializer="zeros")

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:2], self.units)
        return (input_shape[0], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
        }


@keras.saving.register_keras_serializable(package="kerasrv")
class UnrolledLSTM(_LSTMForm):
    """Keras' LSTM written out step by step, for converters: the form of dynamic-batch files.

    Same weights, same outputs as `keras.layers.LSTM(units, unroll=True)` (within float32
    rounding), with the two changes `UnrolledGRU` makes: the input product of every step is one
    matmul over the whole sequence (Keras' unrolled LSTM makes one per step), and the first
    step, whose state is zero, skips the recurrent product and the forget gate. Keras builds
    that zero state from the batch read at run time (SHAPE → FILL in a TFLite file), which makes
    the interpreter plan the graph again on every call; this form has no such tensor. With
    `peepholes`, it is `keras.layers.RNN(PeepholeLSTMCell(units))` the same way.

    Args:
        units: size of the hidden state.
        return_sequences: return every step's output, not only the last.
        go_backwards: read the sequence from its last step (outputs in that order, as Keras).
        peepholes: the gates also see the cell state (`PeepholeLSTMCell`'s equations and its
            `peephole_kernel`).

    Example:
        >>> lstm = keras.layers.LSTM(16, return_sequences=True)
        >>> x = keras.random.normal((2, 5, 3))
        >>> unrolled = UnrolledLSTM.like(lstm, x.shape)
        >>> bool(keras.ops.all(keras.ops.abs(unrolled(x) - lstm(x)) < 1e-5))
        True
    """

    def __init__(
        self, units, return_sequences=False, go_backwards=False, peepholes=False, **kwargs
    ):
        super().__init__(units, return_sequences, go_backwards, **kwargs)
        self.peepholes = peepholes

    @classmethod
    def _options_for(cls, rnn):
        if isinstance(getattr(rnn, "cell", None), PeepholeLSTMCell):
            plain = type(rnn) is keras.layers.RNN and not (rnn.return_state or rnn.stateful)
            return {"peepholes": True} if plain else None
        return {} if _is_default_lstm(rnn) else None

    def build(self, input_shape):
        super().build(input_shape)
        if self.peepholes:  # PeepholeLSTMCell's, after LSTMCell's three
            self.peephole_kernel = self.add_weight(
                name="peephole_kernel", shape=(3, self.units), initializer="zeros"
            )

    def call(self, sequence, mask=None, training=None):
        if mask is not None:
            raise UsageError("UnrolledLSTM does not take a mask")
        ops = keras.ops
        # One matmul over every step, on the sequence folded to 2-D by its static sizes (a 3-D
        # matmul is a Tensordot that reads the batch at run time), as in UnrolledGRU.
        steps, features = sequence.shape[1], sequence.shape[2]
        projected = ops.matmul(ops.reshape(sequence, (-1, features)), self.kernel) + self.bias
        projected = ops.unstack(ops.reshape(projected, (-1, steps, 4 * self.units)), axis=1)
        step = self._peephole_step if self.peepholes else self._step
        state = carry = None
        states = []
        for t in reversed(range(steps)) if self.go_backwards else range(steps):
            z = projected[t]
            if state is not None:
                z = z + ops.matmul(state, self.recurrent_kernel)
            state, carry = step(z, carry)
            states.append(state)
        return ops.stack(states, axis=1) if self.return_sequences else state

    @staticmethod
    def _step(z, carry):
        ops = keras.ops
        # Each activation over all four gates at once, then the pieces: fewer, larger ops (an
        # interpreter pays per op) for a little wasted arithmetic.
        gate_i, gate_f, _, gate_o = ops.split(ops.sigmoid(z), 4, axis=-1)  # Keras' order
        candidate = ops.split(ops.tanh(z), 4, axis=-1)[2]
        # carry None: the zero initial state, where f · c is zero
        carry = gate_i * candidate if carry is None else gate_f * carry + gate_i * candidate
        return gate_o * ops.tanh(carry), carry

    def _peephole_step(self, z, carry):
        ops = keras.ops
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=-1)
        w_ci, w_cf, w_co = ops.unstack(self.peephole_kernel, axis=0)
        if carry is None:  # the zero initial state: the peepholes of c_{t-1} see zero
            carry = ops.sigmoid(z_i) * ops.tanh(z_g)
        else:
            gate_i, gate_f = ops.sigmoid(z_i + w_ci * carry), ops.sigmoid(z_f + w_cf * carry)
            carry = gate_f * carry + gate_i * ops.tanh(z_g)
        return ops.sigmoid(z_o + w_co * carry) * ops.tanh(carry), carry

    def get_config(self):
        return {**super().get_config(), "peepholes": self.peepholes}


def _lstm_interface(go_backwards):
    """A fresh function with the interface TFLite's converter fuses into one LSTM op.

    The converter (its prepare-composite-functions pass) replaces a function whose
    `api_implements` attribute starts with "lstm_" by `UNIDIRECTIONAL_SEQUENCE_LSTM` when the
    function has the signature of tf_keras' `standard_lstm`: (inputs, init_h, init_c, kernel,
    recurrent_kernel, bias) → (last output, outputs, h, c, runtime), batch-major, with static
    shapes. tf_keras marked its LSTMs this way; Keras 3 does not (LiteRT#41). The body below is
    the same recurrence step by step, which TensorFlow runs and the converter discards. Each
    function needs its own `api_implements` value: the converter fuses one function per value.
    """
    import tensorflow as tf

    attributes = {
        "api_implements": f"lstm_{uuid.uuid4()}",
        "api_preferred_device": "CPU",
        "time_major": False,
        "go_backwards": go_backwards,
    }

    @tf.function(experimental_attributes=attributes, autograph=False)
    def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        steps = tf.unstack(inputs, axis=1)
        h, c, outputs = init_h, init_c, []
        for x in reversed(steps) if go_backwards else steps:
            z = tf.matmul(x, kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)  # Keras' gate order
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        return h, tf.stack(outputs, axis=1), h, c, tf.constant(0.0)

    return standard_lstm


def _is_default_lstm(layer):
    cell = getattr(layer, "cell", None)
    return (
        isinstance(layer, keras.layers.LSTM)
        and cell.use_bias
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and not (layer.return_state or layer.stateful)
    )


@keras.saving.register_keras_serializable(package="kerasrv")
class FusedLSTM(_LSTMForm):
    """Keras' LSTM in the form TFLite's converter fuses into one `UNIDIRECTIONAL_SEQUENCE_LSTM`.

    Same weights and outputs as `keras.layers.LSTM` (tanh/sigmoid, with bias, no returned
    state), computed by a function carrying the converter's LSTM interface (see
    `_lstm_interface`). The converter fuses it only when the batch is static, so a file made
    from it has a fixed batch size: the form for on-device files, where one sample is read at a
    time. The fused kernel reads each weight matrix once per sequence, where an unrolled LSTM
    reads it once per step.

    Args:
        units: size of the hidden state.
        return_sequences: return every step's output, not only the last.
        go_backwards: read the sequence from its last step (outputs in that order, as Keras).

    Example:
        >>> lstm = keras.layers.LSTM(16)
        >>> x = keras.ops.ones((1, 5, 3))
        >>> fused = FusedLSTM.like(lstm, x.shape)
        >>> bool(keras.ops.all(keras.ops.abs(fused(x) - lstm(x)) < 1e-6))
        True
    """

    def __init__(self, units, return_sequences=False, go_backwards=False, **kwargs):
        super().__init__(units, return_sequences, go_backwards, **kwargs)
        self._function = _lstm_interface(go_backwards)

    def call(self, sequence, initial_state=None, mask=None, training=None):
        if mask is not None or initial_state is not None:
            raise UsageError("FusedLSTM takes neither a mask nor an initial state")
        import tensorflow as tf

        batch = sequence.shape[0] if sequence.shape[0] is not None else tf.shape(sequence)[0]
        zeros = tf.zeros((batch, self.units), sequence.dtype)
        last, outputs, _, _, _ = self._function(
            sequence,
            zeros,
            zeros,
            *(
                self._read(w, sequence.dtype)
                for w in (self.kernel, self.recurrent_kernel, self.bias)
            ),
        )
        return outputs if self.return_sequences else last

    @staticmethod
    def _read(variable, dtype):
        # The interface takes weight tensors: a variable reaching it as a resource (tf.cast
        # hands back a variable already in the dtype) crashed the converter's LSTM pass.
        import tensorflow as tf

        return tf.cast(tf.convert_to_tensor(variable.value), dtype)


class _BidirectionalForm(keras.layers.Layer):
    """`keras.layers.Bidirectional(LSTM)` as two LSTMs of the form `direction`, one reading
    backwards; its weights are the forward layer's, then the backward one's, as Bidirectional's.

    Args:
        units: size of each direction's hidden state.
        return_sequences: return every step's output, not only the last.
        merge_mode: how the two directions meet, as in Bidirectional: "concat", "sum", "mul"
            or "ave".
    """

    direction = None  # the LSTM form of each direction: a class with `go_backwards`
    MERGES = ("concat", "sum", "mul", "ave")

    def __init__(self, units, return_sequences=False, merge_mode="concat", **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in self.MERGES:
            raise UsageError(
                f"merge_mode must be one of {', '.join(self.MERGES)}, got {merge_mode!r}"
            )
        self.units = units
        self.return_sequences = return_sequences
        self.merge_mode = merge_mode
        common = {"return_sequences": return_sequences, "dtype": self.dtype_policy}
        self.forward = self.direction(units, name="forward", **common)
        self.backward = self.direction(units, go_backwards=True, name="backward", **common)

    @classmethod
    def like(cls, bidirectional, input_shape=None):
        """This form holding a Bidirectional(LSTM)'s weights, or None if it has no such form."""
        forward, backward = bidirectional.forward_layer, bidirectional.backward_layer
        if not (
            _is_default_lstm(forward)
            and _is_default_lstm(backward)
            and not forward.go_backwards
            and backward.go_backwards
            and forward.units == backward.units
            and bidirectional.merge_mode in cls.MERGES
        ):
            return None
        return _holding_weights_of(
            bidirectional,
            input_shape,
            lambda: cls(
                forward.units,
                return_sequences=bidirectional.return_sequences,
                merge_mode=bidirectional.merge_mode,
                name=bidirectional.name,
                dtype=bidirectional.dtype_policy,
            ),
        )

    def build(self, input_shape):
        self.forward.build(input_shape)
        self.backward.build(input_shape)

    def call(self, sequence, mask=None, training=None):
        if mask is not None:
            raise UsageError(f"{type(self).__name__} does not take a mask")
        ops = keras.ops
        y, y_reversed = self.forward(sequence), self.backward(sequence)
        if self.return_sequences:
            y_reversed = ops.flip(y_reversed, axis=1)
        if self.merge_mode == "concat":
            return ops.concatenate([y, y_reversed], axis=-1)
        if self.merge_mode == "sum":
            return y + y_reversed
        if self.merge_mode == "mul":
            return y * y_reversed
        return (y + y_reversed) / 2

    def compute_output_shape(self, input_shape):
        width = 2 * self.units if self.merge_mode == "concat" else self.units
        if self.return_sequences:
            return (*input_shape[:2], width)
        return (input_shape[0], width)

    def get_config(self):
        config = super().get_config()
        return {
            **config,
            "units": self.units,
            "return_sequences": self.return_sequences,
            "merge_mode": self.merge_mode,
        }


@keras.saving.register_keras_serializable(package="kerasrv")
class FusedBidirectionalLSTM(_BidirectionalForm):
    """`keras.layers.Bidirectional(LSTM)` as two `FusedLSTM`s: the converter fuses each (the
    form of fixed-batch files). Arguments as `_BidirectionalForm`."""

    direction = FusedLSTM


@keras.saving.register_keras_serializable(package="kerasrv")
class UnrolledBidirectionalLSTM(_BidirectionalForm):
    """`keras.layers.Bidirectional(LSTM)` as two `UnrolledLSTM`s (the form of dynamic-batch
    files). Arguments as `_BidirectionalForm`."""

    direction = UnrolledLSTM


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
