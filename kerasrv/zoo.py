"""The zoo: build, load and describe the registered entries, and resolve any trained model.

`load(name)` is a compiled `keras.Model` with the entry's trained weights. Asked for another
input shape or number of classes, it keeps every trained weight that still fits, adapts those
that read the image's channels to a new channel count (timm's `adapt_input_conv`), and names in
one warning what it had to re-initialise. `resolve(target)` is what every command uses: a zoo
name, a run directory written by `kerasrv train`, or a `.keras` file, to (model, card).

Example:
    >>> from kerasrv import zoo
    >>> zoo.list_models("row_rnn*")
    ['row_rnn.gru', 'row_rnn.lstm', 'row_rnn.peephole']
    >>> model = zoo.load("cnn_lstm")                  # trained weights, compiled
    >>> model = zoo.load("cnn_lstm", num_classes=4)   # same weights, a new 4-class head
    >>> zoo.info("cnn_lstm")["metrics"]
"""

import copy
import functools
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from kerasrv import architectures, artifacts, registry, tasks
from kerasrv.artifacts import Card, CardError, WeightsError
from kerasrv.errors import UsageError
from kerasrv.registry import (
    UnknownModelError,
    get_entry,
    list_architectures,
    list_models,
)

__all__ = [
    "Card",
    "CardError",
    "UnknownModelError",
    "WeightsAdaptedWarning",
    "WeightsError",
    "build",
    "describe",
    "get_entry",
    "info",
    "list_architectures",
    "list_models",
    "load",
    "resolve",
]
assert architectures  # imported for its side effect: every architecture file registers itself

HEAD = "head"  # the layer that `num_classes` replaces; every classifier builder names it so


class WeightsAdaptedWarning(UserWarning):
    """Trained weights loaded under another input shape or head: what was adapted or re-made."""


# --- arguments ------------------------------------------------------------------------------------


def _checked_num_classes(num_classes, entry):
    if num_classes is None:
        return None
    if "num_classes" not in entry.args:
        raise UsageError(
            f"{entry.name} is a {entry.task} model without classes; num_classes does not apply"
        )
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 2
    ):
        raise UsageError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    return int(num_classes)


def _checked_input_shape(input_shape, entry):
    if input_shape is None:
        return None
    expected = entry.args["input_shape"]
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != len(expected)
        or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape)
    ):
        layout = (
            "(frames, height, width, channels)"
            if len(expected) == 4
            else "(height, width, channels)"
        )
        raise UsageError(
            f"{entry.name} expects input_shape {layout} of positive integers like "
            f"{tuple(expected)}, got {input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def build(
    name: str, *, num_classes: int | None = None, input_shape: Sequence[int] | None = None
) -> keras.Model:
    """The entry's architecture with fresh weights, uncompiled (see `load` for the arguments)."""
    entry = get_entry(name)
    args = dict(entry.args)
    num_classes = _checked_num_classes(num_classes, entry)
    input_shape = _checked_input_shape(input_shape, entry)
    if num_classes is not None:
        args["num_classes"] = num_classes
    if input_shape is None:
        return entry.builder(**args)
    args["input_shape"] = input_shape
    try:
        return entry.builder(**args)
    except ValueError as error:
        if "output size would be zero or negative" not in str(error):
            raise
        raise UsageError(
            f"{entry.name} cannot read input_shape {input_shape}: its pooling and strides "
            f"shrink it below one pixel (the entry's is "
            f"{tuple(entry.args['input_shape'])})"
        ) from None


# --- loading ------------------------------------------------------------------------------------


