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
        recipe: `kerasrv train` defaults: epochs, batch_size, augment (True: random flips
            and shifts of the training images; "erasing": random erasing too), and optionally
            label_smoothing, weight_decay (AdamW's decoupled decay) and ema_momentum (the
            weights validated and shipped are an exponential moving average of the trained
            ones); see `Task.compile`. train_split and validation_split name the tfds
            splits of its own dataset (default: the first 90% of train, and the rest), e.g.
            "train" for the final fit on every training example once a recipe is chosen.
            learning_rate is the peak of the cosine schedule (default: the task's). Video
            entries may draw fresh_clips every epoch (`kerasrv.data.fresh_clips`); forecasters
            may take given_frames_loss (`ForecastModel.given_frames_loss`) and teacher_forcing
            = (start, share of the run) for scheduled sampling (`tasks.VideoPrediction`).
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

    @property
    def architecture(self):
        return self.name.partition(".")[0]

    @property
    def tag(self):
        return self.name.partition(".")[2]


# What a recipe may set (`Entry.recipe`); epochs and batch_size are required.
RECIPE_KEYS = (
    "epochs",
    "batch_size",
    "augment",
    "label_smoothing",
    "weight_decay",
    "ema_momentum",
    "train_split",
    "validation_split",
    "learning_rate",
    "fresh_clips",
    "given_frames_loss",
    "teacher_forcing",
)
# The choices of `kerasrv train --precision` and `--strategy` (`kerasrv.training.Settings`),
# here so the command line can offer them without loading TensorFlow.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
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

    `recipe` holds the training defaults of `kerasrv train` (see `Entry.recipe`).
    """
    arch, _, tag = name.partition(".")
    if arch not in _ARCHITECTURES:
        raise UsageError(f"entry {name!r}: no architecture {arch!r} is registered")
    if not tag:
        raise UsageError(f"entry {name!r}: names are 'architecture.tag'")
    if name in _ENTRIES:
        raise UsageError(f"entry {name!r} is registered twice")
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:  # a misspelt key would otherwise train with the default, silently
        raise UsageError(f"entry {name!r}: unknown recipe keys {unknown}; known: {RECIPE_KEYS}")
    if not 0.0 <= recipe.get("ema_momentum", 0.0) < 1.0:
        raise UsageError(f"entry {name!r}: ema_momentum must be in [0, 1)")
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


def list_models(pattern="*"):
    """Sorted names of the entries matching an `fnmatch` pattern ("*lstm*", "row_rnn.*")."""
    return sorted(name for name in _ENTRIES if fnmatch.fnmatchcase(name, pattern))


def list_architectures():
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


def get_entry(name):
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
