"""Keras' LSTM (alone, with peepholes, or in a Bidirectional) in the forms TFLite's converter
needs: unrolled step by step, or fused into one `UNIDIRECTIONAL_SEQUENCE_LSTM` op (same weights,
same outputs; see `kerasrv.export.forms`)."""

import uuid

import keras

from kerasrv.errors import UsageError
from kerasrv.layers.peephole import PeepholeLSTMCell
from kerasrv.layers.unrolled import _holding_weights_of


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
