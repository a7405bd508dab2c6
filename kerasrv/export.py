"""Exports that deploy: a SavedModel for TF Serving and builtins-only TFLite files for LiteRT.

`export(model, card, formats, out)` takes a `keras.Model` however it was made (a zoo entry, a
re-headed or fine-tuned model, a run of `kerasrv train`) and the card that describes it. Every
export is one new version directory in TF Serving's layout, `<out>/<name>/<version>/`, holding
the files of the formats asked for, the model's `card.json` (its input, output and classes) and
`parity.json` (each format measured against Keras on the samples given). It is written under a
staging name and renamed into place when complete, so a server never sees a partial version and
an existing version is never touched; the staging folder of an export that was killed is swept
by the next export of the same model.

Formats are one table, `FORMATS`: a file name, a writer and a runner, and what passes parity.
A new format is one row plus its writer and runner.

Recurrent layers are why TFLite export usually fails: a Keras LSTM is a `while` loop over a
TensorList, which the converter turns into Flex ops (not runnable by the LiteRT interpreter) or
refuses with a dynamic batch. The TFLite files here are converted from a copy of the model whose
recurrent layers are unrolled (same weights; the time steps are static in every entry), which
leaves only builtin ops and keeps the batch dynamic.

Example:
    >>> from kerasrv import export, zoo
    >>> model, card = zoo.resolve("cnn_lstm")
    >>> result = export.export(model, card, ("saved_model", "tflite"), out="export")
    >>> result["directory"]
    PosixPath('export/cnn_lstm.fmnist/1')
"""

import dataclasses
import fcntl
import json
import os
import shutil
import threading
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras.src.models.functional import Functional

from kerasrv import artifacts, tasks
from kerasrv.errors import UsageError
from kerasrv.layers import (
    FoldedDense,
    FusedBidirectionalLSTM,
    FusedLSTM,
    StaticFlatten,
    SubPixelConv2DTranspose,
    UnrolledBidirectionalLSTM,
    UnrolledConvLSTM2D,
    UnrolledGRU,
    UnrolledLSTM,
)

# The two full-integer files, both with int8 weights, by activation width. `tflite_int8` (int8
# activations) runs on TFLite's optimised integer kernels: 0.29–0.90× float32's batch-1 latency.
# A recurrent state kept in 8 bits drifts over the time steps, though: on 1,000 test samples
# row_rnn.lstm and row_rnn.peephole agree with Keras on 0.970 and 0.969 of top-1 answers, under
# the 0.99 bar; row_rnn.gru (0.992), renet (0.993) and convlstm_seg (0.954 mask IoU) sit just
# over theirs. `tflite_int16x8` (TFLite's 16x8 mode, int16 activations) holds it (0.994–0.999,
# 0.985) at 3–14× the float32 latency: its int16 kernels are reference code.
# The fast file is the one called int8; the exact one is there for integer-only hardware.
# Measured and not shipped: clipping row_rnn.lstm's cell state (|c| reaches 17-21, p99 4-8) to a
# narrower range before int8 calibration: ±8 agrees 0.979, ±4 0.978 (its float file alone
# already 0.988), ±2 0.952, so the cell state's range is not what costs int8 its agreement.
# TFLite's quantization debugger finds no one tensor to blame either: each op's own error is at
# rounding level (median rmse/scale 0.28; the worst, the second LSTM's tanh outputs, 0.45). The
# lost agreement is rounding drift accumulated over 2 × 28 steps.
# Measured and not shipped: the fused LSTM op quantized to int8 (TFLite's integer LSTM kernel,
# which keeps the cell state in 16 bits) agrees 0.994 for row_rnn.lstm and 0.995 for cnn_lstm,
# but runs 6–26× slower than the unrolled int8 file at batch 1 (3.2 vs 0.13 ms, 0.94 vs 0.15 ms);
# in 16x8 mode the converter refuses it ("Quantization to 16x8-bit not yet supported for op:
# 'UNIDIRECTIONAL_SEQUENCE_LSTM'").
# (GRUs reach the converter as `kerasrv.layers.UnrolledGRU`, the form whose 16x8 file agrees.)
INTEGER_OPS = {
    "int8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
    "int16x8": tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
}
ONNX_OPSET = 17
CALIBRATION_SAMPLES = 200  # training samples that calibrate the full-integer file's ranges
PARITY_SAMPLES = 1000  # real test samples of a parity report
PARITY_FILE = "parity.json"
PARITY_BATCH_SIZES = (1, 7)
STAGING = ".partial-"  # staging folders are named .<version>.partial-<token>
LOCK_SUFFIX = ".lock"  # and their export holds .<token>.lock
CONVERTER_INPUT = ".converter-input"  # inside the staging folder: what the converters read


