"""kerasrv.layers: equations against numpy, receptive fields, serialization, errors."""

import copy
import inspect

import keras
import keras.src.testing
import numpy as np
import pytest
import tensorflow as tf

from kerasrv import layers, zoo
from kerasrv.architectures import row_rnn


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def randomize(layer, rng, scale=0.5):
    layer.set_weights(
        [rng.normal(0, scale, w.shape).astype("float32") for w in layer.get_weights()]
    )


def test_peephole_cell_matches_the_gers_schmidhuber_equations():
    rng = np.random.default_rng(0)
    units, steps, features, batch = 5, 6, 3, 4
    rnn = keras.layers.RNN(layers.PeepholeLSTMCell(units), return_sequences=True)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    rnn(x)
    randomize(rnn, rng)
    kernel, recurrent, bias, peephole = rnn.cell.get_weights()
    assert np.abs(peephole).min() > 0  # the peepholes take part in this check

    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    expected = []
    for t in range(steps):
        z = x[:, t] @ kernel + h @ recurrent + bias
        z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)
        i = sigmoid(z_i + peephole[0] * c)  # input and forget gates see c_{t-1}
        f = sigmoid(z_f + peephole[1] * c)
        c = f * c + i * np.tanh(z_g)
        o = sigmoid(z_o + peephole[2] * c)  # the output gate sees c_t
        h = o * np.tanh(c)
        expected.append(h)
    np.testing.assert_allclose(rnn(x).numpy(), np.stack(expected, 1), atol=1e-5)


def test_row_rnn_simple_cell_matches_the_elman_equations():
    rng = np.random.default_rng(1)
    model = row_rnn(
        input_shape=(6, 5, 1), num_classes=4, cell="simple", units=7, num_layers=1, dropout=0.0
    )
    for layer in model.layers:
        randomize(layer, rng)
    w_xh, w_hh, b_h = model.get_layer("simple1").get_weights()
    w_hy, b_y = model.get_layer("head").get_weights()
    x = rng.uniform(size=(3, 6, 5, 1)).astype("float32")

    h = np.zeros((3, 7))
    for t in range(6):  # row t is time step t: h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)
        h = np.tanh(h @ w_hh + x[:, t, :, 0] @ w_xh + b_h)
    logits = h @ w_hy + b_y
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(model(x).numpy(), softmax, atol=1e-5)


def _gradient_from_far_corner(layer, shape=(1, 12, 12, 2)):
    x = tf.random.uniform(shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        corner = tf.reduce_sum(y[0, 0, 0])
    return tape.gradient(corner, x)[0, -1, -1].numpy()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_renet_output_sees_the_whole_image(cell):
    gradient = _gradient_from_far_corner(layers.ReNet(4, cell=cell))
    assert np.abs(gradient).max() > 1e-7


def test_renet_with_patches_sees_the_whole_image():
    gradient = _gradient_from_far_corner(layers.ReNet(4, patch_size=3))
    assert np.abs(gradient).max() > 1e-7


def test_cnn_of_the_same_depth_does_not_see_the_far_corner():
    cnn = keras.Sequential(
        [keras.layers.Conv2D(8, 3, padding="same"), keras.layers.Conv2D(8, 3, padding="same")]
    )
    assert np.abs(_gradient_from_far_corner(cnn)).max() == 0.0


def test_image_to_sequence_reads_rows_and_columns():
    x = np.arange(2 * 3 * 4 * 5, dtype="float32").reshape(2, 3, 4, 5)
    rows = layers.ImageToSequence("rows")(x).numpy()
    columns = layers.ImageToSequence("columns")(x).numpy()
    assert rows.shape == (2, 3, 20) and columns.shape == (2, 4, 15)
    np.testing.assert_array_equal(rows[:, 1], x[:, 1].reshape(2, -1))  # step 1 = row 1
    np.testing.assert_array_equal(columns[:, 2], x[:, :, 2].reshape(2, -1))  # step 2 = column 2


def test_framewise_matches_time_distributed():
    inner = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
        ]
    )
    x = np.random.default_rng(0).uniform(size=(3, 5, 8, 8, 1)).astype("float32")
    folded = layers.FrameWise(inner)(x, training=False)
    looped = keras.layers.TimeDistributed(inner)(x, training=False)
    assert folded.shape == (3, 5, 4, 4, 4)
    np.testing.assert_allclose(folded.numpy(), looped.numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (layers.ImageToSequence("columns"), (2, 7, 7, 3)),
        (layers.ReNet(6, patch_size=2, cell="gru"), (2, 8, 8, 1)),
        (layers.FrameWise(keras.layers.Conv2D(3, 3, padding="same")), (2, 4, 8, 8, 1)),
        (keras.layers.RNN(layers.PeepholeLSTMCell(5), return_sequences=True), (2, 6, 3)),
    ],
)
def test_layers_round_trip_through_their_config(layer, shape):
    x = np.random.default_rng(0).uniform(size=shape).astype("float32")
    expected = layer(x)
    config = keras.saving.serialize_keras_object(layer)
    assert config["module"].startswith("kerasrv") or "kerasrv" in str(config)
    clone = keras.saving.deserialize_keras_object(config)
    clone(x)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(clone(x).numpy(), expected.numpy(), atol=1e-6)


