"""`kerasrv bench`: each entry beside the textbook model, its exports, and this machine's matmul.

Everything is measured in one run on one machine, and the claims are ratios within that run:
these machines are shared and noisy, so an absolute time says little on its own.

Per entry, in a subprocess of its own (so peak memory is the entry's, and one entry's graphs do
not slow the next):
1. training throughput (samples/s, steady state after warm-up) of the entry and of the textbook
   Keras model of the same task (`textbook`), and, without --quick, both models' test metric
   after the same few epochs on the same examples;
2. inference: batch-1 latency (median) and batch-64 throughput of `model.predict`, a direct
   `model(x)` call, the SavedModel signature, and the TFLite file (float32 and int8, 1 and
   2 threads) in the LiteRT interpreter;
3. training FLOPs per sample, counted from the gradient graph (`graph_flops`), the FLOP/s that
   training achieves, and that against a large float32 matmul measured in the same run;
4. peak RSS of training and of TFLite inference, and the size of each artifact;
5. the input pipeline's examples/s against the entry's training samples/s;
6. where training time goes: the TF profiler's kernel time per op type in a few training steps
   of the entry and of the textbook model (`training_profile`).

Example:
    kerasrv bench cnn_lstm lrcn --quick          # a smoke run: small inputs, few steps
    kerasrv bench                                # every entry, written to bench/results.json
    kerasrv bench --report                       # BENCHMARKS.md and bench/chart.png from it
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

import numpy as np

RESULTS = Path("bench/results.json")
TRAIN_ROUNDS = 3  # timed rounds of each model's training, alternating (see bench_entry)

# --quick: inputs small enough that every entry builds, trains, converts and runs in seconds.
QUICK_SHAPES = {
    "classification": None,  # 28×28 already
    "segmentation": (32, 32, 1),
    "video_classification": (4, 32, 32, 1),
    "video_segmentation": (4, 32, 32, 1),
    "next_frame": (3, 32, 32, 1),
}
QUICK_DATASETS = {
    "segmentation": ("fashion_mnist_scenes/small", (64, 64, 1)),
    "video_classification": ("moving_fashion_mnist/small", (8, 32, 32, 1)),
    "video_segmentation": ("moving_fashion_mnist/small", (8, 32, 32, 1)),
    "next_frame": ("moving_fashion_mnist/small", (7, 32, 32, 1)),
}
# Without --quick: examples and epochs for the metric comparison with the textbook model, kept
# small for video tasks, where the textbook ConvLSTM stack costs hundreds of GFLOPs per clip.
COMPARISON = {  # task: (train examples, epochs, test examples)
    "classification": (4096, 2, 500),
    "segmentation": (1024, 2, 500),
    "video_classification": (256, 2, 100),
    "video_segmentation": (32, 2, 50),
    "next_frame": (32, 2, 50),
}


# --- the textbook models -----------------------------------------------------------------------


def textbook(card):
    """The model a practitioner would write for the entry's task, the way keras-io does.

    Plain `TimeDistributed` around per-frame layers, `Bidirectional(LSTM)` over reshaped rows and
    columns for ReNet sweeps, keras-io's next-frame ConvLSTM stack (3 × ConvLSTM2D(64) with
    BatchNormalization, a Conv3D head) for the ConvLSTM tasks, and Keras' default compile.
    """
    import keras
    from keras import layers

    arch, shape = card["architecture"], tuple(card["input_shape"])
    classes = card["num_classes"]
    x = inputs = keras.Input(shape)

    def renet_sweeps(x, units):
        # rows: one Bidirectional LSTM per row, through TimeDistributed; then columns
        x = layers.TimeDistributed(layers.Bidirectional(layers.LSTM(units, return_sequences=True)))(
            x
        )
        x = layers.Permute((2, 1, 3))(x)
        x = layers.TimeDistributed(layers.Bidirectional(layers.LSTM(units, return_sequences=True)))(
            x
        )
        return layers.Permute((2, 1, 3))(x)

    if arch == "row_rnn":
        x = layers.Reshape(shape[:1] + (shape[1] * shape[2],))(x)
        x = layers.LSTM(128, return_sequences=True)(x)
        x = layers.LSTM(128)(x)
        outputs = layers.Dense(classes, activation="softmax")(x)
    elif arch == "cnn_lstm":
        for width in (32, 64):
            x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Permute((2, 1, 3))(x)
        x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
        x = layers.Bidirectional(layers.LSTM(128))(x)
        outputs = layers.Dense(classes, activation="softmax")(x)
    elif arch == "renet":
        for _ in range(2):  # 2×2 patches, then the two sweeps
            h, w, c = x.shape[1:]
            x = layers.Reshape((h // 2, 2, w // 2, 2, c))(x)
            x = layers.Permute((1, 3, 2, 4, 5))(x)
            x = layers.Reshape((h // 2, w // 2, 4 * c))(x)
            x = renet_sweeps(x, 64)
        x = layers.Flatten()(x)
        x = layers.Dense(256, activation="relu")(x)
        outputs = layers.Dense(classes, activation="softmax")(x)
    elif arch == "reseg":
        skips = []
        for width in (32, 64):
            x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            skips.append(x)
            x = layers.MaxPooling2D()(x)
        x = renet_sweeps(renet_sweeps(x, 64), 64)
        for width, skip in zip((64, 32), reversed(skips)):
            x = layers.Conv2DTranspose(width, 3, strides=2, padding="same", activation="relu")(x)
            x = layers.Concatenate()([x, skip])
        outputs = layers.Conv2D(classes, 1, activation="softmax")(x)
    elif arch == "lrcn":
        for width in (16, 32, 64):
            x = layers.TimeDistributed(layers.Conv2D(width, 3, padding="same", activation="relu"))(
                x
            )
            x = layers.TimeDistributed(layers.MaxPooling2D())(x)
        x = layers.TimeDistributed(layers.Flatten())(x)
        x = layers.TimeDistributed(layers.Dense(256, activation="relu"))(x)
        x = layers.LSTM(128)(x)
        outputs = layers.Dense(classes, activation="softmax")(x)
    else:  # convlstm_seg, convlstm_predict: keras-io's next-frame prediction model
        for kernel in (5, 3, 1):
            x = layers.ConvLSTM2D(
                64, kernel, padding="same", return_sequences=True, activation="relu"
            )(x)
            x = layers.BatchNormalization()(x)
        if arch == "convlstm_seg":
            outputs = layers.Conv3D(classes, 3, padding="same", activation="softmax")(x)
        else:
            outputs = layers.Conv3D(shape[-1], 3, padding="same", activation="sigmoid")(x)
    model = keras.Model(inputs, outputs, name=f"textbook_{arch}")
    if card["task"] == "next_frame":
        model.compile("adam", "binary_crossentropy", metrics=["mse"])
    else:
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# --- measurements ------------------------------------------------------------------------------


def matmul_flops(size=2048, seconds=2.0):
    """FLOP/s of a large float32 matmul on this machine (TensorFlow, all cores)."""
    import tensorflow as tf

    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    product(a, b).numpy()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product(a, b).numpy()
        calls += 1
    return 2 * size**3 * calls / (time.perf_counter() - start)


def graph_flops(model, batch_shape, task):
    """FLOPs of one training step (forward and gradients), counted from the traced graph.

    Counts the dense work: MatMul and BatchMatMul (2·M·N·K), Conv2D and its two gradients
    (2 · output positions · kernel area · input channels · output channels each). The model is
    unrolled first, so recurrent steps are in the graph rather than inside a loop body.
    Element-wise ops (gates, activations, normalisation) are not counted, nor ops whose results
    nothing uses (TensorFlow prunes those before running, e.g. the gradient of the input image).
    """
    import tensorflow as tf

    from kerasrv.export import unrolled

    model = unrolled(model)
    x = tf.zeros(batch_shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    total = 0
    for op in _live_ops(step.get_concrete_function(x).graph):
        kind = op.type
        if kind in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
            a, b = (op.inputs[0].shape, op.inputs[1].shape)
            if kind == "MatMul":
                m = a[1] if op.get_attr("transpose_a") else a[0]
                k = a[0] if op.get_attr("transpose_a") else a[1]
                n = b[0] if op.get_attr("transpose_b") else b[1]
                total += 2 * m * n * k
            else:
                total += 2 * int(np.prod(op.outputs[0].shape)) * a[-1]
        elif kind in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
            # all three cost the forward convolution: output positions × kernel × channels
            if kind == "Conv2D":
                out, kernel = op.outputs[0].shape, op.inputs[1].shape
            elif kind == "Conv2DBackpropInput":
                out, kernel = op.inputs[2].shape, op.inputs[1].shape
            else:
                out, kernel = op.inputs[2].shape, op.outputs[0].shape
            total += 2 * int(np.prod(out[:-1])) * int(np.prod(kernel))
    return total / batch_shape[0]


def _live_ops(graph):
    """The ops the graph's outputs depend on (what TensorFlow actually runs)."""
    live, stack = set(), [t.op for t in graph.outputs]
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