def load(
    name: str,
    weights: str | os.PathLike | None = "default",
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
) -> keras.Model:
    """A compiled `keras.Model` for a zoo entry.

    Args:
        name: an entry ("cnn_lstm.fmnist") or architecture ("cnn_lstm", its default entry).
        weights: "default" for the entry's trained weights, None for fresh weights, or the path
            of a `.weights.h5` file saved from this entry's architecture.
        num_classes: a number of classes other than the entry's rebuilds the classification
            head (a fresh `head` layer) and keeps every other weight: the fine-tuning case.
        input_shape: another input shape (without batch): another clip length, size or number
            of channels. Every trained weight whose shape still fits is kept as it is; the
            weights that read the image's channels are adapted to the new channel count (from
            1 channel, each new channel gets the weights divided by their number, so a grey
            image in all channels gives the same features; to 1 channel, they are summed);
            what fits neither way is re-initialised and named in one `WeightsAdaptedWarning`.

    Returns:
        A `keras.Model` compiled with the loss, optimizer and metrics of the entry's task.

    Raises:
        UnknownModelError: unknown name.
        WeightsError: no shipped weights, a checksum mismatch, or weights of another model.
        CardError: the entry's shipped card.json is missing or damaged.
        ValueError: a num_classes or input_shape the entry cannot take.

    Example:
        >>> model = load("lrcn", input_shape=(16, 112, 112, 3), num_classes=5)
        >>> model.fit(clips, labels, epochs=3)
    """
    entry = get_entry(name)
    num_classes = _checked_num_classes(num_classes, entry)
    input_shape = _checked_input_shape(input_shape, entry)
    task = tasks.get(entry.task)
    target = build(entry.name, num_classes=num_classes, input_shape=input_shape)
    if weights is None:
        return task.compile(target)
    path = _weights_path(entry, weights)
    changed = num_classes not in (None, entry.args.get("num_classes")) or input_shape not in (
        None,
        tuple(entry.args["input_shape"]),
    )
    if not changed:
        _load_weights(target, path)
        return task.compile(target)
    try:  # a file saved from a model of this very shape (Keras warns before it refuses)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target.load_weights(path)
        return task.compile(target)
    except Exception:  # a file of the entry's own shape: transfer what fits, into fresh weights
        target = build(entry.name, num_classes=num_classes, input_shape=input_shape)
    source = build(entry.name)
    _load_weights(source, path)
    adapted, remade = _transfer(source, target)
    headed = num_classes not in (None, entry.args.get("num_classes"))
    unexpected = [n for n in remade if not (headed and n.startswith(HEAD + "/"))]
    if adapted or unexpected:
        parts = []
        if adapted:
            parts.append(
                f"adapted to {target.input_shape[-1]} input channels: {', '.join(adapted)}"
            )
        if unexpected:
            parts.append(f"re-initialised (no trained weights fit): {', '.join(unexpected)}")
        warnings.warn(
            f"{entry.name} at input_shape {target.input_shape[1:]}: " + "; ".join(parts),
            WeightsAdaptedWarning,
            stacklevel=2,
        )
    return task.compile(target)


def _weights_path(entry, weights):
    if isinstance(weights, str) and weights == "default":
        directory = artifacts.shipped(entry.name)
        if directory is None:
            raise WeightsError(
                f"{entry.name} ships no trained weights yet (looked in "
                f"{artifacts.models_dir() / entry.name}); pass weights=None for fresh weights or "
                f"train it with `kerasrv train {entry.name}`"
            )
        return artifacts.verified_weights(directory)
    if not isinstance(weights, (str, Path)) or not str(weights):
        raise WeightsError(
            f"weights must be 'default', None or the path of a .weights.h5 file, got {weights!r}"
        )
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    return path


def _load_weights(model, path):
    try:
        model.load_weights(path)
    except Exception as error:  # h5py, shape and structure errors all mean the same to a user
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"cannot load weights {path} into {model.name}: {first}") from error


def _transfer(source, target):
    """Copies `source`'s weights into `target` (the same architecture) where they fit.

    Weights pair up by position (both models come from one builder). A weight of the same
    shape is copied exactly; one that differs only where it reads the image's channels is
    adapted (`adapt_channels`); the rest keep their fresh initial values.

    Returns:
        (adapted weight paths, re-initialised weight paths).
    """
    pairs = list(zip(source.weights, target.weights, strict=True))
    old, new = source.input_shape[-1], target.input_shape[-1]
    adapted, remade = [], []
    for src, dst in pairs:
        value = src.numpy()
        if tuple(value.shape) == tuple(dst.shape):
            dst.assign(value)
            continue
        fitted = adapt_channels(value, tuple(dst.shape), old, new) if old != new else None
        if fitted is None:
            remade.append(dst.path)
        else:
            dst.assign(fitted)
            adapted.append(dst.path)
    return adapted, remade


