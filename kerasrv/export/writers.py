"""Writers: each format's file from a model, its card and (for the integer files) calibration.

A writer is `write(job, path)`; a `Job` is one export in progress and makes the converter's
input (`kerasrv.export.forms`) once per batch size, inside the staging folder.
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasrv import tasks
from kerasrv.errors import UsageError
from kerasrv.export.forms import converter_form

# The two full-integer files, both with int8 weights, by activation width: `tflite_int8` (int8
# activations) runs on TFLite's optimised integer kernels, faster than float32 at batch 1, but a
# recurrent state kept in 8 bits drifts over the time steps; `tflite_int16x8` (TFLite's 16x8
# mode) holds it, on reference kernels several times slower. The fast file is the one called
# int8; the exact one is there for integer-only hardware. Each card's `exports` has the measured
# agreement and latency; bench/findings.md what was tried against the drift. (GRUs reach the
# converter as `kerasrv.layers.UnrolledGRU`, the form whose 16x8 file agrees.)
INTEGER_OPS = {
    "int8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
    "int16x8": tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
}
ONNX_OPSET = 17
CONVERTER_INPUT = ".converter-input"  # inside the staging folder: what the converters read


@dataclasses.dataclass
class Job:
    """One export in progress: what every writer reads."""

    model: keras.Model
    card: object
    staging: Path
    calibration: object  # a callable yielding [input batch] lists, or None

    inputs: dict = dataclasses.field(default_factory=dict)

    def converter_input(self, batch_size=None):
        """The converter form of the model as a SavedModel, made once per export and batch size.

        A dynamic batch (None) gets the unrolled form; a fixed one gets fused LSTMs too. It
        lives in the staging folder, so it goes wherever the staging folder goes: removed
        before the version is published, or swept with the folder of a killed export.
        """
        if batch_size not in self.inputs:
            directory = self.staging / CONVERTER_INPUT / f"batch-{batch_size or 'any'}"
            form = converter_form(self.model, fuse_lstms=batch_size is not None)
            write_saved_model(form, self.card, directory, guard=False, batch_size=batch_size)
            self.inputs[batch_size] = directory
        return self.inputs[batch_size]


def signature(card, batch_size=None):
    """The serving signature's input spec and output name: the task's names for them."""
    task = tasks.get(card["task"])
    spec = tf.TensorSpec((batch_size, *card["input_shape"]), tf.float32, name=task.input_name)
    return spec, task.output_name


def write_saved_model(model, card, directory, guard=True, batch_size=None):
    """A SavedModel with one `serving_default` signature: named input, named output.

    A signature checks its inputs' dtype, not their shape: a wrong-rank input reaches the
    kernels, and some abort the serving process. With `guard`, an EnsureShape comes first, so
    a wrong shape is an InvalidArgumentError naming the expected one, and a sample holding a NaN
    or an infinity gets NaN outputs: TensorFlow's kernels (pooling, ReLU) can turn a NaN image
    into a confident answer, which a server must never return. (The copy that only feeds the
    TFLite converter goes without.) `batch_size` fixes the batch (None: any).
    """
    spec, output = signature(card, batch_size)

    def serve(x):
        if not guard:
            return {output: model(x, training=False)}
        x = tf.ensure_shape(x, spec.shape)
        y = model(x, training=False)
        invalid = tf.logical_not(tf.reduce_all(tf.math.is_finite(x), axis=range(1, x.shape.rank)))
        invalid = tf.reshape(invalid, [-1] + [1] * (y.shape.rank - 1))
        return {output: tf.where(invalid, tf.constant(np.nan, y.dtype), y)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.write_out(str(directory), verbose=False)


def saved_model_writer(job, path):
    write_saved_model(job.model, job.card, path)


def tflite_writer(variant):
    def write(job, path):
        batch_size = 1 if variant == "batch1" else None
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(job.converter_input(batch_size)), ["serving_default"]
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if variant not in ("float32", "batch1"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if variant in INTEGER_OPS:  # full integer, calibrated on the model's own training data
            if job.calibration is None:
                raise UsageError(f"the tflite_{variant} format needs calibration samples")
            converter.representative_dataset = job.calibration
            converter.target_spec.supported_ops = [INTEGER_OPS[variant]]
        flatbuffer = converter.convert()
        if variant == "batch1":
            flatbuffer = _without_cell_clip(flatbuffer)
        Path(path).write_bytes(flatbuffer)

    return write


def _without_cell_clip(flatbuffer):
    """The file with its fused LSTM ops' cell-state clip turned off, as Keras' LSTM has none.

    The converter's Keras-LSTM fusion (`lstm_utils.cc`) writes every fused op with
    `cell_clip=10`: the kernel then clips the cell state to ±10, which Keras never does. A
    trained row_rnn.lstm crosses 10 on a few images, and its batch-1 file departed from Keras by
    up to 1.4e-3 after that step (1,000 test images); with the clip off it matches to ~1e-6.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
    fused = {"UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM"}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) in fused:
                op.builtinOptions.cellClip = 0.0  # 0: no clip (TFLite's schema)
    return flatbuffer_utils.convert_object_to_bytearray(model)


def onnx_writer(job, path):
    """ONNX for users outside TensorFlow, converted by tf2onnx (LSTMs become ONNX `LSTM` ops)."""
    try:
        import tf2onnx
    except ImportError:
        raise ImportError(
            "the onnx format needs tf2onnx and onnxruntime: pip install 'kerasrv[onnx]'"
        ) from None
    card = job.card
    spec, output = signature(card)
    serve = tf.function(lambda x: {output: job.model(x, training=False)})
    tf2onnx.convert.from_function(
        serve, input_signature=(spec,), opset=ONNX_OPSET, output_path=str(path)
    )