# --- the model the converters get ------------------------------------------------------------


def _unrolled_config(config, switches=("unroll",)):
    """The config with every one of these switches on, however deeply nested."""
    if isinstance(config, dict):
        return {
            k: True if k in switches else _unrolled_config(v, switches) for k, v in config.items()
        }
    if isinstance(config, list):
        return [_unrolled_config(v, switches) for v in config]
    return config


def unrolled(model, switches=("unroll",)):
    """The same model, same weights, with every recurrent layer unrolled (static time loops).

    Works on any functional model: every `unroll` setting in its config (LSTM, GRU, RNN cells,
    Bidirectional, ConvLSTM2D, kerasrv's ReNet) is switched on, and any other of `switches`.
    """
    copy = type(model).from_config(_unrolled_config(model.get_config(), switches))
    copy.set_weights(model.get_weights())
    return copy


def converter_form(model, fuse_lstms=False):
    """What the TFLite converter gets: the same model, same weights, in forms it converts well.

    Every recurrent layer is unrolled (`unrolled`), and these layers, at any depth (inside
    nested models and wrappers such as `FrameWise`), become forms with the same outputs:
    - GRUs become `UnrolledGRU`, the form whose full-integer quantization keeps the state;
    - LSTMs (alone or in a Bidirectional) and peephole LSTMs become `UnrolledLSTM`s; with
      `fuse_lstms`, LSTMs become `FusedLSTM`s instead, which the converter fuses into
      `UNIDIRECTIONAL_SEQUENCE_LSTM` when the batch is static, and layers with a `fused` switch
      (ReNet's LSTM sweeps) turn it on. (The converter has no such interface for GRUs or
      peephole cells: they stay unrolled in every file.);
    - ConvLSTM2D layers become `UnrolledConvLSTM2D`, Conv2DTranspose layers
      `SubPixelConv2DTranspose`, Dense layers on sequences or maps `FoldedDense`, and Flatten
      layers `StaticFlatten`.
    The unrolled forms read no shape at run time, so a file with a dynamic batch has static
    shapes once its batch is set (see `kerasrv.layers.static_shapes`), and make each step's
    input product part of one product over the sequence.
    A layer whose configuration has no such form stays Keras' (unrolled) layer.
    """
    switches = ("unroll", "fused") if fuse_lstms else ("unroll",)
    lstm_forms = (
        [(keras.layers.LSTM, FusedLSTM), (keras.layers.Bidirectional, FusedBidirectionalLSTM)]
        if fuse_lstms
        else [
            (keras.layers.LSTM, UnrolledLSTM),
            (keras.layers.Bidirectional, UnrolledBidirectionalLSTM),
        ]
    )
    # A Keras RNN around a peephole cell (which the fused op does not take: its peepholes are
    # kerasrv's weights) is unrolled in every file. After the LSTM and GRU forms: both are RNNs.
    lstm_forms.append((keras.layers.RNN, UnrolledLSTM))
    forms = [
        (keras.layers.GRU, UnrolledGRU),
        (keras.layers.ConvLSTM2D, UnrolledConvLSTM2D),
        (keras.layers.Conv2DTranspose, SubPixelConv2DTranspose),
        (keras.layers.Dense, FoldedDense),
        (keras.layers.Flatten, StaticFlatten),
        *lstm_forms,
    ]

    def replacement(layer):
        for keras_class, form in forms:
            if isinstance(layer, keras_class):
                return form.like(layer)  # None where the layer's configuration has no form
        return None

    return _rebuilt(model, replacement, switches)


