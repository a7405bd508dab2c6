"""Runs recorded on a shipped entry's card: attempts (recipes tried and not shipped) and
baselines (what a single frame tells)."""

from pathlib import Path

from kerasrv import artifacts
from kerasrv.errors import UsageError
from kerasrv.training.results import FRESH


def refuse_recording_on_itself(entry_name, run_directory):
    """Raises ValueError when `run_directory` is the shipped entry's own directory: a run
    recorded on the shipped card (`--record-attempt`, `--record-baseline`) must train elsewhere.
    The CLI calls it before training, so the refusal costs nothing."""
    shipped = artifacts.shipped(entry_name)
    if shipped is not None and shipped.resolve() == Path(run_directory).resolve():
        raise UsageError(
            f"{run_directory} is the shipped {entry_name} itself: a run recorded on its card "
            f"trains into another --out"
        )


def _shipped_record(card, run_directory, what):
    directory = artifacts.shipped(card.name)
    if directory is None:
        raise artifacts.WeightsError(f"{card.name} ships no card to record {what} in")
    refuse_recording_on_itself(card.name, run_directory)
    return directory, artifacts.read_record(directory)


def _run_summary(card):
    return {
        "metrics": card.metrics,
        "command": card.training["command"],
        "epochs": card.training["epochs"],
        "date": card.training["date"],
    }


def record_baseline(card, run_directory, name="single_frame"):
    """Writes a `--frames` run's metrics into the shipped entry's card, under `baselines`.

    The card of `lrcn.motion` carries what the same encoder reaches from a single frame, so the
    claim that motion needs the sequence rests on two measured numbers.
    """
    directory, record = _shipped_record(card, run_directory, "a baseline")
    baselines = dict(record.get("baselines") or {})
    baselines[name] = _run_summary(card)
    return artifacts.update_record(directory, "baselines", baselines)


def record_attempt(card, run_directory, note=None):
    """Appends a run's test metrics and how it was made to the shipped entry's `attempts`.

    An entry that misses its target says what else was tried and measured: each recipe run
    with `kerasrv train ... --record-attempt` (into a directory other than the shipped one)
    leaves its metrics, command, epochs and wall time on the shipped card, the weights it
    started from (by sha256) and, given `note`, what the recipe tried, in words.
    """
    directory, record = _shipped_record(card, run_directory, "an attempt")
    attempt = {
        **_run_summary(card),
        # the command alone does not say what the recipe and builder were at the time
        "builder_args": card.builder_args,
        "augment": card.training["augment"],
        **{
            k: card.training[k]
            for k in ("label_smoothing", "weight_decay", "ema_momentum")
            if card.training.get(k)
        },
        "best_epoch": card.training["best_epoch"],
        "wall_time_s": card.training["wall_time_s"],
        "hardware": card.training["hardware"],
        **(
            {"started_from": card.training["started_from"]}
            if card.training.get("started_from", FRESH) != FRESH
            else {}
        ),
        **({"note": note} if note else {}),
    }
    attempts = [a for a in record.get("attempts") or [] if a["command"] != attempt["command"]]
    return artifacts.update_record(directory, "attempts", [*attempts, attempt])
