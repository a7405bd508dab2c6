"""kerasrv.tasks: the metrics every task computes, checked against their references."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import real_batch

from kerasrv import tasks, zoo

# Two float32 computations of one SSIM differ by their rounding: the variances are E[x²] − μ²,
# a difference of near numbers, and the sums run in an order the CPU's kernels choose (1.01e-6
# on one machine's AVX-512 kernels, under 1e-6 on another's). A different formula (window σ 1.6
# instead of 1.5, below) moves the values by more than 1e-3.
ROUNDING = 1e-5


def test_ssim_gives_tf_image_ssim_values_on_real_clips():
    # a clip against the next frames (a "copy the last frame" guess), as next-frame scoring does
    frames, following = real_batch(zoo.info("convlstm_predict.moving"), n=4)
    got = tasks.ssim(following, frames)
    expected = tf.image.ssim(tf.constant(following), tf.constant(frames), max_val=1.0).numpy()
    assert got.shape == expected.shape == (4, 9)
    assert 0.2 < expected.mean() < 0.95  # moving digits: related frames, not identical ones
    np.testing.assert_allclose(got, expected, rtol=0, atol=ROUNDING)


def test_the_ssim_comparison_tells_another_window_apart(monkeypatch):
    frames, following = real_batch(zoo.info("convlstm_predict.moving"), n=4)
    expected = tf.image.ssim(tf.constant(following), tf.constant(frames), max_val=1.0).numpy()
    monkeypatch.setattr(tasks.metrics, "SSIM_SIGMA", 1.6)
    assert np.abs(tasks.ssim(following, frames) - expected).max() > 100 * ROUNDING


def test_ssim_of_colour_images_averages_the_channels_as_tf_image_ssim():
    frames, _ = real_batch(zoo.info("convlstm_predict.moving"), n=3)
    colour = np.concatenate([frames[:, 0:7], frames[:, 1:8], frames[:, 2:9]], axis=-1)
    noisy = np.clip(colour + np.random.default_rng(0).normal(0, 0.1, colour.shape), 0, 1)
    noisy = noisy.astype(np.float32)
    got = tasks.ssim(colour, noisy)
    expected = tf.image.ssim(tf.constant(colour), tf.constant(noisy), max_val=1.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=ROUNDING)
    assert tasks.ssim(colour, colour) == pytest.approx(np.ones((3, 7)), abs=1e-6)


@pytest.mark.parametrize(
    "a, b", [((2, 32, 32, 1), (2, 32, 32, 3)), ((2, 10, 10, 1), (2, 10, 10, 1))]
)
def test_ssim_refuses_mismatched_or_too_small_images(a, b):
    with pytest.raises(ValueError, match=r"ssim takes two batches .* got \("):
        tasks.ssim(np.zeros(a, np.float32), np.zeros(b, np.float32))


def test_label_smoothing_moves_the_target_mass_from_the_true_class_to_all():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 2])
    smoothed = float(tasks.get("classification").loss(0.3)(labels, probabilities))
    # the targets ε/K everywhere and 1 − ε + ε/K on the true class, ε = 0.3, K = 3
    targets = np.full((2, 3), 0.1) + 0.7 * np.eye(3)[labels]
    assert smoothed == pytest.approx(-np.mean(np.sum(targets * np.log(probabilities), -1)), 1e-6)
    plain = float(tasks.get("classification").loss()(labels, probabilities))
    assert plain == pytest.approx(-np.mean(np.log([0.7, 0.8])), 1e-6)
    assert smoothed > plain + 0.1


def test_a_masks_label_smoothing_runs_per_pixel():
    probabilities = np.full((1, 2, 2, 4), 0.25, np.float32)
    loss = tasks.get("segmentation").loss(0.1)(np.zeros((1, 2, 2), np.int32), probabilities)
    assert float(loss) == pytest.approx(np.log(4), 1e-6)  # uniform answers: log K whatever ε


def test_weight_decay_compiles_adamw_and_frames_refuse_label_smoothing():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    tasks.get("classification").compile(model, weight_decay=0.05, label_smoothing=0.1)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == 0.05
    tasks.get("classification").compile(model)
    assert type(model.optimizer) is keras.optimizers.Adam
    assert not model.optimizer.use_ema
    tasks.get("classification").compile(model, ema_momentum=0.999)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.999
    with pytest.raises(ValueError, match="ema_momentum must be in"):
        tasks.get("classification").compile(model, ema_momentum=1.0)
    with pytest.raises(ValueError, match="label smoothing applies to class targets"):
        tasks.get("next_frame").compile(model, label_smoothing=0.1)


def test_compile_takes_the_tasks_choices_where_auto_and_the_callers_elsewhere():
    """keras-hub's manner: the task owns loss and metrics, and each can be replaced."""
    import keras

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Dense(3, activation="softmax")])
    segmentation = tasks.get("segmentation")
    segmentation.compile(model)
    assert type(model.optimizer) is keras.optimizers.Adam
    assert float(model.optimizer.learning_rate) == pytest.approx(segmentation.learning_rate)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    model.fit(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4)), verbose=0)  # builds the metrics
    assert "mean_iou" in [m.name for m in model.metrics[-1].metrics]
    segmentation.compile(model, optimizer="sgd", loss="mse", metrics=[])
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.loss == "mse"


@pytest.mark.parametrize("drawing", ["image_masks", "clip_masks"])
def test_mask_pictures_name_the_models_own_classes(drawing, tmp_path, monkeypatch):
    """A user's segmentation is pictured with its classes.txt names, not Fashion-MNIST's."""
    from kerasrv import pictures

    names = ["background", "road", "car", "person"]
    rng = np.random.default_rng(0)
    shape = (8, 8, 1) if drawing == "image_masks" else (2, 8, 8, 1)
    shown = [
        (rng.random(shape), rng.integers(0, 4, shape[:-1]), rng.random((*shape[:-1], 4)))
        for _ in range(2)
    ]
    figures = []
    monkeypatch.setattr(pictures, "_save", lambda fig, out: figures.append(fig))
    getattr(pictures, drawing)({"class_names": names}, shown, tmp_path / "p.png", "title")
    (legend,) = figures[0].legends
    assert [text.get_text() for text in legend.get_texts()] == names[1:]