def _rebuilt(model, replacement, switches):
    """A copy of a functional model whose layers are `replacement(layer)` where that is a layer.

    Nested functional models and wrappers (other than Bidirectional, which `replacement` sees
    whole) are rebuilt the same way, inside out; every other layer is rebuilt from its config
    with `switches` on and given the original's weights.
    """
    if not isinstance(model, (Functional, keras.Sequential)):  # subclassed: its config
        copy = type(model).from_config(_unrolled_config(model.get_config(), switches))
        copy.set_weights(model.get_weights())
        return copy
    rebuilt_from_config = []

    def convert(layer):
        new = replacement(layer)  # carries the layer's weights
        if new is not None:
            return new
        if isinstance(layer, keras.Model):
            return _rebuilt(layer, replacement, switches)
        if isinstance(layer, keras.layers.Wrapper) and not isinstance(
            layer, keras.layers.Bidirectional
        ):
            inner = convert(layer.layer)
            return type(layer)(
                inner, name=layer.name, dtype=layer.dtype_policy, trainable=layer.trainable
            )
        new = layer.__class__.from_config(_unrolled_config(layer.get_config(), switches))
        if isinstance(layer, keras.layers.Layer):  # not an op such as `x + 3.0`: no weights
            rebuilt_from_config.append((layer, new))
        return new

    copy = keras.models.clone_model(model, clone_function=convert)
    for old, new in rebuilt_from_config:  # built now, by the clone's calls
        new.set_weights(old.get_weights())
    return copy


# --- writers -------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Job:
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


def _signature(card, batch_size=None):
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
    spec, output = _signature(card, batch_size)

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


def _write_saved_model(job, path):
    write_saved_model(job.model, job.card, path)


def _tflite_writer(variant):
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


def _write_onnx(job, path):
    """ONNX for users outside TensorFlow, converted by tf2onnx (LSTMs become ONNX `LSTM` ops)."""
    try:
        import tf2onnx
    except ImportError:
        raise ImportError(
            "the onnx format needs tf2onnx and onnxruntime: pip install 'kerasrv[onnx]'"
        ) from None
    card = job.card
    spec, output = _signature(card)
    serve = tf.function(lambda x: {output: job.model(x, training=False)})
    tf2onnx.convert.from_function(
        serve, input_signature=(spec,), opset=ONNX_OPSET, output_path=str(path)
    )


# --- runners ------------------------------------------------------------------------------------


class TFLiteModel:
    """Runs an exported TFLite file with the LiteRT interpreter, checking the input first.

    Safe to share between threads (a web server's request threads): each thread runs its own
    interpreter of the file, made on its first call. A LiteRT interpreter is not thread-safe:
    one shared by 8 threads returned other requests' answers without an error, and crashed
    with mixed batch sizes. One interpreter behind a lock is safe too, but serialises the
    requests: 8 threads × 200 requests of 1–16 images (row_rnn.gru, 2 cores) took 5.7 s that
    way against 3.3–3.7 s with an interpreter per thread.

    A sample holding a NaN or an infinity gets NaN outputs, as the float files give: the
    integer files cannot represent a NaN and would answer anyway.

    Args:
        path: a `.tflite` file written by `export`.
        num_threads: threads of each interpreter (None: LiteRT's default).

    Example:
        >>> model = TFLiteModel("export/cnn_lstm.fmnist/1/model.tflite")
        >>> model(images).shape          # images: float32 (batch, 28, 28, 1) in [0, 1]
        (8, 10)
    """

    def __init__(self, path, num_threads=None):
        self.path = Path(path)
        self.num_threads = num_threads
        self._local = threading.local()
        runner = self.runner  # this thread's; it also reads the signature
        ((self.input_name, spec),) = runner.get_input_details().items()
        ((self.output_name, _),) = runner.get_output_details().items()
        self.input_shape = tuple(int(d) for d in spec["shape_signature"][1:])
        batch = int(spec["shape_signature"][0])
        self.batch_size = None if batch == -1 else batch  # a fixed-batch file's batch

    @property
    def interpreter(self):
        """This thread's LiteRT interpreter of the file."""
        if not hasattr(self._local, "interpreter"):
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
            interpreter.allocate_tensors()  # so that its variable tensors can be reset
            self._local.interpreter = interpreter
        return self._local.interpreter

    @property
    def runner(self):
        """This thread's signature runner (`serving_default`)."""
        if not hasattr(self._local, "runner"):
            self._local.runner = self.interpreter.get_signature_runner("serving_default")
        return self._local.runner

    def ops(self):
        """The set of operator names in the file (builtin ops only, for a kerasrv export)."""
        return {op["op_name"] for op in self.interpreter._get_ops_details()}

    def __call__(self, x):
        """Output for a batch `x`, float32 of shape (batch, *input_shape)."""
        x = np.asarray(x)
        expected = f"(batch, {', '.join(str(d) for d in self.input_shape)})"
        if x.ndim != len(self.input_shape) + 1:
            raise UsageError(
                f"{self.path.name} expects input of rank {len(self.input_shape) + 1}, shape "
                f"{expected}, got shape {x.shape}"
            )
        if tuple(x.shape[1:]) != self.input_shape:
            raise UsageError(f"{self.path.name} expects input of shape {expected}, got {x.shape}")
        if x.dtype != np.float32:
            raise TypeError(
                f"{self.path.name} expects float32 input in [0, 1], got dtype {x.dtype}"
            )
        invalid = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
        x = np.ascontiguousarray(x)
        if self.batch_size is None:
            y = self.runner(**{self.input_name: x})[self.output_name]
        elif len(x) % self.batch_size:
            raise UsageError(
                f"{self.path.name} takes batches of {self.batch_size}, got a batch of {len(x)}"
            )
        else:  # a fixed-batch file reads the batch a slice at a time
            y = np.concatenate(
                [
                    self._run_fixed(x[i : i + self.batch_size])
                    for i in range(0, len(x), self.batch_size)
                ]
            )
        if invalid.any():
            y = y.astype(np.float32)
            y[invalid] = np.nan
        return y

    def _run_fixed(self, x):
        # A fused LSTM op keeps its state in variable tensors that carry over from one
        # invocation to the next (TFLite's design for streaming): zero them for a new sample.
        self.interpreter.reset_all_variables()
        return self.runner(**{self.input_name: x})[self.output_name]


