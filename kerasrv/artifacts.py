"""A model's files: their names, the card that describes them, and the weights' integrity.

A trained model is a directory holding `model.weights.h5` and `card.json`. The shipped entries
live under `models/<entry>/`; `kerasrv train` writes the same pair into a run directory. The
card is one schema, `Card`: what the model takes and returns, its classes, what was measured
of it and how it was made (torchvision's `Weights.meta` is the model: the weights carry their
own description). Every read goes to the file: nothing here caches a card.

Writes are atomic (a temporary file renamed into place), so a killed process leaves either the
old file or the new one, never half of one.

Example:
    >>> from kerasrv import artifacts
    >>> card = artifacts.read_card("runs/mine")
    >>> card.task, card.class_names
"""

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from kerasrv import tasks
from kerasrv.errors import CardError, UsageError, WeightsError  # kerasrv.artifacts.CardError too

WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "card.json"


@dataclasses.dataclass
class Card:
    """What a model takes, what it returns, and what was measured of it.

    Read it as attributes (`card.task`) or as a mapping (`card["task"]`); `to_dict()` is its
    JSON form. `input_name` and `output_name` follow from the task.

    Attributes:
        name: the entry ("cnn_lstm.fmnist") or run name.
        task: the task's name (`kerasrv.tasks`).
        input_shape: the input without the batch axis.
        output_shape: the output without the batch axis.
        architecture: the builder that makes the model (`kerasrv.registry`).
        tag: the entry's tag.
        description: one line.
        dataset: the tfds dataset (or folder) it learned from.
        target: the dataset feature it predicts.
        num_classes: classes of the output, None for next-frame prediction.
        class_names: their names, in the order of the output.
        params: number of weights.
        builder_args: the builder's arguments (input_shape and num_classes included).
        input_dtype: always "float32".
        input_range: always [0, 1].
        weights: {"file", "sha256"} of the weights (and "path" once located).
        metrics: what was measured on the test split (empty until trained).
        evaluation: details of that measurement (split, examples, confusion matrix, command).
        check: a fixed subset and its metrics, which a test re-measures.
        training: how it was trained (command, epochs, hardware, versions, ...).
        exports: the parity summary of its recorded export.
        baselines: metrics of baselines measured beside it (e.g. a single frame).
        attempts: other recipes tried for it, each with its measured metrics, command, epochs
            and wall time (`kerasrv train ... --record-attempt`).
        data: where its training data came from, for a model trained on a user's files.
    """

    name: str
    task: str
    input_shape: list
    output_shape: list
    architecture: str | None = None
    tag: str = ""
    description: str = ""
    dataset: str | None = None
    target: str | None = None
    num_classes: int | None = None
    class_names: list | None = None
    params: int | None = None
    builder_args: dict = dataclasses.field(default_factory=dict)
    input_dtype: str = "float32"
    input_range: list = dataclasses.field(default_factory=lambda: [0.0, 1.0])
    weights: dict | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    evaluation: dict | None = None
    check: dict | None = None
    training: dict | None = None
    exports: dict | None = None
    baselines: dict | None = None
    attempts: list | None = None
    data: dict | None = None

    @property
    def input_name(self):
        return tasks.get(self.task).input_name

    @property
    def output_name(self):
        return tasks.get(self.task).output_name

    def __getitem__(self, key):
        if key in ("input_name", "output_name") or key in _FIELDS:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def replace(self, **changes):
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The card as JSON-able data (input and output names included)."""
        data = dataclasses.asdict(self)
        data["input_name"], data["output_name"] = self.input_name, self.output_name
        return data

    @classmethod
    def from_dict(cls, data, source="card"):
        """A card from its JSON form; `source` names where it came from in errors.

        Raises:
            CardError: not an object, an unknown field, or a required field missing.
        """
        if not isinstance(data, dict):
            raise CardError(f"{source} is not a card: expected a JSON object")
        fields = {k: v for k, v in data.items() if k not in ("input_name", "output_name", *RETIRED)}
        unknown = sorted(set(fields) - set(_FIELDS))
        if unknown:
            raise CardError(f"{source} is not a card: unknown field(s) {', '.join(unknown)}")
        missing = [f for f in _REQUIRED if f not in fields]
        if missing:
            raise CardError(f"{source} is not a complete card: no {', '.join(missing)}")
        try:
            tasks.get(fields["task"])
        except ValueError as error:
            raise CardError(f"{source}: {error}") from None
        return cls(**fields)


_FIELDS = tuple(f.name for f in dataclasses.fields(Card))
_REQUIRED = tuple(
    f.name
    for f in dataclasses.fields(Card)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
# Fields that cards written by earlier versions hold and this one no longer reads: skipped, so
# those runs still load. (`int8_activations` chose the tflite_int8 file's activation width; the
# widths are two formats now, `kerasrv.export.INTEGER_OPS`.)
RETIRED = ("int8_activations",)
# What training, evaluation and export record about a model; the rest follows from its code.
RECORDED = (
    "weights",
    "metrics",
    "evaluation",
    "check",
    "training",
    "exports",
    "baselines",
    "attempts",
    "data",
)


# --- reading --------------------------------------------------------------------------------------


def read_json(path):
    """The JSON object in a card file.

    Raises:
        CardError: the file is missing, unreadable or not a JSON object (one line, naming it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CardError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CardError(f"cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise CardError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise CardError(f"{path} is not a card: expected a JSON object")
    return data


def read_record(directory):
    """What was recorded of a trained model: the recorded keys of its card.json.

    A shipped entry's card.json may hold only these (the rest follows from the entry's code);
    a run directory's holds the whole card. Either way the weights' sha256 must be there.

    Raises:
        CardError: a missing or damaged card, or one without the weights' sha256.
    """
    path = Path(directory) / CARD_FILE
    data = read_json(path)
    weights = data.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("sha256"), str):
        raise CardError(f"{path} records no weights sha256 (a damaged card)")
    if not isinstance(data.get("metrics", {}), dict):
        raise CardError(f"{path}: 'metrics' is not an object (a damaged card)")
    unknown = sorted(set(data) - set(_FIELDS) - {"input_name", "output_name", *RETIRED})
    if unknown:
        raise CardError(f"{path} is not a card: unknown field(s) {', '.join(unknown)}")
    return {k: v for k, v in data.items() if k in RECORDED}


def read_card(directory):
    """The whole card of a run directory (one written by `kerasrv train`)."""
    path = Path(directory) / CARD_FILE
    card = Card.from_dict(read_json(path), source=str(path))
    read_record(directory)  # the weights' sha256 must be recorded too
    return card


def is_complete_card(directory):
    """Whether a directory's card.json holds a whole card (not only what was recorded)."""
    try:
        data = read_json(Path(directory) / CARD_FILE)
    except CardError:
        return False
    return all(f in data for f in _REQUIRED)


# --- weights ----------------------------------------------------------------------------------


def sha256(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_weights(directory):
    """The weights file of a trained model's directory, after checking it against its card.

    Raises:
        WeightsError: no weights file, or one whose sha256 differs from the card's.
        CardError: the card is missing or damaged.
    """
    directory = Path(directory)
    expected = read_record(directory)["weights"]["sha256"]
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing (its card records sha256 {expected[:12]}…)")
    actual = sha256(path)
    if actual != expected:
        raise WeightsError(
            f"refusing to load {path}: its sha256 is {actual}, but {directory / CARD_FILE} "
            f"records {expected} (a corrupt or replaced file)"
        )
    return path


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


def shipped(entry_name):
    """The directory of an entry's trained artifacts, or None when none are shipped."""
    directory = models_dir() / entry_name
    return directory if (directory / WEIGHTS_FILE).is_file() else None


# --- writing ------------------------------------------------------------------------------------


def write_atomically(path, data):
    """Writes bytes or text to `path` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json(path, data):
    """Writes a JSON object atomically (the form every card file has)."""
    return write_atomically(path, json.dumps(data, indent=1) + "\n")


def save_weights(model, directory):
    """Saves a model's weights into `directory` atomically; returns {"file", "sha256"}."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".weights-", suffix=".weights.h5", dir=directory)
    os.close(handle)
    try:
        model.save_weights(temporary)
        digest = sha256(temporary)
        os.replace(temporary, directory / WEIGHTS_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {"file": WEIGHTS_FILE, "sha256": digest}


def card_json(card):
    """A card (or a mapping with its keys) as it is written to a file: without local paths."""
    data = card.to_dict() if hasattr(card, "to_dict") else dict(card)
    if data.get("weights"):
        data["weights"] = {k: v for k, v in data["weights"].items() if k != "path"}
    return data


def write_card(directory, card):
    """Writes a whole card as the directory's card.json (atomically)."""
    return write_json(Path(directory) / CARD_FILE, card_json(card))


def leg_seconds(leg):
    """A training leg's time (a card's `training.legs` item): its curve's hours at the last
    epoch count every epoch, also those before a resume, which the leg's own wall time (from
    its last start) leaves out."""
    if leg.get("curve"):
        return leg["curve"][-1][1] * 3600
    return leg.get("wall_time_s") or 0


def update_record(directory, key, value):
    """Sets one recorded key of a directory's card.json (an export summary, a baseline)."""
    if key not in RECORDED:
        raise UsageError(f"{key!r} is not a recorded card field; expected one of {RECORDED}")
    path = Path(directory) / CARD_FILE
    data = read_json(path)
    data[key] = value
    return write_json(path, data)
