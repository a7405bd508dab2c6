"""Video prediction: recurrent cells, the forecaster that rolls them out, scheduled sampling.

The field's protocol (OpenSTL): given 10 frames, predict the next 10 with no true frame in
between. A `Forecaster` reads the given frames through a stack of convolutional recurrent cells,
then keeps going on its own predictions, as PredRNN (Wang et al., 2017) and OpenSTL's recurrent
models do:

    ConvLSTMCell            Shi et al. (2015)'s ConvLSTM as OpenSTL writes it
    SpatioTemporalLSTMCell  PredRNN's ST-LSTM: a temporal memory C per layer and a
                            spatio-temporal memory M that zigzags up the layers within a step
                            and from the top layer to the bottom one at the next step

Frames can be folded into patches first (OpenSTL's patch trick: 64×64×1 frames read as
16×16×16), which makes the recurrent stack 16 times cheaper per step. In training, the true
future frames can stand in for the model's own predictions (teacher forcing) with a probability
that `ScheduledSampling` lowers to zero over training (Bengio et al., 2015); PredRNN-V2's reverse
scheduled sampling (Wang et al., 2022) also has the model's own predictions stand in for the given
frames at first, less and less often.
"""

import math

import keras
from keras import ops

from kerasrv.errors import UsageError


def _conv(filters, kernel_size, name, dtype):
    return keras.layers.Conv2D(
        filters, kernel_size, padding="same", use_bias=False, name=name, dtype=dtype
    )


@keras.saving.register_keras_serializable(package="kerasrv")
class ConvLSTMCell(keras.layers.Layer):
    """One ConvLSTM step (Shi et al. 2015), as OpenSTL's ConvLSTM writes it.

        i, f, g, o = split(W_x * x + W_h * h)         (* is a 'same' convolution)
        c' = σ(f + 1) ⊙ c + σ(i) ⊙ tanh(g)
        h' = σ(o) ⊙ tanh(c')

    The +1 is the forget bias. `call(x, (h, c))` returns (h', (h', c')).

    Args:
        filters: channels of the hidden and cell states.
        kernel_size: side of the convolutions.
    """

    def __init__(self, filters, kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.conv_x = _conv(4 * filters, kernel_size, "conv_x", self.dtype_policy)
        self.conv_h = _conv(4 * filters, kernel_size, "conv_h", self.dtype_policy)

    def build(self, input_shape):
        height, width = input_shape[1:3]
        self.conv_x.build(input_shape)
        self.conv_h.build((None, height, width, self.filters))

    def call(self, x, states):
        h, c = states
        i, f, g, o = ops.split(self.conv_x(x) + self.conv_h(h), 4, axis=-1)
        c = ops.sigmoid(f + 1.0) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, (h, c)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="kerasrv")