def adapt_channels(value, shape, old, new):
    """A trained weight adapted from `old` to `new` image channels, or None where it cannot be.

    Inputs are channels-last, so wherever a weight reads the image's channels they are the
    innermost factor of its input axis (axis -2 of a kernel): `n` positions × `old` channels
    (a stem convolution, n = 1; a row RNN, n = width; ReNet patches, n = patch area), or other
    features followed by the image (a head that sees the raw frame beside the decoder's
    features). A layer that predicts frames has them on its output axis instead, `n`
    positions × `old` channels too (n = 1 for a per-pixel head, the patch area for a
    forecaster that predicts p×p patches).
    New input channels share the trained weights divided by their number, so a grey image in
    every channel gives the features it gave before (timm's `adapt_input_conv`); one channel
    sums them. New output channels repeat the trained ones; one output channel averages them.

    Args:
        value: the trained weight (numpy).
        shape: the shape it must take.
        old: the trained number of channels.
        new: the new number of channels.

    Returns:
        The adapted numpy array, or None.
    """
    out = np.asarray(value)
    if out.ndim != len(shape):
        return None
    for axis in [i for i in range(out.ndim) if out.shape[i] != shape[i]]:
        size, wanted = out.shape[axis], shape[axis]
        if axis == out.ndim - 1 and size % old == 0 and wanted == size // old * new:
            out = _channels(out, axis, old, new, rescale=False)
        elif axis == out.ndim - 2 and size % old == 0 and wanted == size // old * new:
            out = _channels(out, axis, old, new, rescale=True)
        elif axis == out.ndim - 2 and size >= old and wanted - size == new - old:
            head, image = np.split(out, [size - old], axis=axis)
            out = np.concatenate([head, _channels(image, axis, old, new, rescale=True)], axis)
        else:
            return None
    return out