def onnx_function(path, card=None):
    """An ONNX file run by onnxruntime, as a numpy → numpy function."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]


def saved_model_function(directory, card):
    """The SavedModel's serving signature as a numpy → numpy function."""
    signature = tf.saved_model.load(str(directory)).signatures["serving_default"]
    spec, output = _signature(card)

    def run(x):
        return signature(**{spec.name: tf.constant(x)})[output].numpy()

    run.signature = signature
    return run


# --- the formats -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Format:
    """One export format.

    Attributes:
        name: what `--format` calls it.
        file: its path inside the version directory ("" for the directory itself).
        write: writer(job, path).
        run: runner(path, card) → a numpy → numpy function.
        max_abs_diff: for float formats, the largest absolute difference from Keras' outputs
            that passes parity; None for reduced-precision formats, which pass by the task's
            agreement measure (`kerasrv.tasks`).
    """

    name: str
    file: str
    write: object
    run: object
    max_abs_diff: float | None


def _tflite_runner(path, card=None):
    return TFLiteModel(path)


FORMATS = {
    f.name: f
    for f in (
        Format("saved_model", "", _write_saved_model, saved_model_function, 1e-5),
        Format("tflite", "model.tflite", _tflite_writer("float32"), _tflite_runner, 1e-4),
        # float32 at a fixed batch of 1, for on-device use: the form whose LSTMs the converter
        # fuses into UNIDIRECTIONAL_SEQUENCE_LSTM (`converter_form`); `TFLiteModel` feeds it
        # larger batches one sample at a time.
        Format(
            "tflite_batch1", "model.batch1.tflite", _tflite_writer("batch1"), _tflite_runner, 1e-4
        ),
        Format(
            "tflite_dynamic",
            "model.dynamic.tflite",
            _tflite_writer("dynamic"),
            _tflite_runner,
            None,
        ),
        Format(
            "tflite_float16",
            "model.float16.tflite",
            _tflite_writer("float16"),
            _tflite_runner,
            None,
        ),
        Format("tflite_int8", "model.int8.tflite", _tflite_writer("int8"), _tflite_runner, None),
        Format(
            "tflite_int16x8",
            "model.int16x8.tflite",
            _tflite_writer("int16x8"),
            _tflite_runner,
            None,
        ),
        Format("onnx", "model.onnx", _write_onnx, onnx_function, 1e-4),
    )
}


INTEGER_FORMATS = tuple(f"tflite_{variant}" for variant in INTEGER_OPS)  # need calibration


