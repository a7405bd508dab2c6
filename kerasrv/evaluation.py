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

import math
from pathlib import Path

import numpy as np

from kerasrv import artifacts, data, registry, tasks
from kerasrv.errors import UnknownModelError, UsageError


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
        (`confusion_matrix`, `per_class_iou`, `per_frame_iou`), plus `pictures` (paths) when
        `out_dir` is given, and for a model of clips that answers every frame, `frame_alone`:
        the same measures of the same weights reading each frame alone (`frame_alone`).
    """
    task = tasks.get(card["task"])
    accumulator = task.measure(card["num_classes"])
    alone = frame_alone(model, card)
    alone_accumulator = task.measure(card["num_classes"]) if alone is not None else None
    examples = 0
    shown = []
    for x, y in batches:
        p = np.asarray(model.predict_on_batch(x))
        x, y = np.asarray(x), np.asarray(y)
        accumulator.update(y, p, x)
        if alone is not None:  # every frame of every clip as a clip of its own
            frames = x.reshape(-1, 1, *x.shape[2:])
            answers = np.asarray(alone.predict_on_batch(frames)).reshape(p.shape)
            alone_accumulator.update(y, answers, x)
        examples += len(x)
        if len(shown) < 8:
            shown.extend(zip(x, y, p))
    if not examples:
        raise UsageError(f"nothing to measure: {split or 'the data'} holds no examples")
    measured = accumulator.result()
    result = {"metrics": measured.pop("metrics"), "split": split, "examples": examples, **measured}
    if alone is not None:
        result["frame_alone"] = alone_accumulator.result()
    if out_dir is not None:
        result["pictures"] = [str(p) for p in task.draw(card, result, shown[:8], Path(out_dir))]
    return result


# How far a re-measurement of the same weights may land from the card's metrics: OpenSTL's frame
# metrics are sums over a frame's 4,096 pixels (MSE ~100, PSNR ~20), where the float32 kernels of
# another CPU move the last digits of a 10-step rollout.
SAME_MEASURE = {"rel_tol": 1e-4, "abs_tol": 2e-3}


def record(directory, card, result, command):
    """Writes `result`, an evaluation of the card's model on its test split, into the card.

    The card's `metrics` were measured when its model was trained and stay as they are; this
    writes the details beside them (`evaluation`: per-class, per-frame, each frame alone...),
    e.g. once the evaluation measures something it did not when the model was trained.

    Args:
        directory: the model's directory (a run's, or a shipped entry's).
        card: the model's card.
        result: what `evaluate` returned for it.
        command: the command that prints the same numbers, kept on the card.

    Raises:
        UsageError: `result` is not of the whole test split, or its metrics are not the card's
            (other weights, data or code): writing it would put two measures on one card.
    """
    if result["split"] != "test":
        raise UsageError(f"only an evaluation of the test split is recorded, got {result['split']}")
    measured = card.metrics or {}
    moved = {
        key: (value, measured.get(key))
        for key, value in result["metrics"].items()
        if measured.get(key) is None or not math.isclose(value, measured[key], **SAME_MEASURE)
    }
    if moved:
        shown = ", ".join(f"{k} {v:.6g} (card: {c})" for k, (v, c) in moved.items())
        raise UsageError(
            f"{card.name}: this evaluation's metrics are not the card's, nothing recorded: {shown}"
        )
    kept = {k: v for k, v in result.items() if k not in ("metrics", "pictures")}
    return artifacts.update_record(directory, "evaluation", {**kept, "command": command})


def frame_alone(model, card):
    """`model`'s weights in a model of one-frame clips, or None where that is not measured.

    A recurrent video segmenter's per-frame IoU mixes two things: what its memory of the
    earlier frames adds, and how hard each frame is (in the default Moving Fashion-MNIST,
    where all items move one way, later frames hold more overlaps). The same weights reading
    each frame alone start every frame from an empty state, so the gap between the two, frame
    by frame, is what the recurrence adds. None for tasks without an answer per frame, for
    one-frame inputs, and for a model whose card names no architecture to rebuild.
    """
    shape = list(card["input_shape"])
    if not tasks.get(card["task"]).per_frame_outputs or shape[0] in (1, None):
        return None
    try:
        builder = registry.get_architecture(card["architecture"])
    except UnknownModelError:  # a .keras file of an architecture the zoo does not have
        return None
    alone = builder(**{**card["builder_args"], "input_shape": [1, *shape[1:]]})
    alone.set_weights(model.get_weights())
    return alone


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
