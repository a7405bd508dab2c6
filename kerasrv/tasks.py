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

A new task is one object here plus the architecture that uses it.

Example:
    >>> from kerasrv import tasks
    >>> task = tasks.get("segmentation")
    >>> task.input_name, task.output_name, task.monitor
    ('image', 'mask', ('val_mean_iou', 'max'))
"""

import numpy as np

from kerasrv.errors import UsageError

EPSILON = 1e-7  # Keras' clipping of probabilities in binary cross-entropy


# --- metrics, each defined once ----------------------------------------------------------------


def confusion_matrix(labels, predicted, num_classes):
    """Counts of (true class, predicted class) pairs: rows are the truth, columns the prediction.

    Args:
        labels: integer class ids, any shape.
        predicted: integer class ids of the same shape.
        num_classes: K.

    Returns:
        An int64 (K, K) array.
    """
    labels = np.asarray(labels, np.int64).ravel()
    predicted = np.asarray(predicted, np.int64).ravel()
    k = num_classes
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)


def intersection_over_union(confusion):
    """Per-class IoU from a confusion matrix, and the mean over the classes that occur.

    A class that is neither in the truth nor in the prediction has no IoU; it is left out of the
    mean (and reported as 0 per class), so a test set without bags does not count bags as 0.

    Returns:
        (mean IoU, per-class IoU array).
    """
    confusion = np.asarray(confusion)
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    iou = np.diag(confusion) / np.maximum(union, 1)
    return float(iou[union > 0].mean()), iou


def binary_cross_entropy(target, prediction):
    """Element-wise binary cross-entropy, with Keras' clipping of the prediction."""
    p = np.clip(prediction, EPSILON, 1 - EPSILON)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # the Gaussian window of Wang et al. (2004), as tf.image.ssim


def ssim(a, b):
    """SSIM of each image pair in batches a and b of (..., H, W, C) in [0, 1].

    The SSIM of Wang et al. (2004) exactly as `tf.image.ssim(a, b, max_val=1.0)` computes it
    (11×11 Gaussian window of σ 1.5, valid positions only, K1 0.01, K2 0.03, the mean over
    positions and channels), with the window applied as two 11-tap passes: a 2-D Gaussian is
    the product of two 1-D ones. tf.image.ssim filters with an 11×11 depthwise convolution,
    which took 60% of a next-frame model's evaluation; the two passes give the same values
    (to float32 rounding, tests/test_tasks.py) about 3× faster.
    """
    import tensorflow as tf

    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    *batch, height, width, channels = a.shape
    if a.shape != b.shape or min(height, width) < SSIM_WINDOW:
        raise UsageError(
            f"ssim takes two batches of one shape (..., H, W, C) with H and W of at least "
            f"{SSIM_WINDOW}, got {a.shape} and {b.shape}"
        )

    def planes(x):  # (..., H, W, C) -> (images × channels, H, W, 1): one plane per channel
        x = tf.reshape(tf.constant(x), (-1, height, width, channels))
        return tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (-1, height, width, 1))

    taps = np.arange(SSIM_WINDOW) - (SSIM_WINDOW - 1) / 2
    gauss = np.exp(-(taps**2) / (2 * SSIM_SIGMA**2))
    gauss = (gauss / gauss.sum()).astype(np.float32)
    down, across = gauss.reshape(-1, 1, 1, 1), gauss.reshape(1, -1, 1, 1)

    def blur(x):
        return tf.nn.conv2d(tf.nn.conv2d(x, down, 1, "VALID"), across, 1, "VALID")

    x, y = planes(a), planes(b)
    c1, c2 = 0.01**2, 0.03**2
    mean_x, mean_y = blur(x), blur(y)
    # tf.image.ssim's arrangement of the same terms, so that the rounding matches too
    mean_xy, mean_squares = mean_x * mean_y * 2.0, mean_x**2 + mean_y**2
    luminance = (mean_xy + c1) / (mean_squares + c1)
    covariance = blur(x * y) * 2.0 - mean_xy
    variances = blur(x**2 + y**2) - mean_squares
    structure = (covariance + c2) / (variances + c2)
    per_plane = tf.reduce_mean(luminance * structure, axis=(1, 2, 3))
    per_image = tf.reduce_mean(tf.reshape(per_plane, (-1, channels)), axis=1)
    return tf.reshape(per_image, batch).numpy()


# --- the tasks ---------------------------------------------------------------------------------


