"""The fit recipe: distribution strategy, precision, callbacks, resume, and training runs.

`fit` is `model.fit` with the callbacks every run wants: a progress bar, the best weights on
validation kept on disk, BackupAndRestore (a killed run resumes at the epoch it reached),
EarlyStopping, a NaN guard that stops with a clear message and leaves the last good checkpoint,
a CSV log and TensorBoard logs. `train` is what `kerasrv train NAME` runs, in three steps:
`prepare` (what is trained on what, checked before anything is written), `fit_run`, and
`write_artifacts` (the weights and card that `kerasrv.zoo` loads).

A run directory with a card is a finished run and is never overwritten unless asked; one without
is resumed where it stopped.

Example:
    >>> from kerasrv import training
    >>> training.train("cnn_lstm", training.Settings(epochs=2), out="runs")
"""

import contextlib
import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasrv import artifacts, evaluation, registry, tasks, zoo
from kerasrv import data as data_module
from kerasrv.data import files
from kerasrv.data.augment import augmentation_name
from kerasrv.errors import DatasetError, RunExistsError, TrainingDiverged, UsageError
from kerasrv.registry import PRECISIONS, STRATEGIES

VALIDATION_FRACTION = 10  # percent of the train split held out for model selection
CHECK_EXAMPLES = 500
CHECK_SPLIT = f"test[:{CHECK_EXAMPLES}]"
FIT_DONE = "fit.json"  # in a run's checkpoints: fitting finished (the card may not be written yet)


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
        raise UsageError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    workers = len(_tf_config().get("cluster", {}).get("worker", []))
    if name == "multi_worker" or (name == "auto" and workers > 1):
        if workers < 1:
            raise UsageError(
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


def _log_rows(log_path, monitor):
    """(epoch, monitor value) of each complete row of a run's CSV log.

    A process killed while CSVLogger wrote leaves a partial last row; it is skipped.
    """
    if not log_path.exists():
        return []
    rows = []
    with open(log_path) as f:
        for row in csv.DictReader(f):
            try:
                rows.append((int(row["epoch"]) + 1, float(row[monitor])))
            except (KeyError, TypeError, ValueError):
                continue
    return rows


def _best_so_far(log_path, monitor, mode):
    """The best value of `monitor` in an earlier (interrupted) run's CSV log, or None."""
    values = [v for _, v in _log_rows(log_path, monitor) if math.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def _mend_backup(backup):
    """Makes an interrupted run's backup loadable, whatever moment the run was killed at.

    BackupAndRestore keeps the previous epoch's files beside the last ones (double_checkpoint)
    and falls back to them when the last weights do not load; a training-metadata file cut
    short by the kill is the one case it does not handle, so the previous pair is put back.
    Returns whether a backup is left to resume from.
    """
    metadata = backup / "training_metadata.json"
    previous = backup / "training_metadata.json.bkp"
    if not metadata.exists():
        return backup.exists()
    try:
        json.loads(metadata.read_text())
        return True
    except ValueError:
        pass
    weights_before = backup / "latest.weights.h5.bkp"
    if previous.exists() and weights_before.exists():
        shutil.copy(previous, metadata)
        shutil.copy(weights_before, backup / "latest.weights.h5")
        return True
    shutil.rmtree(backup)
    return False


def _loads(model, path):
    """Whether a weights file loads into the model (a checkpoint cut short by a kill does not)."""
    try:
        with warnings.catch_warnings():
            # The file holds the optimizer's state too, which an unbuilt optimizer cannot take;
            # BackupAndRestore puts that state back when fit starts, so Keras' warning misleads.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model.load_weights(path)
        return True
    except Exception:
        return False


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
        callbacks: more Keras callbacks (the task's); they run before the checkpoint and the
            loggers, so what they add to an epoch's logs is in log.csv.

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


# --- a training run: prepare, fit, write ---------------------------------------------------------


@dataclasses.dataclass
class Settings:
    """How a run trains: the options of `kerasrv train`.

    Attributes:
        epochs: training epochs (default: the entry's recipe).
        batch_size: global batch size (default: the entry's recipe).
        learning_rate: peak learning rate (default: the task's); it decays along a cosine to
            1% over the run.
        patience: EarlyStopping patience in epochs (default: none).
        seed: seed of weights, shuffling and dropout.
        precision: "float32", "mixed_float16" or "mixed_bfloat16".
        strategy: see `strategy_for`.
        jit_compile: compile train steps with XLA.
        train_split: tfds split to train on (default: the entry's recipe, else the first 90%
            of train).
        validation_split: tfds split that picks the best epoch (default: the entry's recipe,
            else the last 10% of train).
        augment: one of `kerasrv.data.augment.AUGMENTATIONS` (default: the entry's recipe on
            its own data; "shift" for a user's images, "none" for clips).
        verbose: `model.fit`'s progress-bar setting ("auto": a bar on a terminal, one line per
            epoch in a log).
    """

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    patience: int | None = None
    seed: int = 0
    precision: str = "float32"
    strategy: str = "auto"
    jit_compile: bool = False
    train_split: str | None = None
    validation_split: str | None = None
    augment: str | None = None
    verbose: object = "auto"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise UsageError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.augment is not None:
            augmentation_name(self.augment)  # a one-line error naming the choices
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}"
            )
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"unknown strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}"
            )


