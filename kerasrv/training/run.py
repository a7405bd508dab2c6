"""A run before its first step: the settings of `kerasrv train`, the recipe fitted to the data,
the card of the model it trains, and the directory it writes (`prepare`)."""

import dataclasses
import math
import os
import shlex
import shutil
import sys
from pathlib import Path

import tensorflow as tf

from kerasrv import artifacts, tasks, zoo
from kerasrv import data as data_module
from kerasrv.data import files
from kerasrv.data.augment import augmentation_name
from kerasrv.errors import DatasetError, RunExistsError, UsageError
from kerasrv.registry import PRECISIONS, STRATEGIES, Recipe
from kerasrv.training.distribution import _tf_config, is_chief, precision_for

VALIDATION_FRACTION = 10  # percent of the train split held out for model selection


CHECK_EXAMPLES = 500


CHECK_SPLIT = f"test[:{CHECK_EXAMPLES}]"


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
        precision: "float32", "mixed_float16" or "mixed_bfloat16" (default: the entry's
            recipe's where the hardware computes it natively, else float32; see
            `kerasrv.training.distribution.precision_for`).
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
        hours: a time budget: training stops after the last epoch that fits in this many hours
            (the card records the epochs run and the budget); the next leg starts from its
            weights. None trains every epoch.
        recipe: "KEY=VALUE" changes to any key of the entry's `kerasrv.registry.Recipe`
            (`--recipe`), e.g. "teacher_forcing=0.5,0.25"; the options above named after a
            recipe key change it the same way.
    """

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    patience: int | None = None
    seed: int = 0
    precision: str | None = None
    strategy: str = "auto"
    jit_compile: bool = False
    train_split: str | None = None
    validation_split: str | None = None
    augment: str | None = None
    verbose: object = "auto"
    recipe: tuple = ()
    hours: float | None = None

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
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UsageError(
                f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}"
            )
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"unknown strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}"
            )
        if self.hours is not None and not (
            isinstance(self.hours, (int, float)) and math.isfinite(self.hours) and self.hours > 0
        ):
            raise UsageError(f"hours must be a positive number, got {self.hours!r}")
        self.recipe_changes()  # a one-line error for a bad --recipe KEY=VALUE

    def recipe_changes(self):
        """The changes these settings make to an entry's recipe (`Recipe.replace`): the
        options named after its keys, and each `--recipe KEY=VALUE`."""
        changes = dict(Recipe.parse(override) for override in self.recipe or ())
        for key in ("epochs", "batch_size", "learning_rate", "augment", "precision"):
            changes.update({key: getattr(self, key)} if getattr(self, key) is not None else {})
        for key in ("train_split", "validation_split"):
            changes.update({key: getattr(self, key)} if getattr(self, key) else {})
        return changes


@dataclasses.dataclass
class Run:
    """A prepared run: what is trained, on what, and where its files go (see `prepare`)."""

    name: str
    directory: Path
    card: artifacts.Card
    entry: object
    settings: Settings
    recipe: Recipe  # the entry's, with the settings' changes and fitted to a user's data
    start_from: str | None
    train_ds: object
    val_ds: object
    train_split: str
    validation_split: str
    data_dir: str | None
    frames: int | None
    command: str
    precision_note: str | None = None  # why the run's precision is not the recipe's
    fresh_clips: bool = False  # training clips drawn afresh every epoch (the recipe's, own data)

    # what the recipe says, as the run uses it
    epochs = property(lambda self: self.recipe.epochs)
    batch_size = property(lambda self: self.recipe.batch_size)
    label_smoothing = property(lambda self: self.recipe.label_smoothing)
    weight_decay = property(lambda self: self.recipe.weight_decay)
    ema_momentum = property(lambda self: self.recipe.ema_momentum)
    augment = property(lambda self: augmentation_name(self.recipe.augment))

    @property
    def learning_rate(self):
        """The peak of the cosine schedule: the recipe's, else the task's."""
        return self.recipe.learning_rate or tasks.get(self.card.task).learning_rate

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
            f"{self.learning_rate:g}, augment {self.augment}{self._clips()}, "
            f"{self.settings.precision}{f' ({self.precision_note})' if self.precision_note else ''}"
            f"; {judged}"
        )

    def _clips(self):
        return ", clips drawn afresh every epoch" if self.fresh_clips else ""

    @property
    def checkpoints(self):
        """Where this process keeps its checkpoints and logs (the chief's are the ones used)."""
        index = _tf_config().get("task", {}).get("index", 0)
        return self.directory / ("train" if is_chief() else f"train-worker{index}")


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
    changes = settings.recipe_changes()
    if data is not None:
        if frames is not None:
            raise UsageError("--frames applies to the entry's own dataset, not to --data")
        if Path(str(data)).is_dir() and {"train_split", "validation_split"} & set(changes):
            raise UsageError(
                "--train-split and --validation-split choose a TFDS dataset's splits; a data "
                "folder has train/, val/ and test/ folders or a seeded 10% held out"
            )
        card, splits = _card_for_data(entry, card, data, input_shape, settings.seed, data_dir)
        train_split, validation_split = _splits_of(splits, changes)
    else:
        if frames is not None:
            card = _card_for_frames(card, frames)
        elif input_shape is not None:
            card = _card_for_shape(entry, card, input_shape)
    recipe = entry.recipe.replace(**changes)
    if data is None:
        holdout = 100 - VALIDATION_FRACTION
        train_split = recipe.train_split or f"train[:{holdout}%]"
        validation_split = recipe.validation_split or f"train[{holdout}%:]"
    else:  # the recipe was made for the entry's data: fit it to the user's
        fitted = {}
        if "batch_size" not in changes and card.data:
            fitted["batch_size"] = batch_for(card.data["train"], recipe.batch_size)
        # a mirror changes digits, text and arrows: a user's images are only shifted unless
        # --augment says otherwise; clips are not augmented
        if "augment" not in changes:
            fitted["augment"] = "none" if tasks.get(card.task).video else "shift"
        recipe = recipe.replace(**fitted)
    precision, precision_note = precision_for(recipe.precision, asked=changes.get("precision"))
    settings = dataclasses.replace(settings, precision=precision)
    fresh_clips = recipe.fresh_clips and data is None and frames is None
    directory = run_directory(out, card.name, frames)
    run_name = directory.name
    _claim(directory, overwrite)
    batch_size, augment = recipe.batch_size, augmentation_name(recipe.augment)

    def batches(split, training):
        if training and fresh_clips:
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
        recipe=recipe,
        start_from=weights,
        train_ds=batches(train_split, training=True),
        val_ds=batches(validation_split, training=False),
        train_split=train_split,
        validation_split=validation_split,
        data_dir=data_dir,
        frames=frames,
        command=command or shlex.join(["kerasrv", *sys.argv[1:]]),
        precision_note=precision_note,
        fresh_clips=fresh_clips,
    )


def run_directory(out, name, frames=None):
    """Where a run goes: `<out>/<name>/`, or `<out>/<entry>-frames<N>/` for a baseline on a video
    entry's first N frames. The one rule for it (`kerasrv train` checks it before training)."""
    return Path(out) / (name if frames is None else f"{name}-frames{frames}")


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
    """The card of a model of the entry's architecture for a user's data folder or TFDS name,
    and the TFDS dataset's split names (None for a folder)."""
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
        ), None
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
    card = _card_for_shape(
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
    return card, set(info.splits)


def _splits_of(splits, changes):
    """The train and validation splits of a user's data: a folder's (None: the file pipeline
    names them), or a TFDS dataset's own `validation` split, else the last tenth of `train`
    (the rule for the entries' own datasets; cifar10 and Fashion-MNIST have no validation split);
    `--train-split` and `--validation-split` choose others."""
    if splits is None:
        return "train", "validation"
    if "validation" in splits:
        train, validation = "train", "validation"
    else:
        holdout = 100 - VALIDATION_FRACTION
        train, validation = f"train[:{holdout}%]", f"train[{holdout}%:]"
    return changes.get("train_split", train), changes.get("validation_split", validation)


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
