"""Video prediction at the field's protocol: 10 frames in, the next 10 out (OpenSTL's).

Both builders are a `kerasrv.layers.Forecaster`: frames folded into patches (OpenSTL's patch
trick), a stack of convolutional recurrent cells, and a 1×1 convolution predicting the next
frame, rolled out on its own predictions after the given frames; in training, scheduled sampling
(`kerasrv.layers.ScheduledSampling`) lets the true future stand in at first.

    convlstm_forecast  ConvLSTM cells (Shi et al. 2015), OpenSTL's ConvLSTM
    predrnn            PredRNN's spatio-temporal LSTM cells (Wang et al. 2017): a second memory
                       that zigzags through the layers

They are trained on `moving_fashion_mnist/openstl` (the `video_prediction` task) and measured
with OpenSTL's metrics (`kerasrv.tasks.openstl_metrics`).
"""

import keras

from kerasrv.errors import UsageError
from kerasrv.layers import Forecaster, ForecastModel
from kerasrv.registry import architecture, register


def _forecaster(name, cell, input_shape, output_frames, filters, kernel_size, patch_size):
    if len(input_shape) != 4:
        raise UsageError(
            f"{name} expects input_shape (frames, height, width, channels), got {input_shape}"
        )
    frames = keras.Input(input_shape, name="frames")
    next_frames = Forecaster(
        output_frames,
        cell=cell,
        filters=filters,
        kernel_size=kernel_size,
        patch_size=patch_size,
        name="next_frames",
    )(frames)
    return ForecastModel(frames, next_frames, name=name)


@architecture
def convlstm_forecast(
    input_shape=(10, 64, 64, 1),
    *,
    output_frames=10,
    filters=(64, 64, 64, 64),
    kernel_size=5,
    patch_size=4,
):
    """ConvLSTM encoder–forecaster: the next `output_frames` frames from the given ones.

    Args:
        input_shape: (frames, height, width, channels); height and width divisible by
            `patch_size`.
        output_frames: frames to predict.
        filters: channels of each ConvLSTM layer (OpenSTL's ConvLSTM-S: 4 × 128).
        kernel_size: convolution side in the cells (OpenSTL: 5).
        patch_size: frames are read as p×p patches (OpenSTL: 4, so 64×64×1 is 16×16×16).

    Returns:
        A `kerasrv.layers.ForecastModel` from `frames` (B, T, H, W, C) in [0, 1] to
        `next_frames` (B, output_frames, H, W, C) in [0, 1].

    Example:
        >>> model = convlstm_forecast(filters=(16, 16))
        >>> model(keras.ops.zeros((1, 10, 64, 64, 1))).shape
        (1, 10, 64, 64, 1)
    """
    return _forecaster(
        "convlstm_forecast",
        "convlstm",
        input_shape,
        output_frames,
        filters,
        kernel_size,
        patch_size,
    )


@architecture
def predrnn(
    input_shape=(10, 64, 64, 1),
    *,
    output_frames=10,
    filters=(64, 64, 64, 64),
    kernel_size=5,
    patch_size=4,
):
    """PredRNN (Wang et al. 2017): spatio-temporal LSTM cells, the next `output_frames` frames.

    Args:
        input_shape: (frames, height, width, channels); height and width divisible by
            `patch_size`.
        output_frames: frames to predict.
        filters: channels of each ST-LSTM layer, all equal (OpenSTL's PredRNN: 4 × 128).
        kernel_size: convolution side in the cells (OpenSTL: 5).
        patch_size: frames are read as p×p patches (OpenSTL: 4).

    Returns:
        A `kerasrv.layers.ForecastModel` from `frames` (B, T, H, W, C) in [0, 1] to
        `next_frames` (B, output_frames, H, W, C) in [0, 1].

    Example:
        >>> model = predrnn(filters=(16, 16))
        >>> model(keras.ops.zeros((1, 10, 64, 64, 1))).shape
        (1, 10, 64, 64, 1)
    """
    return _forecaster(
        "predrnn", "stlstm", input_shape, output_frames, filters, kernel_size, patch_size
    )


# Both entries are trained the same way and do the same arithmetic, so their difference is the
# cell's: the same clips (OpenSTL's Moving FashionMNIST protocol, 9,000 train clips, 1,000 to
# pick the best epoch), batch and schedule, 3×3 kernels on 8×8 patches, and about the same
# multiply-adds and parameters per clip: an ST-LSTM layer has twice a ConvLSTM layer's
# convolutions (its second memory has gates of its own), so ConvLSTM stacks 4 layers of 64 to
# PredRNN's 2 (1.44 G and 1.46 G multiply-adds a clip, 1.18 M and 1.20 M parameters). OpenSTL
# trains 4 layers of 128 with 5×5 kernels on 4×4 patches for 200 epochs on a GPU; this budget
# fits 2 CPU cores (each card records epochs, hardware and wall time). Patch 8 was chosen from
# measured curves (bench/pilots/, BENCHMARKS.md): per epoch it learns as patch 4 does, at a
# third of the time; 4 ConvLSTM layers from 2 from the curves too (2 layers of 64, half the
# arithmetic, flattened at 0.34× copy-last after 19 epochs: bench/attempts/).
_MFMNIST = {
    "task": "video_prediction",
    "dataset": "moving_fashion_mnist/openstl",
    "target": "frames",
    "class_names": None,
    # OpenSTL's ConvLSTM and PredRNN recipe where it fits the budget: Adam, batch 16, new clips
    # every epoch (OpenSTL's Moving MNIST loader draws them on the fly), the loss over every
    # step's prediction (PredRNN's), and scheduled sampling from 1 to 0 over the first quarter
    # of a run from fresh weights (later legs start from the last one's weights at a lower
    # rate and sampling: see the card's training.legs and `kerasrv train --recipe`). bfloat16
    # where the CPU or GPU has it: 1.4-1.5× the float32 samples/s here, and ConvLSTM's MSE
    # after equal epochs within 2% of float32's (BENCHMARKS.md, "Training in bfloat16");
    # predrnn's legs trained in it, convlstm_forecast's first two (its third ran on a CPU
    # without bfloat16, in float32).
    "recipe": {
        "epochs": 12,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "fresh_clips": True,
        "given_frames_loss": True,
        "teacher_forcing": (1.0, 0.25),
        "precision": "mixed_bfloat16",
    },
    "input_shape": (10, 64, 64, 1),
    "output_frames": 10,
    "filters": (64, 64),
    "kernel_size": 3,
    "patch_size": 8,
}
register(
    "convlstm_forecast.mfmnist",
    description="4×ConvLSTM(64) on 8×8 patches: the next 10 frames from 10",
    **{**_MFMNIST, "filters": (64, 64, 64, 64), "recipe": {**_MFMNIST["recipe"], "epochs": 18}},
)
register(
    "predrnn.mfmnist",
    description="2×ST-LSTM(64) on 8×8 patches: the next 10 frames from 10",
    **_MFMNIST,
)