# Profiler events that wrap kernels rather than being one (their time would count twice).
_NOT_KERNELS = ("Process", "Run", "ExecutorState", "EagerLocalExecute", "KernelAndDeviceFunc")
# Fused oneDNN kernels under their op's name, so the entry's and the textbook's line up (the
# fused ones also do the bias and activation).
_KERNEL_NAMES = {
    "_MklNativeFusedConv2D": "Conv2D",
    "_MklNativeConv2DBackpropFilterWithBias": "Conv2DBackpropFilter",
    "_MklNativeFusedMatMul": "MatMul",
    "_MklFusedMatMul": "MatMul",
}


def training_profile(model, x, y, steps=5, top=10):
    """Where a training step's time goes: kernel milliseconds per step, by TF op type.

    Runs `steps` steps of `fit` on one repeated batch under the TF profiler and sums the
    duration of every kernel event on the host (over all threads, so the total can exceed the
    wall time of a step). oneDNN's kernel names are folded into the op's (`_MklNativeConv2D`,
    `_MklNativeFusedConv2D` → `Conv2D`). Returns {"kernel_ms_per_step": total, "by_op_type":
    {type: ms, ...}} with the `top` op types, largest first.
    """
    import collections

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # traced and warm before the trace
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        finally:
            tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        (trace,) = Path(logdir).rglob("*.xplane.pb")
        space.ParseFromString(trace.read_bytes())
    by_type = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                op, _, kind = plane.event_metadata[event.metadata_id].name.rpartition(":")
                kind = _KERNEL_NAMES.get(kind, kind).replace("_MklNative", "").replace("_Mkl", "")
                if not op or op.startswith(("__", "Iterator")) or not kind[:1].isupper():
                    continue  # not a TF op's kernel: tf.data, function calls, Python
                if kind in _NOT_KERNELS or kind.startswith("__"):
                    continue
                by_type[kind] += event.duration_ps / 1e9 / steps
    return {
        "kernel_ms_per_step": sum(by_type.values()),
        "by_op_type": dict(by_type.most_common(top)),
    }


