"""The tasks whose targets are frames: the next frame at every step of a clip (next_frame), and
the next frames of a clip with no true frame in between (video_prediction, OpenSTL's protocol).
"""

import numpy as np

from kerasrv.tasks.base import Task
from kerasrv.tasks.metrics import binary_cross_entropy, openstl_metrics, ssim


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
        from kerasrv.layers import ReverseScheduledSampling, ScheduledSampling

        if recipe and recipe.reverse_sampling:  # PredRNN-V2's, both probabilities scheduled
            first, last = recipe.reverse_sampling
            return [ReverseScheduledSampling(first=int(steps * first), last=int(steps * last))]

        # PredRNN's schedule: the true future frames stand in for the model's own predictions
        # with a probability falling linearly from 1 to 0, by default over the first half of
        # the run (PredRNN's code: 50,000 of 80,000 iterations), so the rest trains exactly
        # what inference runs: a rollout on its own predictions. A recipe's
        # `teacher_forcing` = (start, share of the run) changes it; a warm restart of a model
        # that already rolls out starts lower.
        start, share = (recipe and recipe.teacher_forcing) or (1.0, 0.5)
        return [ScheduledSampling(steps=int(steps * share), start=start)]

    def configure(self, model, recipe=None):
        # PredRNN's loss over every step's prediction (`ForecastModel.given_frames_loss`)
        model.given_frames_loss = bool(recipe and recipe.given_frames_loss)
        model.reverse_sampling = bool(recipe and recipe.reverse_sampling)
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
