"""Augmentation of image batches: random horizontal flips and shifts (masks move with images),
and random erasing for classifiers.

An entry's recipe (or `kerasrv train --augment`) names its augmentation, one of AUGMENTATIONS:
"shift", "flip" (flips and shifts), "erasing" (flips, shifts and random erasing) or "none";
`augmentation(augment)` is the batch function of each.
"""

import math

import tensorflow as tf

from kerasrv.errors import UsageError

AUGMENT_SHIFT = 2  # pixels
# Random erasing as Zhong et al. (2020) run it on Fashion-MNIST: half the images get one
# rectangle of 2–40% of their area, aspect ratio 0.3–3.3, filled with uniform noise.
ERASE_PROBABILITY = 0.5
ERASE_AREA = (0.02, 0.4)
ERASE_ASPECT = (0.3, 1 / 0.3)


def flip_and_shift(x, y, flips=True):
    """Random horizontal flips and shifts of up to AUGMENT_SHIFT pixels (zeros fill in).

    Works on a whole batch, each example drawing its own flip and shift, and moves the masks of
    segmentation examples with their images. A per-example `map` did the same at 10,000
    examples/s on 2 cores, 4× the row GRU's training rate and competing with it for the cores;
    a few batched ops per step cost a fraction of that.
    """
    segmentation = y.shape.rank >= 3
    stacked = tf.concat([x, tf.cast(y[..., None], x.dtype)], -1) if segmentation else x
    batch, height, width = tf.shape(stacked)[0], stacked.shape[1], stacked.shape[2]
    if flips:
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


def random_erasing(x, y):
    """Random erasing (Zhong et al. 2020, "Random Erasing Data Augmentation") of a batch.

    Each image is erased with probability ERASE_PROBABILITY: a rectangle of a random area in
    ERASE_AREA (a fraction of the image) and aspect ratio in ERASE_ASPECT, at a random place
    where it fits, is filled with uniform noise of the image's value range. Labels are kept, so
    this is for classification only (a mask would no longer describe its erased image).
    """
    if y.shape.rank >= 3:
        raise UsageError("random erasing is for classifiers: a mask cannot follow an erased image")
    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    area = tf.random.uniform([batch], *ERASE_AREA) * height * width
    aspect = tf.exp(tf.random.uniform([batch], *(math.log(a) for a in ERASE_ASPECT)))
    rows = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1.0, height)
    cols = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1.0, width)
    top = tf.floor(tf.random.uniform([batch]) * (height - rows + 1))
    left = tf.floor(tf.random.uniform([batch]) * (width - cols + 1))

    def inside(start, size, length):  # (batch, length): which positions the rectangle covers
        position = tf.range(length, dtype=tf.float32)[None]
        return (position >= start[:, None]) & (position < (start + size)[:, None])

    erased = inside(top, rows, height)[:, :, None] & inside(left, cols, width)[:, None, :]
    erased &= (tf.random.uniform([batch]) < ERASE_PROBABILITY)[:, None, None]
    if x.dtype.is_integer:  # uint8 images before normalisation
        noise = tf.cast(tf.random.uniform(tf.shape(x), 0, 256, tf.int32), x.dtype)
    else:
        noise = tf.random.uniform(tf.shape(x), dtype=x.dtype)
    return tf.where(erased[..., None], noise, x), y


def _flip_shift_and_erase(x, y):
    return random_erasing(*flip_and_shift(x, y))


# The names `--augment` and a recipe's `augment` take. True (a recipe's older spelling) is
# "flip"; False and None are "none".
AUGMENTATIONS = ("none", "shift", "flip", "erasing")


def augmentation_name(augment):
    """A recipe's or the command line's `augment` as one of AUGMENTATIONS."""
    if augment in (None, False, "none"):
        return "none"
    if augment is True:
        return "flip"
    if augment in AUGMENTATIONS:
        return augment
    raise UsageError(
        f"augment is one of {', '.join(AUGMENTATIONS)} (shift: random shifts of up to "
        f"{AUGMENT_SHIFT} pixels; flip: horizontal flips too; erasing: random erasing too), got "
        f"{augment!r}"
    )


def shift(x, y):
    """Random shifts of up to AUGMENT_SHIFT pixels, no flips: for data a mirror changes
    (digits, text, arrows)."""
    return flip_and_shift(x, y, flips=False)


def augmentation(augment):
    """The batch function of an `augment` setting (see AUGMENTATIONS), or None for "none"."""
    name = augmentation_name(augment)
    return {
        "none": None,
        "shift": shift,
        "flip": flip_and_shift,
        "erasing": _flip_shift_and_erase,
    }[name]
