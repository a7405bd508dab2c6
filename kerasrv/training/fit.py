"""`fit`: `model.fit` with the callbacks every run wants, resumable."""

from pathlib import Path

import keras

from kerasrv.errors import TrainingDiverged
from kerasrv.training.callbacks import EpochSeconds, TimeBudget, _StopOnNaN
from kerasrv.training.resume import _best_so_far, _loads, _mend_backup


def fit(
    model,
    train_ds,
    val_ds,
    *,
    epochs,
    out_dir,
    monitor="val_loss",
    mode="min",
    patience=None,
    verbose="auto",
    callbacks=(),
    hours=None,
):
    """Trains a compiled model with the zoo's callbacks; resumes an interrupted run in `out_dir`.

    Writes into `out_dir`: `best.weights.h5` (best `monitor` on validation; before the first
    epoch ends, the initial weights, so a checkpoint always exists), `backup/` while running
    (BackupAndRestore; removed when the run ends), `log.csv` and `tensorboard/`.

    Args:
        model: a compiled `keras.Model`.
        train_ds: training `tf.data.Dataset` of (inputs, targets).
        val_ds: validation dataset.
        epochs: total epochs (a resumed run counts the ones already done).
        out_dir: where checkpoints and logs go.
        monitor: the validation metric that picks the best weights.
        mode: "min" or "max" for `monitor`.
        patience: epochs without improvement before EarlyStopping; None never stops early.
        verbose: `model.fit`'s progress-bar setting.
        callbacks: more Keras callbacks (the task's); they run before the checkpoint and the
            loggers, so what they add to an epoch's logs is in log.csv.
        hours: a time budget: training stops after the last epoch that fits in it
            (`TimeBudget`); None trains every epoch.

    Returns:
        The `keras.callbacks.History`, with the model holding the best weights.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the message names the checkpoint).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best = out / "best.weights.h5"
    log = out / "log.csv"
    resuming = _mend_backup(out / "backup")
    threshold = _best_so_far(log, monitor, mode) if resuming else None
    if resuming and not _loads(model, best):  # BackupAndRestore puts the run's weights back
        threshold = None
    if threshold is None:
        if not resuming:
            log.unlink(missing_ok=True)
        model.save_weights(best)
    guard = _StopOnNaN(best)
    standard = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), double_checkpoint=True),
        guard,
        *callbacks,
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=threshold,
        ),
        EpochSeconds(),  # before the logger: the log holds each epoch's wall time
        keras.callbacks.CSVLogger(str(log), append=True),
        keras.callbacks.TensorBoard(str(out / "tensorboard"), write_graph=False),
    ]
    if patience:
        standard.append(keras.callbacks.EarlyStopping(monitor, patience=patience, mode=mode))
    if hours:
        standard.append(TimeBudget(hours * 3600))
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        verbose=verbose,
        callbacks=standard,
        shuffle=False,  # the datasets shuffle themselves
    )
    if guard.where is not None:
        epoch, batch, loss = guard.where
        raise TrainingDiverged(
            f"training stopped: the loss became {loss} at epoch {epoch}, batch {batch} (lower "
            f"the learning rate or check the data); the last good weights are in {best}"
        )
    model.load_weights(best)
    return history
