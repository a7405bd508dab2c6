"""What a finished run writes: the trained model measured on the test split, its float32
weights, and its card (how it was made, the legs of a warm-restarted model)."""

import datetime
from pathlib import Path

from kerasrv import artifacts, evaluation, registry, tasks
from kerasrv import data as data_module
from kerasrv.provenance import hardware, versions
from kerasrv.training.resume import _epochs_run, curve
from kerasrv.training.run import CHECK_EXAMPLES, CHECK_SPLIT


def write_artifacts(run, model, dist, wall_time, resumed_at=0):
    """Measures the trained model and writes its weights and card into the run directory.

    The weights are saved in float32 whatever the training precision; the card holds the
    metrics on the test split, a fixed subset a test re-measures, and how the run was made.
    The card is written last: a run directory with a card is a finished run.
    """
    card = run.card
    clean = registry.get_architecture(card.architecture)(**card.builder_args)  # float32
    clean.set_weights(model.get_weights())
    tasks.get(card.task).compile(clean)
    measured = evaluation.evaluate(clean, card, data_dir=run.data_dir, frames=run.frames)
    check_split = _check_split(card, run.data_dir)
    check = evaluation.evaluate(
        clean, card, split=check_split, data_dir=run.data_dir, frames=run.frames
    )
    monitor, mode = tasks.get(card.task).monitor
    ran = _epochs_run(run.checkpoints / "log.csv", monitor, mode)
    weights = artifacts.save_weights(clean, run.directory)
    card = card.replace(
        params=int(clean.count_params()),
        weights=weights,
        metrics=measured["metrics"],
        evaluation={
            **{k: v for k, v in measured.items() if k not in ("metrics", "pictures")},
            "command": f"kerasrv evaluate {run.directory}",
        },
        # A fixed subset a test re-measures, so a card can never drift from its weights.
        check={"split": check_split, "metrics": check["metrics"]},
        training={
            "run": run.name,
            "command": run.command,
            "seed": run.settings.seed,
            "epochs": run.epochs,
            **ran,
            "batch_size": run.batch_size,
            "augment": run.augment,
            "label_smoothing": run.label_smoothing,
            "weight_decay": run.weight_decay,
            "ema_momentum": run.ema_momentum,
            "learning_rate": run.learning_rate,
            "started_from": _started_from(run),
            "monitor": monitor,
            "curve": curve(run.checkpoints / "log.csv", monitor),
            "precision": run.settings.precision,
            "strategy": type(dist).__name__,
            "replicas": dist.num_replicas_in_sync,
            "dataset": card.dataset,
            "train_split": run.train_split,
            "validation_split": run.validation_split,
            **({"time_budget_h": run.settings.hours} if run.settings.hours else {}),
            "wall_time_s": round(wall_time, 1),
            "wall_time_covers": (
                f"epochs {resumed_at + 1}-{ran['epochs_run']}" if resumed_at else "the run"
            ),
            "hardware": hardware(),
            "versions": versions(),
            "date": datetime.date.today().isoformat(),
        },
    )
    card = card.replace(training={**card.training, **_legs(run, card.training)})
    artifacts.write_card(run.directory, card)
    return card


def naming_dataset(record, training):
    """A leg, attempt or baseline from a card's history, naming the dataset it was measured
    on: one recorded before records named theirs ran on the dataset of the card it is on
    (`training`, that card's training), as an entry's dataset never changed until then."""
    return {"dataset": training.get("dataset"), **record}


def _leg(training):
    """One leg of a model's training, as the legs of a warm-restarted model list it."""
    keys = (
        "command",
        "started_from",
        "dataset",  # a warm restart may fine-tune on another dataset than its earlier legs
        "epochs",
        "epochs_run",
        "batch_size",
        "learning_rate",
        "time_budget_h",
        "wall_time_s",
        "precision",
        "hardware",  # legs of one model run on whatever machine each sitting has
        "date",
        "monitor",
        "curve",
    )
    return {key: training[key] for key in keys if key in training}


def _legs(run, training):
    """Every leg the weights went through, when the run warm-restarts a trained model.

    Training that outlives its machine (a run cut off every few hours, continued on another)
    goes in legs: each starts from the weights the last one shipped, with a fresh optimizer
    and schedule. When the weights a run starts from sit beside the card that made them (a
    shipped entry, a run directory), that card's legs come before this one, and the card sums
    the epochs and hours of all of them.
    """
    earlier = []
    if run.start_from is not None:
        source = (
            artifacts.models_dir() / run.entry.name
            if run.start_from == "default"
            else Path(run.start_from).parent
        )
        weights = source / artifacts.WEIGHTS_FILE
        try:
            before = artifacts.read_json(source / artifacts.CARD_FILE)
        except artifacts.CardError:
            before = None
        made_here = (
            before is not None
            and weights.exists()
            and (run.start_from == "default" or Path(run.start_from).name == weights.name)
            and (before.get("weights") or {}).get("sha256") == artifacts.sha256(weights)
            and isinstance(before.get("training"), dict)
        )
        if made_here:
            legs = before["training"].get("legs") or [_leg(before["training"])]
            earlier = [naming_dataset(leg, before["training"]) for leg in legs]
    legs = [*earlier, _leg(training)]
    return {
        "legs": legs,
        "epochs_total": sum(leg.get("epochs_run") or 0 for leg in legs),
        "wall_time_total_s": round(sum(artifacts.leg_seconds(leg) for leg in legs), 1),
    }


def _check_split(card, data_dir):
    """The fixed test subset a card's check holds: the first 500 examples, or the whole test
    split of a smaller dataset (tfds refuses a slice past a split's end; a folder's is clamped)."""
    if card.data is None:
        _, info = data_module.load_split(card.dataset, "test", data_dir)
        if info.splits["test"].num_examples < CHECK_EXAMPLES:
            return "test"
    return CHECK_SPLIT


FRESH = "fresh weights"


def _started_from(run):
    """What the run's weights started as; a file is named with its sha256, which outlives the
    path (a warm restart from an entry's earlier weights stays traceable after they change)."""
    if run.start_from is None:
        return FRESH
    if run.start_from == "default":  # the sha256 tells a later `ship` the run continues them
        weights = artifacts.shipped(run.entry.name) / artifacts.WEIGHTS_FILE
        return f"{run.entry.name} (sha256 {artifacts.sha256(weights)})"
    return f"{run.start_from} (sha256 {artifacts.sha256(run.start_from)})"
