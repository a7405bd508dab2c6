"""One constructor for the zoo's recurrent layers, chosen by cell name."""

import keras

from kerasrv.layers.peephole import PeepholeLSTMCell

CELLS = ("lstm", "gru", "simple", "peephole")


def recurrent(cell, units, *, return_sequences=False, unroll=False, name=None):
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

    Returns:
        A `keras.layers.RNN` subclass instance.

    Example:
        >>> layer = recurrent("gru", 64, return_sequences=True)
        >>> layer(keras.ops.zeros((2, 28, 28))).shape
        (2, 28, 64)
    """
    common = {"return_sequences": return_sequences, "unroll": unroll, "name": name}
    if cell == "lstm":
        return keras.layers.LSTM(units, **common)
    if cell == "gru":
        return keras.layers.GRU(units, reset_after=True, **common)
    if cell == "simple":
        return keras.layers.SimpleRNN(units, **common)
    if cell == "peephole":
        return keras.layers.RNN(PeepholeLSTMCell(units), **common)
    raise ValueError(f"unknown recurrent cell {cell!r}; expected one of {', '.join(CELLS)}")
