"""Runs recorded on a shipped entry's card: attempts (recipes tried and not shipped) and
baselines (what a single frame tells)."""

from pathlib import Path

from kerasrv import artifacts
from kerasrv.errors import UsageError
from kerasrv.training.results import FRESH, naming_dataset


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


RECORDS = ("attempt", "baseline")  # what a run can be recorded as on its entry's shipped card


def check_record(name, record, *, out, frames=None, data=None, input_shape=None, note=None):
    """Refuses, before anything trains, a recording that cannot be made: a baseline of more than
    one frame, an attempt on other data or input than the entry's, a note without an attempt,
    or a run into the shipped entry's own directory.

    Args:
        name: the zoo entry trained.
        record: None, "attempt" or "baseline".
        out, frames, data, input_shape: the run's (`kerasrv.training.prepare`'s).
        note: what an attempt tried, in words.
    """
    from kerasrv import zoo
    from kerasrv.training.run import run_directory

    if record not in (None, *RECORDS):
        raise UsageError(f"a run is recorded as one of {', '.join(RECORDS)}, got {record!r}")
    if record == "baseline" and frames != 1:
        raise UsageError(
            "--record-baseline records a single-frame baseline: use it with --frames 1"
        )
    if record == "attempt" and (data or frames or input_shape):
        raise UsageError(
            "--record-attempt records a recipe for the entry's own dataset and input: it takes "
            "no --data, --frames or --input-shape"
        )
    if note and record != "attempt":
        raise UsageError("--note describes a recorded attempt: use it with --record-attempt")
    if record:
        entry = zoo.get_entry(name).name
        refuse_recording_on_itself(entry, run_directory(out, entry, frames))


def record_run(card, run_directory, record, note=None):
    """Records a finished run on its entry's shipped card as `record`; returns the card path."""
    if record == "baseline":
        return record_baseline(card, run_directory)
    return record_attempt(card, run_directory, note=note)


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
        "dataset": card.training["dataset"],  # whose test split the metrics are of
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
        # a time budget (--hours) can end a run before its planned epochs
        "epochs_run": card.training.get("epochs_run", card.training["epochs"]),
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


def ship(run_directory):
    """Makes a finished run of a zoo entry the entry's shipped weights and card.

    The run's weights and card replace the shipped ones; the shipped card's attempts and
    baselines stay. A run that did not start from the shipped weights (its legs do not list
    them) replaces a model, so the replaced model goes on the card as an attempt, with its
    metrics and how it was made. The card's export record is cleared: the new weights' files
    are re-exported and measured with `kerasrv export NAME --record`.

    Returns:
        The shipped directory.

    Raises:
        UsageError: not a finished run of a zoo entry, or one whose builder arguments differ
            from the entry's registration (change the registration first, so the entry builds
            the model these weights belong to).
    """
    from kerasrv import zoo

    run_directory = Path(run_directory)
    card = artifacts.read_card(run_directory)  # a finished run: its whole card
    artifacts.verified_weights(run_directory)
    try:
        entry = zoo.get_entry(card.name)
    except KeyError:
        raise UsageError(
            f"{run_directory} is a run of {card.name}, which is no zoo entry"
        ) from None
    if card.data is not None or entry.name != card.name:
        raise UsageError(f"{run_directory} was trained on other data than {entry.name}'s")
    registered = zoo.info(entry.name).builder_args
    differing = {
        k: (v, registered.get(k)) for k, v in card.builder_args.items() if registered.get(k) != v
    }
    if differing:
        shown = ", ".join(
            f"{k} {mine!r} where the entry has {theirs!r}"
            for k, (mine, theirs) in differing.items()
        )
        raise UsageError(
            f"{run_directory} was built with {shown}: change {entry.name}'s registration "
            f"first, so the entry builds the model these weights belong to"
        )
    directory = artifacts.models_dir() / entry.name
    if directory.resolve() == run_directory.resolve():
        raise UsageError(f"{run_directory} is the shipped {entry.name} itself")
    old = artifacts.read_record(directory) if artifacts.shipped(entry.name) else {}
    # what the replaced model was built with: its card's, or the registration's before this
    old_args = (
        artifacts.read_json(directory / artifacts.CARD_FILE).get("builder_args") or registered
        if old
        else None
    )
    made = old.get("training") or {}
    attempts = [naming_dataset(a, made) for a in old.get("attempts") or []]
    baselines = {k: naming_dataset(b, made) for k, b in (old.get("baselines") or {}).items()}
    earlier = [leg.get("started_from", "") for leg in (card.training or {}).get("legs") or []]
    old_sha = (old.get("weights") or {}).get("sha256")
    if old_sha and not any(old_sha in start for start in earlier):  # a model replaced
        attempts.append(
            {
                "metrics": old.get("metrics") or {},
                "command": made.get("command", "unknown"),
                "dataset": made.get("dataset"),
                "epochs": made.get("epochs_total", made.get("epochs")),
                "date": made.get("date", "unknown"),
                "builder_args": old_args,
                "wall_time_s": made.get("wall_time_total_s", made.get("wall_time_s")),
                "hardware": made.get("hardware"),
                "note": (
                    f"shipped until {card.training['date']}, replaced by "
                    f"`{card.training['command']}`"
                ),
            }
        )
    # a shipped card holds what was recorded; the rest follows from the entry's code
    recorded = {k: v for k, v in artifacts.card_json(card).items() if k in artifacts.RECORDED}
    recorded.update(attempts=attempts or None, baselines=baselines or None, exports=None)
    shipped_card = {"name": entry.name, **recorded}
    artifacts.write_atomically(
        directory / artifacts.WEIGHTS_FILE, (run_directory / artifacts.WEIGHTS_FILE).read_bytes()
    )
    artifacts.write_json(directory / artifacts.CARD_FILE, shipped_card)
    return directory
