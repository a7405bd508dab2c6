"""A peephole LSTM cell (Gers & Schmidhuber 2000)."""

import keras
from keras import ops

from kerasrv.errors import UsageError


@keras.saving.register_keras_serializable(package="kerasrv")
class PeepholeLSTMCell(keras.layers.Layer):
    """LSTM cell whose gates also look at the cell state ("peepholes").

    Keras 3 has no peephole cell; this one implements the equations in their standard form
    (Gers & Schmidhuber 2000; Graves 2013), with diagonal peephole weights:

        i_t = σ(W_xi x_t + W_hi h_{t-1} + w_ci ⊙ c_{t-1} + b_i)
        f_t = σ(W_xf x_t + W_hf h_{t-1} + w_cf ⊙ c_{t-1} + b_f)
        g_t = tanh(W_xg x_t + W_hg h_{t-1} + b_g)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        o_t = σ(W_xo x_t + W_ho h_{t-1} + w_co ⊙ c_t + b_o)
        h_t = o_t ⊙ tanh(c_t)

    The input and forget gates see the previous cell state, the output gate sees the new one
    (variants that let the candidate g_t or the output gate see c_{t-1} are not the published
    cell: the output gate is the one that should see the state it gates).

    The weights are laid out like Keras' `LSTMCell` (gate order i, f, c, o in `kernel`,
    `recurrent_kernel` and `bias`), plus `peephole_kernel` of shape (3, units) holding w_ci, w_cf
    and w_co. The peepholes start at zero, so a fresh cell starts as a plain LSTM.

    It is not a cuDNN kernel: use it where the peepholes are the point, `LSTM` elsewhere.

    Args:
        units: size of the hidden and cell states.
        kernel_initializer: initializer of the input weights W_x*.
        recurrent_initializer: initializer of the recurrent weights W_h*.
        bias_initializer: initializer of the biases.
        peephole_initializer: initializer of the peephole weights w_c*.
        unit_forget_bias: add 1 to the forget gate's bias at initialisation (Jozefowicz et al.).
        **kwargs: standard layer arguments (`name`, `dtype`).

    Example:
        >>> import keras, kerasrv
        >>> rnn = keras.layers.RNN(kerasrv.layers.PeepholeLSTMCell(32))
        >>> rnn(keras.ops.zeros((4, 28, 28))).shape
        (4, 32)
    """

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        peephole_initializer="zeros",
        unit_forget_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if units <= 0:
            raise UsageError(f"PeepholeLSTMCell expects units > 0, got {units}")
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, 4 * self.units), initializer=self.kernel_initializer, name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(
            shape=(4 * self.units,), initializer=self._initialize_bias, name="bias"
        )
        self.peephole_kernel = self.add_weight(
            shape=(3, self.units), initializer=self.peephole_initializer, name="peephole_kernel"
        )

    def _initialize_bias(self, shape, dtype=None):
        bias = self.bias_initializer(shape, dtype=dtype)
        if not self.unit_forget_bias:
            return bias
        forget = ops.concatenate(
            [ops.zeros((self.units,)), ops.ones((self.units,)), ops.zeros((2 * self.units,))]
        )
        return bias + ops.cast(forget, bias.dtype)

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel) + self.bias
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=-1)
        w_ci, w_cf, w_co = self.peephole_kernel[0], self.peephole_kernel[1], self.peephole_kernel[2]
        i = ops.sigmoid(z_i + w_ci * c_prev)
        f = ops.sigmoid(z_f + w_cf * c_prev)
        c = f * c_prev + i * ops.tanh(z_g)
        o = ops.sigmoid(z_o + w_co * c)
        h = o * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "peephole_initializer": keras.initializers.serialize(self.peephole_initializer),
                "unit_forget_bias": self.unit_forget_bias,
            }
        )
        return config
