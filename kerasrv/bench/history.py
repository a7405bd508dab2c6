"""What was measured and not shipped: the recipes each entry's card lists as attempts, the legs
the forecasters' weights went through, and the findings kept in `bench/findings.md` (measured
experiments that have no card to live on). The benchmark report prints them, so the history of a
result lives in cards and in BENCHMARKS.md, not in code comments."""

import dataclasses
import json
from pathlib import Path

from kerasrv import artifacts, registry, tasks, zoo

BENCH = Path(__file__).resolve().parents[2] / "bench"
FINDINGS = BENCH / "findings.md"
PICTURES = BENCH / "forecast"  # of the shipped forecasters' weights
PILOTS = BENCH / "pilots"  # short recipe pilots from fresh weights (bench/forecast_pilots.py)
BASELINE_PILOT = "p8"  # the one the others change one thing of
PIXELS = 64 * 64  # val_loss is a mean over a frame's pixels; OpenSTL's MSE sums them


def recipes_tried_lines():
    """A table per entry whose card lists attempts: each recipe tried, its test metric, epochs
    and what it tried, beside the shipped weights' metric (an attempt on another dataset than
    the card's names it: its metric is of that dataset's test split)."""
    lines = []
    for name in zoo.list_models():
        card = zoo.info(name)
        if not card.attempts:
            continue
        metric = tasks.get(card.task).headline
        shipped = card.metrics.get(metric)
        lines += [
            f"### {name}: shipped {metric} {shipped:.4f}" if shipped is not None else f"### {name}",
            "",
            f"| {metric} | epochs | date | what it tried | command |",
            "|---|---|---|---|---|",
        ]
        for attempt in card.attempts:
            value = f"{attempt['metrics'].get(metric):.4f}"
            if attempt.get("dataset", card.dataset) != card.dataset:  # another test split
                value += f" on {attempt['dataset']}"
            lines.append(
                f"| {value} | {attempt['epochs']} | {attempt['date'][:10]} | "
                f"{attempt.get('note') or '—'} | `{attempt['command']}` |"
            )
        lines.append("")
    if not lines:
        return []
    return [
        "## Recipes tried and not shipped",
        "",
        "From each entry's card (`attempts`, written by `kerasrv train ... --record-attempt`); "
        "metrics on the test split.",
        "",
        *lines,
    ]


def findings_lines():
    """`bench/findings.md`, measured experiments with no card to live on, as it is."""
    if not FINDINGS.exists():
        return []
    return [FINDINGS.read_text().rstrip(), ""]


def history_lines():
    return recipes_tried_lines() + findings_lines()


def forecaster_leg_lines():
    """The legs each forecaster's weights went through, and the recipe pilots' curves."""
    rows = []
    for name in zoo.list_models():
        card = zoo.info(name)
        if card.task != "video_prediction" or not card.training:
            continue
        for i, leg in enumerate(card.training.get("legs") or [], 1):
            curve = [v for *_, v in leg.get("curve") or []]
            best = f"{min(curve) * 64 * 64:.1f}" if curve else "—"
            rows.append(
                f"| {name} | {i} | {leg['epochs_run']} | {artifacts.leg_seconds(leg) / 3600:.2f} | "
                f"{leg['precision']} | {leg.get('hardware', 'not recorded')} | {best} | "
                f"`{leg['command']}` |"
            )
    if not rows:
        return []
    return [
        "### How the forecasters were trained: legs and curves",
        "",
        "Each leg starts from the weights the last one shipped, with a fresh optimizer and "
        "schedule (`training.legs` on the card); the best validation MSE of a leg is on the "
        "1,000 validation clips, in OpenSTL's unit. `bench/forecast_curves.png` "
        "(`python bench/forecast_pilots.py --report`) draws each leg's validation curve against "
        "hours beside the recipe pilots (`bench/pilots/`, each from fresh weights; one thing "
        "changed, the rest as the entry's recipe at Adam 1e-3) and the forecasters' runs kept "
        "in `bench/attempts/` (a leg not shipped, a model since replaced; labelled with their "
        "layers). Hours are wall time: a run that "
        "shared the cores looks slower than it is (each epoch's seconds are in the pilot's "
        "file and the leg's curve).",
        "",
        "| entry | leg | epochs | hours | precision | hardware | best val MSE | command |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "![validation MSE against hours](forecast_curves.png)",
        "",
        *pilot_lines(),
        *(
            line
            for name in ("convlstm_forecast.mfmnist", "predrnn.mfmnist")
            if (PICTURES / name / "mse_per_frame.png").exists()
            for line in (
                f"{name} on the first 1,000 test clips "
                f"(`kerasrv evaluate {name} --split 'test[:1000]' --out bench/forecast`): the "
                "MSE of each predicted frame beside copying the last given frame, and three "
                "clips (given and true frames above, predicted below).",
                "",
                f"![{name}: MSE per predicted frame](forecast/{name}/mse_per_frame.png)",
                f"![{name}: three test clips](forecast/{name}/predictions.png)",
                "",
            )
        ),
    ]


def _changes(pilot, baseline):
    """What a pilot sets that the baseline pilot does not (builder arguments, then recipe).
    A recipe key one of them did not record (it came into the recipe between them) ran at its
    default; every pilot fits under mixed_bfloat16 whatever its recipe says, for its epochs."""
    defaults = {
        "builder_args": {},
        "recipe": {f.name: f.default for f in dataclasses.fields(registry.Recipe)},
    }
    changed = []
    for part in ("builder_args", "recipe"):
        mine, theirs = pilot[part], baseline[part]
        for key in sorted(set(mine) | set(theirs)):
            default = defaults[part].get(key)
            value, other = mine.get(key, default), theirs.get(key, default)
            if key not in ("epochs", "precision") and value != other:
                changed.append(f"{key}={value}")
    return ", ".join(changed) or "— (the baseline)"


def pilot_lines():
    """A table of the recipe pilots: what each changes from the baseline pilot (from their
    files), its validation MSE after each epoch, its hours, and the date and machine it ran on."""
    pilots = {p.stem: json.loads(p.read_text()) for p in sorted(PILOTS.glob("*.json"))}
    baseline = pilots.get(BASELINE_PILOT)
    if not baseline:
        return []
    rows = []
    for name, pilot in pilots.items():
        curve = pilot["curve"]
        values = ", ".join(f"{v * PIXELS:.1f}" for *_, v in curve)
        stopped = f" (stopped: {pilot['stopped']})" if pilot.get("stopped") else ""
        rows.append(
            f"| {name} | {_changes(pilot, baseline)} | {values}{stopped} | {curve[-1][1]:.2f} | "
            f"{pilot['date']}, {pilot['hardware']} |"
        )
    return [
        f"Recipe pilots (`bench/pilots/`), each from fresh weights, each changing one thing of "
        f"pilot {BASELINE_PILOT} (2×ConvLSTM(64) on 8×8 patches, Adam 1e-3 on a cosine, "
        "scheduled sampling from 1 over a quarter of the run, clips drawn afresh every epoch). "
        "Validation MSE per frame after each epoch, OpenSTL's unit; hours are wall time, "
        "comparable between pilots of one date and machine.",
        "",
        "| pilot | what it changes | validation MSE after each epoch | hours | run on |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
