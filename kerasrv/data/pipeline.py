"""tf.data pipelines of (inputs, targets) batches that match a zoo entry's card."""

import contextlib
import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasrv import tasks
from kerasrv.data import builders, files
from kerasrv.data.augment import augmentation
from kerasrv.data.idx import DatasetError, fingerprint
from kerasrv.errors import UsageError

SHUFFLE_BUFFER = 20_000  # whole datasets up to this size shuffle perfectly


def load_split(dataset, split, data_dir=None):
    """A tfds split as a dataset of feature dicts, never downloading.

    kerasrv's own builders are prepared on first use from the local Fashion-MNIST files. Any
    other TFDS name must already be prepared in `data_dir` (or TFDS' default): this fails at once
    otherwise, where `tfds.load` would spend minutes retrying a network it cannot reach.

    Args:
        dataset: a tfds name with optional config ("moving_fashion_mnist/small", "mnist").
        split: a tfds split, slices included ("train[:90%]", "test").
        data_dir: TFDS data directory; default $TFDS_DATA_DIR or ~/tensorflow_datasets.

    Returns:
        (tf.data.Dataset of feature dicts, the builder's `tfds.core.DatasetInfo`).

    Raises:
        DatasetError: unknown dataset, or a standard one that is not prepared locally.
    """
    # $TFDS_DATA_DIR read now, not when tfds was imported (as tfds' own default is)
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DatasetError(
            f"unknown dataset {dataset!r}: kerasrv's own are {', '.join(builders.NAMES)} (with "
            f"their configs, e.g. moving_fashion_mnist/small); any other TFDS name must be "
            f"prepared locally"
        ) from None
    except ValueError:  # a known dataset with an unknown config, e.g. "…/nosuch"
        name, _, config = dataset.partition("/")
        configs = [c.name for c in tfds.builder_cls(name).BUILDER_CONFIGS]
        raise DatasetError(
            f"dataset {name!r} has no config {config!r}; its configs are {', '.join(configs)}"
        ) from None
    if builder.name in builders.NAMES:
        made_before_it_existed = not builder.is_prepared()
        _prepare_from_source(builder)
        if made_before_it_existed:  # it holds no splits, and another process may have built it
            builder = tfds.builder(dataset, data_dir=data_dir)
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError as error:  # tfds' way of saying the data is not there
        raise DatasetError(
            f"dataset {dataset!r} is not prepared in {builder.data_dir}, and kerasrv never "
            f"downloads: prepare it where a network is reachable (`tfds build {dataset}`) and "
            f"copy it there, or use one of kerasrv's builders ({', '.join(builders.NAMES)}). "
            f"({error})"
        ) from None
    return ds, builder.info


SOURCE_FILE = "kerasrv_source.json"


def _prepare_from_source(builder):
    """Prepares one of kerasrv's builders from the Fashion-MNIST files as they are now.

    A dataset prepared earlier from other files (another $KERASRV_FASHION_MNIST_DIR, files that
    changed) is built again; with no files at all, this fails rather than read the old build.
    Building reads local files only, and is a no-op once prepared.
    """
    source = fingerprint()
    marker = Path(builder.data_dir) / SOURCE_FILE
    with _preparing(builder):
        if builder.is_prepared():
            try:
                built_from = json.loads(marker.read_text())["fashion_mnist_sha256"]
            except (OSError, ValueError, KeyError):
                built_from = None
            if built_from == source:
                return
            shutil.rmtree(builder.data_dir, ignore_errors=True)
        # tfds reports on stdout (and calls it "downloading"); a command's stdout is its result,
        # so the report goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            builder.download_and_prepare()
        marker.write_text(json.dumps({"fashion_mnist_sha256": source}) + "\n")


