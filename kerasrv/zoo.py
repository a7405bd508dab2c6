"""The zoo: one registry of architectures and their named entries.

An architecture is a builder function registered with `@architecture`; an entry is a named,
trained configuration of one (`cnn_lstm.fmnist`), declared with `register(...)` at the bottom of
the architecture's file. The bare architecture name means its default entry.

Example:
    >>> from kerasrv import zoo
    >>> zoo.list_models("row_rnn*")
    ['row_rnn.gru', 'row_rnn.lstm', 'row_rnn.peephole']
    >>> model = zoo.load("cnn_lstm")                  # trained weights, compiled
    >>> model = zoo.load("cnn_lstm", num_classes=4)   # same weights, a new 4-class head
    >>> zoo.info("cnn_lstm")["metrics"]
"""

import copy
import dataclasses
import difflib
import fnmatch
import functools
import hashlib
import json
import os
from pathlib import Path

import keras

TASKS = (
    "classification",
    "segmentation",
    "video_classification",
    "video_segmentation",
    "next_frame",
)

# Names the zoo gives the models' inputs and outputs; SavedModel signatures are keyed by them.
INPUT_NAMES = {
    "classification": "image",
    "segmentation": "image",
    "video_classification": "frames",
    "video_segmentation": "frames",
    "next_frame": "frames",
}
OUTPUT_NAMES = {
    "classification": "probabilities",
    "segmentation": "mask",
    "video_classification": "probabilities",
    "video_segmentation": "mask",
    "next_frame": "next_frames",
}
HEAD = "head"  # the layer that `num_classes` replaces; every classifier builder names it so

WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "card.json"
CONFIG_FILE = "config.json"


class UnknownModelError(KeyError):
    """An entry or architecture name the zoo does not know; the message lists the closest names."""

    def __str__(self):
        return str(self.args[0])


class WeightsError(ValueError):
    """Shipped or given weights that cannot be loaded (missing, corrupt, or of another model)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """A named configuration of an architecture, and what it was trained to do.

    Attributes:
        name: "architecture.tag".
        builder: the architecture's builder function.
        args: the builder's arguments (input_shape, num_classes and hyperparameters).
        task: one of `TASKS`.
        dataset: the `kerasrv.data` dataset it learns from ("fashion_mnist", ...).
        target: the dataset feature it predicts ("label", "motion", "masks", "frames").
        class_names: names of the output classes, or None for next-frame prediction.
        description: one line for `kerasrv list`.
        recipe: `kerasrv train` defaults: epochs, batch_size, and augment (random flips and
            shifts of the training images).
        int8_activations: activation width of the full-integer TFLite export (`tflite_int8`):
            8, or 16 for TFLite's 16x8 mode (int8 weights, int16 activations), for entries
            whose LSTM state loses their answers in 8 bits. Both run on integer kernels only.
    """

    name: str
    builder: object
    args: dict
    task: str
    dataset: str
    target: str
    class_names: tuple | None
    description: str
    recipe: dict
    int8_activations: int = 8

    @property
    def architecture(self):
        return self.name.partition(".")[0]

    @property
    def tag(self):
        return self.name.partition(".")[2]


_ARCHITECTURES = {}
_ENTRIES = {}
_DEFAULT_TAG = {}


def architecture(builder):
    """Registers a builder function as an architecture named after the function."""
    _ARCHITECTURES[builder.__name__] = builder
    return builder


def register(
    name,
    *,
    task,
    dataset,
    target,
    class_names,
    description,
    recipe,
    default=False,
    int8_activations=8,
    **args,
):
    """Declares a zoo entry `name` ("architecture.tag") built with the builder arguments `args`.

    `recipe` holds the training defaults (`epochs`, `batch_size`, `augment`) of `kerasrv train`;
    `int8_activations` (8 or 16) is the activation width of its full-integer TFLite export.
    """
    arch, _, tag = name.partition(".")
    if arch not in _ARCHITECTURES:
        raise ValueError(f"entry {name!r}: no architecture {arch!r} is registered")
    if not tag:
        raise ValueError(f"entry {name!r}: names are 'architecture.tag'")
    if task not in TASKS:
        raise ValueError(f"entry {name!r}: task {task!r} is not one of {TASKS}")
    if name in _ENTRIES:
        raise ValueError(f"entry {name!r} is registered twice")
    if int8_activations not in (8, 16):
        raise ValueError(f"entry {name!r}: int8_activations must be 8 or 16")
    _ENTRIES[name] = Entry(
        name,
        _ARCHITECTURES[arch],
        args,
        task,
        dataset,
        target,
        class_names,
        description,
        recipe,
        int8_activations,
    )
    if default or arch not in _DEFAULT_TAG:
        _DEFAULT_TAG[arch] = name


def list_models(pattern="*"):
    """Sorted names of the entries matching an `fnmatch` pattern ("*lstm*", "row_rnn.*")."""
    return sorted(name for name in _ENTRIES if fnmatch.fnmatchcase(name, pattern))


def list_architectures():
    """Sorted names of the registered architectures."""
    return sorted(_ARCHITECTURES)


def get_entry(name):
    """The `Entry` for an entry name or a bare architecture name (its default entry).

    Raises:
        UnknownModelError: the name is unknown; the message lists the closest names.
    """
    if name in _ENTRIES:
        return _ENTRIES[name]
    if name in _DEFAULT_TAG:
        return _ENTRIES[_DEFAULT_TAG[name]]
    known = sorted(_ENTRIES) + sorted(_DEFAULT_TAG)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    if not close:  # typos in the tag alone, e.g. "row_rnn.lsmt"
        arch = str(name).partition(".")[0]
        close = [n for n in sorted(_ENTRIES) if n.startswith(arch + ".")][:3]
    hint = f"did you mean {', '.join(close)}?" if close else "see kerasrv.zoo.list_models()"
    raise UnknownModelError(f"unknown model {name!r}; {hint}")


def models_dir():
    """Where trained entries live.

    $KERASRV_MODELS_DIR when set (entries you trained yourself), else `kerasrv/models` in an
    installed wheel, else `models/` in a source checkout.
    """
    if os.environ.get("KERASRV_MODELS_DIR"):
        return Path(os.environ["KERASRV_MODELS_DIR"])
    package = Path(__file__).resolve().parent
    for candidate in (package / "models", package.parent / "models"):
        if candidate.is_dir():
            return candidate
    return package.parent / "models"


def shipped(name):
    """The directory of an entry's trained artifacts, or None when none are shipped."""
    directory = models_dir() / get_entry(name).name
    return directory if (directory / WEIGHTS_FILE).is_file() else None