def _peak_rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_throughput(model, x, y, seconds, warmup=2):
    """Training samples/s in steady state: `fit` on one repeated in-memory batch.

    After `warmup` steps (tracing, allocation), one timed step sizes a run of about `seconds`
    (at least 3 steps), which is what is measured.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
    steps = max(3, int(seconds / (time.perf_counter() - start)))
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * len(x) / (time.perf_counter() - start)


def throughput(run, x, seconds):
    run(x)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        run(x)
        calls += 1
    return calls * len(x) / (time.perf_counter() - start)


_TFLITE_RSS = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
runner = Interpreter(model_path=sys.argv[1]).get_signature_runner()
(name, spec), = runner.get_input_details().items()
x = np.random.rand(1, *spec["shape_signature"][1:]).astype("float32")
for _ in range(20):
    runner(**{name: x})
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) / 1024)
"""


def _tflite_rss_mb(path):
    out = subprocess.run(
        [sys.executable, "-c", _TFLITE_RSS, str(path)], capture_output=True, text=True, timeout=300
    )
    return float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None


def _random_batch(card, shape, batch):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch, *shape)).astype("float32")
    task = card["task"]
    if task == "next_frame":
        return x, rng.uniform(size=(batch, *shape)).astype("float32")
    if task in ("segmentation", "video_segmentation"):
        return x, rng.integers(card["num_classes"], size=(batch, *shape[:-1])).astype("int32")
    return x, rng.integers(card["num_classes"], size=batch).astype("int32")


