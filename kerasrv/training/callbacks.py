"""The callbacks of a run beyond Keras' own: the NaN guard, measured BatchNorm statistics, and
the weight average (EMA) swapped in for validation."""

import math
import time

import keras
import tensorflow as tf


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the epoch whose successor would end past `seconds` of this process's
    training: a run on a machine that is taken back every few hours ends on a whole epoch with
    its card written, instead of being cut off mid-epoch (the next leg starts from its weights).
    The next epoch's time is taken as the mean of this process's epochs so far."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.stopped_after = None  # the epoch (1-based) the budget stopped after, if it did

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        elapsed = time.perf_counter() - self.started
        if elapsed + elapsed / self.epochs > self.seconds:
            self.model.stop_training = True
            self.stopped_after = epoch + 1


class _StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers where the loss went bad and puts the last good weights back.

    Restoring at once matters: the epoch still ends after the stop, and a validation accuracy
    measured on NaN weights is a finite number that ModelCheckpoint would take for progress.
    """

    def __init__(self, checkpoint):
        super().__init__()
        self.checkpoint = checkpoint
        self.where = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.where is None:
            self.where = (self._epoch + 1, batch + 1, float(loss))
            self.model.load_weights(self.checkpoint)
            _restart_average(self.model.optimizer)
        super().on_batch_end(batch, logs)


def _restart_average(optimizer):
    """Makes an averaging optimizer's average the model's weights, as they are now.

    A checkpoint of an averaged run holds the average in the model and the trained weights in
    the optimizer's average slots (it is written while they are swapped), so after loading one
    the slots hold NaN-free but stale values that validation would swap in.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    if not getattr(optimizer, "use_ema", False):
        return
    for variable, average in zip(
        optimizer._trainable_variables, optimizer._model_variables_moving_average
    ):
        average.assign(variable)


class EpochSeconds(keras.callbacks.Callback):
    """Adds each epoch's wall time, validation included, to its logs (`epoch_seconds` in the
    run's log.csv): a card's curve of the validation metric against hours comes from it."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.start


PRECISE_BN_EXAMPLES = 4096  # training examples the BatchNorm statistics are measured on


class PreciseBatchNorm(keras.callbacks.Callback):
    """Measures every BatchNormalization layer's statistics before each validation.

    Keras keeps BatchNorm's inference statistics as a moving average (momentum 0.99): on a
    small dataset, 11 steps an epoch, after 100 steps a third of it is still the initial mean 0
    and variance 1, so a model trained from fresh weights validates as one class for everything
    (seen on 1,437 digits: training accuracy 0.98, validation 0.10). This measures them instead,
    as "precise BN" does (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"): up to
    `examples` training examples go through the model in training mode, and each layer's
    moving mean and variance become the mean and variance over all of them (the population
    variance: the mean of the batch variances plus the variance of the batch means).

    Args:
        dataset: training batches (inputs, targets); augmented ones are what training saw.
        examples: how many examples to measure on (whole batches, at least one).
    """

    def __init__(self, dataset, examples=PRECISE_BN_EXAMPLES):
        super().__init__()
        self.dataset, self.examples = dataset, examples

    def on_test_begin(self, logs=None):
        measure_batch_statistics(self.model, self.dataset, self.examples)


def measure_batch_statistics(model, dataset, examples=PRECISE_BN_EXAMPLES):
    """Sets every BatchNormalization layer's moving statistics to the ones measured over up to
    `examples` examples of `dataset` (see `PreciseBatchNorm`); returns how many were used."""
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:  # each step's moving statistics are then that batch's own
        layer.momentum = 0.0
    forward = tf.function(lambda x: model(x, training=True))
    sums = [[0.0, 0.0, 0.0] for _ in layers]  # Σ mean, Σ variance, Σ mean², weighted by count
    seen = 0
    try:
        for x, _ in dataset:
            forward(x)
            count = int(tf.shape(tf.nest.flatten(x)[0])[0])
            for total, layer in zip(sums, layers):
                mean = layer.moving_mean.numpy().astype("float64")
                total[0] += count * mean
                total[1] += count * layer.moving_variance.numpy().astype("float64")
                total[2] += count * mean**2
            seen += count
            if seen >= examples:
                break
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for (mean, variance, square), layer in zip(sums, layers):
        mean, variance, square = mean / seen, variance / seen, square / seen
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign((variance + square - mean**2).astype("float32"))
    return seen


def averaging(ema_momentum):
    """With an `ema_momentum` recipe (> 0), the callback that puts the averaged weights in the
    model for validation and for the epoch's checkpoint, and the trained ones back for training.

    `fit` runs it after BackupAndRestore, so the backup keeps the trained weights in the model
    and the average in the optimizer, and a resumed run goes on with both where they were.
    """
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema_momentum else []