class Task:
    """The rules every model of one task shares (see the module docstring).

    Attributes:
        name: the task's name, as entries and cards spell it.
        input_name: the model's input (and the dataset feature it reads): "image" or "frames".
        output_name: the model's output: "probabilities", "mask" or "next_frames".
        default_target: the dataset feature it predicts when an entry names none.
        video: inputs are clips (batch, time, height, width, channels).
        per_pixel: targets are per pixel (masks, frames), so they move with the image.
        targets_are_classes: targets are class indices (a loss that takes label smoothing).
        predicts_frames: outputs are frames in [0, 1] (no classes, no `num_classes`).
        learning_rate: Adam's default peak learning rate.
        monitor: (validation metric, "max" or "min") that picks the best epoch.
        quick_shape: a small input shape for smoke benchmarks (None: the entry's own).
        bench_comparison: (train examples, epochs, test examples) of the benchmark's metric
            comparison with the textbook model: small for clips, where the textbook ConvLSTM
            stack costs hundreds of GFLOPs per clip.
    """

    monitor = ("val_loss", "min")
    learning_rate = 1e-3
    parity_measure = ""
    per_pixel = False
    targets_are_classes = False
    predicts_frames = False

    def __init__(
        self,
        name,
        *,
        input_name,
        output_name,
        default_target,
        video,
        quick_shape,
        bench_comparison,
    ):
        self.name = name
        self.input_name = input_name
        self.output_name = output_name
        self.default_target = default_target
        self.video = video
        self.quick_shape = quick_shape
        self.bench_comparison = bench_comparison

    def __repr__(self):
        return f"<kerasrv task {self.name}>"

    # data

    @property
    def truncates_frames(self):
        """Whether a clip may be cut to its first N frames (a single-frame baseline)."""
        return self.video

    def input_shape_of(self, stored_shape):
        """The model input shape for examples stored with `stored_shape`."""
        return tuple(stored_shape)

    def batch(self, x, y, num_classes=None, one_hot=False):
        """(inputs, targets) of a batch read from a dataset: uint8 inputs, integer targets.

        Inputs become float32 in [0, 1]; targets int32 (or one-hot float32 when asked).
        """
        import tensorflow as tf

        del num_classes, one_hot
        return tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.int32)

    # training

    def compile(
        self,
        model,
        learning_rate=None,
        *,
        weight_decay=0.0,
        label_smoothing=0.0,
        ema_momentum=0.0,
    ):
        """Compiles `model` with this task's loss, Adam at `learning_rate` and its metrics.

        `weight_decay` > 0 makes the optimizer AdamW (Loshchilov & Hutter 2019: the decay is
        applied to the weights, not added to the gradient Adam rescales); `label_smoothing`
        (Szegedy et al. 2016) applies to the tasks that take it (see `loss`); `ema_momentum`
        > 0 makes the optimizer keep an exponential moving average of the trainable weights
        (Polyak averaging; Keras' form: no warm-up of the decay, and BatchNormalization's
        moving statistics are the trained model's, where timm's ModelEma averages them too),
        which `kerasrv.training` validates and ships.
        """
        import keras

        learning_rate = learning_rate or self.learning_rate
        if not 0.0 <= ema_momentum < 1.0:
            raise UsageError(f"ema_momentum must be in [0, 1), got {ema_momentum!r}")
        ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
        if weight_decay:
            optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **ema)
        else:
            optimizer = keras.optimizers.Adam(learning_rate, **ema)
        if label_smoothing and not self.targets_are_classes:
            raise UsageError(f"label smoothing applies to class targets, not to {self.name}")
        loss = self.loss(label_smoothing)
        model.compile(optimizer=optimizer, loss=loss, metrics=self.keras_metrics(model))
        return model

    def loss(self, label_smoothing=0.0):
        """This task's training loss; `label_smoothing` only where the targets are classes."""
        raise NotImplementedError

    def keras_metrics(self, model):
        raise NotImplementedError

    def callbacks(self, steps, recipe=None):
        """Keras callbacks every training run of this task needs, for a run of `steps` batches
        with the entry's `recipe` (a mapping of `kerasrv.registry.RECIPE_KEYS`)."""
        return []

    def configure(self, model, recipe=None):
        """Sets what the entry's `recipe` changes in how `model` trains (before `fit`)."""
        return model

    # evaluation and parity

    def measure(self, num_classes):
        """An accumulator of this task's evaluation metrics: `update(y, p, x)`, `result()`."""
        raise NotImplementedError

    def agreement(self, reference, predicted, targets, num_classes):
        """How far an export's answers agree with Keras' on the same inputs (see `agrees`)."""
        raise NotImplementedError

    def agrees(self, agreement):
        """Whether an agreement value passes this task's parity threshold."""
        raise NotImplementedError

    # benchmarks and pictures

    def synthetic_batch(self, shape, batch, num_classes, rng):
        """A random (inputs, targets) batch of the task's kind, for timing a training step."""
        raise NotImplementedError

    def draw(self, card, result, shown, out_dir):
        """Pictures of an evaluation (see `kerasrv.pictures`); returns the paths written."""
        return []