@dataclasses.dataclass
class Run:
    """A prepared run: what is trained, on what, and where its files go (see `prepare`)."""

    name: str
    directory: Path
    card: artifacts.Card
    entry: object
    settings: Settings
    epochs: int
    batch_size: int
    learning_rate: float
    augment: str
    label_smoothing: float
    weight_decay: float
    ema_momentum: float
    start_from: str | None
    train_ds: object
    val_ds: object
    train_split: str
    validation_split: str
    data_dir: str | None
    frames: int | None
    command: str

    def summary(self):
        """One line of what this run trains on and how, and which split judges it."""
        steps = int(self.train_ds.cardinality())
        data = self.card.data
        if data:
            examples = f"{data['train']:,} training examples"
            judged = (
                f"validation: {data['validation']:,} (picks the best epoch); test: "
                f"{data['test'] or data['validation']:,}, {data['measured_on']} (reported)"
            )
        else:
            examples = f"{self.card.dataset or 'the dataset'} {self.train_split}"
            judged = (
                f"validation: {self.validation_split} (picks the best epoch); test: split test "
                f"(reported)"
            )
        shape = "×".join(str(side) for side in self.card.input_shape)
        return (
            f"training {self.name} on {examples}, input {shape}: batch {self.batch_size} "
            f"({steps} steps an epoch), {self.epochs} epochs, learning rate "
            f"{self.learning_rate:g}, augment {self.augment}; {judged}"
        )

    @property
    def checkpoints(self):
        """Where this process keeps its checkpoints and logs (the chief's are the ones used)."""
        index = _tf_config().get("task", {}).get("index", 0)
        return self.directory / ("train" if is_chief() else f"train-worker{index}")


