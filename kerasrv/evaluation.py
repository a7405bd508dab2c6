"""Measures a model with its task's metrics (`kerasrv.tasks`), and draws what it predicts.

    classification, video_classification   accuracy (and a confusion matrix)
    segmentation, video_segmentation       mean IoU over the classes that occur, background
                                           included, and pixel accuracy (and masks beside the
                                           ground truth)
    next_frame                             binary cross-entropy, MSE and SSIM, each beside the
                                           copy-the-last-frame baseline (and predicted frames
                                           beside the true ones)
    video_prediction                       OpenSTL's MSE, MAE (summed over a frame's pixels),
                                           SSIM and PSNR, each beside the copy-the-last-frame
                                           baseline (and the rollouts beside the true frames)

Example:
    >>> from kerasrv import evaluation, zoo
    >>> evaluation.evaluate(zoo.load("cnn_lstm"), zoo.info("cnn_lstm"), out_dir="eval")["metrics"]
    {'accuracy': 0.93...}
"""

from pathlib import Path

import numpy as np

from kerasrv import data, tasks
from kerasrv.errors import UsageError


def measure(model, card, batches, *, split="", out_dir=None):
    """Measures `model` on batches of (inputs, targets) with the metrics of the card's task.

    Args:
        model: a `keras.Model` for the card's task.
        card: the model's card (`kerasrv.zoo.info(name)`, or the card of a run).
        batches: an iterable of (inputs, targets) batches, tensors or numpy arrays.
        split: what the batches are, for the result and the pictures' titles.
        out_dir: where to write pictures; None writes none.

    Returns:
        A dict: `metrics` (name → value), `split`, `examples`, and the task's details
        (`confusion_matrix`, `per_class_iou`), plus `pictures` (paths) when `out_dir` is given.
    """
    task = tasks.get(card["task"])
    accumulator = task.measure(card["num_classes"])
    examples = 0
    shown = []
    for x, y in batches:
        p = np.asarray(model.predict_on_batch(x))
        x, y = np.asarray(x), np.asarray(y)
        accumulator.update(y, p, x)
        examples += len(x)
        if len(shown) < 8:
            shown.extend(zip(x, y, p))
    if not examples:
        raise UsageError(f"nothing to measure: {split or 'the data'} holds no examples")
    measured = accumulator.result()
    result = {"metrics": measured.pop("metrics"), "split": split, "examples": examples, **measured}
    if out_dir is not None:
        result["pictures"] = [str(p) for p in task.draw(card, result, shown[:8], Path(out_dir))]
    return result


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
    """Measures `model` on a split of its card's dataset (see `measure`).

    Args:
        model: a `keras.Model` for the card's task.
        card: the model's card, or one with another input_shape.
        split: the tfds split; slices work ("test[:500]").
        batch_size: examples per forward pass.
        out_dir: where to write pictures (confusion matrix, predictions beside the truth);
            None writes none.
        data_dir: TFDS data directory.
        frames: measure on the first `frames` frames of each clip (see `data.pipeline`).
        dataset: another dataset than the card's.

    Returns:
        What `measure` returns.
    """
    batches = data.pipeline(
        card, split, batch_size, shuffle=False, data_dir=data_dir, frames=frames, dataset=dataset
    )
    return measure(model, card, batches, split=split, out_dir=out_dir)