def _channels(value, axis, old, new, rescale):
    """Maps the innermost `old`-sized factor of `axis` to `new` channels."""
    shape = value.shape
    grouped = value.reshape(*shape[:axis], shape[axis] // old, old, *shape[axis + 1 :])
    channel = axis + 1
    if new == 1:
        merged = (
            grouped.sum(channel, keepdims=True) if rescale else grouped.mean(channel, keepdims=True)
        )
    else:
        repeats = -(-new // old)
        merged = np.concatenate([grouped] * repeats, axis=channel)
        merged = np.take(merged, range(new), axis=channel)
        if rescale:
            merged = merged * (old / new)
    return merged.reshape(*shape[:axis], shape[axis] // old * new, *shape[axis + 1 :]).astype(
        value.dtype
    )


# --- cards --------------------------------------------------------------------------------------


@functools.cache
def _entry_card(name):
    """The part of an entry's card that follows from its code (built once per process)."""
    entry = registry.get_entry(name)
    model = entry.builder(**entry.args)
    return Card(
        name=entry.name,
        architecture=entry.architecture,
        tag=entry.tag,
        description=entry.description,
        task=tasks.get(entry.task).name,
        dataset=entry.dataset,
        target=entry.target,
        input_shape=list(model.input_shape[1:]),
        output_shape=list(model.output_shape[1:]),
        num_classes=entry.args.get("num_classes"),
        class_names=list(entry.class_names) if entry.class_names else None,
        params=int(model.count_params()),
        builder_args={k: list(v) if isinstance(v, tuple) else v for k, v in entry.args.items()},
    )


def info(name: str) -> Card:
    """The entry's card (`kerasrv.artifacts.Card`): what it takes, returns, and measures.

    The card is read from the shipped card.json on every call, so what training or export
    wrote since is there. It reads as a mapping too: `info("cnn_lstm")["metrics"]`.

    Raises:
        UnknownModelError: unknown name.
        CardError: the shipped card.json is damaged.
    """
    card = copy.deepcopy(_entry_card(get_entry(name).name))
    directory = artifacts.shipped(card.name)
    if directory is not None:
        recorded = artifacts.read_record(directory)
        for key, value in recorded.items():
            setattr(card, key, value)
        card.weights = {"path": str(directory / artifacts.WEIGHTS_FILE), **recorded["weights"]}
    return card


def record(name):
    """What was recorded of an entry's shipped weights (metrics, training, ...), or {}."""
    directory = artifacts.shipped(get_entry(name).name)
    return artifacts.read_record(directory) if directory is not None else {}


def describe(
    model: keras.Model,
    like: str,
    *,
    name: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Card:
    """A card for a model of a zoo architecture that is not the entry itself.

    A re-headed, reshaped or fine-tuned model: shapes, classes and parameters are the model's;
    nothing measured of the entry is carried over (its metrics were not this model's).

    Args:
        model: a `keras.Model` built by one of the zoo's architectures.
        like: the entry (or architecture) it was built from.
        name: the card's name (default: the entry's).
        class_names: names of its classes; default the entry's when the count matches, else
            "class_0", "class_1", ...

    Returns:
        A `Card`.
    """
    base = _entry_card(get_entry(like).name)
    output_shape = list(model.output_shape[1:])
    num_classes = output_shape[-1] if base.num_classes is not None else None
    if class_names is not None:
        class_names = list(class_names)
        if len(class_names) != num_classes:
            raise UsageError(f"{len(class_names)} class names for a model of {num_classes} classes")
    elif num_classes is not None:
        same = base.class_names and len(base.class_names) == num_classes
        class_names = list(base.class_names) if same else [f"class_{i}" for i in range(num_classes)]
    input_shape = list(model.input_shape[1:])
    args = dict(base.builder_args, input_shape=input_shape)
    if num_classes is not None:
        args["num_classes"] = num_classes
    return base.replace(
        name=name or base.name,
        input_shape=input_shape,
        output_shape=output_shape,
        num_classes=num_classes,
        class_names=class_names,
        params=int(model.count_params()),
        builder_args=args,
        metrics={},
        weights=None,
    )


# --- any trained model --------------------------------------------------------------------------


def resolve(target: str | os.PathLike) -> tuple[keras.Model, Card]:
    """(compiled model, card) for a zoo name, a `kerasrv train` run directory or a `.keras` file.

    Raises:
        UnknownModelError: neither a path nor a zoo name.
        WeightsError, CardError: a run directory or file that cannot be loaded.
        ValueError: a `.keras` file of a model that is not one of the zoo's architectures.
    """
    path = Path(str(target))
    if path.suffix == ".keras":
        return _resolve_keras_file(path)
    if path.is_dir():
        return _resolve_run(path)
    if isinstance(target, str) and (path.exists() or "/" in target):
        raise FileNotFoundError(
            f"{target} is neither a zoo name, a run directory (with {artifacts.CARD_FILE}) "
            f"nor a .keras file"
        )
    return load(target), info(target)


def _resolve_run(directory):
    if not (directory / artifacts.CARD_FILE).is_file():
        raise CardError(
            f"{directory} holds no {artifacts.CARD_FILE}: not a trained model's directory "
            f"(`kerasrv train` writes one when a run finishes)"
        )
    weights = artifacts.verified_weights(directory)
    if artifacts.is_complete_card(directory):
        card = artifacts.read_card(directory)
        builder = registry.get_architecture(card.architecture)
        model = builder(**card.builder_args)
        _load_weights(model, weights)
    else:  # a shipped entry's directory, whose card records only what was measured
        recorded = artifacts.read_record(directory)
        entry = get_entry(recorded.get("name") or directory.name)
        card = copy.deepcopy(_entry_card(entry.name))
        for key, value in recorded.items():
            setattr(card, key, value)
        model = build(entry.name)
        _load_weights(model, weights)
    card.weights = {"path": str(weights), **card.weights}
    return tasks.get(card.task).compile(model), card


def _resolve_keras_file(path):
    if not path.is_file():
        raise FileNotFoundError(f"no such .keras file: {path}")
    try:  # its own compile settings (an unbuilt optimizer, say) give way to the task's
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"cannot load {path}: {first}") from error
    if model.name not in list_architectures():
        raise UsageError(
            f"{path} holds a model named {model.name!r}, which is not one of kerasrv's "
            f"architectures ({', '.join(list_architectures())}): kerasrv reads its task from "
            f"the architecture"
        )
    card = describe(model, model.name, name=path.stem)
    return tasks.get(card.task).compile(model), card
