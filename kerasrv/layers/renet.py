"""ReNet: recurrent sweeps along rows and columns (Visin et al., 2015)."""

import keras
from keras import ops

from kerasrv.errors import UsageError
from kerasrv.layers.lstm import FusedBidirectionalLSTM, UnrolledBidirectionalLSTM
from kerasrv.layers.recurrent import bidirectional, recurrent


@keras.saving.register_keras_serializable(package="kerasrv")
class ReNet(keras.layers.Layer):
    """A bidirectional recurrent sweep along every row, then along every column of the result.

    (B, H, W, C) → optional non-overlapping p×p patches (B, H/p, W/p, p·p·C) → a bidirectional RNN
    reads each row left↔right → a second one reads each column of that up↕down → (B, H/p, W/p,
    2·units). After the two sweeps every output position depends on every input pixel: the
    horizontal sweep carries a row into each of its positions, the vertical sweep carries every
    row's summary into each column. A convolution stack needs depth proportional to the image size
    for the same.

    The rows (then the columns) of all images are one batch of sequences for one recurrent call,
    so LSTM and GRU run on the cuDNN kernel on a GPU.

    Args:
        units: hidden size of each direction's recurrent layer; the output has 2·units channels.
        patch_size: side of the non-overlapping patches read as one position (1 = pixels).
        cell: "lstm" or "gru" (or "simple", "peephole"; see `kerasrv.layers.recurrent`).
        unroll: unroll the sweeps' time loops (for export to TFLite); LSTM sweeps become
            `UnrolledBidirectionalLSTM`, the form of dynamic-batch files (same weights).
        fused: LSTM sweeps as `FusedBidirectionalLSTM`, the form TFLite's converter fuses when
            the batch is fixed (for export; same weights). Other cells ignore it.
        **kwargs: standard layer arguments.

    Example:
        >>> ReNet(32, patch_size=2)(keras.ops.zeros((4, 28, 28, 1))).shape
        (4, 14, 14, 64)
    """

    def __init__(self, units, patch_size=1, cell="lstm", unroll=False, fused=False, **kwargs):
        super().__init__(**kwargs)
        if patch_size < 1:
            raise UsageError(f"ReNet expects patch_size >= 1, got {patch_size}")
        self.units = units
        self.patch_size = patch_size
        self.cell = cell
        self.unroll = unroll
        self.fused = fused
        # The sweeps compute in this layer's dtype policy (mixed precision included). Its name,
        # not the policy object: Bidirectional rebuilds its backward layer from the forward
        # one's config, where a shared policy object would be serialized as a shared object.
        policy = self.dtype_policy.name
        self.horizontal = self._sweep("rows", "horizontal", policy)
        self.vertical = self._sweep("columns", "vertical", policy)

    def _sweep(self, steps, name, policy):
        if self.cell == "lstm" and (self.fused or self.unroll):
            form = FusedBidirectionalLSTM if self.fused else UnrolledBidirectionalLSTM
            return form(self.units, return_sequences=True, name=name, dtype=policy)
        return bidirectional(
            recurrent(
                self.cell,
                self.units,
                return_sequences=True,
                unroll=self.unroll,
                name=steps,
                dtype=policy,
            ),
            name=name,
            dtype=policy,
        )

    def build(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise UsageError(
                f"ReNet expects input of shape (batch, height, width, channels) with static "
                f"sizes, got {tuple(input_shape)}"
            )
        _, height, width, channels = input_shape
        p = self.patch_size
        if height % p or width % p:
            raise UsageError(
                f"ReNet with patch_size={p} expects height and width divisible by {p}, "
                f"got {height}×{width}"
            )
        self.horizontal.build((None, width // p, p * p * channels))
        self.vertical.build((None, height // p, 2 * self.units))
        self.built = True

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        p = self.patch_size
        return (batch, height // p, width // p, 2 * self.units)

    def call(self, inputs, training=None):
        _, height, width, channels = inputs.shape
        p = self.patch_size
        rows, cols = height // p, width // p
        x = inputs
        if p > 1:
            x = ops.reshape(x, (-1, rows, p, cols, p, channels))
            x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        x = ops.reshape(x, (-1, cols, p * p * channels))  # every row of every image
        x = self.horizontal(x, training=training)
        x = ops.reshape(x, (-1, rows, cols, 2 * self.units))
        x = ops.transpose(x, (0, 2, 1, 3))
        x = ops.reshape(x, (-1, rows, 2 * self.units))  # every column of every image
        x = self.vertical(x, training=training)
        x = ops.reshape(x, (-1, cols, rows, 2 * self.units))
        return ops.transpose(x, (0, 2, 1, 3))

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "patch_size": self.patch_size,
            "cell": self.cell,
            "unroll": self.unroll,
            "fused": self.fused,
        }
