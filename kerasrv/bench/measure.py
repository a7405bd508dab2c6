"""Measurements: matmul FLOP/s, training FLOPs and throughput, kernel time, memory, latency."""

import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasrv.export import unrolled


def measured_elsewhere(row, run):
    """When and where a result file's row was measured, where that is not the file's own run:
    "date" or "date, machine" for a row re-measured by `--update`, "" for one of the run.

    Args:
        row: the row (`measured`, `hardware`; rows from before 2026-12-07 name no machine).
        run: the file's header (`date`, `hardware`).
    """
    date = row.get("measured", run["date"])
    machine = row.get("hardware", run["hardware"])
    if (date, machine) == (run["date"], run["hardware"]):
        return ""
    return date + (f", {machine}" if machine != run["hardware"] else "")


def matmul_flops(size=2048, seconds=2.0):
    """FLOP/s of a large float32 matmul on this machine (TensorFlow, all cores)."""
    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    product(a, b).numpy()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product(a, b).numpy()
        calls += 1
    return 2 * size**3 * calls / (time.perf_counter() - start)


def graph_flops(model, batch_shape):
    """FLOPs of one training step (forward and gradients), counted from the traced graph.

    Counts the dense work: MatMul and BatchMatMul (2·M·N·K), Conv2D and its two gradients
    (2 · output positions · kernel area · input channels · output channels each). The model is
    unrolled first, so recurrent steps are in the graph rather than inside a loop body (ReNet's
    LSTM sweeps unroll to `UnrolledBidirectionalLSTM`, which skips the product of the zero first
    state: 1/steps of their recurrent FLOPs, which Keras' rolled layer computes, go uncounted).
    Element-wise ops (gates, activations, normalisation) are not counted, nor ops whose results
    nothing uses (TensorFlow prunes those before running, e.g. the gradient of the input image).
    """
    model = unrolled(model)
    x = tf.zeros(batch_shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    return _dense_flops(step.get_concrete_function(x).graph) / batch_shape[0]


def forward_macs(model, input_shape):
    """Multiply-accumulates of one forward pass on one sample, counted from the traced graph.

    The dense work only, as `graph_flops` counts it, halved: one multiply-accumulate per two
    FLOPs. This is what fvcore's `FlopCountAnalysis` calls FLOPs, so it is the unit of the
    FLOPs column in OpenSTL's benchmark tables (their ConvLSTM-S's 56.8 G is 56.8 G MACs here).
    """
    model = unrolled(model)
    x = tf.zeros((1, *input_shape))
    forward = tf.function(lambda x: model(x, training=False))
    return _dense_flops(forward.get_concrete_function(x).graph) // 2


def _dense_flops(graph):
    """FLOPs of a graph's matmuls and convolutions (and convolution gradients), live ops only."""
    total = 0
    for op in _live_ops(graph):
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
    return total


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


def peak_rss_mb():
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


def tflite_rss_mb(path):
    out = subprocess.run(
        [sys.executable, "-c", _TFLITE_RSS, str(path)], capture_output=True, text=True, timeout=300
    )
    return float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None


FUSED_RECURRENT_OPS = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
}
STEP_OPS = {"LOGISTIC", "TANH"}  # the gates of an unrolled recurrent step


def recurrence(ops):
    """How a TFLite file (its set of op names) runs its recurrence, for the benchmark table.

    "fused: <ops>" where the converter fused it, "unrolled" where gate ops remain, both where
    some recurrence is fused and some not.
    """
    fused = sorted(set(ops) & FUSED_RECURRENT_OPS)
    unrolled = bool(set(ops) & STEP_OPS)
    if fused:
        return "fused: " + ", ".join(fused) + (" + unrolled steps" if unrolled else "")
    return "unrolled" if unrolled else "none"


def tflite_cost_profile(path):
    """Where a TFLite file's arithmetic is: multiply-accumulates and op count by op type.

    Read from the file's own ops (no delegate, which would hide them behind DELEGATE nodes);
    shapes are those of one sample (batch 1). MACs are
    counted for the ops that multiply matrices (convolutions, fully connected, batch matmul,
    the fused LSTM); every other op is counted, not costed. Beside a measured latency, this
    says whether a file is bound by its arithmetic or by the number of ops it runs.

    Returns:
        {"macs": {op: MACs}, "ops": {op: count}}, each sorted by size, largest first.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    macs, counts = collections.Counter(), collections.Counter()
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        counts[name] += 1
        inputs = [shapes.get(i) for i in op["inputs"] if i >= 0]
        outputs = [shapes.get(i) for i in op["outputs"] if i >= 0]
        out = int(np.prod(outputs[0])) if outputs and outputs[0] is not None else 0
        if name in ("CONV_2D", "CONV_3D", "FULLY_CONNECTED"):  # weights [out, ..., in]
            macs[name] += out * int(np.prod(inputs[1][1:]))
        elif name == "DEPTHWISE_CONV_2D":  # weights [1, kh, kw, channels]
            macs[name] += out * int(np.prod(inputs[1][1:3]))
        elif name == "TRANSPOSE_CONV":  # weights [out channels, kh, kw, in channels]
            macs[name] += int(np.prod(inputs[2])) * int(np.prod(inputs[1][:3]))
        elif name == "BATCH_MATMUL":
            macs[name] += out * inputs[0][-1]
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # input [b, t, in], output [b, t, units]
            units, features = outputs[0][-1], inputs[0][-1]
            macs[name] += int(np.prod(outputs[0][:2])) * 4 * units * (features + units)
    return {
        "macs": dict(macs.most_common()),
        "ops": dict(counts.most_common()),
    }
