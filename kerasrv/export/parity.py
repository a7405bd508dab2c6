"""Parity: every exported file measured against Keras on real samples, and the verdict.

Float files pass by the largest absolute difference from Keras' outputs (`Format.max_abs_diff`);
reduced-precision files by the task's agreement measure and bar (`kerasrv.tasks`).
"""

import time

import numpy as np

from kerasrv import tasks
from kerasrv.export.formats import FORMATS

PARITY_SAMPLES = 1000  # real test samples of a parity report
PARITY_FILE = "parity.json"
PARITY_BATCH_SIZES = (1, 7)


def _batched(run, x, batch_size):
    return np.concatenate([run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def median_latency_ms(run, sample, calls=30):
    """Median wall time of `calls` calls of `run(sample)` after one warm-up call, in ms."""
    run(sample)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(sample)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def passes(card, name, measured):
    """Whether a format's parity measurements pass (`Format.max_abs_diff`, the task's bar)."""
    batches = [v for k, v in measured.items() if k.startswith("batch_")]
    limit = FORMATS[name].max_abs_diff
    if limit is not None:
        return all(b["max_abs_diff"] <= limit for b in batches)
    task = tasks.get(card["task"])
    return all(task.agrees(b["agreement"]) for b in batches)


def measure(model, card, runners, x, y, *, batch_sizes=PARITY_BATCH_SIZES, step=None):
    """Measures each exported format against Keras on samples.

    Args:
        model: the Keras model that was exported.
        card: its card.
        runners: format name → numpy function running that artifact.
        x: input samples (real test samples: agreement on noise means little).
        y: their targets (next-frame agreement compares errors to the true frames).
        batch_sizes: batch sizes to run the artifacts at.
        step: called with what is measured next (a `kerasrv.progress.Progress`'s `step`).

    Returns:
        {"samples", "agreement_measure", "formats": {format: {"batch_<n>": {"max_abs_diff",
        "agreement"}, "latency_ms_batch_1", "passes"}}}.
    """
    task = tasks.get(card["task"])
    reference = _batched(lambda b: model.predict_on_batch(b), x, 64)
    report = {}
    for name, run in runners.items():
        if step:
            step(f"parity of {name}")
        entry = {}
        for batch_size in batch_sizes:
            predicted = _batched(run, x, batch_size)
            entry[f"batch_{batch_size}"] = {
                "max_abs_diff": float(np.abs(predicted - reference).max()),
                "agreement": task.agreement(reference, predicted, y, card["num_classes"]),
            }
        entry["latency_ms_batch_1"] = median_latency_ms(run, x[:1])
        entry["passes"] = passes(card, name, entry)
        report[name] = entry
    return {"samples": len(x), "agreement_measure": task.parity_measure, "formats": report}


def summary(result, command):
    """The short form of an export's parity report that a card records (its `exports`)."""
    report = result["parity"]
    formats = {}
    for name, m in report["formats"].items():
        batches = [v for k, v in m.items() if k.startswith("batch_")]
        formats[name] = {
            "size_bytes": m["size_bytes"],
            "max_abs_diff": max(b["max_abs_diff"] for b in batches),
            "agreement": min(b["agreement"] for b in batches),
            "latency_ms_batch_1": round(m["latency_ms_batch_1"], 3),
            "passes": m["passes"],
        }
        if not m["passes"] and FORMATS[name].why_it_may_fail:  # the exception, and why
            formats[name]["why"] = FORMATS[name].why_it_may_fail
    return {
        "samples": report["samples"],
        "agreement_measure": report["agreement_measure"],
        "command": command,
        "formats": formats,
    }
