"""The metrics of evaluation and parity, each defined once, in plain numpy over a model's outputs:
the confusion matrix and IoU of classes, binary cross-entropy and SSIM of frames, and OpenSTL's
video-prediction metrics."""

import numpy as np

from kerasrv.errors import UsageError

EPSILON = 1e-7  # Keras' clipping of probabilities in binary cross-entropy


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
