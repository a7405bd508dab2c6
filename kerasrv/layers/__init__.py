"""Custom Keras layers of the zoo. They know nothing of the zoo and register with Keras on import.

Every class here is decorated with
`keras.saving.register_keras_serializable(package="kerasrv")`, so a `.keras` file that uses
them loads after `import kerasrv` (or `import kerasrv.layers`) alone.
"""

from kerasrv.layers.blocks import conv_block, segmentation_head, upsample_block
from kerasrv.layers.forecast import (
    ConvLSTMCell,
    Forecaster,
    ForecastModel,
    ReverseScheduledSampling,
    ScheduledSampling,
    SpatioTemporalLSTMCell,
)
from kerasrv.layers.lstm import (
    FusedBidirectionalLSTM,
    FusedLSTM,
    UnrolledBidirectionalLSTM,
    UnrolledLSTM,
)
from kerasrv.layers.normalization import BatchNormalization
from kerasrv.layers.peephole import PeepholeLSTMCell
from kerasrv.layers.recurrent import CELLS, recurrent
from kerasrv.layers.renet import ReNet
from kerasrv.layers.sequence import FrameWise, ImageToSequence
from kerasrv.layers.static_shapes import FoldedDense, StaticFlatten, SubPixelConv2DTranspose
from kerasrv.layers.unrolled import UnrolledConvLSTM2D, UnrolledGRU

__all__ = [
    "CELLS",
    "ConvLSTMCell",
    "Forecaster",
    "ForecastModel",
    "ReverseScheduledSampling",
    "ScheduledSampling",
    "SpatioTemporalLSTMCell",
    "FoldedDense",
    "FrameWise",
    "BatchNormalization",
    "FusedBidirectionalLSTM",
    "FusedLSTM",
    "ImageToSequence",
    "PeepholeLSTMCell",
    "ReNet",
    "StaticFlatten",
    "SubPixelConv2DTranspose",
    "UnrolledConvLSTM2D",
    "UnrolledBidirectionalLSTM",
    "UnrolledGRU",
    "UnrolledLSTM",
    "conv_block",
    "recurrent",
    "segmentation_head",
    "upsample_block",
]