def test_bad_layer_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="divisible by 3, got 8×8"):
        layers.ReNet(4, patch_size=3)(np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="expects input of shape \\(batch, height, width"):
        layers.ImageToSequence()(np.zeros((1, 8, 8), "float32"))
    with pytest.raises(ValueError, match="expected one of lstm, gru, simple, peephole"):
        layers.recurrent("relu_lstm", 8)
    with pytest.raises(ValueError, match="steps='rows' or 'columns'"):
        layers.ImageToSequence("diagonals")


@pytest.mark.parametrize("name", zoo.list_models())
def test_recurrent_layers_meet_the_cudnn_conditions(name):
    model = zoo.build(name)
    found = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU))
    ]
    # ConvLSTM2D and the forecasters' convolutional cells have no cuDNN kernel, and the
    # peephole cell is documented as not one.
    assert found or name.startswith(("convlstm", "predrnn")) or "peephole" in name
    for rnn in found:
        cell = rnn.cell
        assert cell.activation is keras.activations.tanh, rnn.name
        assert cell.recurrent_activation is keras.activations.sigmoid, rnn.name
        assert cell.recurrent_dropout == 0 and not rnn.unroll and cell.use_bias, rnn.name
        if isinstance(rnn, keras.layers.GRU):
            assert cell.reset_after, rnn.name


