"""Measures a model on a test split with its task's metrics, and draws what it predicts.

    classification, video_classification   accuracy (and a confusion matrix)
    segmentation, video_segmentation       mean IoU over all classes, background included, and
                                           pixel accuracy (and masks beside the ground truth)
    next_frame                             binary cross-entropy, MSE and SSIM, each beside the
                                           copy-the-last-frame baseline (and predicted frames
                                           beside the true ones)

Example:
    >>> from kerasrv import evaluation, zoo
    >>> evaluation.evaluate(zoo.load("cnn_lstm"), zoo.info("cnn_lstm"), out_dir="eval")["metrics"]
    {'accuracy': 0.93...}
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasrv import data

EPSILON = 1e-7  # Keras' clipping of probabilities in binary cross-entropy


class _Classification:
    def __init__(self, num_classes):
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, y, p, x):
        del x
        k = len(self.confusion)
        self.confusion += np.bincount(
            y.ravel() * k + p.argmax(-1).ravel(), minlength=k * k
        ).reshape(k, k)

    def metrics(self):
        return {"accuracy": float(np.trace(self.confusion) / self.confusion.sum())}


class _Segmentation(_Classification):
    def metrics(self):
        c = self.confusion
        union = c.sum(0) + c.sum(1) - np.diag(c)
        iou = np.diag(c) / np.maximum(union, 1)
        return {
            "mean_iou": float(iou[union > 0].mean()),
            "pixel_accuracy": float(np.trace(c) / c.sum()),
        }

    def details(self):
        c = self.confusion
        union = c.sum(0) + c.sum(1) - np.diag(c)
        return {"per_class_iou": [round(float(v), 4) for v in np.diag(c) / np.maximum(union, 1)]}


def _bce(target, prediction):
    p = np.clip(prediction, EPSILON, 1 - EPSILON)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def _ssim(a, b):
    return tf.image.ssim(tf.constant(a), tf.constant(b), max_val=1.0).numpy()


class _NextFrame:
    """Sums of per-frame errors for the model and for copying the last input frame."""

    def __init__(self):
        self.sums = {}
        self.frames = 0

    def _add(self, key, values):
        self.sums[key] = self.sums.get(key, 0.0) + float(np.sum(values))

    def update(self, y, p, x):
        copy = x  # the frame before each target is the input at the same position
        frame_axes = tuple(range(2, y.ndim))
        for prefix, guess in (("", p), ("copy_last_", copy)):
            self._add(prefix + "mse", ((y - guess) ** 2).mean(axis=frame_axes))
            self._add(prefix + "bce", _bce(y, guess).mean(axis=frame_axes))
            self._add(prefix + "ssim", _ssim(y, guess))
        self.frames += y.shape[0] * y.shape[1]

    def metrics(self):
        m = {k: v / self.frames for k, v in self.sums.items()}
        m["mse_vs_copy_last"] = m["mse"] / m["copy_last_mse"]
        return m


def _accumulator(card):
    task = card["task"]
    if task in ("classification", "video_classification"):
        return _Classification(card["num_classes"])
    if task in ("segmentation", "video_segmentation"):
        return _Segmentation(card["num_classes"])
    return _NextFrame()


def evaluate(
    model,
    card,
    split="test",
    *,
    batch_size=64,
    out_dir=None,
    data_dir=None,
    frames=None,
    dataset=None,
):
    """Measures `model` on a split of its card's dataset.

    Args:
        model: a `keras.Model` for the card's task.
        card: the entry's card (`kerasrv.zoo.info(name)`), or one with another input_shape.
        split: the tfds split; slices work ("test[:500]").
        batch_size: examples per forward pass.
        out_dir: where to write pictures (confusion matrix, predictions beside the truth);
            None writes none.
        data_dir: TFDS data directory.
        frames: measure on the first `frames` frames of each clip (see `data.pipeline`).
        dataset: another dataset than the card's.

    Returns:
        A dict: `metrics` (name → value), `split`, `examples`, and task-specific details
        (`per_class_iou`, `confusion_matrix`), plus `pictures` (paths) when `out_dir` is given.
    """
    ds = data.pipeline(
        card, split, batch_size, shuffle=False, data_dir=data_dir, frames=frames, dataset=dataset
    )
    accumulator = _accumulator(card)
    examples = 0
    shown = []
    for x, y in ds:
        p = model.predict_on_batch(x)
        x, y = x.numpy(), y.numpy()
        accumulator.update(y, p, x)
        examples += len(x)
        if len(shown) < 8:
            shown.extend(zip(x, y, p))
    result = {"metrics": accumulator.metrics(), "split": split, "examples": examples}
    if hasattr(accumulator, "details"):
        result.update(accumulator.details())
    if isinstance(accumulator, _Classification) and not isinstance(accumulator, _Segmentation):
        result["confusion_matrix"] = accumulator.confusion.tolist()
    if out_dir is not None:
        from kerasrv import pictures

        result["pictures"] = [
            str(p) for p in pictures.draw_evaluation(card, result, shown[:8], Path(out_dir))
        ]
    return result