def _comparison(name, card, entry_model, textbook_model, batch, data_dir):
    """Both models' test metric after the same epochs on the same real training examples."""
    from kerasrv import data, evaluation

    count, epochs, tests = COMPARISON[card["task"]]
    train = data.pipeline(card, f"train[:{count}]", batch, shuffle=True, data_dir=data_dir)
    result = {"train_examples": count, "epochs": epochs, "test_split": f"test[:{tests}]"}
    for label, model in (("entry", entry_model), ("textbook", textbook_model)):
        model.fit(train, epochs=epochs, verbose=0)
        measured = evaluation.evaluate(model, card, result["test_split"], data_dir=data_dir)
        result[label] = measured["metrics"]
    return result


def bench_entry(name, quick=False, data_dir=None):
    """Every measurement of one entry (run in a subprocess of its own by `run`)."""
    import keras

    from kerasrv import data, export, zoo

    card = zoo.info(name)
    shape = tuple(card["input_shape"])
    if quick and QUICK_SHAPES[card["task"]]:
        shape = QUICK_SHAPES[card["task"]]
    card = {**card, "input_shape": list(shape)}
    batch = 8 if quick else zoo.get_entry(name).recipe["batch_size"]
    train_seconds = 1.0 if quick else 10.0
    calls, seconds = (10, 0.5) if quick else (50, 3.0)
    result = {"input_shape": list(shape), "batch_size": batch}

    keras.utils.set_random_seed(0)
    x, y = _random_batch(card, shape, batch)
    model = zoo.load(name, weights=None, input_shape=shape)
    entry_rates = [train_throughput(model, x, y, train_seconds)]
    result["train_peak_rss_mb"] = _peak_rss_mb()  # before the textbook model exists
    book = textbook(card)
    book_rates = [train_throughput(book, x, y, train_seconds)]
    # This machine is shared: one timing of each can differ by 1.5× from the next. Alternating
    # rounds and keeping each model's best (as timeit does) compares them at their quietest.
    for _ in range(1, TRAIN_ROUNDS if not quick else 1):
        entry_rates.append(train_throughput(model, x, y, train_seconds, warmup=1))
        book_rates.append(train_throughput(book, x, y, train_seconds, warmup=1))
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
        "entry": training_profile(model, x, y, profile_steps),
        "textbook": training_profile(book, x, y, profile_steps),
    }

    flops = graph_flops(model, (2, *shape), card["task"])
    result["train_flops_per_sample"] = flops
    result["train_flops_per_s"] = flops * result["train_samples_per_s"]
    result["textbook_train_flops_per_sample"] = graph_flops(book, (2, *shape), card["task"])

    # Inference, through every runtime. The model is exported with fresh weights: speed does not
    # depend on their values, and the int8 file is calibrated on random inputs of the right shape.
    with tempfile.TemporaryDirectory() as out:
        keras_path = Path(out) / f"{name}.keras"
        model.save(keras_path)
        rng = np.random.default_rng(1)
        calibration = [rng.uniform(size=(1, *shape)).astype("float32") for _ in range(20)]
        exported = export.export(
            keras_path,
            ("saved_model", "tflite", "tflite_int8"),
            out,
            parity_samples=0,
            representative=lambda: ([c] for c in calibration),
            int8_activations=zoo.get_entry(name).int8_activations,
        )
        files = exported["files"]
        signature = export.saved_model_function(files["saved_model"], card)
        runners = {
            "predict": lambda b: model.predict(b, verbose=0),
            "call": lambda b: model(b, training=False),
            "saved_model": signature,
        }
        for variant in ("tflite", "tflite_int8"):
            for threads in (1, 2):
                runners[f"{variant}_{threads}thread"] = export.TFLiteModel(files[variant], threads)
        one = x[:1]
        big = np.repeat(x, -(-64 // batch), axis=0)[: 8 if quick else 64]
        inference = {}
        for label, run in runners.items():
            inference[label] = {
                "latency_ms_batch_1": export.median_latency_ms(run, one, calls),
                "samples_per_s_batch_64": throughput(run, big, seconds),
            }
        base = inference["saved_model"]["latency_ms_batch_1"]
        for label in inference:
            inference[label]["latency_vs_saved_model"] = (
                inference[label]["latency_ms_batch_1"] / base
            )
        result["inference"] = inference
        result["inference_batch_size"] = len(big)
        result["artifact_bytes"] = {
            "saved_model": export._size(files["saved_model"])
            - sum(Path(files[v]).stat().st_size for v in ("tflite", "tflite_int8")),
            "tflite": Path(files["tflite"]).stat().st_size,
            "tflite_int8": Path(files["tflite_int8"]).stat().st_size,
            "keras": keras_path.stat().st_size,
        }
        result["tflite_peak_rss_mb"] = _tflite_rss_mb(files["tflite"])

    # The input pipeline that feeds training: examples/s once the examples are in memory.
    dataset, pipeline_shape = card["dataset"], None
    if quick:  # the small dataset configs, at their own shapes
        dataset, pipeline_shape = QUICK_DATASETS.get(card["task"], (dataset, None))
    augment = zoo.get_entry(name).recipe.get("augment", False)
    ds = data.pipeline(
        card,
        "train",
        batch,
        dataset=dataset,
        input_shape=pipeline_shape,
        augment=augment,
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

    if not quick:
        keras.utils.set_random_seed(0)
        result["comparison"] = _comparison(
            name, card, zoo.load(name, weights=None), textbook(card), batch, data_dir
        )
    return result


def machine():
    """Date, CPU, cores, GPU and library versions of this run."""
    from kerasrv.training import hardware, versions

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
    from kerasrv import zoo

    names = [zoo.get_entry(n).name for n in names] if names else zoo.list_models()
    this_run = {"machine": machine(), "matmul_flops_per_s": matmul_flops()}
    results = {"quick": quick, **this_run, "entries": {}}
    if update and Path(out).is_file():  # the file's header stays the run that made it
        earlier = json.loads(Path(out).read_text())
        if earlier["quick"] != quick:
            raise ValueError(f"{out} holds a {'quick' if earlier['quick'] else 'full'} run")
        results.update(
            machine=earlier["machine"],
            matmul_flops_per_s=earlier["matmul_flops_per_s"],
            entries=earlier["entries"],
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        log(f"bench {name}{' (quick)' if quick else ''} ...")
        start = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            command = [sys.executable, "-m", "kerasrv.bench", name, report.name]
            command += ["--quick"] if quick else []
            env = {**os.environ, **({"TFDS_DATA_DIR": data_dir} if data_dir else {})}
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"bench of {name} failed:\n{done.stderr[-3000:]}")
            entry = json.loads(Path(report.name).read_text())
        entry["measured"] = this_run["machine"]["date"]
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


if __name__ == "__main__":  # the per-entry worker: python -m kerasrv.bench NAME OUT.json [--quick]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    entry_name, report_path = sys.argv[1], sys.argv[2]
    measured = bench_entry(entry_name, quick="--quick" in sys.argv[3:])
    Path(report_path).write_text(json.dumps(measured))


# --- the report --------------------------------------------------------------------------------

GOALS = (
    (
        "training throughput ≥ 1.0× the textbook model (≥ 1.5× where it uses TimeDistributed or "
        "a ConvLSTM stack)"
    ),
    "TFLite float32 batch-1 latency ≤ 0.2× the SavedModel signature's",
    "training reaches ≥ 25% of the matmul FLOP/s (cnn_lstm, renet)",
    "the input pipeline is ≥ 5× faster than training",
)
_TIME_DISTRIBUTED_OR_STACK = ("renet", "reseg", "lrcn", "convlstm_seg", "convlstm_predict")


def _training_goal(name):
    return 1.5 if name.split(".")[0] in _TIME_DISTRIBUTED_OR_STACK else 1.0


def _goal_rows(name, e):
    arch = name.split(".")[0]
    need = _training_goal(name)
    rows = [
        (
            f"training ×{e['train_speedup_vs_textbook']:.2f} vs textbook (goal ≥ {need})",
            e["train_speedup_vs_textbook"] >= need,
        )
    ]
    ratio = e["inference"]["tflite_1thread"]["latency_vs_saved_model"]
    rows.append((f"TFLite latency ×{ratio:.2f} of SavedModel (goal ≤ 0.2)", ratio <= 0.2))
    if arch in ("cnn_lstm", "renet"):
        share = e["fraction_of_matmul_flops"]
        rows.append((f"{100 * share:.0f}% of matmul FLOP/s (goal ≥ 25%)", share >= 0.25))
    rows.append(
        (
            f"pipeline ×{e['pipeline_vs_training']:.1f} of training (goal ≥ 5)",
            e["pipeline_vs_training"] >= 5,
        )
    )
    return rows


def _profile_differences(profile, count=4):
    entry, book = profile["entry"]["by_op_type"], profile["textbook"]["by_op_type"]
    differences = {k: entry.get(k, 0.0) - book.get(k, 0.0) for k in {*entry, *book}}
    largest = sorted(differences.items(), key=lambda kv: -abs(kv[1]))[:count]
    return ", ".join(f"{k} {v:+.1f}" for k, v in largest)


def report(results_path=RESULTS, markdown="BENCHMARKS.md", chart="bench/chart.png"):
    """Writes the Markdown report and a PNG chart from a results JSON; returns their paths."""
    results = json.loads(Path(results_path).read_text())
    m, entries = results["machine"], results["entries"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `kerasrv bench{' --quick' if results['quick'] else ''}` on {m['date']}: "
        f"{m['hardware']}; {m['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        f"A {2048}×{2048} float32 matmul runs at {results['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s "
        "here. Ratios compare numbers taken in this one run; absolute times on a shared CPU are "
        "noisy.",
        "",
    ]
    if results["quick"]:
        lines += ["**Quick run**: small inputs and few steps; a smoke test, not a measurement.", ""]
    from kerasrv import zoo

    later = {n: e["measured"] for n, e in entries.items() if e.get("measured", "") > m["date"]}
    if later:  # kerasrv bench NAMES --update
        lines += [
            "**Measured again later** (`kerasrv bench NAME --update`; each entry's ratios come "
            "from its own run): " + ", ".join(f"{n} on {date}" for n, date in later.items()) + ".",
            "",
        ]
    missing = [name for name in zoo.list_models() if name not in entries]
    if missing:  # an interrupted run, or one given names
        lines += [f"**Not measured in this run**: {', '.join(missing)}.", ""]

    def table(header, rows):
        lines.extend(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)])
        lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
        lines.append("")

    lines += [
        "## Training",
        "",
        f"Samples/s are each model's best of {TRAIN_ROUNDS} timed rounds, the entry's and the "
        "textbook's alternating, on one repeated batch of the recipe's size.",
        "",
    ]
    table(
        [
            "entry",
            "input",
            "batch",
            "samples/s",
            "textbook samples/s",
            "× textbook",
            "GFLOPs/sample",
            "GFLOP/s",
            "% of matmul",
            "peak RSS MB",
        ],
        [
            [
                n,
                "×".join(map(str, e["input_shape"])),
                e["batch_size"],
                f"{e['train_samples_per_s']:.0f}",
                f"{e['textbook_train_samples_per_s']:.1f}",
                f"{e['train_speedup_vs_textbook']:.2f}",
                f"{e['train_flops_per_sample'] / 1e9:.3f}",
                f"{e['train_flops_per_s'] / 1e9:.1f}",
                f"{100 * e['fraction_of_matmul_flops']:.0f}",
                f"{e['train_peak_rss_mb']:.0f}",
            ]
            for n, e in entries.items()
        ],
    )
    lines += [
        "### Where training time goes",
        "",
        "Kernel time of one training step from the TF profiler, summed over threads: the entry's "
        "and the textbook's, and the op types where the entry spends the most more (or less).",
        "",
    ]
    table(
        ["entry", "kernel ms/step", "textbook kernel ms/step", "largest differences, ms/step"],
        [
            [
                n,
                f"{e['train_profile']['entry']['kernel_ms_per_step']:.1f}",
                f"{e['train_profile']['textbook']['kernel_ms_per_step']:.1f}",
                _profile_differences(e["train_profile"]),
            ]
            for n, e in entries.items()
        ],
    )
    runtimes = list(next(iter(entries.values()))["inference"])
    wide = [n for n in entries if zoo.get_entry(n).int8_activations == 16]
    lines += ["## Inference: batch-1 latency, ms (× the SavedModel signature)", ""]
    if wide:
        lines += [
            f"`tflite_int8` is the full-integer file each entry ships; for {', '.join(wide)} "
            "it has int16 activations (TFLite's 16x8 mode, slower kernels), which their "
            "recurrent state needs to agree with Keras.",
            "",
        ]
    table(
        ["entry", *runtimes],
        [
            [
                n,
                *(
                    f"{e['inference'][r]['latency_ms_batch_1']:.2f} "
                    f"(×{e['inference'][r]['latency_vs_saved_model']:.2f})"
                    for r in runtimes
                ),
            ]
            for n, e in entries.items()
        ],
    )
    batch = next(iter(entries.values()))["inference_batch_size"]
    lines += [f"## Inference: throughput at batch {batch}, samples/s", ""]
    table(
        ["entry", *runtimes],
        [
            [n, *(f"{e['inference'][r]['samples_per_s_batch_64']:.0f}" for r in runtimes)]
            for n, e in entries.items()
        ],
    )
    lines += ["## Artifacts and memory", ""]
    table(
        [
            "entry",
            ".keras MB",
            "SavedModel MB",
            "TFLite MB",
            "TFLite int8 MB",
            "TFLite inference peak RSS MB",
        ],
        [
            [
                n,
                *(
                    f"{e['artifact_bytes'][k] / 1e6:.2f}"
                    for k in ("keras", "saved_model", "tflite", "tflite_int8")
                ),
                f"{e['tflite_peak_rss_mb']:.0f}" if e["tflite_peak_rss_mb"] else "—",
            ]
            for n, e in entries.items()
        ],
    )
    lines += ["## Input pipeline", ""]
    table(
        ["entry", "dataset", "examples/s", "× training samples/s"],
        [
            [
                n,
                e["pipeline_dataset"],
                f"{e['pipeline_examples_per_s']:.0f}",
                f"{e['pipeline_vs_training']:.1f}",
            ]
            for n, e in entries.items()
        ],
    )
    compared = {n: e["comparison"] for n, e in entries.items() if "comparison" in e}
    if compared:
        lines += ["## Test metric after the same training (entry vs textbook)", ""]
        table(
            ["entry", "train examples × epochs", "entry", "textbook"],
            [
                [
                    n,
                    f"{c['train_examples']} × {c['epochs']}",
                    ", ".join(f"{k} {v:.3f}" for k, v in c["entry"].items()),
                    ", ".join(f"{k} {v:.3f}" for k, v in c["textbook"].items()),
                ]
                for n, c in compared.items()
            ],
        )
    lines += ["## Goals", ""]
    for n, e in entries.items():
        lines.append(
            f"- **{n}**: "
            + "; ".join(f"{text} {'✓' if ok else '✗'}" for text, ok in _goal_rows(n, e))
        )
    lines.append("")
    Path(markdown).write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(entries)
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(names) + 1.8), sharey=True)
    panels = [
        (
            "training samples/s × textbook",
            [entries[n]["train_speedup_vs_textbook"] for n in names],
            [_training_goal(n) for n in names],
        ),
        (
            "TFLite batch-1 latency × SavedModel",
            [entries[n]["inference"]["tflite_1thread"]["latency_vs_saved_model"] for n in names],
            0.2,
        ),
        (
            "pipeline examples/s × training",
            [entries[n]["pipeline_vs_training"] for n in names],
            5.0,
        ),
    ]
    for ax, (title, values, goal) in zip(axes, panels):
        ax.barh(names, values, color="tab:blue")
        if isinstance(goal, list):  # a goal per entry
            ax.scatter(goal, names, marker="|", s=400, color="tab:red", label="goal", zorder=3)
        else:
            ax.axvline(goal, color="tab:red", linestyle="--", label=f"goal {goal}")
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"kerasrv bench, {m['hardware']}, {m['date'][:10]}", fontsize=10)
    fig.tight_layout()
    Path(chart).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(chart, dpi=100)
    plt.close(fig)
    return Path(markdown), Path(chart)
