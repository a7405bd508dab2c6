"""bfloat16 against float32 on this CPU: training samples/s of every entry, and test quality
after equal epochs for a few (`kerasrv bench --precision`, into bench/precision.json).

Keras' `mixed_bfloat16` policy keeps the variables in float32 and computes in bfloat16, which
recent Xeons run on their AVX512-BF16/AMX units (here a 3×3 convolution 1.65× and a 2048² matmul
2× float32's rate). bfloat16 keeps float32's exponent range, so unlike float16 it needs no loss
scaling; what it costs is mantissa (8 bits), which the quality pairs measure: the same recipe,
seed and epochs trained twice by `kerasrv train`, once per precision.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from kerasrv import tasks, zoo
from kerasrv.bench import measure
from kerasrv.errors import UnknownModelError
from kerasrv.provenance import hardware, versions
from kerasrv.training.distribution import global_policy

PRECISIONS = ("float32", "mixed_bfloat16")
RESULTS = Path("bench/precision.json")
# Timed rounds per precision, alternating; each precision's best is kept. With 2, one round of
# a model could run at 0.6-0.7x the other (cnn_lstm float32 850 and 1253 samples/s on
# 2026-12-07) and the ratios of the small models swung by 0.3 between runs.
ROUNDS = 4
# Equal-epoch pairs: an image classifier on its whole recipe's data, and a forecaster on half
# its clips for one epoch (a forecaster's epoch costs 5–9 minutes here in float32).
QUALITY = {
    "cnn_lstm.fmnist": ["--epochs", "5"],
    "convlstm_forecast.mfmnist": ["--epochs", "1", "--train-split", "train[:45%]"],
}


def speed(name, seconds=5.0, rounds=ROUNDS):
    """Training samples/s of an entry (fresh weights, one repeated batch of its recipe's size)
    under each precision, rounds alternating between them."""
    card = zoo.info(name)
    task = tasks.get(card.task)
    batch = zoo.get_entry(name).recipe.batch_size
    shape = tuple(card.input_shape)
    x, y = task.synthetic_batch(shape, batch, card.num_classes, np.random.default_rng(0))
    models = {}
    for precision in PRECISIONS:
        with global_policy(precision):  # a model computes in the policy it was built under
            keras.utils.set_random_seed(0)
            models[precision] = zoo.load(name, weights=None, input_shape=shape)
    rates = {precision: [] for precision in PRECISIONS}
    for round_ in range(rounds):
        for precision, model in models.items():
            warmup = 2 if round_ == 0 else 1
            rates[precision].append(measure.train_throughput(model, x, y, seconds, warmup))
    best = {precision: max(rates[precision]) for precision in PRECISIONS}
    return {
        "input_shape": list(shape),
        "params": models["float32"].count_params(),  # tells a row measured on an earlier model
        "batch_size": batch,
        "samples_per_s": best,
        "rounds": rates,
        "bfloat16_speedup": best["mixed_bfloat16"] / best["float32"],
    }


def quality(name, arguments, out):
    """One entry trained twice by `kerasrv train` with the same arguments and seed, once per
    precision; each run's test metrics, hours and command."""
    pair = {}
    for precision in PRECISIONS:
        command = [
            *("kerasrv", "train", name, *arguments, "--precision", precision),
            *("--out", str(Path(out) / precision)),
        ]
        subprocess.run([sys.executable, "-m", "kerasrv.cli", *command[1:]], check=True)
        (run,) = (Path(out) / precision).iterdir()
        card = json.loads((run / "card.json").read_text())
        pair[precision] = {
            "metrics": card["metrics"],
            "wall_time_s": card["training"]["wall_time_s"],
            "command": " ".join(command[:-2]),
        }
    return pair


def run(names=None, out=RESULTS, log=print, pairs=QUALITY, update=False):
    """Measures every entry's speed pair (or `names`'), then their quality pairs; writes `out`.

    `update=True` re-measures only the named entries into an existing `out`, keeping the other
    rows and the file's header (the run that made it); each row names the date and machine of
    the run that measured it, so a row from another machine is told apart in the report.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = [zoo.get_entry(n).name for n in names] if names else zoo.list_models()
    this_run = {
        "date": datetime.date.today().isoformat(),
        "hardware": hardware(),
        "versions": versions(),
    }
    results = {"machine": this_run, "speed": {}, "quality": {}}
    if update and Path(out).is_file():
        results = json.loads(Path(out).read_text())
    measured = {"measured": this_run["date"], "hardware": this_run["hardware"]}
    for name in names:
        start = time.perf_counter()
        results["speed"][name] = {**speed(name), **measured}
        ratio = results["speed"][name]["bfloat16_speedup"]
        log(f"{name}: bfloat16 {ratio:.2f}× float32 ({time.perf_counter() - start:.0f} s)")
    for name, arguments in pairs.items():
        if name in names:
            with tempfile.TemporaryDirectory() as runs:
                pair = quality(name, arguments, runs)
            results["quality"][name] = {"arguments": arguments, **pair, **measured}
            log(f"{name}: {results['quality'][name]}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=1) + "\n")
    return results


def _recipe_precision(name):
    try:
        return zoo.get_entry(name).recipe.precision
    except UnknownModelError:  # an entry measured once and since removed
        return "(no entry)"


def _elsewhere(row, machine):
    """A row re-measured by `--update` on another day or machine than the file's run says so:
    its ratio is its own run's, its absolute samples/s its machine's."""
    where = measure.measured_elsewhere(row, machine)
    return f" (measured {where})" if where else ""


def report_lines(path=RESULTS):
    """The BENCHMARKS.md section of a precision run, or nothing when there is none."""
    path = Path(path)
    if not path.is_file():
        return []
    results = json.loads(path.read_text())
    m = results["machine"]
    # rows measured before ROUNDS changed keep their own count (each row lists its rounds)
    rounds = sorted({len(s["rounds"]["float32"]) for s in results["speed"].values()}) or [ROUNDS]
    lines = [
        "## Training in bfloat16",
        "",
        f"Measured by `kerasrv bench --precision` on {m['date']}: {m['hardware']}. Samples/s "
        f"are each precision's best of {' or '.join(map(str, rounds))} alternating rounds"
        + (" (each row's own count, in precision.json)" if len(rounds) > 1 else "")
        + " on one repeated batch of the "
        "recipe's size, fresh weights; `mixed_bfloat16` is Keras' policy (float32 variables, "
        "bfloat16 computation). `kerasrv train --precision mixed_bfloat16` uses it; an "
        "entry's recipe trains in it, on hardware that computes bfloat16 natively, where it pays "
        "and a pair below measured that quality holds (the last column).",
        "",
        "| entry | batch | float32 samples/s | mixed_bfloat16 samples/s | bfloat16 × float32 "
        "| recipe trains in |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in results["speed"].items():
        rates = s["samples_per_s"]
        lines.append(
            f"| {name}{_elsewhere(s, m)} | {s['batch_size']} | {rates['float32']:.1f} | "
            f"{rates['mixed_bfloat16']:.1f} | {s['bfloat16_speedup']:.2f} | "
            f"{_recipe_precision(name)} |"
        )
    lines.append("")
    if results["quality"]:
        lines += [
            "Test metrics after the same epochs, seed and recipe in each precision (bfloat16 "
            "holds quality where they are within 0.5 points of accuracy or 2% of MSE; the speed "
            "is the table above's, measured with nothing else running, not these runs' wall "
            "times, which precision.json keeps):",
            "",
            "| entry | training | float32 | mixed_bfloat16 |",
            "|---|---|---|---|",
        ]
        for name, q in results["quality"].items():
            metric = "accuracy" if "accuracy" in q["float32"]["metrics"] else "mse"
            shown = [metric] + (["ssim"] if "ssim" in q["float32"]["metrics"] else [])
            cells = [", ".join(f"{m} {q[p]['metrics'][m]:.4g}" for m in shown) for p in PRECISIONS]
            training = " ".join(q["arguments"])
            lines.append(f"| {name}{_elsewhere(q, m)} | `{training}` | {cells[0]} | {cells[1]} |")
        lines.append("")
    return lines
