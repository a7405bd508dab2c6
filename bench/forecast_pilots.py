"""Short pilots of the forecasters' recipe, each from fresh weights, each a curve of validation
MSE against CPU hours (the curve the long runs are chosen from).

    .venv/bin/python bench/forecast_pilots.py p4 p8      # the variants named below, in order
    .venv/bin/python bench/forecast_pilots.py --record p8 "why"   # one stopped early

Each pilot registers a variant of convlstm_forecast.mfmnist (same data, recipe and width; one
thing changed), fits it as `kerasrv train` does under mixed_bfloat16, and writes its validation
curve (epoch, hours, val_loss) to bench/pilots/<variant>.json (the run itself goes to
/tmp/kerasrv-pilots). `bench/forecast_pilots.py --report` draws bench/forecast_curves.png from
those files and the shipped forecasters' cards.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PILOTS = HERE / "pilots"
RUNS = "/tmp/kerasrv-pilots"

# variant name → (changes to the entry's builder arguments, changes to its recipe, epochs)
# Every variant names its width: the entry has grown since the first pilots (2 → 4 layers), and
# a pilot compares with p8 only at p8's two.
_P8 = {"patch_size": 8, "filters": (64, 64)}
_P8_RECIPE = {"learning_rate": 1e-3, "teacher_forcing": (1.0, 0.25)}
VARIANTS = {
    "p4": ({**_P8, "patch_size": 4}, _P8_RECIPE, 2),
    "p8": (_P8, _P8_RECIPE, 6),
    # PredRNN-V2's reverse scheduled sampling over 0.2-0.4 of the run (OpenSTL's share of its
    # iterations): the given frames too are, early on, partly the model's own predictions
    "p8_reverse": (_P8, {**_P8_RECIPE, "reverse_sampling": (0.2, 0.4)}, 6),
    # one fixed set of training clips (the builder's, as `kerasrv train` makes for own data)
    # against clips drawn afresh every epoch (OpenSTL's Moving MNIST loader, and p8)
    "p8_fixed": (_P8, {**_P8_RECIPE, "fresh_clips": False}, 6),
    # a 5×5 kernel in every ConvLSTM (OpenSTL's ConvLSTM-S configs use 5×5)
    "p8_k5": ({**_P8, "kernel_size": 5}, _P8_RECIPE, 6),
}


def run(variant):
    import kerasrv
    from kerasrv import registry, training

    base = registry.get_entry("convlstm_forecast.mfmnist")
    args, recipe, epochs = VARIANTS[variant]
    name = f"convlstm_forecast.pilot_{variant}"
    registry.register(
        name,
        task=base.task,
        dataset=base.dataset,
        target=base.target,
        class_names=base.class_names,
        description=f"pilot {variant}",
        recipe=base.recipe.replace(**recipe, epochs=epochs),
        **{**base.args, **args},
    )
    del kerasrv
    # fitted only: the curve is the result (a pilot's test metrics would cost as long again)
    run = training.prepare(
        name,
        training.Settings(precision="mixed_bfloat16", verbose=2),
        out=RUNS,
        weights=None,
        overwrite=True,
        command=f"python bench/forecast_pilots.py {variant}",
    )
    with training.global_policy(run.settings.precision):
        training.fit_run(run)
    record(variant)


def record(variant, stopped=None):
    """Writes bench/pilots/<variant>.json from the pilot's log (a run stopped early too: its
    epochs so far, with `stopped` saying why)."""
    import datetime

    from kerasrv import registry
    from kerasrv.provenance import hardware
    from kerasrv.training.resume import curve

    log = Path(RUNS) / f"convlstm_forecast.pilot_{variant}" / "train" / "log.csv"
    args, recipe, epochs = VARIANTS[variant]
    base = registry.get_entry("convlstm_forecast.mfmnist")
    result = {
        "variant": variant,
        "builder_args": {**base.args, **args},
        "recipe": base.recipe.replace(**recipe, epochs=epochs).to_dict(),
        "monitor": "val_loss",
        "curve": curve(log, "val_loss"),
        "hardware": hardware(),
        "date": datetime.date.today().isoformat(),
    }
    if stopped:
        result["stopped"] = stopped
    PILOTS.mkdir(exist_ok=True)
    (PILOTS / f"{variant}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"variant": variant, "curve": result["curve"]}))


def report():
    """bench/forecast_curves.png: validation MSE (OpenSTL's, summed over a frame's pixels)
    against hours for every pilot and every leg of the shipped forecasters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kerasrv import artifacts
    from kerasrv.bench.history import PIXELS as pixels  # val_loss in OpenSTL's unit

    fig, ax = plt.subplots(figsize=(7, 4))
    for path in sorted(PILOTS.glob("*.json")):
        pilot = json.loads(path.read_text())
        hours = [h for _, h, _ in pilot["curve"]]
        ax.plot(hours, [v * pixels for *_, v in pilot["curve"]], "o-", label=f"pilot {path.stem}")
    drawn = set()  # a leg an attempt shares with the shipped model is drawn once
    for label, card in _forecaster_cards():
        offset = 0.0
        for leg in card["training"].get("legs") or []:
            key = (leg["command"], leg["wall_time_s"])
            if leg.get("curve") and leg["curve"][0][1] is not None and key not in drawn:
                drawn.add(key)
                hours = [offset + h for _, h, _ in leg["curve"]]
                values = [v * pixels for *_, v in leg["curve"]]
                # the pilots and most legs ran in bfloat16; a leg on a CPU without it says so
                precision = "" if leg["precision"] == "mixed_bfloat16" else f", {leg['precision']}"
                ax.plot(hours, values, "s-", label=f"{label} leg from {offset:.2f} h{precision}")
            offset += artifacts.leg_seconds(leg) / 3600
    ax.set_xlabel("hours on 2 CPU cores (bfloat16 unless a leg says otherwise)")
    ax.set_ylabel("validation MSE per frame")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = HERE / "forecast_curves.png"
    fig.savefig(out, dpi=110)
    print(out)


def _forecaster_cards():
    """(label, card) of each shipped forecaster, then of each forecaster's run kept in
    bench/attempts/ (a model since replaced, or a leg not shipped), labelled with its layers."""
    entries = ("convlstm_forecast.mfmnist", "predrnn.mfmnist")
    for entry in entries:
        yield entry, json.loads((HERE.parent / "models" / entry / "card.json").read_text())
    for path in sorted((HERE / "attempts").glob("*/card.json")):
        card = json.loads(path.read_text())
        if card.get("name") in entries:
            filters = card["builder_args"]["filters"]
            yield f"attempts/{path.parent.name} ({len(filters)}×{filters[0]})", card


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        report()
    elif sys.argv[1:2] == ["--record"]:  # a pilot stopped early: --record VARIANT "why"
        record(sys.argv[2], stopped=sys.argv[3])
    else:
        for variant in sys.argv[1:]:
            run(variant)
