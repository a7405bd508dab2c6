"""The fit recipe: distribution strategy, precision, callbacks, resume, and training a zoo entry.

`fit` is `model.fit` with the callbacks every run wants: a progress bar, the best weights on
validation kept on disk, BackupAndRestore (a killed run resumes at the epoch it reached),
EarlyStopping, a NaN guard that stops with a clear message and leaves the last good checkpoint,
a CSV log and TensorBoard logs. `train_entry` is what `kerasrv train NAME` runs: it trains a zoo
entry on its own dataset and writes the artifacts that `kerasrv.zoo.load` ships.

Example:
    >>> from kerasrv import training
    >>> training.train_entry("cnn_lstm", epochs=2, out="runs")
"""

import csv
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasrv import zoo

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
VALIDATION_FRACTION = 10  # percent of the train split held out for model selection
CHECK_SPLIT = "test[:500]"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the last good checkpoint."""


def strategy_for(name="auto"):
    """A `tf.distribute` strategy by name.

    Args:
        name: "auto" (several workers in TF_CONFIG → multi-worker; several GPUs → mirrored;
            else the default strategy), "default" (one device), "mirrored" (every visible GPU,
            or every logical CPU device where there is no GPU) or "multi_worker"
            (`MultiWorkerMirroredStrategy`, configured from the TF_CONFIG environment variable).

    Returns:
        A `tf.distribute.Strategy`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    workers = len(_tf_config().get("cluster", {}).get("worker", []))
    if name == "multi_worker" or (name == "auto" and workers > 1):
        if workers < 1:
            raise ValueError(
                "the multi_worker strategy reads its cluster from TF_CONFIG, which names no "
                'workers; set e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:port", '
                '"host2:port"]}, "task": {"type": "worker", "index": 0}}\''
            )
        _support_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _support_multi_worker():
    """Mends the two places where Keras 3.15's `fit` breaks under MultiWorkerMirroredStrategy.

    Both are reductions across workers that TensorFlow refuses (keras-team/keras#20585):
    1. before its first step, the trainer builds the model symbolically from the first batch,
       averaged across replicas; the average fails ("Attempt to convert a value (PerReplica...").
       The build reads only shapes and dtypes, which one replica's batch has too.
    2. after each step, it averages the per-replica logs with `reduce("MEAN", v, axis=0)`,
       which fails on the scalar metric values ("Invalid reduction dimension 0"); averaging
       whole values (axis=None) is what a mean over workers means for scalars.
    Single-process strategies keep Keras' own code paths.
    """
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "kerasrv_multi_worker", False):
        return
    build, reduce_per_replica = (
        trainer.TensorFlowTrainer._maybe_symbolic_build,
        trainer.reduce_per_replica,
    )

    def multi_worker(strategy):
        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def build_from_one_replica(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(batches)
                )
                break
            iterator = None
        return build(self, iterator=iterator, data_batch=data_batch)

    def reduce_whole_values(values, strategy, reduction):
        if multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_one_replica
    trainer.reduce_per_replica = reduce_whole_values
    trainer.kerasrv_multi_worker = True


def _tf_config():
    return json.loads(os.environ.get("TF_CONFIG", "{}"))


def is_chief():
    """True on the process that writes files: the chief, worker 0, or a single process."""
    config = _tf_config()
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("index", 0) == 0


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
        super().on_batch_end(batch, logs)


def _best_so_far(log_path, monitor, mode):
    """The best value of `monitor` in an earlier (interrupted) run's CSV log, or None."""
    if not log_path.exists():
        return None
    with open(log_path) as f:
        values = [float(row[monitor]) for row in csv.DictReader(f) if row.get(monitor)]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


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
        callbacks: more Keras callbacks.

    Returns:
        The `keras.callbacks.History`, with the model holding the best weights.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the message names the checkpoint).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best = out / "best.weights.h5"
    log = out / "log.csv"
    resuming = (out / "backup").exists()
    if not resuming:
        log.unlink(missing_ok=True)
        model.save_weights(best)
    guard = _StopOnNaN(best)
    standard = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        guard,
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=_best_so_far(log, monitor, mode) if resuming else None,
        ),
        keras.callbacks.CSVLogger(str(log), append=True),
        keras.callbacks.TensorBoard(str(out / "tensorboard"), write_graph=False),
    ]
    if patience:
        standard.append(keras.callbacks.EarlyStopping(monitor, patience=patience, mode=mode))
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        verbose=verbose,
        callbacks=[*standard, *callbacks],
    )
    if guard.where is not None:
        epoch, batch, loss = guard.where
        raise TrainingDiverged(
            f"training stopped: the loss became {loss} at epoch {epoch}, batch {batch} (lower "
            f"the learning rate or check the data); the last good weights are in {best}"
        )
    model.load_weights(best)
    return history