@contextlib.contextmanager
def _preparing(builder):
    """Holds an exclusive lock on one dataset version while it is checked and built.

    Two commands started at once on a fresh data directory would otherwise both build it, and
    the second one's rename into place fails (or removes the first one's build while it is
    read). The second waits here and then finds the dataset prepared. The lock is a file beside
    the version's folder, released by the kernel if the holder dies.
    """
    version_dir = Path(builder.data_dir)
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(version_dir.parent / f".{version_dir.name}.prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _spec_of(source, dataset, target, input_shape):
    """(task, dataset, target, input shape, number of classes) for a card or a task."""
    if isinstance(source, (str, tasks.Task)):
        if dataset is None:
            raise UsageError(f"pipeline({source!r}) needs dataset=... for a bare task")
        card = {"task": tasks.get(source).name, "dataset": dataset}
    else:
        card = source  # a card (or a mapping with the card's keys)
    task = tasks.get(card["task"])
    return (
        task,
        dataset or card["dataset"],
        target or card.get("target") or task.default_target,
        tuple(input_shape or card.get("input_shape") or ()) or None,
        card.get("num_classes"),
    )


def _fit_image(image, shape):
    """Converts an external dataset's uint8 image to the entry's (H, W, C)."""
    height, width, channels = shape
    if image.shape[-1] == 3 and channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    elif image.shape[-1] == 1 and channels == 3:
        image = tf.image.grayscale_to_rgb(image)
    if tuple(image.shape[:2]) != (height, width):
        image = tf.image.resize(image, (height, width), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return image


def in_memory(ds):
    """Reads a finite dataset into memory once; every later pass reads from there.

    Not `Dataset.cache()`: when a first pass over a cached tfds dataset stops early (a batch
    peeked at before `fit`), tf.data 2.21 drops what it cached, and the next full pass then
    missed examples (17 times in 30 runs here: 12 of 20 examples came out).
    """
    parts = list(zip(*tfds.as_numpy(ds.batch(4096))))
    return tf.data.Dataset.from_tensor_slices(tuple(np.concatenate(p) for p in parts))


def pipeline(
    source,
    split="train",
    batch_size=32,
    *,
    dataset=None,
    target=None,
    input_shape=None,
    shuffle=None,
    cache=True,
    repeat=False,
    one_hot=False,
    drop_remainder=False,
    seed=0,
    frames=None,
    augment=False,
    data_dir=None,
):
    """Batches of (inputs, targets) for a model's card, or for a task.

    A card of a model trained on a user's folder (its `data`) reads that folder
    (`kerasrv.data.files`); every other card reads its tfds dataset.

    Inputs are float32 in [0, 1] of the card's input shape. Targets: class ids (or one-hot)
    for classification, per-pixel class ids for segmentation, and for next-frame prediction
    frames[1:] for inputs frames[:-1], as float32 in [0, 1]. Decoded uint8 examples are held
    in memory, shuffled (train splits), batched, normalised per batch and prefetched.

    Args:
        source: a card (`kerasrv.zoo.info("cnn_lstm")`, or any mapping with its keys: task,
            dataset, target, input_shape, num_classes), or a task name ("classification",
            ...) together with `dataset`.
        split: a tfds split; slices work ("train[:90%]").
        batch_size: examples per batch.
        dataset: another tfds dataset than the entry's; any image-classification dataset
            ("mnist", "cifar10", ...) is converted to the entry's input shape (resize,
            grayscale), provided it is prepared locally.
        target: another feature to predict than the entry's (e.g. "label" for "motion").
        input_shape: another input shape than the card's.
        shuffle: shuffle the examples; default True for train splits.
        cache: read the decoded examples into memory when the pipeline is made (every epoch
            after that reads from memory); False streams from disk, for datasets too large.
        repeat: repeat forever (for `steps_per_epoch`-driven training).
        one_hot: one-hot classification targets instead of class ids.
        drop_remainder: drop the last, smaller batch.
        seed: shuffling seed.
        frames: keep only the first `frames` frames of each clip (video classification and
            segmentation), e.g. 1 for a single-frame baseline.
        augment: one of `kerasrv.data.augment.AUGMENTATIONS` ("shift", "flip": random
            horizontal flips and shifts of up to `AUGMENT_SHIFT` pixels, for training image
            classifiers and segmenters, a mask moving with its image; "erasing": random
            erasing too, for classifiers), or True ("flip"), False or "none". Videos are never
            augmented: a flip would change their motion labels.
        data_dir: TFDS data directory.

    Returns:
        A `tf.data.Dataset` of (inputs, targets).

    Raises:
        DatasetError: the dataset is unknown or not prepared, or its examples do not fit the
            entry's input shape.

    Example:
        >>> ds = pipeline(kerasrv.zoo.info("cnn_lstm"), "test", batch_size=64)
        >>> images, labels = next(iter(ds))
        >>> images.shape, labels.shape
        (TensorShape([64, 28, 28, 1]), TensorShape([64]))
    """
    folder = None if isinstance(source, (str, tasks.Task)) else source.get("data")
    task, dataset, target, shape, num_classes = _spec_of(source, dataset, target, input_shape)
    if folder and dataset == source.get("dataset"):  # trained on a user's folder: read it
        found = files.scan(
            folder["path"],
            task,
            seed=folder["seed"],
            class_names=source["class_names"],
            check=False,
            hold_out_test=folder.get("test_held_out", False),
        )
        return files.dataset(
            found,
            {"task": task.name, "input_shape": shape, "output_shape": source.get("output_shape")},
            split,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            augment=augment,
        )
    ds, info = load_split(dataset, split, data_dir)
    features = info.features
    input_key = task.input_name
    if input_key not in features and info.supervised_keys:
        input_key, default_target = info.supervised_keys[:2]
        target = target if target in features else default_target
    for key in (input_key, target):
        if key not in features:
            raise DatasetError(
                f"dataset {dataset!r} has no feature {key!r} for a {task.name} model; it has "
                f"{', '.join(features.keys())}"
            )
    stored = tuple(features[input_key].shape)
    if frames is not None:
        if not task.truncates_frames:
            raise UsageError(f"frames= applies to video entries, not to a {task.name} entry")
        stored = (min(frames, stored[0]), *stored[1:])
        if shape is not None:
            shape = (stored[0], *shape[1:])
    stored = task.input_shape_of(stored)
    convert = shape is not None and stored != shape
    if convert and (task.video or task.per_pixel):
        raise DatasetError(
            f"{dataset} gives {input_key} of shape {stored}, but the model expects {shape}; "
            f"pick the dataset config that matches, or input_shape= when loading the model"
        )

    def select(example):
        x, y = example[input_key], example[target]
        if frames is not None:
            x = x[:frames]
            y = y[:frames] if task.per_pixel else y  # a mask per frame
        if convert:
            x = _fit_image(x, shape)
        return x, y

    ds = ds.map(select, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = in_memory(ds)
    if shuffle if shuffle is not None else split.startswith("train"):
        count = int(ds.cardinality())
        buffer = count if 0 < count <= SHUFFLE_BUFFER else SHUFFLE_BUFFER
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    augment = augmentation(augment)
    if augment is not None and task.video:
        raise UsageError(f"augment= applies to image tasks, not to a {task.name} entry")
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    classes = num_classes or getattr(features[target], "num_classes", None)

    def normalise(x, y):
        return task.batch(x, y, num_classes=classes, one_hot=one_hot)

    return ds.map(normalise, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class _FreshClips:
    """A generator of `count` new clips per pass, drawn by the builder's own recipe.

    Pass e draws clip i from `np.random.default_rng([seed, FRESH_STREAM, e, i])`: every epoch
    new clips, the same ones for the same seed and epoch. The stream id keeps them apart from
    the stored splits' (`synthesis.example_rng`). A run resumed mid-way starts again at pass 0.
    """

    def __init__(self, builder, keys, count, seed):
        from kerasrv.data.idx import load_fashion_mnist

        self.builder, self.keys, self.count, self.seed = builder, keys, count, seed
        self.images, self.labels = load_fashion_mnist("train")
        self.passes = 0

    def __call__(self):
        epoch, self.passes = self.passes, self.passes + 1
        for index in range(self.count):
            rng = np.random.default_rng([self.seed, FRESH_STREAM, epoch, index])
            example = self.builder.example(rng, self.images, self.labels)
            yield tuple(example[key] for key in self.keys)


FRESH_STREAM = 7  # apart from the stored splits' stream ids (synthesis.example_rng)


def fresh_clips(source, count, batch_size, *, seed=0, data_dir=None):
    """Training batches of clips made afresh every epoch, as OpenSTL's Moving MNIST loader does.

    The card's dataset must be one of kerasrv's video builders; its config (canvas, frames,
    items, recipe) draws `count` new clips from Fashion-MNIST's train images on every pass over
    the dataset, where a stored split repeats the same clips each epoch. Test clips come from
    the test images, so none of these is a test clip.

    Args:
        source: a card of a video model (`task`, `dataset`, `input_shape`).
        count: clips per epoch.
        batch_size: clips per batch.
        seed: the clips' seed (with the epoch).
        data_dir: TFDS data directory (only the builder's config is read).

    Returns:
        A `tf.data.Dataset` of (inputs, targets) of known cardinality.
    """
    task, dataset, target, _, num_classes = _spec_of(source, None, None, None)
    builder = tfds.builder(dataset, data_dir=data_dir or os.environ.get("TFDS_DATA_DIR"))
    if not (task.video and builder.name in builders.NAMES):
        raise UsageError(
            f"fresh clips are drawn by kerasrv's video builders, not for {dataset} ({task.name})"
        )
    keys = (task.input_name, target)
    features = builder.info.features
    signature = tuple(tf.TensorSpec(features[key].shape, features[key].np_dtype) for key in keys)
    clips = _FreshClips(builder, keys, count, seed)
    ds = tf.data.Dataset.from_generator(clips, output_signature=signature)
    ds = ds.apply(tf.data.experimental.assert_cardinality(count)).batch(batch_size)

    def normalise(x, y):
        return task.batch(x, y, num_classes=num_classes)

    return ds.map(normalise, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def arrays(
    source, split: str, *, data_dir: str | None = None, dataset: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A split as numpy arrays (inputs, targets), in the dataset's order (no shuffling).

    For what needs real samples in memory: an export's parity check, int8 calibration.

    Args:
        source: a card, as for `pipeline`.
        split: a tfds split, usually a slice ("test[:1000]").
        data_dir: TFDS data directory.
        dataset: another dataset than the card's.

    Returns:
        (inputs, targets) numpy arrays.
    """
    ds = pipeline(source, split, 256, shuffle=False, data_dir=data_dir, dataset=dataset)
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
    return np.concatenate(xs), np.concatenate(ys)


def show(name, split="test", out=None, count=8, data_dir=None):
    """Writes a PNG grid of a dataset's first `count` examples of a split; returns its path.

    Args:
        name: a tfds name ("fashion_mnist_local", "fashion_mnist_scenes",
            "moving_fashion_mnist/small", ...).
        split: which split.
        out: PNG path; default "<name>-<split>.png" in the working directory.
        count: number of examples (at least 1).
        data_dir: TFDS data directory.
    """
    from kerasrv import pictures

    if count < 1:
        raise UsageError(f"count must be a positive integer, got {count!r}")
    ds, info = load_split(name, f"{split}[:{count}]", data_dir)
    examples = list(tfds.as_numpy(ds))
    if not examples:
        raise DatasetError(f"{name} has no examples in split {split!r}")
    out = Path(out or f"{name.replace('/', '-')}-{split}.png")
    return pictures.dataset_grid(examples, info.features, name, split, out)
