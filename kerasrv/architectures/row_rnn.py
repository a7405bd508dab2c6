"""Row RNN: the image's rows are the time steps, the classic recurrent reading of MNIST.

An RNN takes (time, features), so an image is read row by row: 28 rows are 28 time steps of
28 features each, and the last hidden state classifies the image (the MNIST examples of Keras
and of the RNN tutorials since Graves' work read it so).
"""

import keras

from kerasrv.labels import FASHION_MNIST_CLASSES
from kerasrv.layers import ImageToSequence, recurrent
from kerasrv.registry import architecture, register


@architecture
def row_rnn(
    input_shape=(28, 28, 1),
    num_classes=10,
    *,
    cell="lstm",
    units=128,
    num_layers=2,
    dropout=0.2,
    dropout_between=0.0,
):
    """A stack of recurrent layers reading an image row by row.

    Args:
        input_shape: (height, width, channels); height is the number of time steps.
        num_classes: classes of the softmax head.
        cell: "lstm", "gru", "simple" (the vanilla RNN,
            h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)) or "peephole" (Gers & Schmidhuber's
            LSTM, `kerasrv.layers.PeepholeLSTMCell`).
        units: hidden size of every recurrent layer.
        num_layers: stacked recurrent layers; all but the last return sequences.
        dropout: dropout before the head.
        dropout_between: dropout on the sequence between stacked recurrent layers, never on
            the recurrent connections (Zaremba et al. 2014's regularisation of stacked LSTMs;
            it keeps the cuDNN kernel, which recurrent dropout would leave).

    Returns:
        An uncompiled `keras.Model` from `image` (B, H, W, C) in [0, 1] to `probabilities`.

    Example:
        >>> model = row_rnn(cell="gru")
        >>> model(keras.ops.zeros((2, 28, 28, 1))).shape
        (2, 10)
    """
    image = keras.Input(input_shape, name="image")
    x = ImageToSequence("rows", name="rows")(image)
    for i in range(num_layers):
        last = i == num_layers - 1
        x = recurrent(cell, units, return_sequences=not last, name=f"{cell}{i + 1}")(x)
        if dropout_between and not last:
            x = keras.layers.Dropout(dropout_between, name=f"dropout{i + 1}")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(num_classes, name="head")(x)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(image, probabilities, name="row_rnn")


_FMNIST = dict(
    input_shape=(28, 28, 1),
    num_classes=10,
    task="classification",
    dataset="fashion_mnist_local",
    target="label",
    class_names=FASHION_MNIST_CLASSES,
)
register(
    "row_rnn.lstm",
    default=True,
    description="2×LSTM(256) over the 28 rows of a Fashion-MNIST image",
    # The recipe was chosen on the 90/10 split of train (the card's attempts, in
    # bench/BENCHMARKS.md); the shipped weights are it fitted on all 60,000 training images, the
    # usual last step once a recipe is chosen. Its validation split then lies inside the
    # training data (it only shows the fit); the test split alone judges it.
    recipe={
        "epochs": 30,
        "batch_size": 128,
        "label_smoothing": 0.1,
        "weight_decay": 0.05,
        "train_split": "train",
        "validation_split": "train[90%:]",
    },
    cell="lstm",
    units=256,
    dropout_between=0.3,
    **_FMNIST,
)
register(
    "row_rnn.gru",
    description="2×GRU(128) over the 28 rows of a Fashion-MNIST image",
    recipe={"epochs": 30, "batch_size": 128},
    cell="gru",
    **_FMNIST,
)
register(
    "row_rnn.peephole",
    description="2×peephole LSTM(128) over the rows (Gers & Schmidhuber's cell)",
    recipe={"epochs": 30, "batch_size": 128},
    cell="peephole",
    **_FMNIST,
)