def check_formats(formats):
    """The formats as a tuple, after checking each is one of `FORMATS`.

    Raises:
        ValueError: none given, or an unknown one.
    """
    formats = tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UsageError(
            f"unknown export format(s) {', '.join(unknown) or '(none given)'}; expected some of "
            f"{', '.join(FORMATS)}"
        )
    return formats


def representative(samples):
    """The converter's calibration input from an array of samples: one sample per batch."""
    samples = np.asarray(samples, np.float32)
    return lambda: ([samples[i : i + 1]] for i in range(len(samples)))


# --- parity ------------------------------------------------------------------------------------


def _batched(run, x, batch_size):
    return np.concatenate([run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def median_latency_ms(run, sample, calls=30):
    """Median wall time of `calls` calls of `run(sample)` after one warm-up call, in ms."""
    run(sample)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(sample)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def passes(card, name, measured):
    """Whether a format's parity measurements pass (`Format.max_abs_diff`, the task's bar)."""
    batches = [v for k, v in measured.items() if k.startswith("batch_")]
    limit = FORMATS[name].max_abs_diff
    if limit is not None:
        return all(b["max_abs_diff"] <= limit for b in batches)
    task = tasks.get(card["task"])
    return all(task.agrees(b["agreement"]) for b in batches)


def parity(model, card, runners, x, y, *, batch_sizes=PARITY_BATCH_SIZES, step=None):
    """Measures each exported format against Keras on samples.

    Args:
        model: the Keras model that was exported.
        card: its card.
        runners: format name → numpy function running that artifact.
        x: input samples (real test samples: agreement on noise means little).
        y: their targets (next-frame agreement compares errors to the true frames).
        batch_sizes: batch sizes to run the artifacts at.
        step: called with what is measured next (a `kerasrv.progress.Progress`'s `step`).

    Returns:
        {"samples", "agreement_measure", "formats": {format: {"batch_<n>": {"max_abs_diff",
        "agreement"}, "latency_ms_batch_1", "passes"}}}.
    """
    task = tasks.get(card["task"])
    reference = _batched(lambda b: model.predict_on_batch(b), x, 64)
    report = {}
    for name, run in runners.items():
        if step:
            step(f"parity of {name}")
        entry = {}
        for batch_size in batch_sizes:
            predicted = _batched(run, x, batch_size)
            entry[f"batch_{batch_size}"] = {
                "max_abs_diff": float(np.abs(predicted - reference).max()),
                "agreement": task.agreement(reference, predicted, y, card["num_classes"]),
            }
        entry["latency_ms_batch_1"] = median_latency_ms(run, x[:1])
        entry["passes"] = passes(card, name, entry)
        report[name] = entry
    return {"samples": len(x), "agreement_measure": task.parity_measure, "formats": report}


def summary(result, command):
    """The short form of an export's parity report that a card records (its `exports`)."""
    report = result["parity"]
    formats = {}
    for name, m in report["formats"].items():
        batches = [v for k, v in m.items() if k.startswith("batch_")]
        formats[name] = {
            "size_bytes": m["size_bytes"],
            "max_abs_diff": max(b["max_abs_diff"] for b in batches),
            "agreement": min(b["agreement"] for b in batches),
            "latency_ms_batch_1": round(m["latency_ms_batch_1"], 3),
            "passes": m["passes"],
        }
    return {
        "samples": report["samples"],
        "agreement_measure": report["agreement_measure"],
        "command": command,
        "formats": formats,
    }


# --- versions, staging and the export itself -----------------------------------------------------


def next_version(directory):
    """The next integer version under a model's directory (1 when there is none)."""
    existing = [int(p.name) for p in Path(directory).glob("*") if p.name.isdigit()]
    return max(existing, default=0) + 1


def _size(path):
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sweep_staging(root):
    """Removes the staging folders (and lock files) of dead exports under a model's directory.

    An export takes an exclusive lock on its lock file `.<token>.lock` before it makes its
    staging folder `.<version>.partial-<token>`, and holds it until it has published or removed
    that folder; the kernel drops the lock when the process dies, however it dies. So a staging
    folder whose lock can be taken, or that has no lock file, is a dead export's.

    Returns:
        The folders removed.
    """
    root = Path(root)
    removed = []
    for folder in root.glob(f".*{STAGING}*"):
        lock_path = root / f".{folder.name.rpartition(STAGING)[2]}{LOCK_SUFFIX}"
        if lock_path.exists() and not _takeable(lock_path):
            continue  # a live export
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    # A lock file with no folder: an export that died after publishing or cleaning up. Only
    # old ones go: a new export creates its lock file an instant before it takes the lock.
    for lock_path in root.glob(f".*{LOCK_SUFFIX}"):
        if time.time() - lock_path.stat().st_mtime > 60 and _takeable(lock_path):
            lock_path.unlink(missing_ok=True)
    return removed


def _takeable(lock_path):
    try:
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _publish(staging, root, version):
    """Renames a finished staging directory to the next free version, atomically.

    A rename onto an existing version fails rather than overwrite it; another export that took
    the version first makes this one try the next.
    """
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the version from a server's user
    for _ in range(100):
        final = root / str(version)
        try:
            os.rename(staging, final)  # a server sees the whole version or none of it
            return final
        except OSError:
            if not final.exists():
                raise
            version = next_version(root)
    raise RuntimeError(f"no free version directory under {root}")


def _check_model_fits_card(model, card):
    for what, key in (("input", "input_shape"), ("output", "output_shape")):
        shape = tuple(getattr(model, key)[1:])
        if shape != tuple(card[key]):
            raise UsageError(
                f"the model's {what} shape is {shape}, but its card says {tuple(card[key])}: "
                f"export a model with the card that describes it"
            )


def export(
    model,
    card,
    formats=("saved_model", "tflite"),
    out="export",
    *,
    parity_data=None,
    calibration=None,
    progress=None,
):
    """Exports a model and measures every format against Keras.

    Args:
        model: the `keras.Model` to export.
        card: its card (`kerasrv.zoo.resolve` gives both; `kerasrv.zoo.describe` makes one for
            a re-headed model): the version goes under its name, the signature uses its input
            and output names.
        formats: names from `FORMATS`.
        out: the export root; the version goes to `<out>/<card name>/<next version>/`.
        parity_data: (inputs, targets) numpy arrays of real samples for `parity.json`; None
            measures no parity.
        calibration: a callable yielding [input batch] lists, for the full-integer formats
            (`INTEGER_FORMATS`).
        progress: a `kerasrv.progress.Progress` of 2 steps a format (written, then measured;
            one without parity_data), told each step as it starts.

    Returns:
        A dict: `directory` (the version directory), `version`, `files` (format → path) and
        `parity` (the report also written to `parity.json`, or None).
    """
    formats = check_formats(formats)
    _check_model_fits_card(model, card)
    root = Path(out) / card["name"]
    root.mkdir(parents=True, exist_ok=True)
    sweep_staging(root)
    version = next_version(root)
    token = os.urandom(6).hex()
    lock_path = root / f".{token}{LOCK_SUFFIX}"
    lock = open(lock_path, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # before the staging folder exists (see sweep_staging)
    staging = root / f".{version}{STAGING}{token}"
    try:
        staging.mkdir()
        job = _Job(model, card, staging, calibration)
        files, sizes = {}, {}
        for name in formats:
            fmt = FORMATS[name]
            if progress:
                progress.step(f"writing {name}")
            path = staging / fmt.file if fmt.file else staging
            fmt.write(job, path)
            files[name] = path
        shutil.rmtree(staging / CONVERTER_INPUT, ignore_errors=True)
        artifacts.write_card(staging, card)
        for name, path in files.items():
            sizes[name] = _size(path) if path != staging else _saved_model_size(staging)
        report = None
        if parity_data is not None:
            x, y = parity_data
            runners = {name: FORMATS[name].run(path, card) for name, path in files.items()}
            report = parity(model, card, runners, x, y, step=progress and progress.step)
            for name, size in sizes.items():
                report["formats"][name]["size_bytes"] = size
            (staging / PARITY_FILE).write_text(json.dumps(report, indent=1) + "\n")
        final = _publish(staging, root, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        lock_path.unlink(missing_ok=True)
        lock.close()
    files = {name: final / path.relative_to(staging) for name, path in files.items()}
    return {"directory": final, "version": int(final.name), "files": files, "parity": report}


def _saved_model_size(directory):
    """The SavedModel's own files: saved_model.pb, variables/ and assets/."""
    parts = ["saved_model.pb", "fingerprint.pb", "variables", "assets"]
    return sum(_size(directory / p) for p in parts if (directory / p).exists())
