"""One constructor for the zoo's recurrent layers, chosen by cell name."""

import keras

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
        >>> layer(keras.ops.zeros((2, 28, 28))).shape
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
    raise ValueError(f"unknown recurrent cell {cell!r}; expected one of {', '.join(CELLS)}")


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
        if not gru.built:
            gru.build(input_shape)
        layer = cls(
            gru.units, return_sequences=gru.return_sequences, name=gru.name, dtype=gru.dtype_policy
        )
        layer.build((None, None, gru.cell.kernel.shape[0]))
        layer.set_weights(gru.get_weights())
        return layer

    def build(self, input_shape):
        # Named and shaped as GRUCell's weights, so `set_weights(gru.get_weights())` fits.
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], 3 * self.units))
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(self.units, 3 * self.units)
        )
        self.bias = self.add_weight(name="bias", shape=(2, 3 * self.units), initializer="zeros")

    def call(self, sequence, mask=None, training=None):
        if mask is not None:
            raise ValueError("UnrolledGRU does not take a mask")
        ops = keras.ops
        input_bias, recurrent_bias = self.bias[0], self.bias[1]
        _, _, candidate_recurrent_bias = ops.split(recurrent_bias, 3)
        # Update and reset gates add both biases outside the reset product: fold them together.
        z_r_bias = input_bias[: 2 * self.units] + recurrent_bias[: 2 * self.units]
        projected = ops.matmul(sequence, self.kernel) + ops.concatenate(
            [z_r_bias, input_bias[2 * self.units :]]
        )
        state, states = None, []
        for step in range(sequence.shape[1]):
            x_z, x_r, x_h = ops.split(projected[:, step], 3, axis=-1)
            if state is None:  # the zero initial state: its products are zero
                z, r = ops.sigmoid(x_z), ops.sigmoid(x_r)
                state = (1 - z) * ops.tanh(x_h + r * candidate_recurrent_bias)
            else:
                h_z, h_r, h_h = ops.split(ops.matmul(state, self.recurrent_kernel), 3, axis=-1)
                z, r = ops.sigmoid(x_z + h_z), ops.sigmoid(x_r + h_r)
                candidate = ops.tanh(x_h + r * (h_h + candidate_recurrent_bias))
                state = z * state + (1 - z) * candidate
            states.append(state)
        return ops.stack(states, axis=1) if self.return_sequences else state

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:2], self.units)
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        return {**config, "units": self.units, "return_sequences": self.return_sequences}
