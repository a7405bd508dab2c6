"""The formats, one table: a file name, a writer, a runtime, and what passes parity. A new format
is one row here plus its writer (`kerasrv.export.writers`) and runtime
(`kerasrv.export.runtimes`)."""

import dataclasses

import numpy as np

from kerasrv.errors import UsageError
from kerasrv.export.runtimes import TFLiteModel, onnx_function, saved_model_function
from kerasrv.export.writers import INTEGER_OPS, onnx_writer, saved_model_writer, tflite_writer

CALIBRATION_SAMPLES = 200  # training samples that calibrate the full-integer file's ranges


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
        why_it_may_fail: what a card says of a file of this format that misses its bar.
    """

    name: str
    file: str
    write: object
    run: object
    max_abs_diff: float | None
    why_it_may_fail: str | None = None


def _tflite_runner(path, card=None):
    return TFLiteModel(path)


FORMATS = {
    f.name: f
    for f in (
        Format("saved_model", "", saved_model_writer, saved_model_function, 1e-5),
        Format("tflite", "model.tflite", tflite_writer("float32"), _tflite_runner, 1e-4),
        # float32 at a fixed batch of 1, for on-device use: the form whose LSTMs the converter
        # fuses into UNIDIRECTIONAL_SEQUENCE_LSTM (`converter_form`); `TFLiteModel` feeds it
        # larger batches one sample at a time.
        Format(
            "tflite_batch1", "model.batch1.tflite", tflite_writer("batch1"), _tflite_runner, 1e-4
        ),
        Format(
            "tflite_dynamic",
            "model.dynamic.tflite",
            tflite_writer("dynamic"),
            _tflite_runner,
            None,
        ),
        Format(
            "tflite_float16",
            "model.float16.tflite",
            tflite_writer("float16"),
            _tflite_runner,
            None,
        ),
        Format(
            "tflite_int8",
            "model.int8.tflite",
            tflite_writer("int8"),
            _tflite_runner,
            None,
            "a recurrent state kept in 8 bits drifts over the time steps (bench/findings.md); "
            "tflite_int16x8 is the integer file that holds it",
        ),
        Format(
            "tflite_int16x8",
            "model.int16x8.tflite",
            tflite_writer("int16x8"),
            _tflite_runner,
            None,
        ),
        Format("onnx", "model.onnx", onnx_writer, onnx_function, 1e-4),
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