class Classification(Task):
    """A class per image or per clip: cross-entropy, accuracy, a confusion matrix."""

    monitor = ("val_accuracy", "max")
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
    per_pixel = True
    targets_are_classes = True
    # Per-pixel targets learn their boundaries faster at a higher rate (convlstm_seg, 30 steps
    # on one batch of 16: the loss fell to 0.55× at 1e-3, 0.36–0.41× at 3e-3).
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
        return [draw(card, shown, out_dir / "predictions.png", title)]


class _PredictsFrames(Task):
    """What the tasks that predict frames share: an export agrees when its MSE to the true
    frames is at most `max_mse_ratio` times Keras' (there is no label to agree on)."""

    parity_measure = "MSE to the true frames / Keras' MSE"
    max_mse_ratio = 1.1
    per_pixel = True
    predicts_frames = True

    @property
    def truncates_frames(self):
        return False

    def agreement(self, reference, predicted, targets, num_classes):
        return float(((predicted - targets) ** 2).mean() / ((reference - targets) ** 2).mean())

    def agrees(self, agreement):
        return agreement <= self.max_mse_ratio

    def synthetic_batch(self, shape, batch, num_classes, rng):
        x = rng.uniform(size=(batch, *shape)).astype("float32")
        return x, rng.uniform(size=(batch, *shape)).astype("float32")


class NextFrame(_PredictsFrames):
    """Frame t+1 from frames 1..t, for every t of a clip: binary cross-entropy, MSE, SSIM.

    A clip of T stored frames gives inputs frames[:-1] and targets frames[1:].
    """

    def input_shape_of(self, stored_shape):
        return (stored_shape[0] - 1, *stored_shape[1:])

    def batch(self, x, y, num_classes=None, one_hot=False):
        import tensorflow as tf

        frames = tf.cast(x, tf.float32) / 255.0
        return frames[:, :-1], frames[:, 1:]

    def loss(self, label_smoothing=0.0):
        del label_smoothing  # frames are not classes (`compile` refuses it)
        import keras

        return keras.losses.BinaryCrossentropy()

    def keras_metrics(self, model):
        import keras

        return [keras.metrics.MeanSquaredError(name="mse")]

    def measure(self, num_classes):
        return _NextFrameMeasure()

    def draw(self, card, result, shown, out_dir):
        from kerasrv import pictures

        title = pictures.evaluation_title(card, result)
        return [pictures.next_frames(shown, out_dir / "predictions.png", title)]


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


# --- the accumulators of evaluation metrics ----------------------------------------------------


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
    def result(self):
        mean, per_class = intersection_over_union(self.confusion)
        return {
            "metrics": {
                "mean_iou": mean,
                "pixel_accuracy": float(np.trace(self.confusion) / self.confusion.sum()),
            },
            "per_class_iou": [round(float(v), 4) for v in per_class],
        }


class _VideoPredictionMeasure:
    """OpenSTL's metrics of the model and of copying the last given frame."""

    def __init__(self):
        self.sums = {}
        self.per_frame = {}  # squared error summed over a frame's pixels, per predicted frame
        self.clips = 0

    def update(self, y, p, x):
        copy_last = np.repeat(x[:, -1:], y.shape[1], axis=1)
        for prefix, guess in (("", p), ("copy_last_", copy_last)):
            for key, value in openstl_metrics(guess, y).items():
                self.sums[prefix + key] = self.sums.get(prefix + key, 0) + value
            error = np.square(np.asarray(guess, np.float64) - y).sum(axis=(2, 3, 4)).sum(0)
            self.per_frame[prefix + "mse"] = self.per_frame.get(prefix + "mse", 0) + error
        self.clips += len(y)

    def result(self):
        metrics = {}
        for prefix in ("", "copy_last_"):
            frames = self.sums[prefix + "frames"]
            for key in ("mse", "mae", "ssim", "psnr"):
                metrics[prefix + key] = self.sums[prefix + key] / frames
        metrics["mse_vs_copy_last"] = metrics["mse"] / metrics["copy_last_mse"]
        # OpenSTL's MSE of each predicted frame (1 = the first after the given ones)
        per_frame = {k: [float(v) for v in s / self.clips] for k, s in self.per_frame.items()}
        return {"metrics": metrics, "per_frame": per_frame}


