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
    monkeypatch.setattr(tasks, "SSIM_SIGMA", 1.6)
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
