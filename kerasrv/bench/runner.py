"""Runs the benchmark: each entry in a subprocess of its own, results into one JSON file.

`python -m kerasrv.bench.runner NAME OUT.json [--quick]` is the per-entry worker.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from kerasrv import data, evaluation, export, tasks, zoo
from kerasrv.bench import measure
from kerasrv.bench.textbooks import textbook
from kerasrv.data import files, samples
from kerasrv.deploy import export_model
from kerasrv.errors import UsageError
from kerasrv.progress import Progress
from kerasrv.provenance import hardware, versions

RESULTS = Path("bench/results.json")
TRAIN_ROUNDS = 3  # timed rounds of each model's training, alternating (see bench_entry)
# --quick reads the small config of a dataset, where it has one.
QUICK_DATASETS = {
    "fashion_mnist_scenes": "fashion_mnist_scenes/small",
    "moving_fashion_mnist": "moving_fashion_mnist/small",
    # the small clips move all items one way; how fast a model trains does not depend on that
    "moving_fashion_mnist/independent": "moving_fashion_mnist/small",
    "moving_fashion_mnist/openstl": "moving_fashion_mnist/openstl_small",
}


def _comparison(card, entry_model, textbook_model, batch, data_dir):
    """Both models' test metric after the same epochs on the same real training examples."""
    count, epochs, tests = tasks.get(card["task"]).bench_comparison
    train = data.pipeline(card, f"train[:{count}]", batch, shuffle=True, data_dir=data_dir)
    result = {"train_examples": count, "epochs": epochs, "test_split": f"test[:{tests}]"}
    for label, model in (("entry", entry_model), ("textbook", textbook_model)):
        model.fit(train, epochs=epochs, verbose=0)
        measured = evaluation.evaluate(model, card, result["test_split"], data_dir=data_dir)
        result[label] = measured["metrics"]
    return result


