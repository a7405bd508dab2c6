"""What each task means, in one place: one object per task (the model of keras-hub's `Task`).

A task owns what every model of that task shares:

- the names of its input and output (SavedModel signatures are keyed by them) and the dataset
  feature it predicts by default;
- how a batch read from a dataset becomes (inputs, targets);
- the compile settings (loss, metrics, learning rate) and the validation metric that picks
  the best epoch;
- the evaluation metrics, computed once here for `kerasrv evaluate`, the cards, the export
  parity report and the demo;
- how far an export's answers may stray from Keras' (its parity measure and threshold);
- a synthetic batch for a quick benchmark, and the pictures of an evaluation.

A new task is one row in the table below (a `Task` subclass in its own module where its rules
are new) plus the architecture that uses it. One module a kind of target:

    base            `Task`, what every task has
    classification  classes per image, clip or pixel: classification, segmentation
    frames          frames: next_frame, video_prediction
    metrics         the metrics, each defined once in numpy

Example:
    >>> from kerasrv import tasks
    >>> task = tasks.get("segmentation")
    >>> task.input_name, task.output_name, task.monitor
    ('image', 'mask', ('val_mean_iou', 'max'))
"""

from kerasrv.errors import UsageError
from kerasrv.tasks.base import Task
from kerasrv.tasks.classification import Classification, Segmentation
from kerasrv.tasks.frames import NextFrame, VideoPrediction
from kerasrv.tasks.metrics import (
    EPSILON,
    binary_cross_entropy,
    confusion_matrix,
    intersection_over_union,
    openstl_metrics,
    ssim,
)

__all__ = [
    "EPSILON",
    "NAMES",
    "Classification",
    "NextFrame",
    "Segmentation",
    "Task",
    "VideoPrediction",
    "binary_cross_entropy",
    "confusion_matrix",
    "get",
    "intersection_over_union",
    "openstl_metrics",
    "ssim",
]

_TASKS = {
    task.name: task
    for task in (
        Classification(
            "classification",
            input_name="image",
            output_name="probabilities",
            default_target="label",
            video=False,
            quick_shape=None,
            bench_comparison=(4096, 2, 500),
        ),
        Classification(
            "video_classification",
            input_name="frames",
            output_name="probabilities",
            default_target="label",
            video=True,
            quick_shape=(4, 32, 32, 1),
            bench_comparison=(256, 2, 100),
        ),
        Segmentation(
            "segmentation",
            input_name="image",
            output_name="mask",
            default_target="mask",
            video=False,
            quick_shape=(32, 32, 1),
            bench_comparison=(1024, 2, 500),
        ),
        Segmentation(
            "video_segmentation",
            input_name="frames",
            output_name="mask",
            default_target="masks",
            video=True,
            quick_shape=(4, 32, 32, 1),
            bench_comparison=(32, 2, 50),
        ),
        VideoPrediction(
            "video_prediction",
            input_name="frames",
            output_name="next_frames",
            default_target="frames",
            video=True,
            quick_shape=(10, 32, 32, 1),  # 10 frames in as out: the forecasters predict 10
            bench_comparison=(32, 2, 50),
        ),
        NextFrame(
            "next_frame",
            input_name="frames",
            output_name="next_frames",
            default_target="frames",
            video=True,
            quick_shape=(3, 32, 32, 1),
            bench_comparison=(32, 2, 50),
        ),
    )
}
NAMES = tuple(_TASKS)


def get(task: str | Task) -> Task:
    """The `Task` of a name (a `Task` passes through).

    Raises:
        ValueError: an unknown task name.
    """
    if isinstance(task, Task):
        return task
    try:
        return _TASKS[task]
    except (KeyError, TypeError):
        raise UsageError(f"unknown task {task!r}; expected one of {', '.join(NAMES)}") from None