@contextlib.contextmanager
def global_policy(precision):
    """Keras' global dtype policy set to `precision` for the block, and restored after it."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


MIN_STEPS = 40  # steps an epoch a user's data gets at least: the recipe's batch is halved for it
MIN_BATCH = 8


def batch_for(examples, batch_size):
    """The batch size for `examples` training examples: the recipe's `batch_size`, halved until
    an epoch has MIN_STEPS steps (down to MIN_BATCH). An entry's recipe is made for its own
    data (54,000 images at batch 128); 1,437 digits at 128 are 11 steps an epoch, and learn
    less in 10 epochs (0.936 test accuracy) than at 32 (0.989)."""
    while batch_size > MIN_BATCH and math.ceil(examples / batch_size) < MIN_STEPS:
        batch_size //= 2
    return batch_size


def prepare(
    name,
    settings=None,
    *,
    out="runs",
    data=None,
    input_shape=None,
    frames=None,
    weights="entry default",
    overwrite=False,
    data_dir=None,
    command=None,
):
    """Everything a run needs before its first step, checked before anything is written.

    Args:
        name: zoo entry or architecture name.
        settings: `Settings` (default: the entry's recipe).
        out: runs go to `<out>/<run name>/` (`--out models` writes where the zoo ships entries).
            The run name is the entry's for its own dataset, `<architecture>.<folder name>` for a
            data folder, `<architecture>.<tfds name>` for a TFDS dataset.
        data: the user's data: a folder (`kerasrv.data.files`: image folders, image/mask pairs,
            video folders) or the name of a locally prepared TFDS dataset. None trains on the
            entry's own dataset.
        input_shape: the model's input shape (default: the entry's, with the data's channels).
        frames: train a video entry on its first `frames` frames only (a baseline: what a
            single frame tells); the run goes to `<out>/<entry>-frames<N>/`.
        weights: what training starts from: None for fresh weights, "default" for the entry's
            trained weights (adapted to the input shape and classes), or a weights file. By
            default the entry's own dataset starts fresh (how the zoo's entries are made) and a
            user's data starts from the entry's weights (fine-tuning).
        overwrite: train again where a finished run is (its files are replaced).
        data_dir: TFDS data directory.
        command: the command line to record in the card (default: this process's).

    Returns:
        A `Run`.

    Raises:
        RunExistsError: a finished run is in the run directory and `overwrite` is False.
        DatasetError: the data cannot be used (the message names the file).
    """
    settings = settings or Settings()
    entry = zoo.get_entry(name)
    card = zoo.info(entry.name).replace(**{**dict.fromkeys(artifacts.RECORDED), "metrics": {}})
    if weights == "entry default":
        weights = None if data is None else "default"
    if data is not None:
        if frames is not None or settings.train_split or settings.validation_split:
            raise UsageError(
                "--frames, --train-split and --validation-split apply to the entry's own "
                "dataset; a data folder has train/, val/ and test/ folders or a seeded 10% held out"
            )
        card = _card_for_data(entry, card, data, input_shape, settings.seed, data_dir)
        train_split, validation_split = "train", "validation"
    else:
        if frames is not None:
            card = _card_for_frames(card, frames)
        elif input_shape is not None:
            card = _card_for_shape(entry, card, input_shape)
        holdout = 100 - VALIDATION_FRACTION
        train_split = (
            settings.train_split or entry.recipe.get("train_split") or f"train[:{holdout}%]"
        )
        validation_split = (
            settings.validation_split
            or entry.recipe.get("validation_split")
            or f"train[{holdout}%:]"
        )
    run_name = card.name if frames is None else f"{entry.name}-frames{frames}"
    directory = Path(out) / run_name
    _claim(directory, overwrite)
    recipe = dict(entry.recipe)
    epochs = settings.epochs or recipe["epochs"]
    batch_size = settings.batch_size or recipe["batch_size"]
    augment = recipe.get("augment", False)
    if data is not None:  # the recipe was made for the entry's data: fit it to the user's
        task = tasks.get(card.task)
        if settings.batch_size is None and card.data:
            batch_size = batch_for(card.data["train"], batch_size)
        # a mirror changes digits, text and arrows: a user's images are only shifted unless
        # --augment says otherwise; clips are not augmented
        augment = "none" if task.video else "shift"
    augment = augmentation_name(settings.augment or augment)

    def batches(split, training):
        if training and recipe.get("fresh_clips") and data is None and frames is None:
            stored = data_module.load_split(card.dataset, split, data_dir)[0]
            ds = data_module.fresh_clips(
                card, int(stored.cardinality()), batch_size, seed=settings.seed, data_dir=data_dir
            )
            return ds.with_options(_sharded_by_data())
        ds = data_module.pipeline(
            card,
            split,
            batch_size,
            shuffle=training,
            seed=settings.seed,
            data_dir=data_dir,
            frames=frames,
            augment=augment if training else "none",
        )
        return ds.with_options(_sharded_by_data())

    return Run(
        name=run_name,
        directory=directory,
        card=card,
        entry=entry,
        settings=settings,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=(
            settings.learning_rate
            or recipe.get("learning_rate")
            or tasks.get(card.task).learning_rate
        ),
        augment=augment,
        label_smoothing=recipe.get("label_smoothing", 0.0),
        weight_decay=recipe.get("weight_decay", 0.0),
        ema_momentum=recipe.get("ema_momentum", 0.0),
        start_from=weights,
        train_ds=batches(train_split, training=True),
        val_ds=batches(validation_split, training=False),
        train_split=train_split,
        validation_split=validation_split,
        data_dir=data_dir,
        frames=frames,
        command=command or shlex.join(["kerasrv", *sys.argv[1:]]),
    )


def _card_for_frames(card, frames):
    task = tasks.get(card.task)
    if not task.truncates_frames:
        raise UsageError(f"frames= applies to video entries, not to a {task.name} entry")
    if isinstance(frames, bool) or frames < 1:
        raise UsageError(f"frames must be a positive integer, got {frames!r}")
    shape = [frames, *card.input_shape[1:]]
    return card.replace(
        input_shape=shape,
        output_shape=[frames, *card.output_shape[1:]] if task.per_pixel else card.output_shape,
        builder_args={**card.builder_args, "input_shape": shape},
    )


def _card_for_shape(entry, card, input_shape, num_classes=None, **changes):
    """The card of the entry's architecture at another input shape (and number of classes)."""
    model = zoo.build(entry.name, input_shape=input_shape, num_classes=num_classes)
    args = {**card.builder_args, "input_shape": list(model.input_shape[1:])}
    if num_classes is not None:
        args["num_classes"] = num_classes
    return card.replace(
        input_shape=list(model.input_shape[1:]),
        output_shape=list(model.output_shape[1:]),
        num_classes=num_classes or card.num_classes,
        params=int(model.count_params()),
        builder_args=args,
        **changes,
    )


def _card_for_data(entry, card, data, input_shape, seed, data_dir):
    """The card of a model of the entry's architecture for a user's data folder or TFDS name."""
    path = Path(str(data))
    if path.is_dir():
        found = files.scan(path, card.task, seed=seed)  # every file checked: errors name it
        shape = input_shape or _shape_for_files(card.input_shape, found)
        classes = found.class_names  # None for video prediction
        return _card_for_shape(
            entry,
            card,
            shape,
            num_classes=len(classes) if classes else None,
            name=f"{entry.architecture}.{path.resolve().name}",
            tag=path.resolve().name,
            description=f"{entry.name} fine-tuned on {path.resolve()}",
            dataset=None,
            target=None,
            class_names=list(classes) if classes else None,
            data=found.record(),
        )
    if path.exists():
        raise DatasetError(f"--data {data} is a file: give a folder of data or a TFDS name")
    if tasks.get(card.task).name != "classification":
        raise DatasetError(
            f"--data {data} is no folder; a TFDS dataset by name trains classifiers, and "
            f"{entry.name} is a {card.task} model"
        )
    try:
        _, info = data_module.load_split(str(data), "train[:1]", data_dir)
    except DatasetError as error:
        raise DatasetError(
            f"--data {data} is no folder, nor a usable TFDS dataset: {error}"
        ) from None
    label = info.supervised_keys[1] if info.supervised_keys else "label"
    names = list(info.features[label].names)
    return _card_for_shape(
        entry,
        card,
        input_shape or card.input_shape,
        num_classes=len(names),
        name=f"{entry.architecture}.{str(data).replace('/', '-')}",
        tag=str(data),
        description=f"{entry.name} fine-tuned on the TFDS dataset {data}",
        dataset=str(data),
        target=label,
        class_names=names,
    )


def _shape_for_files(entry_shape, found):
    """A model's input shape for a user's files: their channels, and their own size when they
    all share one that is no smaller than the entry's and at most twice it (the scale its
    weights learnt; 32×32 images are not shrunk to 28×28, and 8×8 digits are read at 28×28,
    where cnn_lstm's fine-tuned test accuracy is 0.97 against 0.88 at 8×8); otherwise the
    entry's size, to which every file is resized. `--input-shape` chooses another."""
    *leading, height, width, _ = entry_shape
    if found.size is not None:
        own_height, own_width = found.size
        if height <= own_height <= 2 * height and width <= own_width <= 2 * width:
            height, width = own_height, own_width
    return [*leading, height, width, found.channels]


def _claim(directory, overwrite):
    """Checks a run directory can be written, and clears a finished run when told to.

    A directory with a card holds a finished run: it is never touched unless `overwrite`. One
    without a card is a run to resume (or a new one).
    """
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file, not a run directory")
    if (directory / artifacts.CARD_FILE).exists():
        if not overwrite:
            raise RunExistsError(
                f"{directory} holds a finished run (its {artifacts.CARD_FILE}); nothing was "
                f"changed: pass --overwrite to train it again, or choose another --out"
            )
        for path in (directory / artifacts.CARD_FILE, directory / artifacts.WEIGHTS_FILE):
            path.unlink(missing_ok=True)
        shutil.rmtree(directory / "train", ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {directory}: permission denied")


def _sharded_by_data():
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def fit_run(run):
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
        task.configure(model, run.entry.recipe)
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
        callbacks=[
            *task.callbacks(run.epochs * steps, run.entry.recipe),
            *averaging(run.ema_momentum),  # first: the statistics are the validated weights'
            PreciseBatchNorm(run.train_ds),
        ],
    )
    artifacts.write_json(run.checkpoints / FIT_DONE, {"epochs": run.epochs})
    return model, dist


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


def write_artifacts(run, model, dist, wall_time, resumed_at=0):
    """Measures the trained model and writes its weights and card into the run directory.

    The weights are saved in float32 whatever the training precision; the card holds the
    metrics on the test split, a fixed subset a test re-measures, and how the run was made.
    The card is written last: a run directory with a card is a finished run.
    """
    card = run.card
    clean = registry.get_architecture(card.architecture)(**card.builder_args)  # float32
    clean.set_weights(model.get_weights())
    tasks.get(card.task).compile(clean)
    measured = evaluation.evaluate(clean, card, data_dir=run.data_dir, frames=run.frames)
    check_split = _check_split(card, run.data_dir)
    check = evaluation.evaluate(
        clean, card, split=check_split, data_dir=run.data_dir, frames=run.frames
    )
    monitor, mode = tasks.get(card.task).monitor
    weights = artifacts.save_weights(clean, run.directory)
    card = card.replace(
        params=int(clean.count_params()),
        weights=weights,
        metrics=measured["metrics"],
        evaluation={
            **{k: v for k, v in measured.items() if k not in ("metrics", "pictures")},
            "command": f"kerasrv evaluate {run.directory}",
        },
        # A fixed subset a test re-measures, so a card can never drift from its weights.
        check={"split": check_split, "metrics": check["metrics"]},
        training={
            "run": run.name,
            "command": run.command,
            "seed": run.settings.seed,
            "epochs": run.epochs,
            **_epochs_run(run.checkpoints / "log.csv", monitor, mode),
            "batch_size": run.batch_size,
            "augment": run.augment,
            "label_smoothing": run.label_smoothing,
            "weight_decay": run.weight_decay,
            "ema_momentum": run.ema_momentum,
            "learning_rate": run.learning_rate,
            "started_from": _started_from(run),
            "precision": run.settings.precision,
            "strategy": type(dist).__name__,
            "replicas": dist.num_replicas_in_sync,
            "dataset": card.dataset,
            "train_split": run.train_split,
            "validation_split": run.validation_split,
            "wall_time_s": round(wall_time, 1),
            "wall_time_covers": (
                f"epochs {resumed_at + 1}-{run.epochs}" if resumed_at else "the run"
            ),
            "hardware": hardware(),
            "versions": versions(),
            "date": datetime.date.today().isoformat(),
        },
    )
    card = card.replace(training={**card.training, **_legs(run, card.training)})
    artifacts.write_card(run.directory, card)
    return card


def _leg(training):
    """One leg of a model's training, as the legs of a warm-restarted model list it."""
    keys = ("command", "started_from", "epochs_run", "wall_time_s", "precision", "date")
    return {key: training.get(key) for key in keys}


def _legs(run, training):
    """Every leg the weights went through, when the run warm-restarts a trained model.

    Training that outlives its machine (a run cut off every few hours, continued on another)
    goes in legs: each starts from the weights the last one shipped, with a fresh optimizer
    and schedule. When the weights a run starts from sit beside the card that made them (a
    shipped entry, a run directory), that card's legs come before this one, and the card sums
    the epochs and hours of all of them.
    """
    earlier = []
    if run.start_from is not None:
        source = (
            artifacts.models_dir() / run.entry.name
            if run.start_from == "default"
            else Path(run.start_from).parent
        )
        weights = source / artifacts.WEIGHTS_FILE
        try:
            before = artifacts.read_json(source / artifacts.CARD_FILE)
        except artifacts.CardError:
            before = None
        made_here = (
            before is not None
            and weights.exists()
            and (run.start_from == "default" or Path(run.start_from).name == weights.name)
            and (before.get("weights") or {}).get("sha256") == artifacts.sha256(weights)
            and isinstance(before.get("training"), dict)
        )
        if made_here:
            earlier = before["training"].get("legs") or [_leg(before["training"])]
    legs = [*earlier, _leg(training)]
    return {
        "legs": legs,
        "epochs_total": sum(leg["epochs_run"] or 0 for leg in legs),
        "wall_time_total_s": round(sum(leg["wall_time_s"] or 0 for leg in legs), 1),
    }


def _check_split(card, data_dir):
    """The fixed test subset a card's check holds: the first 500 examples, or the whole test
    split of a smaller dataset (tfds refuses a slice past a split's end; a folder's is clamped)."""
    if card.data is None:
        _, info = data_module.load_split(card.dataset, "test", data_dir)
        if info.splits["test"].num_examples < CHECK_EXAMPLES:
            return "test"
    return CHECK_SPLIT


FRESH = "fresh weights"


def _started_from(run):
    """What the run's weights started as; a file is named with its sha256, which outlives the
    path (a warm restart from an entry's earlier weights stays traceable after they change)."""
    if run.start_from is None:
        return FRESH
    if run.start_from == "default":
        return run.entry.name
    return f"{run.start_from} (sha256 {artifacts.sha256(run.start_from)})"


def train(name, settings=None, **options):
    """Trains a zoo entry on its dataset; returns the card written into the run directory.

    `kerasrv train NAME` runs this: `prepare`, then `fit_run` under the run's precision policy
    (restored afterwards, whatever happens), then `write_artifacts` (on the chief only; other
    workers of a multi-worker run only train, and get None).

    Args:
        name: zoo entry or architecture name.
        settings: `Settings`.
        **options: `prepare`'s keyword arguments (out, frames, weights, overwrite, data_dir,
            command).

    Returns:
        The `Card` written, or None on a worker that is not the chief.

    Example:
        >>> from kerasrv import training
        >>> training.train("cnn_lstm", training.Settings(epochs=2), out="runs")
    """
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
    return write_artifacts(run, model, dist, wall, resumed_at)


def _epochs_run(log_path, monitor, mode):
    """Epochs run (resumed runs included) and the best one, from the run's CSV log."""
    rows = _log_rows(log_path, monitor)
    pick = max if mode == "max" else min
    best = pick(rows, key=lambda row: row[1])[0] if rows else None
    return {"epochs_run": len(rows), "best_epoch": best}


def refuse_recording_on_itself(entry_name, run_directory):
    """Raises ValueError when `run_directory` is the shipped entry's own directory: a run
    recorded on the shipped card (`--record-attempt`, `--record-baseline`) must train elsewhere.
    The CLI calls it before training, so the refusal costs nothing."""
    shipped = artifacts.shipped(entry_name)
    if shipped is not None and shipped.resolve() == Path(run_directory).resolve():
        raise UsageError(
            f"{run_directory} is the shipped {entry_name} itself: a run recorded on its card "
            f"trains into another --out"
        )


def _shipped_record(card, run_directory, what):
    directory = artifacts.shipped(card.name)
    if directory is None:
        raise artifacts.WeightsError(f"{card.name} ships no card to record {what} in")
    refuse_recording_on_itself(card.name, run_directory)
    return directory, artifacts.read_record(directory)


def _run_summary(card):
    return {
        "metrics": card.metrics,
        "command": card.training["command"],
        "epochs": card.training["epochs"],
        "date": card.training["date"],
    }


def record_baseline(card, run_directory, name="single_frame"):
    """Writes a `--frames` run's metrics into the shipped entry's card, under `baselines`.

    The card of `lrcn.motion` carries what the same encoder reaches from a single frame, so the
    claim that motion needs the sequence rests on two measured numbers.
    """
    directory, record = _shipped_record(card, run_directory, "a baseline")
    baselines = dict(record.get("baselines") or {})
    baselines[name] = _run_summary(card)
    return artifacts.update_record(directory, "baselines", baselines)


def record_attempt(card, run_directory, note=None):
    """Appends a run's test metrics and how it was made to the shipped entry's `attempts`.

    An entry that misses its target says what else was tried and measured: each recipe run
    with `kerasrv train ... --record-attempt` (into a directory other than the shipped one)
    leaves its metrics, command, epochs and wall time on the shipped card, the weights it
    started from (by sha256) and, given `note`, what the recipe tried, in words.
    """
    directory, record = _shipped_record(card, run_directory, "an attempt")
    attempt = {
        **_run_summary(card),
        # the command alone does not say what the recipe and builder were at the time
        "builder_args": card.builder_args,
        "augment": card.training["augment"],
        **{
            k: card.training[k]
            for k in ("label_smoothing", "weight_decay", "ema_momentum")
            if card.training.get(k)
        },
        "best_epoch": card.training["best_epoch"],
        "wall_time_s": card.training["wall_time_s"],
        "hardware": card.training["hardware"],
        **(
            {"started_from": card.training["started_from"]}
            if card.training.get("started_from", FRESH) != FRESH
            else {}
        ),
        **({"note": note} if note else {}),
    }
    attempts = [a for a in record.get("attempts") or [] if a["command"] != attempt["command"]]
    return artifacts.update_record(directory, "attempts", [*attempts, attempt])
