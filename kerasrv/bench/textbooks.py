"""The textbook Keras model of each architecture's task: what a practitioner would write.

Each is written the way keras-io's examples do it: plain `TimeDistributed` around per-frame
layers, `Bidirectional(LSTM)` over reshaped rows and columns for ReNet sweeps, keras-io's
next-frame ConvLSTM stack (3 × ConvLSTM2D(64) with BatchNormalization, a Conv3D head) for the
ConvLSTM tasks, and Adam with the task's loss and metrics. An entry is benchmarked beside the
textbook model of its architecture; an architecture without one cannot be benchmarked, and says
so.
"""

import keras
from keras import layers

from kerasrv import tasks
from kerasrv.errors import UsageError


def _renet_sweeps(x, units):
    # rows: one Bidirectional LSTM per row, through TimeDistributed; then columns
    x = layers.TimeDistributed(layers.Bidirectional(layers.LSTM(units, return_sequences=True)))(x)
    x = layers.Permute((2, 1, 3))(x)
    x = layers.TimeDistributed(layers.Bidirectional(layers.LSTM(units, return_sequences=True)))(x)
    return layers.Permute((2, 1, 3))(x)


def _row_rnn(x, shape, classes, args):
    # as wide as the entry: the throughput goal compares two ways of writing the same model,
    # not two sizes of it
    units = args.get("units", 128)
    x = layers.Reshape(shape[:1] + (shape[1] * shape[2],))(x)
    x = layers.LSTM(units, return_sequences=True)(x)
    x = layers.LSTM(units)(x)
    return layers.Dense(classes, activation="softmax")(x)


def _cnn_lstm(x, shape, classes, args):
    for width in (32, 64):
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    x = layers.Bidirectional(layers.LSTM(128))(x)
    return layers.Dense(classes, activation="softmax")(x)


def _renet(x, shape, classes, args):
    for _ in range(2):  # 2×2 patches, then the two sweeps
        h, w, c = x.shape[1:]
        x = layers.Reshape((h // 2, 2, w // 2, 2, c))(x)
        x = layers.Permute((1, 3, 2, 4, 5))(x)
        x = layers.Reshape((h // 2, w // 2, 4 * c))(x)
        x = _renet_sweeps(x, 64)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    return layers.Dense(classes, activation="softmax")(x)


def _reseg(x, shape, classes, args):
    skips = []
    for width in (32, 64):
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = _renet_sweeps(_renet_sweeps(x, 64), 64)
    for width, skip in zip((64, 32), reversed(skips)):
        x = layers.Conv2DTranspose(width, 3, strides=2, padding="same", activation="relu")(x)
        x = layers.Concatenate()([x, skip])
    return layers.Conv2D(classes, 1, activation="softmax")(x)


def _lrcn(x, shape, classes, args):
    for width in (16, 32, 64):
        x = layers.TimeDistributed(layers.Conv2D(width, 3, padding="same", activation="relu"))(x)
        x = layers.TimeDistributed(layers.MaxPooling2D())(x)
    x = layers.TimeDistributed(layers.Flatten())(x)
    x = layers.TimeDistributed(layers.Dense(256, activation="relu"))(x)
    x = layers.LSTM(128)(x)
    return layers.Dense(classes, activation="softmax")(x)


def _convlstm_stack(x):
    """keras-io's next-frame prediction model: three ConvLSTM2D(64) with BatchNormalization."""
    for kernel in (5, 3, 1):
        x = layers.ConvLSTM2D(64, kernel, padding="same", return_sequences=True, activation="relu")(
            x
        )
        x = layers.BatchNormalization()(x)
    return x


def _convlstm_seg(x, shape, classes, args):
    return layers.Conv3D(classes, 3, padding="same", activation="softmax")(_convlstm_stack(x))


def _convlstm_predict(x, shape, classes, args):
    return layers.Conv3D(shape[-1], 3, padding="same", activation="sigmoid")(_convlstm_stack(x))


# architecture → (textbook body, the entry's training-throughput goal against it). The goal is
# 1.5× where the textbook uses TimeDistributed or a ConvLSTM stack, whose costs the entries'
# designs avoid, and 1.0× where it is the same design written plainly.
TEXTBOOKS = {
    "row_rnn": (_row_rnn, 1.0),
    "cnn_lstm": (_cnn_lstm, 1.0),
    "renet": (_renet, 1.5),
    "reseg": (_reseg, 1.5),
    "lrcn": (_lrcn, 1.5),
    "convlstm_seg": (_convlstm_seg, 1.5),
    "convlstm_predict": (_convlstm_predict, 1.5),
    # The 10 → 10 forecasters against the same stack, trained to map 10 frames to the next 10 at
    # once (frame t of the output is frame t + 10): what keras-io's model does with equal-length
    # clips. The entries run their recurrence on 4×4 patches, a 16th of the positions.
    "convlstm_forecast": (_convlstm_predict, 1.5),
    "predrnn": (_convlstm_predict, 1.5),
}


def _of(architecture):
    if architecture not in TEXTBOOKS:
        raise UsageError(
            f"no textbook model for architecture {architecture!r}: add one to "
            f"kerasrv.bench.textbooks.TEXTBOOKS before benchmarking it (known: "
            f"{', '.join(TEXTBOOKS)})"
        )
    return TEXTBOOKS[architecture]


def textbook(card):
    """The compiled textbook model for a card's architecture, input shape, classes and widths.

    Raises:
        ValueError: the architecture has no textbook model.
    """
    body, _ = _of(card["architecture"])
    shape = tuple(card["input_shape"])
    inputs = keras.Input(shape)
    model = keras.Model(
        inputs,
        body(inputs, shape, card["num_classes"], card["builder_args"]),
        name=f"textbook_{card['architecture']}",
    )
    task = tasks.get(card["task"])
    model.compile("adam", task.loss(), metrics=task.keras_metrics(model))
    return model


def training_goal(architecture):
    """The entry's training samples/s goal, as a multiple of its textbook model's."""
    return _of(architecture)[1]
