"""The registry of architectures and their named entries. It imports nothing of kerasrv but its
errors (`kerasrv.errors`, which imports nothing).

An architecture is a builder function registered with `@architecture`; an entry is a named,
trained configuration of one (`cnn_lstm.fmnist`), declared with `register(...)` at the bottom of
the architecture's file. The bare architecture name means its default entry. This is the model
of timm's `_registry.py`: architecture files import this module, the zoo imports the
architecture files, so nothing here knows which architectures exist.

Example:
    >>> from kerasrv import registry
    >>> @registry.architecture
    ... def tiny(input_shape=(28, 28, 1), num_classes=10): ...
    >>> registry.register("tiny.demo", task="classification", dataset="fashion_mnist_local",
    ...                   target="label", class_names=None, description="", recipe={})
"""

import dataclasses
import difflib
import fnmatch

from kerasrv.errors import UnknownModelError, UsageError  # kerasrv.registry.UnknownModelError too

# The choices of `kerasrv train --precision` and `--strategy` (`kerasrv.training.Settings`),
# here so the command line can offer them without loading TensorFlow.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How an entry trains: the defaults of `kerasrv train`, checked once, when declared.

    `kerasrv train --epochs/--batch-size/--learning-rate/--augment/--train-split/
    --validation-split`, and `--recipe KEY=VALUE` for any key, are overrides of it, all applied
    by `replace` (`kerasrv.training.prepare`).

    Attributes:
        epochs: training epochs.
        batch_size: global batch size.
        augment: False, True (random flips and shifts of the training images), or a name of
            `kerasrv.data.augment.AUGMENTATIONS` ("none", "shift", "flip", "erasing").
        label_smoothing: ε of label smoothing (Szegedy et al. 2016), class targets only.
        weight_decay: AdamW's decoupled decay (0: Adam).
        ema_momentum: the weights validated and shipped are an exponential moving average of
            the trained ones (0: none); see `Task.compile`.
        train_split, validation_split: tfds splits of the entry's own dataset (default: the
            first 90% of train, and the rest), e.g. "train" for the final fit on every
            training example once a recipe is chosen.
        learning_rate: the peak of the cosine schedule (default: the task's).
        fresh_clips: video entries draw new clips every epoch (`kerasrv.data.fresh_clips`).
        given_frames_loss: forecasters' loss covers every step's prediction
            (`ForecastModel.given_frames_loss`).
        teacher_forcing: forecasters' scheduled sampling, (start probability, share of the
            run it falls to 0 over) (`kerasrv.tasks.VideoPrediction`).
        reverse_sampling: forecasters' reverse scheduled sampling (PredRNN-V2) instead, as
            (share of the run it starts at, share it ends at), e.g. OpenSTL's (0.2, 0.4);
            where set it schedules both the future and the given frames, and teacher_forcing
            is not used (`kerasrv.layers.ReverseScheduledSampling`).
        precision: the Keras dtype policy an entry trains in where the hardware computes it
            natively ("mixed_bfloat16": a CPU with AVX512-BF16 or AMX, a GPU of compute
            capability 8.0+), float32 elsewhere (`kerasrv.training.distribution.precision_for`);
            an entry's recipe names a mixed policy only where a float32 pair measured that
            quality holds and a benchmark that it pays (BENCHMARKS.md, "Training in bfloat16").
    """

    epochs: int
    batch_size: int
    augment: bool | str = False
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    ema_momentum: float = 0.0
    train_split: str | None = None
    validation_split: str | None = None
    learning_rate: float | None = None
    fresh_clips: bool = False
    given_frames_loss: bool = False
    teacher_forcing: tuple | None = None
    reverse_sampling: tuple | None = None
    precision: str = "float32"

    def __post_init__(self):
        for key in ("epochs", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"recipe {key} must be a positive integer, got {value!r}")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise UsageError(f"ema_momentum must be in [0, 1), got {self.ema_momentum!r}")
        for key in ("label_smoothing", "weight_decay"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise UsageError(f"recipe {key} must be in [0, 1), got {getattr(self, key)!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"recipe precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.teacher_forcing is not None:
            start, share = self.teacher_forcing
            if not (0.0 <= start <= 1.0 and 0.0 < share <= 1.0):
                raise UsageError(
                    f"teacher_forcing is (start in [0, 1], share of the run in (0, 1]), got "
                    f"{self.teacher_forcing!r}"
                )
            object.__setattr__(self, "teacher_forcing", (float(start), float(share)))
        if self.reverse_sampling is not None:
            first, last = self.reverse_sampling
            if not 0.0 <= first < last <= 1.0:
                raise UsageError(
                    f"reverse_sampling is (first, last) shares of the run with 0 <= first < "
                    f"last <= 1, got {self.reverse_sampling!r}"
                )
            object.__setattr__(self, "reverse_sampling", (float(first), float(last)))

    @classmethod
    def of(cls, recipe):
        """A `Recipe` from a mapping of its keys (an unknown key is refused, not ignored)."""
        if isinstance(recipe, cls):
            return recipe
        unknown = sorted(set(recipe) - set(RECIPE_KEYS))
        if unknown:  # a misspelt key would otherwise train with the default, silently
            raise UsageError(f"unknown recipe keys {unknown}; known: {', '.join(RECIPE_KEYS)}")
        return cls(**recipe)

    def replace(self, **changes):
        """The recipe with `changes` (None values: unchanged), checked again."""
        return self.of({**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})

    def to_dict(self):
        return dataclasses.asdict(self)

    @staticmethod
    def parse(override):
        """ "KEY=VALUE" of `--recipe` as (key, value), the value read as the key's type:
        "teacher_forcing=0.5,0.25", "fresh_clips=false", "augment=shift", "epochs=3"."""
        key, sep, text = override.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or key not in RECIPE_KEYS:
            raise UsageError(
                f"--recipe takes KEY=VALUE with KEY one of {', '.join(RECIPE_KEYS)}, got "
                f"{override!r}"
            )
        kind = _RECIPE_TYPES[key]
        try:
            if text.lower() in ("none", ""):
                return key, None
            if kind is bool or (kind == "bool or str" and text.lower() in ("true", "false")):
                if text.lower() not in ("true", "false"):
                    raise ValueError
                return key, text.lower() == "true"
            if kind == "pair":
                start, share = (float(part) for part in text.split(","))
                return key, (start, share)
            return key, text if kind in (str, "bool or str") else kind(text)
        except ValueError:
            wanted = _PAIRS.get(key, getattr(kind, "__name__", kind))
            raise UsageError(f"--recipe {key} takes a {wanted}, got {text!r}") from None


RECIPE_KEYS = tuple(field.name for field in dataclasses.fields(Recipe))
_RECIPE_TYPES = {
    "epochs": int,
    "batch_size": int,
    "augment": "bool or str",
    "label_smoothing": float,
    "weight_decay": float,
    "ema_momentum": float,
    "train_split": str,
    "validation_split": str,
    "learning_rate": float,
    "fresh_clips": bool,
    "given_frames_loss": bool,
    "teacher_forcing": "pair",  # "0.5,0.25"
    "reverse_sampling": "pair",  # "0.2,0.4"
    "precision": str,
}
_PAIRS = {
    "teacher_forcing": "START,SHARE such as 0.5,0.25",
    "reverse_sampling": "FIRST,LAST such as 0.2,0.4",
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """A named configuration of an architecture, and what it was trained to do.

    Attributes:
        name: "architecture.tag".
        builder: the architecture's builder function.
        args: the builder's arguments (input_shape, num_classes and hyperparameters).
        task: the name of its task (`kerasrv.tasks` holds each task's rules).
        dataset: the tfds dataset it learns from ("fashion_mnist_local", ...).
        target: the dataset feature it predicts ("label", "motion", "masks", "frames").
        class_names: names of the output classes, or None for next-frame prediction.
        description: one line for `kerasrv list`.
        recipe: how it trains (`Recipe`).
    """

    name: str
    builder: object
    args: dict
    task: str
    dataset: str
    target: str
    class_names: tuple | None
    description: str
    recipe: Recipe

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
    **args,
):
    """Declares a zoo entry `name` ("architecture.tag") built with the builder arguments `args`.

    `recipe` holds the training defaults of `kerasrv train`: a `Recipe`, or a mapping of its
    keys (checked here: a misspelt or impossible recipe fails at import, not in training).
    """
    arch, _, tag = name.partition(".")
    if arch not in _ARCHITECTURES:
        raise UsageError(f"entry {name!r}: no architecture {arch!r} is registered")
    if not tag:
        raise UsageError(f"entry {name!r}: names are 'architecture.tag'")
    if name in _ENTRIES:
        raise UsageError(f"entry {name!r} is registered twice")
    try:
        recipe = Recipe.of(recipe)
    except UsageError as error:
        raise UsageError(f"entry {name!r}: {error}") from None
    _ENTRIES[name] = Entry(
        name=name,
        builder=_ARCHITECTURES[arch],
        args=args,
        task=task,
        dataset=dataset,
        target=target,
        class_names=tuple(class_names) if class_names else None,
        description=description,
        recipe=recipe,
    )
    if default or arch not in _DEFAULT_TAG:
        _DEFAULT_TAG[arch] = name


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the entries matching an `fnmatch` pattern ("*lstm*", "row_rnn.*")."""
    return sorted(name for name in _ENTRIES if fnmatch.fnmatchcase(name, pattern))


def list_architectures() -> list[str]:
    """Sorted names of the registered architectures."""
    return sorted(_ARCHITECTURES)


def get_architecture(name):
    """The builder function of an architecture name.

    Raises:
        UnknownModelError: the name is not an architecture; the message lists the closest names.
    """
    if name in _ARCHITECTURES:
        return _ARCHITECTURES[name]
    raise UnknownModelError(f"unknown architecture {name!r}; {_suggest(name, _ARCHITECTURES)}")


def get_entry(name: str) -> Entry:
    """The `Entry` for an entry name or a bare architecture name (its default entry).

    Raises:
        UnknownModelError: the name is unknown; the message lists the closest names.
    """
    if name in _ENTRIES:
        return _ENTRIES[name]
    if name in _DEFAULT_TAG:
        return _ENTRIES[_DEFAULT_TAG[name]]
    raise UnknownModelError(f"unknown model {name!r}; {_suggest(name, [*_ENTRIES, *_DEFAULT_TAG])}")


def default_entry(architecture_name):
    """The default entry of an architecture, or None when it has no entry."""
    name = _DEFAULT_TAG.get(architecture_name)
    return _ENTRIES[name] if name else None


def _suggest(name, known):
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    if not close:  # typos in the tag alone, e.g. "row_rnn.lsmt"
        arch = str(name).partition(".")[0]
        close = [n for n in known if n.startswith(arch + ".")][:3]
    listing = "the zoo lists them with `kerasrv list` (or kerasrv.zoo.list_models())"
    return f"did you mean {', '.join(close)}? ({listing})" if close else listing
