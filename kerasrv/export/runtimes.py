"""Runtimes: each exported file run as a numpy → numpy function, for parity and for users."""

import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasrv.errors import UsageError
from kerasrv.export.writers import signature


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
    serving = tf.saved_model.load(str(directory)).signatures["serving_default"]
    spec, output = signature(card)

    def run(x):
        return serving(**{spec.name: tf.constant(x)})[output].numpy()

    run.signature = serving
    return run