@pytest.mark.parametrize("return_sequences", [False, True])
def test_unrolled_gru_matches_keras_gru(return_sequences):
    gru = keras.layers.GRU(16, return_sequences=return_sequences)
    x = np.random.default_rng(0).normal(size=(3, 7, 5)).astype("float32")
    gru.build(x.shape)
    rng = np.random.default_rng(1)  # non-zero biases: the first step must add them
    gru.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in gru.weights])
    unrolled = layers.UnrolledGRU.like(gru)
    assert unrolled(x).shape == gru(x).shape
    np.testing.assert_allclose(unrolled(x).numpy(), gru(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("form", ["FusedLSTM", "UnrolledLSTM"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_forms_match_keras_lstm(form, return_sequences, go_backwards):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    lstm = keras.layers.LSTM(5, return_sequences=return_sequences, go_backwards=go_backwards)
    lstm(x)
    lstm.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in lstm.weights])
    converted = getattr(layers, form).like(lstm)
    np.testing.assert_allclose(converted(x).numpy(), lstm(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_unrolled_lstm_with_peepholes_matches_the_peephole_cell(return_sequences):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    rnn = keras.layers.RNN(layers.PeepholeLSTMCell(5), return_sequences=return_sequences)
    rnn(x)
    rnn.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in rnn.weights])
    unrolled = layers.UnrolledLSTM.like(rnn)
    assert unrolled.peepholes
    np.testing.assert_allclose(unrolled(x).numpy(), rnn(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("form", ["FusedBidirectionalLSTM", "UnrolledBidirectionalLSTM"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_lstm_forms_match_keras_bidirectional(form, merge_mode, return_sequences):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    keras_layer = keras.layers.Bidirectional(
        keras.layers.LSTM(5, return_sequences=return_sequences), merge_mode=merge_mode
    )
    keras_layer(x)
    keras_layer.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in keras_layer.weights]
    )
    converted = getattr(layers, form).like(keras_layer)
    np.testing.assert_allclose(converted(x).numpy(), keras_layer(x).numpy(), atol=1e-6)


class _EveryObjectSeenBefore(dict):
    """Keras' record of serialized objects, where every id() was seen before: what a load meets
    when CPython gives a new temporary the address of one freed earlier in the same load."""

    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return self.setdefault(key, {})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_renet_builds_inside_load_model_even_when_object_addresses_are_reused(cell):
    # The once-seen flaky failure of reseg.scenes' .keras round trip: load_model raised
    # "Forward layer and backward layer should have different `go_backwards` value".
    from keras.src.backend.common import global_state
    from keras.src.saving import serialization_lib

    with serialization_lib.ObjectSharingScope():
        global_state.set_global_attribute(
            "shared_objects/id_to_config_map", _EveryObjectSeenBefore()
        )
        with pytest.raises(ValueError, match="go_backwards"):  # Keras' own wrapper, as is
            keras.layers.Bidirectional(keras.layers.LSTM(3))
        renet = layers.ReNet(3, cell=cell)
    assert not renet.horizontal.forward_layer.go_backwards
    assert renet.horizontal.backward_layer.go_backwards
    assert renet.vertical.backward_layer is not renet.horizontal.backward_layer


@pytest.mark.parametrize("switch", ["fused", "unroll"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_renet_in_converter_forms_holds_the_same_weights_and_outputs(cell, switch):
    x = np.random.default_rng(5).uniform(size=(2, 4, 6, 1)).astype("float32")
    renet = layers.ReNet(3, patch_size=2, cell=cell)
    renet(x)
    converted = layers.ReNet.from_config({**renet.get_config(), switch: True})
    converted(x)
    converted.set_weights(renet.get_weights())
    np.testing.assert_allclose(converted(x).numpy(), renet(x).numpy(), atol=1e-6)
    lstm_form = {"fused": layers.FusedBidirectionalLSTM, "unroll": layers.UnrolledBidirectionalLSTM}
    sweeps = lstm_form[switch] if cell == "lstm" else keras.layers.Bidirectional
    assert isinstance(converted.horizontal, sweeps) and isinstance(converted.vertical, sweeps)


@pytest.mark.parametrize("form", ["Fused", "Unrolled"])
def test_lstm_forms_stand_only_for_the_default_lstm(form):
    single, pair = getattr(layers, f"{form}LSTM"), getattr(layers, f"{form}BidirectionalLSTM")
    assert single.like(keras.layers.LSTM(4, activation="relu")) is None
    assert single.like(keras.layers.LSTM(4, use_bias=False)) is None
    assert single.like(keras.layers.GRU(4)) is None
    assert pair.like(keras.layers.Bidirectional(keras.layers.GRU(4))) is None
    assert single.like(keras.layers.LSTM(4), (None, 3, 2)) is not None  # builds it
    assert single.like(keras.layers.RNN(keras.layers.LSTMCell(4))) is None


def test_unrolled_gru_stands_only_for_the_default_gru():
    assert layers.UnrolledGRU.like(keras.layers.GRU(4, go_backwards=True)) is None
    assert layers.UnrolledGRU.like(keras.layers.GRU(4, reset_after=False)) is None
    assert layers.UnrolledGRU.like(keras.layers.GRU(4), (None, 3, 2)) is not None  # builds it


def _random_weights(layer, seed):
    """Non-zero weights and biases everywhere (a zero bias hides a first step done wrong)."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(scale=0.4, size=w.shape).astype("float32") for w in layer.weights]
    )


@pytest.mark.parametrize("return_sequences", [False, True])
def test_unrolled_convlstm_matches_keras_convlstm(return_sequences):
    convlstm = keras.layers.ConvLSTM2D(6, 3, padding="same", return_sequences=return_sequences)
    x = np.random.default_rng(0).normal(size=(2, 5, 8, 7, 3)).astype("float32")
    convlstm(x)
    _random_weights(convlstm, 1)
    form = layers.UnrolledConvLSTM2D.like(convlstm)
    assert form(x).shape == convlstm(x).shape
    np.testing.assert_allclose(form(x).numpy(), convlstm(x).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kernel, strides, size",
    [
        (3, 2, (5, 5)),
        (4, 2, (6, 7)),
        (2, 2, (4, 4)),
        (5, 3, (4, 6)),
        ((3, 5), 2, (5, 4)),
        (3, 1, (4, 4)),
    ],
)
def test_sub_pixel_form_matches_conv2d_transpose(kernel, strides, size):
    deconv = keras.layers.Conv2DTranspose(
        4, kernel, strides=strides, padding="same", activation="relu"
    )
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    deconv(x)
    _random_weights(deconv, 1)
    form = layers.SubPixelConv2DTranspose.like(deconv)
    assert form(x).shape == deconv(x).shape
    np.testing.assert_allclose(form(x).numpy(), deconv(x).numpy(), atol=1e-5)


def test_folded_dense_matches_dense_on_a_map():
    inputs = keras.Input((4, 5, 6, 3))
    dense = keras.layers.Dense(7, activation="relu")
    keras.Model(inputs, dense(inputs))
    _random_weights(dense, 1)
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 6, 3)).astype("float32")
    np.testing.assert_allclose(
        layers.FoldedDense.like(dense)(x).numpy(), dense(x).numpy(), atol=1e-6
    )


def test_static_shape_forms_stand_only_for_what_they_compute():
    backwards = keras.layers.ConvLSTM2D(4, 3, go_backwards=True)
    backwards.build((None, 3, 8, 8, 2))
    assert layers.UnrolledConvLSTM2D.like(backwards) is None
    valid = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="valid")
    assert layers.SubPixelConv2DTranspose.like(valid, (None, 5, 5, 2)) is None
    padded = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1)
    assert layers.SubPixelConv2DTranspose.like(padded, (None, 5, 5, 2)) is None
    assert layers.FoldedDense.like(keras.layers.Dense(3), (None, 5)) is None  # static already
    assert layers.FoldedDense.like(keras.layers.Dense(3), (None, None, 5)) is None
    assert layers.StaticFlatten.like(keras.layers.Flatten(), (None, None, 5)) is None
    first = keras.layers.Flatten(data_format="channels_first")
    assert layers.StaticFlatten.like(first, (None, 2, 3, 5)) is None


def test_static_flatten_matches_flatten():
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype("float32")
    flatten = keras.layers.Flatten()
    np.testing.assert_array_equal(
        layers.StaticFlatten.like(flatten, x.shape)(x).numpy(), flatten(x).numpy()
    )


@pytest.mark.parametrize("shape", [(16, 7, 7, 8), (4, 3, 5, 5, 8)])  # fused, and Keras' path
def test_fused_batch_normalization_trains_as_keras_batch_normalization(shape):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, shape).astype("float32"))
    keras_bn, fused = keras.layers.BatchNormalization(), layers.BatchNormalization()
    weights = [
        rng.uniform(0.5, 2.0, 8).astype("float32"),
        rng.normal(size=8).astype("float32"),
        rng.normal(size=8).astype("float32"),
        rng.uniform(0.5, 2.0, 8).astype("float32"),
    ]
    results = []
    for layer in (keras_bn, fused):
        layer.build(shape)
        layer.set_weights(weights)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y**2 * tf.range(8, dtype="float32"))
        gradients = tape.gradient(loss, [x, *layer.trainable_weights])
        inference = layer(x, training=False)
        results.append([y, *gradients, inference, *layer.non_trainable_weights])
    for expected, got in zip(*results):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-4)


# --- Keras' own layer harness (keras-hub's TestCase builds on it) --------------------------------


def _frame_encoder():
    """A per-frame encoder as the zoo's video models hold one: a small functional model."""
    from kerasrv.architectures.lrcn import cnn_encoder

    return cnn_encoder((16, 16, 1), filters=(4, 8), features=6)


# layer class, a function making its constructor arguments (fresh sublayers each time), input
# shape, output shape
LAYER_CASES = {
    "ImageToSequence": (
        layers.ImageToSequence,
        lambda: {"steps": "columns"},
        (2, 7, 5, 3),
        (2, 5, 21),
    ),
    "ReNet": (
        layers.ReNet,
        lambda: {"units": 3, "patch_size": 2, "cell": "lstm"},
        (2, 4, 6, 1),
        (2, 2, 3, 6),
    ),
    "ReNet-gru": (
        layers.ReNet,
        lambda: {"units": 3, "patch_size": 1, "cell": "gru"},
        (2, 3, 4, 2),
        (2, 3, 4, 6),
    ),
    "FrameWise": (
        layers.FrameWise,
        lambda: {"layer": _frame_encoder()},
        (2, 3, 16, 16, 1),
        (2, 3, 6),
    ),
    "PeepholeLSTMCell": (
        keras.layers.RNN,
        lambda: {"cell": layers.PeepholeLSTMCell(4), "return_sequences": True},
        (2, 5, 3),
        (2, 5, 4),
    ),
    "FusedLSTM": (
        layers.FusedLSTM,
        lambda: {"units": 4, "return_sequences": True, "go_backwards": True},
        (2, 5, 3),
        (2, 5, 4),
    ),
    "FusedBidirectionalLSTM": (
        layers.FusedBidirectionalLSTM,
        lambda: {"units": 4, "merge_mode": "concat"},
        (2, 5, 3),
        (2, 8),
    ),
    "UnrolledLSTM": (
        layers.UnrolledLSTM,
        lambda: {"units": 4, "return_sequences": True, "go_backwards": True},
        (2, 5, 3),
        (2, 5, 4),
    ),
    "UnrolledLSTM-peepholes": (
        layers.UnrolledLSTM,
        lambda: {"units": 4, "peepholes": True},
        (2, 5, 3),
        (2, 4),
    ),
    "UnrolledBidirectionalLSTM": (
        layers.UnrolledBidirectionalLSTM,
        lambda: {"units": 4, "merge_mode": "sum"},
        (2, 5, 3),
        (2, 4),
    ),
    "BatchNormalization": (
        layers.BatchNormalization,
        lambda: {"momentum": 0.9},
        (4, 5, 5, 3),
        (4, 5, 5, 3),
    ),
    "UnrolledGRU": (
        layers.UnrolledGRU,
        lambda: {"units": 4, "return_sequences": False},
        (2, 5, 3),
        (2, 4),
    ),
    "UnrolledConvLSTM2D": (
        layers.UnrolledConvLSTM2D,
        lambda: {"filters": 4, "kernel_size": (3, 3), "return_sequences": True},
        (2, 3, 6, 6, 2),
        (2, 3, 6, 6, 4),
    ),
    "SubPixelConv2DTranspose": (
        layers.SubPixelConv2DTranspose,
        lambda: {
            "filters": 3,
            "kernel_size": (2, 2),
            "strides": (2, 2),
            "paddings": ((1, 0), (1, 0)),
        },
        (2, 4, 5, 2),
        (2, 8, 10, 3),
    ),
    "StaticFlatten": (layers.StaticFlatten, dict, (2, 4, 5, 2), (2, 40)),
    "FoldedDense": (
        layers.FoldedDense,
        lambda: {"units": 3},
        (2, 4, 5, 2),
        (2, 4, 5, 3),
    ),
}


class KerasLayerHarness(keras.src.testing.TestCase):
    """Each custom layer through `run_layer_test`: serialization round trip, symbolic and eager
    calls, a training step, and a mixed_float16 policy."""

    def _run(self, case):
        layer_cls, kwargs, input_shape, output_shape = LAYER_CASES[case]
        self.run_layer_test(
            layer_cls,
            init_kwargs=kwargs(),
            input_shape=input_shape,
            expected_output_shape=output_shape,
        )

    def test_image_to_sequence(self):
        self._run("ImageToSequence")

    def test_renet(self):
        self._run("ReNet")

    def test_renet_gru(self):
        self._run("ReNet-gru")

    def test_framewise_around_a_functional_encoder(self):
        self._run("FrameWise")

    def test_peephole_cell(self):
        self._run("PeepholeLSTMCell")

    def test_unrolled_gru(self):
        self._run("UnrolledGRU")

    def test_fused_lstm(self):
        self._run("FusedLSTM")

    def test_fused_bidirectional_lstm(self):
        self._run("FusedBidirectionalLSTM")

    def test_unrolled_lstm(self):
        self._run("UnrolledLSTM")

    def test_unrolled_lstm_with_peepholes(self):
        self._run("UnrolledLSTM-peepholes")

    def test_unrolled_bidirectional_lstm(self):
        self._run("UnrolledBidirectionalLSTM")

    def test_fused_batch_normalization(self):
        self._run("BatchNormalization")

    def test_unrolled_convlstm(self):
        self._run("UnrolledConvLSTM2D")

    def test_sub_pixel_conv2d_transpose(self):
        self._run("SubPixelConv2DTranspose")

    def test_folded_dense(self):
        self._run("FoldedDense")

    def test_static_flatten(self):
        self._run("StaticFlatten")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layers_compute_in_their_dtype_policy_and_train(case, policy):
    layer_cls, kwargs, input_shape, output_shape = LAYER_CASES[case]
    layer = layer_cls(**kwargs(), dtype=policy)
    x = tf.random.uniform(input_shape)
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        loss = tf.reduce_mean(tf.cast(y, "float32") ** 2)
    assert y.shape == output_shape
    assert keras.backend.standardize_dtype(y.dtype) == policy.removeprefix("mixed_")
    assert all(v.dtype == "float32" for v in layer.trainable_variables)  # float32 master weights
    for gradient in tape.gradient(loss, layer.trainable_variables):
        assert gradient is not None
        assert bool(tf.reduce_all(tf.math.is_finite(tf.cast(gradient, "float32"))))


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_get_config_holds_exactly_the_constructor_arguments(case):
    layer_cls, kwargs, _, _ = LAYER_CASES[case]
    given = kwargs()
    layer = layer_cls(**given)
    config = layer.get_config()
    base = set(keras.layers.Layer().get_config())  # name, trainable, dtype
    accepted = set(inspect.signature(layer_cls.__init__).parameters) - {"self", "kwargs"}
    assert set(config) - base <= accepted, set(config) - base - accepted
    for key, value in given.items():
        if isinstance(value, keras.layers.Layer):
            assert config[key]["class_name"] == type(value).__name__
        else:
            assert config[key] == value, key
    rebuilt = layer_cls.from_config(copy.deepcopy(config))  # Keras' from_config pops keys
    assert _without_build_state(rebuilt.get_config()) == _without_build_state(config)


def _without_build_state(config):
    """A config without what a nested layer records of its build (not a constructor argument)."""
    if isinstance(config, dict):
        return {
            k: _without_build_state(v)
            for k, v in config.items()
            if k not in ("build_config", "compile_config")
        }
    return config
