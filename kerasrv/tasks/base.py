"""`Task`: the rules every model of one task shares (see `kerasrv.tasks`)."""

from kerasrv.errors import UsageError


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
        headline: the test metric a card leads with.
        per_frame_outputs: a clip model answers for every frame (masks per frame), so the same
            weights can read each frame alone (`kerasrv.evaluation.frame_alone`).
        quick_shape: a small input shape for smoke benchmarks (None: the entry's own).
        bench_comparison: (train examples, epochs, test examples) of the benchmark's metric
            comparison with the textbook model: small for clips, where the textbook ConvLSTM
            stack costs hundreds of GFLOPs per clip.
    """

    monitor = ("val_loss", "min")
    headline = "mse"  # the test metric a card leads with (`kerasrv list`, BENCHMARKS.md)
    learning_rate = 1e-3
    parity_measure = ""
    per_pixel = False
    targets_are_classes = False
    predicts_frames = False
    per_frame_outputs = False

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
        optimizer="auto",
        loss="auto",
        metrics="auto",
        *,
        learning_rate=None,
        weight_decay=0.0,
        label_smoothing=0.0,
        ema_momentum=0.0,
    ):
        """Compiles `model` for this task, in keras-hub's manner: each of `optimizer`, `loss`
        and `metrics` left "auto" is the task's (anything else goes to Keras as given).

        The task's optimizer is Adam at `learning_rate` (a float or a schedule; default the
        task's); `weight_decay` > 0 makes it AdamW (Loshchilov & Hutter 2019: the decay is
        applied to the weights, not added to the gradient Adam rescales); `ema_momentum` > 0
        makes it keep an exponential moving average of the trainable weights (Polyak
        averaging; Keras' form: no warm-up of the decay, and BatchNormalization's moving
        statistics are the trained model's, where timm's ModelEma averages them too), which
        `kerasrv.training` validates and ships. The task's loss takes `label_smoothing`
        (Szegedy et al. 2016) where the targets are classes (see `loss`).

        Returns:
            The model.
        """
        import keras

        if not 0.0 <= ema_momentum < 1.0:
            raise UsageError(f"ema_momentum must be in [0, 1), got {ema_momentum!r}")
        if label_smoothing and not self.targets_are_classes:
            raise UsageError(f"label smoothing applies to class targets, not to {self.name}")
        if optimizer == "auto":
            learning_rate = learning_rate or self.learning_rate
            ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
            if weight_decay:
                optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **ema)
            else:
                optimizer = keras.optimizers.Adam(learning_rate, **ema)
        if loss == "auto":
            loss = self.loss(label_smoothing)
        if metrics == "auto":
            metrics = self.keras_metrics(model)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        return model

    def loss(self, label_smoothing=0.0):
        """This task's training loss; `label_smoothing` only where the targets are classes."""
        raise NotImplementedError

    def keras_metrics(self, model):
        raise NotImplementedError

    def callbacks(self, steps, recipe=None):
        """Keras callbacks every training run of this task needs, for a run of `steps` batches
        with the run's `recipe` (a `kerasrv.registry.Recipe`)."""
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