def _monitor(task):
    if task in ("segmentation", "video_segmentation"):
        return "val_mean_iou", "max"
    if task == "next_frame":
        return "val_loss", "min"
    return "val_accuracy", "max"


def hardware():
    """A short description of the machine: CPU model and cores, GPUs."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    details = tf.config.experimental.get_device_details
    names = [details(g).get("device_name", "GPU") for g in tf.config.list_physical_devices("GPU")]
    text = f"{cpu}, {os.cpu_count()} cores"
    return text + (f", {len(gpus)}× {names[0]}" if gpus else ", no GPU")


def versions():
    """Versions of the libraries that produced an artifact."""
    import tensorflow_datasets as tfds

    from kerasrv import __version__

    return {
        "kerasrv": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "tensorflow_datasets": tfds.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def train_entry(
    name,
    *,
    epochs=None,
    batch_size=None,
    out="runs",
    strategy="auto",
    precision="float32",
    jit_compile=False,
    seed=0,
    learning_rate=None,
    patience=None,
    frames=None,
    train_split=None,
    validation_split=None,
    data_dir=None,
    command=None,
    verbose="auto",
):
    """Trains a zoo entry on its dataset and writes its artifacts to `<out>/<entry>/`.

    The train split is divided into training (first 90%) and validation (last 10%); the best
    epoch on validation is kept, then measured on the full test split
    (`kerasrv.evaluation.evaluate`). Artifacts: `config.json` (builder arguments and Keras
    config), `model.weights.h5` (weights only), `card.json` (metrics, the training command, seed,
    epochs, wall time, hardware, library versions, the weights' sha256), and `train/` (checkpoints
    and logs; a rerun of the same command resumes there).

    Args:
        name: zoo entry or architecture name.
        epochs: training epochs (default: the entry's recipe).
        batch_size: global batch size (default: the entry's recipe).
        out: output directory; `--out models` writes where the zoo ships entries from.
        strategy: see `strategy_for`.
        precision: "float32", "mixed_float16" or "mixed_bfloat16".
        jit_compile: compile train steps with XLA.
        seed: seed of weights, shuffling and dropout.
        learning_rate: peak learning rate (default: `zoo.LEARNING_RATES[task]`); it decays
            along a cosine to 1% over the run.
        patience: EarlyStopping patience in epochs (default: none).
        frames: train a video entry on its first `frames` frames only (a baseline: what a
            single frame tells); artifacts go to `<out>/<entry>-frames<N>/`.
        train_split: tfds split to train on (default: the first 90% of train).
        validation_split: tfds split that picks the best epoch (default: the last 10%).
        data_dir: TFDS data directory.
        command: the command line to record in the card (default: this process's).
        verbose: progress bar setting.

    Returns:
        The card (dict) that was written.
    """
    from kerasrv import data, evaluation

    dist = strategy_for(strategy)  # first: multi-worker collectives must precede any op
    entry = zoo.get_entry(name)
    recipe = dict(entry.recipe)
    epochs = epochs or recipe["epochs"]
    batch_size = batch_size or recipe["batch_size"]
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(precision)

    card = zoo.info(entry.name)
    input_shape = tuple(card["input_shape"])
    run_name = entry.name
    if frames is not None:
        if card["task"] not in ("video_classification", "video_segmentation"):
            raise ValueError(f"frames= applies to video entries, not to a {card['task']} entry")
        input_shape = (frames, *input_shape[1:])
        run_name = f"{entry.name}-frames{frames}"
    artifacts = Path(out) / run_name

    def batches(split, training):
        ds = data.pipeline(
            card,
            split,
            batch_size,
            shuffle=training,
            seed=seed,
            data_dir=data_dir,
            frames=frames,
            augment=training and recipe.get("augment", False),
        )
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return ds.with_options(options)

    holdout = 100 - VALIDATION_FRACTION
    train_split = train_split or f"train[:{holdout}%]"
    validation_split = validation_split or f"train[{holdout}%:]"
    train_ds = batches(train_split, training=True)
    val_ds = batches(validation_split, training=False)
    steps = int(train_ds.cardinality())
    with dist.scope():
        model = zoo.build(entry.name, input_shape=input_shape)
        peak = learning_rate or zoo.LEARNING_RATES[entry.task]
        schedule = keras.optimizers.schedules.CosineDecay(peak, epochs * steps, alpha=0.01)
        zoo.compile_for_task(model, entry.task, learning_rate=schedule)
        if jit_compile:
            model.jit_compile = True
    monitor, mode = _monitor(entry.task)
    if verbose == "auto":  # a progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    start = time.perf_counter()
    # Every worker keeps its own checkpoints; the chief's are the ones that count.
    index = _tf_config().get("task", {}).get("index", 0)
    checkpoints = artifacts / ("train" if is_chief() else f"train-worker{index}")
    # A resumed run's wall time covers only the epochs after the restart: the card says so.
    resumed_at = (
        _epochs_run(checkpoints / "log.csv", monitor, mode)["epochs_run"]
        if (checkpoints / "backup").exists() and (checkpoints / "log.csv").exists()
        else 0
    )
    fit(
        model,
        train_ds,
        val_ds,
        epochs=epochs,
        out_dir=checkpoints,
        monitor=monitor,
        mode=mode,
        patience=patience,
        verbose=verbose,
    )
    wall = time.perf_counter() - start
    if not is_chief():
        return None

    keras.mixed_precision.set_global_policy("float32")  # ship float32 weights
    clean = zoo.build(entry.name, input_shape=input_shape)
    clean.set_weights(model.get_weights())
    artifacts.mkdir(parents=True, exist_ok=True)
    weights = artifacts / zoo.WEIGHTS_FILE
    clean.save_weights(weights)
    (artifacts / zoo.CONFIG_FILE).write_text(
        json.dumps(
            {
                "name": entry.name,
                "builder": entry.architecture,
                "builder_args": {**card["builder_args"], "input_shape": list(input_shape)},
                "keras_config": clean.get_config(),
            },
            indent=1,
            default=str,
        )
    )
    zoo.compile_for_task(clean, entry.task)
    shaped = {**card, "input_shape": list(input_shape)}
    measured = evaluation.evaluate(clean, shaped, data_dir=data_dir, frames=frames)
    check = evaluation.evaluate(clean, shaped, split=CHECK_SPLIT, data_dir=data_dir, frames=frames)
    record = {
        "name": entry.name,
        "weights": {"file": zoo.WEIGHTS_FILE, "sha256": zoo.sha256(weights)},
        "metrics": measured["metrics"],
        "evaluation": {
            **{k: v for k, v in measured.items() if k != "metrics"},
            "command": f"kerasrv evaluate {artifacts}",
        },
        # A fixed subset a test re-measures, so a card can never drift from its weights.
        "check": {"split": CHECK_SPLIT, "metrics": check["metrics"]},
        "training": {
            "run": run_name,
            "command": command or shlex.join(["kerasrv", *sys.argv[1:]]),
            "seed": seed,
            "epochs": epochs,
            **_epochs_run(checkpoints / "log.csv", monitor, mode),
            "batch_size": batch_size,
            "augment": recipe.get("augment", False),
            "learning_rate": peak,
            "precision": precision,
            "strategy": type(dist).__name__,
            "replicas": dist.num_replicas_in_sync,
            "dataset": card["dataset"],
            "train_split": train_split,
            "validation_split": validation_split,
            "wall_time_s": round(wall, 1),
            "wall_time_covers": f"epochs {resumed_at + 1}-{epochs}" if resumed_at else "the run",
            "hardware": hardware(),
            "versions": versions(),
            "date": datetime.date.today().isoformat(),
        },
    }
    (artifacts / zoo.CARD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def _epochs_run(log_path, monitor, mode):
    """Epochs run (resumed runs included) and the best one, from the run's CSV log."""
    with open(log_path) as f:
        rows = [(int(r["epoch"]) + 1, float(r[monitor])) for r in csv.DictReader(f)]
    pick = max if mode == "max" else min
    best = pick(rows, key=lambda row: row[1])[0] if rows else None
    return {"epochs_run": len(rows), "best_epoch": best}


def record_baseline(record, name="single_frame"):
    """Writes a `--frames` run's metrics into the shipped entry's card, under `baselines`.

    The card of `lrcn.motion` carries what the same encoder reaches from a single frame, so the
    claim that motion needs the sequence rests on two measured numbers.
    """
    directory = zoo.shipped(record["name"])
    if directory is None:
        raise zoo.WeightsError(f"{record['name']} ships no card to record a baseline in")
    path = directory / zoo.CARD_FILE
    card = json.loads(path.read_text())
    card.setdefault("baselines", {})[name] = {
        "metrics": record["metrics"],
        "command": record["training"]["command"],
        "epochs": record["training"]["epochs"],
        "date": record["training"]["date"],
    }
    path.write_text(json.dumps(card, indent=1) + "\n")
    return path