class SpatioTemporalLSTMCell(keras.layers.Layer):
    """PredRNN's spatio-temporal LSTM step (Wang et al. 2017), as OpenSTL writes it.

        i, f, g, i', f', g', o_x = split(W_x * x)      i_h, f_h, g_h, o_h = split(W_h * h)
        i_m, f_m, g_m = split(W_m * m)
        c' = σ(f + f_h + 1) ⊙ c + σ(i + i_h) ⊙ tanh(g + g_h)        the temporal memory
        m' = σ(f' + f_m + 1) ⊙ m + σ(i' + i_m) ⊙ tanh(g' + g_m)     the spatio-temporal one
        o = σ(o_x + o_h + W_o * [c', m'])
        h' = o ⊙ tanh(W_1×1 * [c', m'])

    `m` comes from the layer below at the same step (the bottom layer's from the top layer at
    the step before). `call(x, (h, c, m))` returns (h', (h', c', m')).

    Args:
        filters: channels of h, c and m.
        kernel_size: side of the convolutions (the last one is 1×1).
    """

    def __init__(self, filters, kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        policy = self.dtype_policy
        self.conv_x = _conv(7 * filters, kernel_size, "conv_x", policy)
        self.conv_h = _conv(4 * filters, kernel_size, "conv_h", policy)
        self.conv_m = _conv(3 * filters, kernel_size, "conv_m", policy)
        self.conv_o = _conv(filters, kernel_size, "conv_o", policy)
        self.conv_last = _conv(filters, 1, "conv_last", policy)

    def build(self, input_shape):
        height, width = input_shape[1:3]
        state = (None, height, width, self.filters)
        self.conv_x.build(input_shape)
        self.conv_h.build(state)
        self.conv_m.build(state)
        self.conv_o.build((None, height, width, 2 * self.filters))
        self.conv_last.build((None, height, width, 2 * self.filters))

    def call(self, x, states):
        h, c, m = states
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = ops.split(self.conv_x(x), 7, axis=-1)
        i_h, f_h, g_h, o_h = ops.split(self.conv_h(h), 4, axis=-1)
        i_m, f_m, g_m = ops.split(self.conv_m(m), 3, axis=-1)
        c = ops.sigmoid(f_x + f_h + 1.0) * c + ops.sigmoid(i_x + i_h) * ops.tanh(g_x + g_h)
        m = ops.sigmoid(f_xm + f_m + 1.0) * m + ops.sigmoid(i_xm + i_m) * ops.tanh(g_xm + g_m)
        memory = ops.concatenate([c, m], axis=-1)
        o = ops.sigmoid(o_x + o_h + self.conv_o(memory))
        h = o * ops.tanh(self.conv_last(memory))
        return h, (h, c, m)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


CELLS = {"convlstm": ConvLSTMCell, "stlstm": SpatioTemporalLSTMCell}


@keras.saving.register_keras_serializable(package="kerasrv")
class Forecaster(keras.layers.Layer):
    """Reads `frames` and predicts the next `output_frames`, feeding back its own predictions.

    (B, T_in, H, W, C) in [0, 1] → (B, T_out, H, W, C) in [0, 1]. Frames are folded into
    p×p patches (B, T, H/p, W/p, p·p·C); each step runs the cell stack on one frame and a 1×1
    convolution of the top hidden state (then a sigmoid) predicts the next frame. The first
    T_in steps read the given frames, the next T_out − 1 read the frame predicted at the step
    before, so T_in + T_out − 1 steps give T_out predictions. The loop is written out step by
    step (the number of steps is fixed), so a SavedModel or a builtins-only TFLite file holds the
    whole rollout.

    Called with `future` (the true next frames) in training, each of those later steps reads the
    true frame instead of the prediction with probability `teacher_forcing` (a non-trainable
    weight that `ScheduledSampling` sets), per clip. Called with `sample_given` as well
    (PredRNN-V2's reverse scheduled sampling), each given frame after the first is read with
    probability `given_truth` (another such weight, 1 unless a schedule lowers it), else the
    model's own prediction of it: the encoder learns from frames as imperfect as the ones it
    will roll out on.

    Args:
        output_frames: frames to predict, T_out.
        cell: "convlstm" (`ConvLSTMCell`) or "stlstm" (`SpatioTemporalLSTMCell`, PredRNN).
        filters: channels of each layer of the stack (equal for "stlstm": M passes between
            layers).
        kernel_size: convolution side in the cells.
        patch_size: side p of the patches frames are folded into (1: none).
        seed: seed of the teacher-forcing draws.
    """

    def __init__(
        self,
        output_frames=10,
        cell="convlstm",
        filters=(64, 64),
        kernel_size=5,
        patch_size=4,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise UsageError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
        filters = tuple(int(f) for f in filters)
        if cell == "stlstm" and len(set(filters)) != 1:
            raise UsageError(
                f"an ST-LSTM stack passes its memory M between layers: filters must be equal, "
                f"got {filters}"
            )
        self.output_frames = int(output_frames)
        self.cell = cell
        self.filters = filters
        self.kernel_size = kernel_size
        self.patch_size = patch_size
        self.seed = seed
        self.cells = [
            CELLS[cell](width, kernel_size, name=f"{cell}{i + 1}", dtype=self.dtype_policy)
            for i, width in enumerate(filters)
        ]
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        _, _, height, width, channels = input_shape
        p = self.patch_size
        if height % p or width % p:
            raise UsageError(
                f"Forecaster with patch_size={p} expects height and width divisible by {p}, got "
                f"{height}×{width}"
            )
        grid = (None, height // p, width // p)
        below = p * p * channels
        for cell in self.cells:
            cell.build((*grid, below))
            below = cell.filters
        self.to_frame = keras.layers.Conv2D(
            p * p * channels, 1, name="to_frame", dtype=self.dtype_policy
        )
        self.to_frame.build((*grid, self.filters[-1]))
        # A probability compared with float32 draws: never cast to a mixed policy's bfloat16
        self.teacher_forcing = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="teacher_forcing", autocast=False
        )
        self.given_truth = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="given_truth", autocast=False
        )

    def load_own_variables(self, store):
        # Weight files written before reverse scheduled sampling hold teacher_forcing alone;
        # given_truth is a training schedule's state, and 1 (the given frames) is its rest value.
        if len(store.keys()) == 1:
            self.teacher_forcing.assign(store["0"])
            self.given_truth.assign(1.0)
            return
        super().load_own_variables(store)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_frames, *input_shape[2:])

    # Clips and frames are folded into one axis around the patch transpose, which stays 6-D:
    # TFLite's TRANSPOSE takes at most 6 axes (a 7-D one failed to prepare in an int8 file).

    def _fold(self, frames):
        _, steps, height, width, channels = frames.shape
        p = self.patch_size
        x = ops.reshape(frames, (-1, height // p, p, width // p, p, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, steps, height // p, width // p, p * p * channels))

    def _unfold(self, patches, channels):
        _, steps, rows, columns, _ = patches.shape
        p = self.patch_size
        x = ops.reshape(patches, (-1, rows, columns, p, p, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, steps, rows * p, columns * p, channels))

    def call(self, frames, future=None, training=None, every_step=False, sample_given=False):
        """Predicted frames; with `every_step`, the prediction of every step: frames 2..T_in of
        the given ones as well as the T_out future ones (PredRNN's training loss covers all).
        `sample_given` (in training, with `future`) reads given frames 2..T_in with probability
        `given_truth`, else the prediction of each (reverse scheduled sampling)."""
        channels = frames.shape[-1]
        given = self._fold(frames)
        true_future = self._fold(future) if future is not None and training else None
        steps_in = given.shape[1]
        # Zero states shaped like the input without reading its shape at run time (no
        # SHAPE → FILL in a dynamic-batch TFLite file, which LiteRT would re-plan around): the
        # first frame times zeros of each layer's channels (not ZEROS_LIKE, which TFLite's 16x8
        # quantizer refuses).
        first = given[:, 0, :, :, :1]
        zeros = [first * ops.zeros((1, 1, 1, f), dtype=given.dtype) for f in self.filters]
        hidden, cells = list(zeros), list(zeros)
        memory = zeros[0]
        predictions, previous = [], None

        def either(truth, probability):  # per clip: the true frame with `probability`, or ours
            per_clip = (ops.shape(given)[0], 1, 1, 1)  # in training only: no SHAPE in exports
            draw = keras.random.uniform(per_clip, seed=self.seed_generator)
            use_true = ops.cast(draw < probability, given.dtype)
            return use_true * truth + (1 - use_true) * previous

        for t in range(steps_in + self.output_frames - 1):
            if t < steps_in:
                x = given[:, t]
                if sample_given and true_future is not None and t > 0:
                    x = either(x, self.given_truth)
            elif true_future is not None:  # scheduled sampling: the true frame, or our own
                x = either(true_future[:, t - steps_in], self.teacher_forcing)
            else:
                x = previous
            for i, cell in enumerate(self.cells):
                if self.cell == "stlstm":
                    x, (hidden[i], cells[i], memory) = cell(x, (hidden[i], cells[i], memory))
                else:
                    x, (hidden[i], cells[i]) = cell(x, (hidden[i], cells[i]))
            previous = ops.sigmoid(self.to_frame(x))
            if every_step or t >= steps_in - 1:
                predictions.append(previous)
        # float32 frames whatever the dtype policy, as the zoo's output layers give
        return ops.cast(self._unfold(ops.stack(predictions, axis=1), channels), "float32")

    def get_config(self):
        return {
            **super().get_config(),
            "output_frames": self.output_frames,
            "cell": self.cell,
            "filters": list(self.filters),
            "kernel_size": self.kernel_size,
            "patch_size": self.patch_size,
            "seed": self.seed,
        }


class ScheduledSampling(keras.callbacks.Callback):
    """Lowers a forecaster's teacher forcing linearly from `start` to 0 over `steps` batches.

    At first the later steps of training read the true frames (the model learns one step at a
    time), by the end its own predictions (what it meets at inference) — PredRNN's schedule.
    A resumed run picks up where the schedule was, from the optimizer's step count.

    Args:
        steps: training batches over which the probability falls to 0.
        start: the probability at the first batch.
    """

    def __init__(self, steps, start=1.0):
        super().__init__()
        self.steps = max(1, int(steps))
        self.start = float(start)
        self.value = self.start
        self.given = 1.0

    def probabilities(self, done):
        """(teacher forcing, given frames' truth) after `done` batches."""
        return max(0.0, self.start * (1.0 - done / self.steps)), 1.0

    def on_train_batch_begin(self, batch, logs=None):
        done = int(self.model.optimizer.iterations.numpy())
        self.value, self.given = self.probabilities(done)
        for layer in self.model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, Forecaster):
                layer.teacher_forcing.assign(self.value)
                layer.given_truth.assign(self.given)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # the epoch's last probability, for the run's log
            logs["teacher_forcing"] = self.value


class ReverseScheduledSampling(ScheduledSampling):
    """PredRNN-V2's reverse scheduled sampling (Wang et al. 2022), as OpenSTL schedules it.

    Until batch `first`, a future step reads the true frame and a given frame the given one with
    probability 0.5 each (else the model's own prediction). From `first` to `last` the first
    probability falls linearly to 0 and the second rises to 1 as 1 − 0.5·exp(−(t − first)/τ),
    with τ a fifth of the span (OpenSTL's 5,000 over 25,000 iterations); after `last` training runs
    exactly what inference does. The model's `sample_given` must be on (`ForecastModel`).

    Args:
        first: the batch the schedule starts moving at.
        last: the batch it ends at.
    """

    def __init__(self, first, last):
        super().__init__(steps=last, start=0.5)
        self.first = max(0, int(first))
        self.last = max(self.first + 1, int(last))
        self.value, self.given = 0.5, 0.5

    def probabilities(self, done):
        if done < self.first:
            return 0.5, 0.5
        if done >= self.last:
            return 0.0, 1.0
        span = self.last - self.first
        moved = done - self.first
        return 0.5 * (1.0 - moved / span), 1.0 - 0.5 * math.exp(-moved / (span / 5))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if logs is not None:
            logs["given_truth"] = self.given


@keras.saving.register_keras_serializable(package="kerasrv")
class ForecastModel(keras.Model):
    """A functional model around a `Forecaster` whose training steps see the true future.

    `fit` hands `train_step` the true next frames as targets; they go to the forecaster as
    `future`, so scheduled sampling can use them. Everything else (predict, evaluate, save,
    export) is the functional model's.
    """

    def _forecaster(self):
        return next(layer for layer in self.layers if isinstance(layer, Forecaster))

    # PredRNN's and OpenSTL's training loss: the error of every step's next-frame prediction,
    # the given frames 2..T_in as well as the future (19 frames for 10 → 10), which gives the
    # cells a signal at every step. Set from the recipe (`given_frames_loss`) before fitting;
    # validation, evaluation and the metrics see the future frames only.
    given_frames_loss = False
    # PredRNN-V2's reverse scheduled sampling: the given frames too are read as the model's own
    # predictions at times (`Forecaster.given_truth`, set by `ReverseScheduledSampling`).
    # Set from the recipe (`reverse_sampling`) before fitting.
    reverse_sampling = False

    def train_step(self, data):
        import tensorflow as tf

        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            if self.given_frames_loss:
                every = self._forecaster()(
                    x,
                    future=y,
                    training=True,
                    every_step=True,
                    sample_given=self.reverse_sampling,
                )
                target = ops.concatenate([ops.cast(x[:, 1:], every.dtype), y], axis=1)
                loss = self.compute_loss(x=x, y=target, y_pred=every, training=True)
                y_pred = every[:, -y.shape[1] :]
            else:
                y_pred = self._forecaster()(
                    x, future=y, training=True, sample_given=self.reverse_sampling
                )
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        for metric in self.metrics:  # as Keras' guide to a custom train_step does
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {metric.name: metric.result() for metric in self.metrics}
