"""tf.data pipelines of (inputs, targets) batches that match a zoo entry's card."""

import contextlib
import sys

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasrv.data import builders
from kerasrv.data.idx import DatasetError

# What each task reads from a dataset when the entry does not say.
DEFAULT_TARGETS = {
    "classification": "label",
    "segmentation": "mask",
    "video_classification": "label",
    "video_segmentation": "masks",
    "next_frame": "frames",
}
VIDEO_TASKS = ("video_classification", "video_segmentation", "next_frame")
SHUFFLE_BUFFER = 20_000  # whole datasets up to this size shuffle perfectly
AUGMENT_SHIFT = 2  # pixels


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
    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise DatasetError(f"unknown dataset {dataset!r}: {error}") from None
    if builder.name in builders.NAMES:
        # Reads local files only, and is a no-op once prepared. tfds reports on stdout (and
        # calls it "downloading"); a command's stdout is its result, so the report goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            builder.download_and_prepare()
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


def _spec_of(source, dataset, target, input_shape):
    """(task, dataset, target, input shape, number of classes) for an entry, a card or a task."""
    if isinstance(source, dict):
        card = source
    elif source in DEFAULT_TARGETS:
        if dataset is None:
            raise ValueError(f"pipeline({source!r}) needs dataset=... for a bare task")
        card = {"task": source, "dataset": dataset, "target": DEFAULT_TARGETS[source]}
    else:
        from kerasrv import zoo  # a name: the zoo tells what the entry reads

        card = zoo.info(source)
    return (
        card["task"],
        dataset or card["dataset"],
        target or card.get("target") or DEFAULT_TARGETS[card["task"]],
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


def _flip_and_shift(x, y):
    """Random horizontal flips and shifts of up to AUGMENT_SHIFT pixels (zeros fill in).

    Works on a whole batch, each example drawing its own flip and shift, and moves the masks of
    segmentation examples with their images. A per-example `map` did the same at 10,000
    examples/s on 2 cores, 4× the row GRU's training rate and competing with it for the cores;
    a few batched ops per step cost a fraction of that.
    """
    segmentation = y.shape.rank >= 3
    stacked = tf.concat([x, tf.cast(y[..., None], x.dtype)], -1) if segmentation else x
    batch, height, width = tf.shape(stacked)[0], stacked.shape[1], stacked.shape[2]
    flip = tf.random.uniform([batch]) < 0.5
    stacked = tf.where(flip[:, None, None, None], tf.reverse(stacked, [2]), stacked)
    shift = AUGMENT_SHIFT
    padded = tf.pad(stacked, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
    rows = tf.random.uniform([batch, 1], 0, 2 * shift + 1, tf.int32) + tf.range(height)
    cols = tf.random.uniform([batch, 1], 0, 2 * shift + 1, tf.int32) + tf.range(width)
    stacked = tf.gather(padded, rows, axis=1, batch_dims=1)
    stacked = tf.gather(stacked, cols, axis=2, batch_dims=1)
    if segmentation:
        return stacked[..., :-1], tf.cast(stacked[..., -1], y.dtype)
    return stacked, y


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
    """Batches of (inputs, targets) for a zoo entry, its card, or a task.

    Inputs are float32 in [0, 1] of the card's input shape. Targets: class ids (or one-hot)
    for classification, per-pixel class ids for segmentation, and for next-frame prediction
    frames[1:] for inputs frames[:-1], as float32 in [0, 1]. Decoded uint8 examples are held
    in memory, shuffled (train splits), batched, normalised per batch and prefetched.

    Args:
        source: a zoo entry name ("cnn_lstm"), a card (`kerasrv.zoo.info(...)`), or a task
            name ("classification", ...) together with `dataset`.
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
        augment: random horizontal flips and shifts of up to `AUGMENT_SHIFT` pixels, for
            training image classifiers and segmenters (a mask moves with its image). Videos are
            never augmented: a flip would change their motion labels.
        data_dir: TFDS data directory.

    Returns:
        A `tf.data.Dataset` of (inputs, targets).

    Raises:
        DatasetError: the dataset is unknown or not prepared, or its examples do not fit the
            entry's input shape.

    Example:
        >>> ds = pipeline("cnn_lstm", "test", batch_size=64)
        >>> images, labels = next(iter(ds))
        >>> images.shape, labels.shape
        (TensorShape([64, 28, 28, 1]), TensorShape([64]))
    """
    task, dataset, target, shape, num_classes = _spec_of(source, dataset, target, input_shape)
    ds, info = load_split(dataset, split, data_dir)
    features = info.features
    input_key = "frames" if task in VIDEO_TASKS else "image"
    if input_key not in features and info.supervised_keys:
        input_key, default_target = info.supervised_keys[:2]
        target = target if target in features else default_target
    for key in (input_key, target):
        if key not in features:
            raise DatasetError(
                f"dataset {dataset!r} has no feature {key!r} for a {task} entry; it has "
                f"{', '.join(features.keys())}"
            )
    stored = tuple(features[input_key].shape)
    if frames is not None:
        if task not in ("video_classification", "video_segmentation"):
            raise ValueError(f"frames= applies to video entries, not to a {task} entry")
        stored = (min(frames, stored[0]), *stored[1:])
        if shape is not None:
            shape = (stored[0], *shape[1:])
    if task == "next_frame":
        stored = (stored[0] - 1, *stored[1:])
    convert = shape is not None and stored != shape
    if convert and task != "classification":
        raise DatasetError(
            f"{dataset} gives {input_key} of shape {stored}, but the entry expects {shape}; "
            f"pick the dataset config that matches, or input_shape= when loading the model"
        )

    def select(example):
        x, y = example[input_key], example[target]
        if frames is not None:
            x = x[:frames]
            y = y[:frames] if task == "video_segmentation" else y
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
    if augment and task not in ("classification", "segmentation"):
        raise ValueError(f"augment= applies to image tasks, not to a {task} entry")
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment:
        ds = ds.map(_flip_and_shift, num_parallel_calls=tf.data.AUTOTUNE)

    def normalise(x, y):
        x = tf.cast(x, tf.float32) / 255.0
        if task == "next_frame":
            return x[:, :-1], x[:, 1:]
        if one_hot and task in ("classification", "video_classification"):
            return x, tf.one_hot(y, num_classes or features[target].num_classes)
        return x, tf.cast(y, tf.int32)

    return ds.map(normalise, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
