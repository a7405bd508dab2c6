"""`export_model`: what `kerasrv export` does, as one call — a model from a zoo name, a run
directory, a `.keras` file or memory, exported (`kerasrv.export`) with calibration and parity
samples read from its own data, and the parity summary recorded on its card when asked.

It sits above `kerasrv.export`, which takes a model and a card and reads no data (an export
works for a model however it was trained); this module knows where a model's data lives.

Example:
    >>> import kerasrv
    >>> result = kerasrv.export_model("cnn_lstm", ("saved_model", "tflite"), "export")
    >>> result["directory"], result["parity"]["formats"]["tflite"]["passes"]
    (PosixPath('export/cnn_lstm.fmnist/1'), True)
"""

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

from kerasrv import artifacts, data, export, zoo
from kerasrv.artifacts import Card
from kerasrv.errors import UsageError
from kerasrv.progress import Progress


def export_model(
    target: str | os.PathLike | keras.Model,
    formats: Sequence[str] = export.DEFAULT_FORMATS,
    out: str | os.PathLike = "export",
    *,
    card: Card | None = None,
    parity_samples: int = export.PARITY_SAMPLES,
    parity_data: tuple | None = None,
    calibration: Callable | None = None,
    record: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Exports a model as `kerasrv export` does.

    Args:
        target: a zoo name, a run directory of `kerasrv train`, a `.keras` file, or a
            `keras.Model` (with `card`).
        formats: names from `kerasrv.export.FORMATS`.
        out: the export root; the version goes to `<out>/<card name>/<next version>/`.
        card: the card of a `keras.Model` target (`kerasrv.zoo.describe` makes one).
        parity_samples: test samples of the model's data that parity is measured on (0: none).
        parity_data: (inputs, targets) arrays to measure parity on instead (a model whose
            data is in memory, not on its card).
        calibration: the full-integer formats' calibration (`kerasrv.export.representative`);
            default: `kerasrv.export.CALIBRATION_SAMPLES` of the model's training data.
        record: write the parity summary into the card beside the model's weights (a zoo name
            or a run directory), under `exports`.
        progress: a `kerasrv.progress.Progress` told each step as it starts, made with
            `progress_steps(formats, parity_samples)` steps.

    Returns:
        `kerasrv.export.export`'s dict, plus `recorded` (the card written, or None).

    Raises:
        UsageError: an unknown format, or `record` for a model with no card on disk.
    """
    formats = export.check_formats(formats)
    if card is None:
        model, card = zoo.resolve(target)
    else:
        model = target
    record_in = None
    if record:
        weights = card.get("weights") or {}
        if not weights.get("path"):
            raise UsageError(
                "--record writes into a trained model's card: give a zoo name or a run directory"
            )
        record_in = Path(weights["path"]).parent
    if parity_data is None and parity_samples:
        parity_data = data.arrays(card, f"test[:{parity_samples}]")
    if calibration is None and set(formats) & set(export.INTEGER_FORMATS):
        samples, _ = data.arrays(card, f"train[:{export.CALIBRATION_SAMPLES}]")
        calibration = export.representative(samples)
    result = export.export(
        model,
        card,
        formats,
        out,
        parity_data=parity_data,
        calibration=calibration,
        progress=progress,
    )
    result["recorded"] = None
    if record_in is not None:
        command = f"kerasrv export {target} --format {','.join(formats)} --record"
        result["recorded"] = artifacts.update_record(
            record_in, "exports", export.summary(result, command)
        )
    return result


def progress_steps(formats, parity_samples=export.PARITY_SAMPLES):
    """The steps of an export: each format written, then each measured (with parity)."""
    return len(tuple(formats)) * (2 if parity_samples else 1)
