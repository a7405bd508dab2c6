"""The model the TFLite converter gets: the same model and weights, in forms it converts well.

Recurrent layers are why TFLite export usually fails: a Keras LSTM is a `while` loop over a
TensorList, which the converter turns into Flex ops (not runnable by the LiteRT interpreter) or
refuses with a dynamic batch. The TFLite files are converted from a copy of the model whose
recurrent layers are unrolled (same weights; the time steps are static in every entry), which
leaves only builtin ops and keeps the batch dynamic; with a fixed batch, LSTMs become the form
the converter fuses into one op (`converter_form`).
"""

import keras

# The one private Keras import: whether a model is a functional graph (which
# `keras.models.clone_model` can rebuild layer by layer) or a subclassed model (rebuilt from its
# config). Keras exports no public name for the class (`keras.Model(inputs, outputs)` returns a
# `Functional`); `keras.Sequential` is public and is a `Functional` too.
from keras.src.models.functional import Functional

from kerasrv.layers import (
    FoldedDense,
    FusedBidirectionalLSTM,
    FusedLSTM,
    StaticFlatten,
    SubPixelConv2DTranspose,
    UnrolledBidirectionalLSTM,
    UnrolledConvLSTM2D,
    UnrolledGRU,
    UnrolledLSTM,
)


def _unrolled_config(config, switches=("unroll",)):
    """The config with every one of these switches on, however deeply nested."""
    if isinstance(config, dict):
        return {
            k: True if k in switches else _unrolled_config(v, switches) for k, v in config.items()
        }
    if isinstance(config, list):
        return [_unrolled_config(v, switches) for v in config]
    return config


def unrolled(model, switches=("unroll",)):
    """The same model, same weights, with every recurrent layer unrolled (static time loops).

    Works on any functional model: every `unroll` setting in its config (LSTM, GRU, RNN cells,
    Bidirectional, ConvLSTM2D, kerasrv's ReNet) is switched on, and any other of `switches`.
    """
    copy = type(model).from_config(_unrolled_config(model.get_config(), switches))
    copy.set_weights(model.get_weights())
    return copy


def converter_form(model, fuse_lstms=False):
    """What the TFLite converter gets: the same model, same weights, in forms it converts well.

    Every recurrent layer is unrolled (`unrolled`), and these layers, at any depth (inside
    nested models and wrappers such as `FrameWise`), become forms with the same outputs:
    - GRUs become `UnrolledGRU`, the form whose full-integer quantization keeps the state;
    - LSTMs (alone or in a Bidirectional) and peephole LSTMs become `UnrolledLSTM`s; with
      `fuse_lstms`, LSTMs become `FusedLSTM`s instead, which the converter fuses into
      `UNIDIRECTIONAL_SEQUENCE_LSTM` when the batch is static, and layers with a `fused` switch
      (ReNet's LSTM sweeps) turn it on. (The converter has no such interface for GRUs or
      peephole cells: they stay unrolled in every file.);
    - ConvLSTM2D layers become `UnrolledConvLSTM2D`, Conv2DTranspose layers
      `SubPixelConv2DTranspose`, Dense layers on sequences or maps `FoldedDense`, and Flatten
      layers `StaticFlatten`.
    The unrolled forms read no shape at run time, so a file with a dynamic batch has static
    shapes once its batch is set (see `kerasrv.layers.static_shapes`), and make each step's
    input product part of one product over the sequence.
    A layer whose configuration has no such form stays Keras' (unrolled) layer.
    """
    switches = ("unroll", "fused") if fuse_lstms else ("unroll",)
    lstm_forms = (
        [(keras.layers.LSTM, FusedLSTM), (keras.layers.Bidirectional, FusedBidirectionalLSTM)]
        if fuse_lstms
        else [
            (keras.layers.LSTM, UnrolledLSTM),
            (keras.layers.Bidirectional, UnrolledBidirectionalLSTM),
        ]
    )
    # A Keras RNN around a peephole cell (which the fused op does not take: its peepholes are
    # kerasrv's weights) is unrolled in every file. After the LSTM and GRU forms: both are RNNs.
    lstm_forms.append((keras.layers.RNN, UnrolledLSTM))
    forms = [
        (keras.layers.GRU, UnrolledGRU),
        (keras.layers.ConvLSTM2D, UnrolledConvLSTM2D),
        (keras.layers.Conv2DTranspose, SubPixelConv2DTranspose),
        (keras.layers.Dense, FoldedDense),
        (keras.layers.Flatten, StaticFlatten),
        *lstm_forms,
    ]

    def replacement(layer):
        for keras_class, form in forms:
            if isinstance(layer, keras_class):
                return form.like(layer)  # None where the layer's configuration has no form
        return None

    return _rebuilt(model, replacement, switches)


def _rebuilt(model, replacement, switches):
    """A copy of a functional model whose layers are `replacement(layer)` where that is a layer.

    Nested functional models and wrappers (other than Bidirectional, which `replacement` sees
    whole) are rebuilt the same way, inside out; every other layer is rebuilt from its config
    with `switches` on and given the original's weights.
    """
    if not isinstance(model, (Functional, keras.Sequential)):  # subclassed: its config
        copy = type(model).from_config(_unrolled_config(model.get_config(), switches))
        copy.set_weights(model.get_weights())
        return copy
    rebuilt_from_config = []

    def convert(layer):
        new = replacement(layer)  # carries the layer's weights
        if new is not None:
            return new
        if isinstance(layer, keras.Model):
            return _rebuilt(layer, replacement, switches)
        if isinstance(layer, keras.layers.Wrapper) and not isinstance(
            layer, keras.layers.Bidirectional
        ):
            inner = convert(layer.layer)
            return type(layer)(
                inner, name=layer.name, dtype=layer.dtype_policy, trainable=layer.trainable
            )
        new = layer.__class__.from_config(_unrolled_config(layer.get_config(), switches))
        if isinstance(layer, keras.layers.Layer):  # not an op such as `x + 3.0`: no weights
            rebuilt_from_config.append((layer, new))
        return new

    copy = keras.models.clone_model(model, clone_function=convert)
    for old, new in rebuilt_from_config:  # built now, by the clone's calls
        new.set_weights(old.get_weights())
    return copy