class _NextFrameMeasure:
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
            self._add(prefix + "bce", binary_cross_entropy(y, guess).mean(axis=frame_axes))
            self._add(prefix + "ssim", ssim(y, guess))
        self.frames += y.shape[0] * y.shape[1]

    def result(self):
        m = {k: v / self.frames for k, v in self.sums.items()}
        m["mse_vs_copy_last"] = m["mse"] / m["copy_last_mse"]
        return {"metrics": m}


class VideoPrediction(_PredictsFrames):
    """The next frames of a clip from its first ones, with no true frame in between.

    OpenSTL's protocol: a stored clip of T frames is split in half, the first T/2 are the
    input and the model predicts the last T/2 (10 → 10 on Moving FashionMNIST). Trained with
    MSE; measured with OpenSTL's metrics (`openstl_metrics`) beside the copy-last-frame
    baseline (the last given frame, repeated).
    """

    def input_shape_of(self, stored_shape):
        return (stored_shape[0] // 2, *stored_shape[1:])

    def batch(self, x, y, num_classes=None, one_hot=False):
        import tensorflow as tf

        frames = tf.cast(x, tf.float32) / 255.0
        half = frames.shape[1] // 2
        return frames[:, :half], frames[:, half:]

    def loss(self, label_smoothing=0.0):
        del label_smoothing  # frames are not classes (`compile` refuses it)
        import keras

        return keras.losses.MeanSquaredError()

    def keras_metrics(self, model):
        import keras

        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def callbacks(self, steps, recipe=None):
        from kerasrv.layers import ScheduledSampling

        # PredRNN's schedule: the true future frames stand in for the model's own predictions
        # with a probability falling linearly from 1 to 0, by default over the first half of
        # the run (PredRNN's code: 50,000 of 80,000 iterations), so the rest trains exactly
        # what inference runs: a rollout on its own predictions. A recipe's
        # `teacher_forcing` = (start, share of the run) changes it; a warm restart of a model
        # that already rolls out starts lower.
        start, share = (recipe or {}).get("teacher_forcing", (1.0, 0.5))
        return [ScheduledSampling(steps=int(steps * share), start=start)]

    def configure(self, model, recipe=None):
        # PredRNN's loss over every step's prediction (`ForecastModel.given_frames_loss`)
        model.given_frames_loss = bool((recipe or {}).get("given_frames_loss", False))
        return model

    def measure(self, num_classes):
        return _VideoPredictionMeasure()

    def draw(self, card, result, shown, out_dir):
        from kerasrv import pictures

        title = pictures.evaluation_title(card, result)
        return [
            pictures.rollouts(shown, out_dir / "predictions.png", title),
            pictures.per_frame_mse(result["per_frame"], out_dir / "mse_per_frame.png", title),
        ]


def openstl_metrics(predicted, true):
    """Sums of OpenSTL's video-prediction metrics over the frames of a batch of clips.

    As `openstl/core/metrics.py` defines them, on frames in [0, 1]: MSE and MAE are the squared
    and absolute errors summed over the pixels of a frame (averaged over frames by dividing
    these sums by the `frames` count); PSNR and SSIM are per frame, with the prediction clipped
    to [0, 1] first (after MSE and MAE). SSIM is scikit-image's `structural_similarity` with its
    defaults of OpenSTL's time: 7×7 uniform windows, and for float images a data range of 2
    (the float dtype's [-1, 1]), which OpenSTL's published numbers rest on.

    Args:
        predicted: (B, T, H, W, C) predictions.
        true: the true frames, same shape.

    Returns:
        {"mse", "mae", "ssim", "psnr", "frames"}: sums over the B·T frames, and their count.
    """
    from skimage.metrics import structural_similarity

    predicted = np.asarray(predicted, np.float64)
    true = np.asarray(true, np.float64)
    pixel_axes = tuple(range(2, true.ndim))
    sums = {
        "mse": float(((predicted - true) ** 2).sum(axis=pixel_axes).sum()),
        "mae": float(np.abs(predicted - true).sum(axis=pixel_axes).sum()),
    }
    clipped = np.clip(predicted, 0.0, 1.0)
    per_frame_mse = ((clipped - true) ** 2).mean(axis=pixel_axes)
    with np.errstate(divide="ignore"):
        sums["psnr"] = float((-10.0 * np.log10(per_frame_mse)).sum())
    sums["ssim"] = float(
        sum(
            structural_similarity(p, t, data_range=2.0, channel_axis=-1)
            for p, t in zip(clipped.reshape(-1, *true.shape[2:]), true.reshape(-1, *true.shape[2:]))
        )
    )
    sums["frames"] = int(np.prod(true.shape[:2]))
    return sums


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


def get(task):
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