def sha256(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build(name, *, num_classes=None, input_shape=None):
    """The entry's architecture with fresh weights, uncompiled (see `load` for the arguments)."""
    entry = get_entry(name)
    args = dict(entry.args)
    if num_classes is not None:
        if "num_classes" not in args:
            raise ValueError(
                f"{entry.name} is a {entry.task} model without classes; num_classes does not apply"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
        args["num_classes"] = int(num_classes)
    if input_shape is not None:
        args["input_shape"] = tuple(int(d) for d in input_shape)
    return entry.builder(**args)


def load(name, weights="default", num_classes=None, input_shape=None):
    """A compiled `keras.Model` for a zoo entry.

    Args:
        name: an entry ("cnn_lstm.fmnist") or architecture ("cnn_lstm", its default entry).
        weights: "default" for the entry's trained weights, None for fresh weights, or the path
            of a `.weights.h5` file saved from this entry's architecture.
        num_classes: a number of classes other than the entry's rebuilds the classification
            head (a fresh `head` layer) and keeps every other weight: the fine-tuning case.
        input_shape: another input shape (without batch) where the architecture allows one;
            the weights must still fit it.

    Returns:
        A `keras.Model` compiled with the loss, optimizer and metrics of the entry's task.

    Raises:
        UnknownModelError: unknown name.
        WeightsError: no shipped weights, a checksum mismatch, or weights of another model.

    Example:
        >>> model = load("row_rnn.lstm")
        >>> model.fit(images, labels, epochs=1)
    """
    entry = get_entry(name)
    if weights is None:
        model = build(entry.name, num_classes=num_classes, input_shape=input_shape)
        return compile_for_task(model, entry.task)
    path = _weights_path(entry, weights)
    model = build(entry.name, input_shape=input_shape)
    _load_weights(model, path)
    if num_classes is not None and num_classes != entry.args.get("num_classes"):
        reheaded = build(entry.name, num_classes=num_classes, input_shape=input_shape)
        _copy_all_but_head(model, reheaded)
        model = reheaded
    return compile_for_task(model, entry.task)


def _weights_path(entry, weights):
    if weights != "default":
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist")
        return path
    directory = shipped(entry.name)
    if directory is None:
        raise WeightsError(
            f"{entry.name} ships no trained weights yet (looked in {models_dir() / entry.name}); "
            f"pass weights=None for fresh weights or train it with `kerasrv train {entry.name}`"
        )
    path = directory / WEIGHTS_FILE
    expected = json.loads((directory / CARD_FILE).read_text())["weights"]["sha256"]
    actual = sha256(path)
    if actual != expected:
        raise WeightsError(
            f"refusing to load {path}: its sha256 is {actual}, but {directory / CARD_FILE} "
            f"records {expected} (a corrupt or replaced file)"
        )
    return path


def _load_weights(model, path):
    try:
        model.load_weights(path)
    except Exception as error:  # h5py, shape and structure errors all mean the same to a user
        raise WeightsError(f"cannot load weights {path} into {model.name}: {error}") from error


def _copy_all_but_head(source, target):
    for src, dst in zip(source.layers, target.layers, strict=True):
        if src.name != HEAD:
            dst.set_weights(src.get_weights())


# Adam's learning rate by task. Per-pixel targets learn their boundaries faster at a higher rate
# (convlstm_seg, 30 steps on one batch of 16: the loss fell to 0.55× at 1e-3, 0.36–0.41× at 3e-3).
LEARNING_RATES = {
    "classification": 1e-3,
    "video_classification": 1e-3,
    "segmentation": 3e-3,
    "video_segmentation": 3e-3,
    "next_frame": 1e-3,
}


def compile_for_task(model, task, learning_rate=None):
    """Compiles a model with the loss, optimizer and metrics that fit its task.

    Classification: sparse categorical cross-entropy and accuracy. Segmentation: per-pixel
    sparse categorical cross-entropy, pixel accuracy and mean IoU. Next-frame prediction: binary
    cross-entropy on [0, 1] intensities and MSE. The optimizer is Adam at `learning_rate`,
    default `LEARNING_RATES[task]`.
    """
    if task in ("classification", "video_classification"):
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    elif task in ("segmentation", "video_segmentation"):
        num_classes = model.output_shape[-1]
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [
            keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"),
            keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou"),
        ]
    elif task == "next_frame":
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.MeanSquaredError(name="mse")]
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    optimizer = keras.optimizers.Adam(learning_rate or LEARNING_RATES[task])
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def info(name):
    """The entry's card: what it takes, what it returns, and what was measured of it.

    Keys: name, architecture, tag, description, task, dataset, target, input_name, input_shape,
    input_dtype, input_range, output_name, output_shape, num_classes, class_names, params,
    builder_args, int8_activations, weights (path and sha256 of the shipped weights, or None) and
    metrics (measured values only; empty until trained weights exist), plus whatever the training
    and export steps recorded in the shipped `card.json`.
    """
    return copy.deepcopy(_card(get_entry(name).name))


@functools.lru_cache(maxsize=None)
def _card(name):
    entry = _ENTRIES[name]
    model = entry.builder(**entry.args)
    card = {
        "name": entry.name,
        "architecture": entry.architecture,
        "tag": entry.tag,
        "description": entry.description,
        "task": entry.task,
        "dataset": entry.dataset,
        "target": entry.target,
        "input_name": INPUT_NAMES[entry.task],
        "input_shape": list(model.input_shape[1:]),
        "input_dtype": "float32",
        "input_range": [0.0, 1.0],
        "output_name": OUTPUT_NAMES[entry.task],
        "output_shape": list(model.output_shape[1:]),
        "num_classes": entry.args.get("num_classes"),
        "class_names": list(entry.class_names) if entry.class_names else None,
        "params": int(model.count_params()),
        "builder_args": _jsonable(entry.args),
        "int8_activations": entry.int8_activations,
        "weights": None,
        "metrics": {},
    }
    directory = shipped(name)
    if directory is not None:
        recorded = json.loads((directory / CARD_FILE).read_text())
        card.update({k: v for k, v in recorded.items() if k not in card or k in _RECORDED})
        card["weights"] = {"path": str(directory / WEIGHTS_FILE), **recorded["weights"]}
    return card


# Card keys that the training and export steps own; everything else is derived from the code.
_RECORDED = ("metrics",)


def _jsonable(args):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}


# Every architecture module registers itself on import; importing them here (last, once the
# registry above exists) fills the zoo.
from kerasrv import architectures  # noqa: E402,F401
