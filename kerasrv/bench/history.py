"""What was measured and not shipped: the recipes each entry's card lists as attempts, the legs
the forecasters' weights went through, and the findings kept in `bench/findings.md` (measured
experiments that have no card to live on). The benchmark report prints them, so the history of a
result lives in cards and in BENCHMARKS.md, not in code comments."""

from pathlib import Path

from kerasrv import artifacts, tasks, zoo

BENCH = Path(__file__).resolve().parents[2] / "bench"
FINDINGS = BENCH / "findings.md"
PICTURES = BENCH / "forecast"  # of the shipped forecasters' weights


def recipes_tried_lines():
    """A table per entry whose card lists attempts: each recipe tried, its test metric, epochs
    and what it tried, beside the shipped weights' metric."""
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
            value = attempt["metrics"].get(metric)
            lines.append(
                f"| {value:.4f} | {attempt['epochs']} | {attempt['date'][:10]} | "
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
