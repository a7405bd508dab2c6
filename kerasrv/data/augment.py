"""Augmentation of image batches: random horizontal flips and shifts (masks move with images)."""

import tensorflow as tf

AUGMENT_SHIFT = 2  # pixels


def flip_and_shift(x, y):
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
