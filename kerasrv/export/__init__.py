"""Exports that deploy: a SavedModel for TF Serving and builtins-only TFLite files for LiteRT.

`export(model, card, formats, out)` takes a `keras.Model` however it was made (a zoo entry, a
re-headed or fine-tuned model, a run of `kerasrv train`) and the card that describes it. Every
export is one new version directory in TF Serving's layout, `<out>/<name>/<version>/`, holding
the files of the formats asked for, the model's `card.json` (its input, output and classes) and
`parity.json` (each format measured against Keras on the samples given). `kerasrv.export_model`
does what `kerasrv export` does from a zoo name, a run or a `.keras` file: this, with the
samples for calibration and parity read from the model's data, and the card's record.

The package is laid out as Keras' own `keras/src/export/`, one job a module:
- `forms`: the model the TFLite converter gets (recurrent layers unrolled, LSTMs fused);
- `writers`: each format's file; `runtimes`: each file run as a numpy function;
- `formats`: the table of formats (a new format is one row plus its writer and runtime);
- `parity`: every file measured against Keras, and the verdict;
- `publishing`: versions written under a staging name and renamed into place whole.

Example:
    >>> from kerasrv import export, zoo
    >>> model, card = zoo.resolve("cnn_lstm")
    >>> result = export.export(model, card, ("saved_model", "tflite"), out="export")
    >>> result["directory"]
    PosixPath('export/cnn_lstm.fmnist/1')
"""

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

from kerasrv import artifacts
from kerasrv.errors import UsageError
from kerasrv.export.formats import (
    CALIBRATION_SAMPLES,
    FORMATS,
    INTEGER_FORMATS,
    Format,
    check_formats,
    representative,
)
from kerasrv.export.forms import converter_form, unrolled
from kerasrv.export.parity import (
    PARITY_BATCH_SIZES,
    PARITY_FILE,
    PARITY_SAMPLES,
    measure,
    median_latency_ms,
    passes,
    summary,
)
from kerasrv.export.publishing import (
    LOCK_SUFFIX,
    STAGING,
    next_version,
    publish,
    saved_model_size,
    size,
    sweep_staging,
)
from kerasrv.export.runtimes import TFLiteModel, onnx_function, saved_model_function
from kerasrv.export.writers import CONVERTER_INPUT, INTEGER_OPS, Job, write_saved_model

DEFAULT_FORMATS = ("saved_model", "tflite")

__all__ = [
    "CALIBRATION_SAMPLES",
    "DEFAULT_FORMATS",
    "FORMATS",
    "INTEGER_FORMATS",
    "INTEGER_OPS",
    "LOCK_SUFFIX",
    "PARITY_BATCH_SIZES",
    "PARITY_FILE",
    "PARITY_SAMPLES",
    "STAGING",
    "Format",
    "TFLiteModel",
    "check_formats",
    "converter_form",
    "export",
    "median_latency_ms",
    "next_version",
    "onnx_function",
    "passes",
    "representative",
    "saved_model_function",
    "saved_model_size",
    "summary",
    "sweep_staging",
    "unrolled",
    "write_saved_model",
]


def _check_model_fits_card(model, card):
    for what, key in (("input", "input_shape"), ("output", "output_shape")):
        shape = tuple(getattr(model, key)[1:])
        if shape != tuple(card[key]):
            raise UsageError(
                f"the model's {what} shape is {shape}, but its card says {tuple(card[key])}: "
                f"export a model with the card that describes it"
            )


def export(
    model: keras.Model,
    card: artifacts.Card | dict,
    formats: Sequence[str] = DEFAULT_FORMATS,
    out: str | os.PathLike = "export",
    *,
    parity_data: tuple | None = None,
    calibration: Callable | None = None,
    progress: object | None = None,
) -> dict:
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
        job = Job(model, card, staging, calibration)
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
            sizes[name] = size(path) if path != staging else saved_model_size(staging)
        report = None
        if parity_data is not None:
            x, y = parity_data
            runners = {name: FORMATS[name].run(path, card) for name, path in files.items()}
            report = measure(model, card, runners, x, y, step=progress and progress.step)
            for name, size_bytes in sizes.items():
                report["formats"][name]["size_bytes"] = size_bytes
            (staging / PARITY_FILE).write_text(json.dumps(report, indent=1) + "\n")
        final = publish(staging, root, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        lock_path.unlink(missing_ok=True)
        lock.close()
    files = {name: final / path.relative_to(staging) for name, path in files.items()}
    return {"directory": final, "version": int(final.name), "files": files, "parity": report}