def bench_entry(name, quick=False, data_dir=None):
    """Every measurement of one entry (run in a subprocess of its own by `run`)."""
    card = zoo.info(name)
    task = tasks.get(card.task)
    entry = zoo.get_entry(name)
    shape = tuple(card.input_shape)
    if quick and task.quick_shape:
        shape = task.quick_shape
    card = card.replace(input_shape=list(shape))
    batch = 8 if quick else entry.recipe.batch_size
    train_seconds = 1.0 if quick else 10.0
    calls, seconds = (10, 0.5) if quick else (50, 3.0)
    result = {"input_shape": list(shape), "batch_size": batch}

    keras.utils.set_random_seed(0)
    x, y = task.synthetic_batch(shape, batch, card.num_classes, np.random.default_rng(0))
    model = zoo.load(name, weights=None, input_shape=shape)
    card = card.replace(output_shape=list(model.output_shape[1:]))
    entry_rates = [measure.train_throughput(model, x, y, train_seconds)]
    result["train_peak_rss_mb"] = measure.peak_rss_mb()  # before the textbook model exists
    book = textbook(card)
    book_rates = [measure.train_throughput(book, x, y, train_seconds)]
    # This machine is shared: one timing of each can differ by 1.5× from the next. Alternating
    # rounds and keeping each model's best (as timeit does) compares them at their quietest.
    for _ in range(1, TRAIN_ROUNDS if not quick else 1):
        entry_rates.append(measure.train_throughput(model, x, y, train_seconds, warmup=1))
        book_rates.append(measure.train_throughput(book, x, y, train_seconds, warmup=1))
    result["train_samples_per_s"] = max(entry_rates)
    result["textbook_train_samples_per_s"] = max(book_rates)
    result["train_rounds"] = {"entry": entry_rates, "textbook": book_rates}
    result["train_speedup_vs_textbook"] = (
        result["train_samples_per_s"] / result["textbook_train_samples_per_s"]
    )
    result["params"] = model.count_params()
    result["textbook_params"] = book.count_params()
    profile_steps = 2 if quick else 5
    result["train_profile"] = {
        "entry": measure.training_profile(model, x, y, profile_steps),
        "textbook": measure.training_profile(book, x, y, profile_steps),
    }

    flops = measure.graph_flops(model, (2, *shape))
    result["train_flops_per_sample"] = flops
    result["train_flops_per_s"] = flops * result["train_samples_per_s"]
    result["textbook_train_flops_per_sample"] = measure.graph_flops(book, (2, *shape))

    # Inference, through every runtime. The model is exported with fresh weights: speed does not
    # depend on their values, and the int8 file is calibrated on random inputs of the right shape.
    with tempfile.TemporaryDirectory() as out:
        keras_path = Path(out) / f"{name}.keras"
        model.save(keras_path)
        rng = np.random.default_rng(1)
        calibration = [rng.uniform(size=(1, *shape)).astype("float32") for _ in range(20)]
        exported = export_model(
            model,
            ("saved_model", "tflite", "tflite_batch1", "tflite_int8"),
            out,
            card=card,
            parity_samples=0,  # bench measures speed; `kerasrv export` measures parity
            calibration=lambda: ([c] for c in calibration),
        )
        files = exported["files"]
        signature = export.saved_model_function(files["saved_model"], card)
        runners = {
            "predict": lambda b: model.predict(b, verbose=0),
            "call": lambda b: model(b, training=False),
            "saved_model": signature,
        }
        for variant in ("tflite", "tflite_batch1", "tflite_int8"):
            for threads in (1, 2):
                runners[f"{variant}_{threads}thread"] = export.TFLiteModel(files[variant], threads)
        result["recurrence"] = {
            variant: measure.recurrence(export.TFLiteModel(files[variant]).ops())
            for variant in ("tflite", "tflite_batch1", "tflite_int8")
        }
        result["tflite_profile"] = {
            variant: measure.tflite_cost_profile(files[variant])
            for variant in ("tflite", "tflite_batch1")
        }
        one = x[:1]
        big = np.repeat(x, -(-64 // batch), axis=0)[: 8 if quick else 64]
        inference = {}
        for label, run_one in runners.items():
            inference[label] = {
                "latency_ms_batch_1": export.median_latency_ms(run_one, one, calls),
                "samples_per_s_batch_64": measure.throughput(run_one, big, seconds),
            }
        base = inference["saved_model"]["latency_ms_batch_1"]
        for label in inference:
            inference[label]["latency_vs_saved_model"] = (
                inference[label]["latency_ms_batch_1"] / base
            )
        result["inference"] = inference
        result["inference_batch_size"] = len(big)
        result["artifact_bytes"] = {
            "saved_model": export.saved_model_size(files["saved_model"]),
            "tflite": Path(files["tflite"]).stat().st_size,
            "tflite_int8": Path(files["tflite_int8"]).stat().st_size,
            "tflite_batch1": Path(files["tflite_batch1"]).stat().st_size,
            "keras": keras_path.stat().st_size,
        }
        result["tflite_peak_rss_mb"] = measure.tflite_rss_mb(files["tflite"])

    # The input pipeline that feeds training: examples/s once the examples are in memory.
    dataset, pipeline_shape = card.dataset, None
    if quick and dataset in QUICK_DATASETS:  # the small config, at its own shape
        dataset = QUICK_DATASETS[dataset]
        _, info = data.load_split(dataset, "train[:1]", data_dir)
        pipeline_shape = task.input_shape_of(info.features[task.input_name].shape)
    ds = data.pipeline(
        card,
        "train",
        batch,
        dataset=dataset,
        input_shape=pipeline_shape,
        augment=entry.recipe.augment,
        data_dir=data_dir,
    )
    for _ in ds:  # one pass first: shuffling buffers fill, threads start
        pass
    start, count = time.perf_counter(), 0
    for xb, _ in ds:
        count += int(xb.shape[0])
    result["pipeline_examples_per_s"] = count / (time.perf_counter() - start)
    result["pipeline_vs_training"] = (
        result["pipeline_examples_per_s"] / result["train_samples_per_s"]
    )
    result["pipeline_dataset"] = dataset
    if task.name == "video_classification":
        result["video_files"] = video_files(name, quick)

    if not quick:
        keras.utils.set_random_seed(0)
        result["comparison"] = _comparison(
            card, zoo.load(name, weights=None), textbook(card), batch, data_dir
        )
    return result


# A user's clips: 16 RGB frames of 112×112 read from mp4 files (--quick: 4 of 32×32).
VIDEO_SHAPE = (16, 112, 112, 3)
QUICK_VIDEO_SHAPE = (4, 32, 32, 3)


def video_files(name, quick=False):
    """Clips/s decoded from mp4 files into batches, against the entry's training at that shape.

    The files are 32-frame 128×128 colour clips written by `kerasrv data folder videos`; the
    pipeline is the one `kerasrv train --data` uses (OpenCV decoding in parallel in tf.data),
    read twice through (the second pass is timed). Training is timed as in `bench_entry`, on a
    random batch of the recipe's size at the clip shape, with the entry's weights adapted.
    """
    shape = QUICK_VIDEO_SHAPE if quick else VIDEO_SHAPE
    batch = 8 if quick else zoo.get_entry(name).recipe.batch_size
    with tempfile.TemporaryDirectory() as folder:
        clips = samples.write("videos", folder, count=4 if quick else 12, frames=32, size=128)
        found = files.scan(clips, "video_classification")
        card = {"task": "video_classification", "input_shape": list(shape)}
        ds = files.dataset(found, card, "train", batch)
        for _ in ds:  # the first pass starts the decoders
            pass
        start, count = time.perf_counter(), 0
        for x, _ in ds:
            count += int(x.shape[0])
        clips_per_s = count / (time.perf_counter() - start)
    model = zoo.load(name, weights=None, input_shape=shape, num_classes=len(found.class_names))
    task = tasks.get("video_classification")
    x, y = task.synthetic_batch(shape, batch, len(found.class_names), np.random.default_rng(0))
    training = measure.train_throughput(model, x, y, 1.0 if quick else 10.0)
    return {
        "clip_shape": list(shape),
        "files": len(found.train),
        "decoded_clips_per_s": clips_per_s,
        "train_samples_per_s": training,
        "decode_vs_training": clips_per_s / training,
    }


def machine():
    """Date, CPU, cores, GPU and library versions of this run."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "hardware": hardware(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions(),
    }


def run(names=None, quick=False, out=RESULTS, data_dir=None, log=print, update=False):
    """Benchmarks entries (each in its own subprocess) and writes the results JSON.

    `update=True` re-measures only the named entries into an existing results file, keeping
    the others: each entry carries the date and the matmul FLOP/s of the run that measured it,
    and its ratios come from that run alone.
    """
    names = [zoo.get_entry(n).name for n in names] if names else zoo.list_models()
    this_run = {"machine": machine(), "matmul_flops_per_s": measure.matmul_flops()}
    results = {"quick": quick, **this_run, "entries": {}}
    if update and Path(out).is_file():  # the file's header stays the run that made it
        earlier = json.loads(Path(out).read_text())
        if earlier["quick"] != quick:
            raise UsageError(f"{out} holds a {'quick' if earlier['quick'] else 'full'} run")
        results.update(
            machine=earlier["machine"],
            matmul_flops_per_s=earlier["matmul_flops_per_s"],
            entries=earlier["entries"],
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(names))
    for name in names:
        log(progress.advance(f"bench {name}{' (quick)' if quick else ''}"))
        start = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            command = [sys.executable, "-m", "kerasrv.bench.runner", name, report.name]
            command += ["--quick"] if quick else []
            env = {**os.environ, **({"TFDS_DATA_DIR": data_dir} if data_dir else {})}
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"bench of {name} failed:\n{done.stderr[-3000:]}")
            entry = json.loads(Path(report.name).read_text())
        entry["measured"] = this_run["machine"]["date"]
        entry["hardware"] = this_run["machine"]["hardware"]  # an update may run elsewhere
        entry["matmul_flops_per_s"] = this_run["matmul_flops_per_s"]
        entry["fraction_of_matmul_flops"] = entry["train_flops_per_s"] / entry["matmul_flops_per_s"]
        entry["bench_seconds"] = time.perf_counter() - start
        results["entries"][name] = entry
        log(
            f"  {entry['bench_seconds']:.0f} s: training ×{entry['train_speedup_vs_textbook']:.2f} "
            f"vs textbook, TFLite batch-1 latency "
            f"×{entry['inference']['tflite_1thread']['latency_vs_saved_model']:.2f} vs SavedModel"
        )
        # Written after every entry: an interrupted run keeps what it measured.
        out.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":  # the per-entry worker
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    entry_name, report_path = sys.argv[1], sys.argv[2]
    measured = bench_entry(entry_name, quick="--quick" in sys.argv[3:])
    Path(report_path).write_text(json.dumps(measured))
