"""What a run directory says of an interrupted run: its log, its best epoch so far, a backup that
needs mending, weights that load."""

import csv
import json
import math
import shutil
import warnings

FIT_DONE = "fit.json"  # in a run's checkpoints: fitting finished (the card may not be written yet)


def _log_rows(log_path, monitor):
    """(epoch, monitor value) of each complete row of a run's CSV log.

    A process killed while CSVLogger wrote leaves a partial last row; it is skipped.
    """
    if not log_path.exists():
        return []
    rows = []
    with open(log_path) as f:
        for row in csv.DictReader(f):
            try:
                rows.append((int(row["epoch"]) + 1, float(row[monitor])))
            except (KeyError, TypeError, ValueError):
                continue
    return rows


def curve(log_path, monitor):
    """[[epoch, hours since the run began, monitor value], ...] from a run's CSV log; the hours
    are None where the log has no `epoch_seconds` (runs logged before it was added)."""
    if not log_path.exists():
        return []
    points, hours = [], 0.0
    with open(log_path) as f:
        for row in csv.DictReader(f):
            try:
                epoch, value = int(row["epoch"]) + 1, float(row[monitor])
            except (KeyError, TypeError, ValueError):
                continue
            try:
                hours += float(row["epoch_seconds"]) / 3600
                when = round(hours, 4)
            except (KeyError, TypeError, ValueError):
                when = hours = None
            points.append([epoch, when, value])
    return points


def _best_so_far(log_path, monitor, mode):
    """The best value of `monitor` in an earlier (interrupted) run's CSV log, or None."""
    values = [v for _, v in _log_rows(log_path, monitor) if math.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def _mend_backup(backup):
    """Makes an interrupted run's backup loadable, whatever moment the run was killed at.

    BackupAndRestore keeps the previous epoch's files beside the last ones (double_checkpoint)
    and falls back to them when the last weights do not load; a training-metadata file cut
    short by the kill is the one case it does not handle, so the previous pair is put back.
    Returns whether a backup is left to resume from.
    """
    metadata = backup / "training_metadata.json"
    previous = backup / "training_metadata.json.bkp"
    if not metadata.exists():
        return backup.exists()
    try:
        json.loads(metadata.read_text())
        return True
    except ValueError:
        pass
    weights_before = backup / "latest.weights.h5.bkp"
    if previous.exists() and weights_before.exists():
        shutil.copy(previous, metadata)
        shutil.copy(weights_before, backup / "latest.weights.h5")
        return True
    shutil.rmtree(backup)
    return False


def _loads(model, path):
    """Whether a weights file loads into the model (a checkpoint cut short by a kill does not)."""
    try:
        with warnings.catch_warnings():
            # The file holds the optimizer's state too, which an unbuilt optimizer cannot take;
            # BackupAndRestore puts that state back when fit starts, so Keras' warning misleads.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model.load_weights(path)
        return True
    except Exception:
        return False


def _epochs_run(log_path, monitor, mode):
    """Epochs run (resumed runs included) and the best one, from the run's CSV log."""
    rows = _log_rows(log_path, monitor)
    pick = max if mode == "max" else min
    best = pick(rows, key=lambda row: row[1])[0] if rows else None
    return {"epochs_run": len(rows), "best_epoch": best}
