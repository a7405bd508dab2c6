"""Training: what `kerasrv train` runs, and the pieces a Python user calls.

`fit` is `model.fit` with the callbacks every run wants: a progress bar, the best weights on
validation kept on disk, BackupAndRestore (a killed run resumes at the epoch it reached),
EarlyStopping, a NaN guard that stops with a clear message and leaves the last good checkpoint,
a CSV log and TensorBoard logs. `train` is what `kerasrv train NAME` runs, in three steps:
`prepare` (what is trained on what, checked before anything is written), `fit_run`, and
`write_artifacts` (the weights and card that `kerasrv.zoo` loads).

A run directory with a card is a finished run and is never overwritten unless asked; one without
is resumed where it stopped.

One module a job:

    run           Settings, `prepare` (the recipe fitted to the data, the card, the directory)
    fit           `fit`: model.fit with the zoo's callbacks, resumable
    callbacks     the NaN guard, measured BatchNorm statistics, the weight average
    resume        what a run directory says of an interrupted run
    distribution  tf.distribute strategies and the precision policy
    results       the trained model measured, its weights and card written
    records       attempts and baselines recorded on a shipped entry's card; `ship`: a run
                  made the entry's shipped weights

Example:
    >>> from kerasrv import training
    >>> training.train("cnn_lstm", training.Settings(epochs=2), out="runs")
"""

import sys
import time

import keras

from kerasrv import artifacts, registry, tasks, zoo
from kerasrv.errors import RunExistsError, TrainingDiverged
from kerasrv.registry import PRECISIONS, STRATEGIES
from kerasrv.training.callbacks import (
    PRECISE_BN_EXAMPLES,
    PreciseBatchNorm,
    averaging,
    measure_batch_statistics,
)
from kerasrv.training.distribution import global_policy, is_chief, strategy_for
from kerasrv.training.fit import fit
from kerasrv.training.records import (
    RECORDS,
    check_record,
    record_attempt,
    record_baseline,
    record_run,
    refuse_recording_on_itself,
    ship,
)
from kerasrv.training.results import write_artifacts
from kerasrv.training.resume import FIT_DONE, _epochs_run, _loads
from kerasrv.training.run import (
    CHECK_SPLIT,
    VALIDATION_FRACTION,
    Run,
    Settings,
    batch_for,
    prepare,
    run_directory,
)

__all__ = [
    "CHECK_SPLIT",
    "PRECISE_BN_EXAMPLES",
    "PRECISIONS",
    "STRATEGIES",
    "VALIDATION_FRACTION",
    "PreciseBatchNorm",
    "RECORDS",
    "Run",
    "RunExistsError",
    "Settings",
    "TrainingDiverged",
    "averaging",
    "batch_for",
    "check_record",
    "fit",
    "fit_run",
    "global_policy",
    "is_chief",
    "measure_batch_statistics",
    "prepare",
    "record_attempt",
    "record_baseline",
    "record_run",
    "refuse_recording_on_itself",
    "run_directory",
    "ship",
    "strategy_for",
    "train",
    "write_artifacts",
]


def fit_run(run: Run) -> tuple[keras.Model, object]:
    """Trains a prepared run to its best epoch on validation; returns the trained model.

    Resumes where an interrupted run of the same directory stopped (BackupAndRestore); a run
    whose every epoch was done before it was stopped goes straight to its best weights.
    """
    settings = run.settings
    dist = strategy_for(settings.strategy)  # first: multi-worker collectives precede any op
    keras.utils.set_random_seed(settings.seed)
    task = tasks.get(run.card.task)
    monitor, mode = task.monitor
    steps = int(run.train_ds.cardinality())
    with dist.scope():
        if run.start_from is None:
            model = registry.get_architecture(run.card.architecture)(**run.card.builder_args)
        else:
            model = zoo.load(
                run.entry.name,
                weights=run.start_from,
                input_shape=run.card.input_shape,
                num_classes=run.card.num_classes,
            )
        schedule = keras.optimizers.schedules.CosineDecay(
            run.learning_rate, run.epochs * steps, alpha=0.01
        )
        task.compile(
            model,
            learning_rate=schedule,
            weight_decay=run.weight_decay,
            label_smoothing=run.label_smoothing,
            ema_momentum=run.ema_momentum,
        )
        task.configure(model, run.recipe)
        if settings.jit_compile:
            model.jit_compile = True
    verbose = settings.verbose
    if verbose == "auto":  # a progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    best = run.checkpoints / "best.weights.h5"
    if (run.checkpoints / FIT_DONE).exists() and _loads(model, best):
        return model, dist  # a run killed after fitting, before its card was written
    fit(
        model,
        run.train_ds,
        run.val_ds,
        epochs=run.epochs,
        out_dir=run.checkpoints,
        monitor=monitor,
        mode=mode,
        patience=settings.patience,
        verbose=verbose,
        hours=settings.hours,
        callbacks=[
            *task.callbacks(run.epochs * steps, run.recipe),
            *averaging(run.ema_momentum),  # first: the statistics are the validated weights'
            PreciseBatchNorm(run.train_ds),
        ],
    )
    artifacts.write_json(run.checkpoints / FIT_DONE, {"epochs": run.epochs})
    return model, dist


def train(
    name: str,
    settings: Settings | None = None,
    *,
    record: str | None = None,
    note: str | None = None,
    **options,
) -> artifacts.Card | None:
    """Trains a zoo entry on its dataset; returns the card written into the run directory.

    `kerasrv train NAME` runs this: `prepare`, then `fit_run` under the run's precision policy
    (restored afterwards, whatever happens), then `write_artifacts` (on the chief only; other
    workers of a multi-worker run only train, and get None).

    Args:
        name: zoo entry or architecture name.
        settings: `Settings`.
        record: "attempt" or "baseline": also record the run on the entry's shipped card
            (`record_attempt`, `record_baseline`), checked before anything trains.
        note: an attempt's recipe in words.
        **options: `prepare`'s keyword arguments (out, data, input_shape, frames, weights,
            overwrite, data_dir, command).

    Returns:
        The `Card` written, or None on a worker that is not the chief.

    Example:
        >>> from kerasrv import training
        >>> training.train("cnn_lstm", training.Settings(epochs=2), out="runs")
    """
    check_record(
        name,
        record,
        out=options.get("out", "runs"),
        **{k: options.get(k) for k in ("frames", "data", "input_shape")},
        note=note,
    )
    run = prepare(name, settings, **options)
    if run.settings.verbose:
        print(run.summary(), flush=True)
    monitor, mode = tasks.get(run.card.task).monitor
    log = run.checkpoints / "log.csv"
    # A resumed run's wall time covers only the epochs after the restart: the card says so.
    resumed_at = (
        _epochs_run(log, monitor, mode)["epochs_run"]
        if (run.checkpoints / "backup").exists() and log.exists()
        else 0
    )
    with global_policy(run.settings.precision):
        start = time.perf_counter()
        model, dist = fit_run(run)
        wall = time.perf_counter() - start
    if not is_chief():
        return None
    card = write_artifacts(run, model, dist, wall, resumed_at)
    if record:
        recorded = record_run(card, run.directory, record, note)
        if run.settings.verbose:
            print(f"recorded in {recorded}", flush=True)
    return card
