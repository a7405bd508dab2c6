"""One constructor for the zoo's recurrent layers, chosen by cell name. The forms of Keras'
recurrent layers that TFLite's converter needs (same weights, same outputs) are in
`kerasrv.layers.unrolled` (GRU, ConvLSTM2D) and `kerasrv.layers.lstm` (LSTM, unrolled or fused)."""

import contextlib

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
