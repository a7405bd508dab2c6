"""The tasks whose targets are classes: one per image or clip (classification), one per pixel
(segmentation, of images or of every frame of a clip)."""

import numpy as np

from kerasrv.errors import UsageError
from kerasrv.tasks.base import Task
from kerasrv.tasks.metrics import confusion_matrix, intersection_over_union


class Classification(Task):
    """A class per image or per clip: cross-entropy, accuracy, a confusion matrix."""

    monitor = ("val_accuracy", "max")
    headline = "accuracy"
    parity_measure = "top-1 agreement with Keras"
    targets_are_classes = True
    min_agreement = 0.99

    def batch(self, x, y, num_classes=None, one_hot=False):
        x, y = super().batch(x, y)
        if one_hot:
            import tensorflow as tf

            return x, tf.one_hot(y, num_classes)
        return x, y

    def loss(self, label_smoothing=0.0):
        return _class_crossentropy(label_smoothing)

    def keras_metrics(self, model):
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def measure(self, num_classes):
        return _ClassificationMeasure(num_classes)

    def agreement(self, reference, predicted, targets, num_classes):
        return float((reference.argmax(-1) == predicted.argmax(-1)).mean())

    def agrees(self, agreement):
        return agreement >= self.min_agreement

    def synthetic_batch(self, shape, batch, num_classes, rng):
        x = rng.uniform(size=(batch, *shape)).astype("float32")
        return x, rng.integers(num_classes, size=batch).astype("int32")

    def draw(self, card, result, shown, out_dir):
        from kerasrv import pictures

        title = pictures.evaluation_title(card, result)
        written = [
            pictures.confusion_matrix(
                result["confusion_matrix"],
                card["class_names"],
                out_dir / "confusion_matrix.png",
                title,
            )
        ]
        if self.video:
            written.append(pictures.clip_labels(card, shown, out_dir / "predictions.png", title))
        return written


class Segmentation(Task):
    """A class per pixel (per frame for clips): pixel accuracy and mean IoU."""

    monitor = ("val_mean_iou", "max")
    headline = "mean_iou"
    per_pixel = True
    targets_are_classes = True
    # Per-pixel targets learn their boundaries faster at a higher rate (bench/findings.md)
    learning_rate = 3e-3
    parity_measure = "mean IoU of the masks against Keras' masks"
    min_agreement = 0.95

    def loss(self, label_smoothing=0.0):
        return _class_crossentropy(label_smoothing)

    def keras_metrics(self, model):
        import keras

        return [
            keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"),
            keras.metrics.MeanIoU(model.output_shape[-1], sparse_y_pred=False, name="mean_iou"),
        ]

    def measure(self, num_classes):
        return _SegmentationMeasure(num_classes)

    @property
    def per_frame_outputs(self):
        return self.video

    def agreement(self, reference, predicted, targets, num_classes):
        confusion = confusion_matrix(reference.argmax(-1), predicted.argmax(-1), num_classes)
        return intersection_over_union(confusion)[0]

    def agrees(self, agreement):
        return agreement >= self.min_agreement

    def synthetic_batch(self, shape, batch, num_classes, rng):
        x = rng.uniform(size=(batch, *shape)).astype("float32")
        return x, rng.integers(num_classes, size=(batch, *shape[:-1])).astype("int32")

    def draw(self, card, result, shown, out_dir):
        from kerasrv import pictures

        title = pictures.evaluation_title(card, result)
        draw = pictures.clip_masks if self.video else pictures.image_masks
        written = [draw(card, shown, out_dir / "predictions.png", title)]
        if "per_frame_iou" in result:
            written.append(
                pictures.per_frame_iou(
                    result["per_frame_iou"],
                    out_dir / "iou_per_frame.png",
                    title,
                    frame_alone=result.get("frame_alone", {}).get("per_frame_iou"),
                )
            )
        return written


def _class_crossentropy(label_smoothing=0.0):
    """Cross-entropy against integer class targets, per image or per pixel (the class axis is
    the last one either way), smoothed when `label_smoothing` > 0."""
    import keras

    if label_smoothing:
        return _smoothed_sparse_crossentropy(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def _smoothed_sparse_crossentropy(label_smoothing):
    """Cross-entropy against integer targets smoothed to `1 - ε + ε/K` and `ε/K` (Szegedy et
    al. 2016); Keras' sparse cross-entropy takes no smoothing, its one-hot one does."""
    import keras

    class SmoothedSparseCrossentropy(keras.losses.Loss):
        def __init__(self, label_smoothing, name="smoothed_sparse_crossentropy", **kwargs):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = label_smoothing

        def call(self, y_true, y_pred):
            ops = keras.ops
            classes = ops.shape(y_pred)[-1]
            y_true = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
            return keras.losses.categorical_crossentropy(
                ops.one_hot(y_true, classes, dtype=y_pred.dtype),
                y_pred,
                label_smoothing=self.label_smoothing,
            )

        def get_config(self):
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    return SmoothedSparseCrossentropy(label_smoothing)


class _ClassificationMeasure:
    def __init__(self, num_classes):
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, y, p, x):
        k = len(self.confusion)
        if y.size and (y.max() >= k or y.min() < 0):
            raise UsageError(
                f"the targets hold class {y.max() if y.max() >= k else y.min()}, but the model "
                f"has {k} classes (0–{k - 1}): measure it on data of its own classes"
            )
        self.confusion += confusion_matrix(y, p.argmax(-1), k)

    def result(self):
        accuracy = float(np.trace(self.confusion) / self.confusion.sum())
        return {"metrics": {"accuracy": accuracy}, "confusion_matrix": self.confusion.tolist()}


class _SegmentationMeasure(_ClassificationMeasure):
    """Mean IoU over the whole split, and for clips (targets (B, T, H, W)) each frame's own:
    whether a recurrent model's masks get better as it sees more of the clip."""

    def __init__(self, num_classes):
        super().__init__(num_classes)
        self.per_frame = None

    def update(self, y, p, x):
        super().update(y, p, x)
        if y.ndim != 4:  # images: (B, H, W)
            return
        k = len(self.confusion)
        if self.per_frame is None:
            self.per_frame = np.zeros((y.shape[1], k, k), dtype=np.int64)
        predicted = p.argmax(-1)
        for t in range(y.shape[1]):
            self.per_frame[t] += confusion_matrix(y[:, t], predicted[:, t], k)

    def result(self):
        mean, per_class = intersection_over_union(self.confusion)
        result = {
            "metrics": {
                "mean_iou": mean,
                "pixel_accuracy": float(np.trace(self.confusion) / self.confusion.sum()),
            },
            "per_class_iou": [round(float(v), 4) for v in per_class],
        }
        if self.per_frame is not None:
            result["per_frame_iou"] = [
                round(float(intersection_over_union(c)[0]), 4) for c in self.per_frame
            ]
        return result
