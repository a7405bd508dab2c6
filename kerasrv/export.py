"""Exports that deploy: a SavedModel for TF Serving and builtins-only TFLite files for LiteRT.

Every export is one new version directory in TF Serving's layout, `<out>/<name>/<version>/`,
holding the SavedModel, the TFLite files asked for and `parity.json` (each format measured
against Keras on real test samples). It is written under a temporary name and renamed into place
when complete, so a crash never leaves a partial version for a server to pick up, and an existing
version is never touched.

Recurrent layers are why TFLite export usually fails: a Keras LSTM is a `while` loop over a
TensorList, which the converter turns into Flex ops (not runnable by the LiteRT interpreter) or
refuses with a dynamic batch. The TFLite files here are converted from a copy of the model whose
recurrent layers are unrolled (same weights; the time steps are static in every entry), which
leaves only builtin ops and keeps the batch dynamic.

Example:
    >>> from kerasrv import export
    >>> result = export.export("cnn_lstm", formats=("saved_model", "tflite"), out="export")
    >>> result["directory"]
    PosixPath('export/cnn_lstm.fmnist/1')
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasrv import zoo
from kerasrv.layers import UnrolledGRU

FORMATS = ("saved_model", "tflite", "tflite_dynamic", "tflite_float16", "tflite_int8", "onnx")
TFLITE_FILES = {
    "tflite": "model.tflite",
    "tflite_dynamic": "model.dynamic.tflite",
    "tflite_float16": "model.float16.tflite",
    "tflite_int8": "model.int8.tflite",
}
# Full-integer op sets by activation width. 16 is TFLite's 16x8 mode (int8 weights, int16
# activations): a 28-step LSTM state kept in 8 bits drifts (row_rnn.lstm 0.976 top-1 agreement,
# renet 0.925, convlstm_seg 0.953 mask IoU on 1,000 test samples), in 16 bits it holds
# (0.996, 0.999, 0.985), at 3–14× the float32 latency: TFLite's int16 kernels are reference code.
# Entries choose (`int8_activations`).
# (GRUs reach the converter as `kerasrv.layers.UnrolledGRU`, the form whose 16x8 file agrees.)
INTEGER_OPS = {
    8: tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
    16: tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
}
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
PARITY_FILE = "parity.json"
CALIBRATION_SAMPLES = 200

# What passes parity. Float formats: the largest absolute difference from Keras' outputs.
MAX_ABS_DIFF = {"saved_model": 1e-5, "tflite": 1e-4, "onnx": 1e-4}
# Reduced-precision formats: task agreement with Keras (see `agreement`); for next-frame
# prediction, the export's MSE may be at most this many times Keras'.
MIN_AGREEMENT = {
    "classification": 0.99,
    "video_classification": 0.99,
    "segmentation": 0.95,
    "video_segmentation": 0.95,
}
MAX_MSE_RATIO = 1.1


# --- the model to export -----------------------------------------------------------------------


def load(target):
    """(model, card) for a zoo entry name or a `.keras` file of a zoo architecture."""
    path = Path(str(target))
    if path.suffix == ".keras":
        if not path.is_file():
            raise FileNotFoundError(f"no such .keras file: {path}")
        model = keras.saving.load_model(path)
        card = zoo.info(model.name)  # builders name their model after the architecture
        card.update(
            input_shape=list(model.input_shape[1:]),
            output_shape=list(model.output_shape[1:]),
            name=path.stem,
        )
        return model, card
    return zoo.load(target), zoo.info(target)


def _unrolled_config(config):
    if isinstance(config, dict):
        return {k: True if k == "unroll" else _unrolled_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_unrolled_config(v) for v in config]
    return config


def unrolled(model):
    """The same model, same weights, with every recurrent layer unrolled (static time loops).

    Works on any functional model: every `unroll` setting in its config (LSTM, GRU, RNN cells,
    Bidirectional, ConvLSTM2D, kerasrv's ReNet) is switched on.
    """
    copy = type(model).from_config(_unrolled_config(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def converter_form(model):
    """What the TFLite converter gets: `unrolled(model)`, with its GRUs as `UnrolledGRU`.

    Same weights, same outputs. `UnrolledGRU` is the form of Keras' GRU that full-integer
    quantization keeps (see its docstring); a GRU it cannot stand for stays Keras' unrolled GRU.
    """
    if not any(isinstance(layer, keras.layers.GRU) for layer in model.layers):
        return unrolled(model)

    def convert(layer):
        if isinstance(layer, keras.layers.GRU):
            replacement = UnrolledGRU.like(layer)  # carries the GRU's weights
            if replacement is not None:
                return replacement
        return layer.__class__.from_config(_unrolled_config(layer.get_config()))

    copy = keras.models.clone_model(model, clone_function=convert)
    for old, new in zip(model.layers, copy.layers):
        if not isinstance(new, UnrolledGRU):
            new.set_weights(old.get_weights())
    return copy


def _write_saved_model(model, card, directory, check_shape=True):
    """A SavedModel with one `serving_default` signature: named input, named output.

    A signature checks its inputs' dtype, not their shape: a wrong-rank input reaches the
    kernels, and some abort the serving process. `check_shape` puts an EnsureShape first, so a
    wrong shape is an InvalidArgumentError naming the expected one. (The copy that only feeds
    the TFLite converter goes without.)
    """
    spec = tf.TensorSpec((None, *card["input_shape"]), tf.float32, name=card["input_name"])
    output = card["output_name"]

    def serve(x):
        if check_shape:
            x = tf.ensure_shape(x, spec.shape)
        return {output: model(x, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.write_out(str(directory), verbose=False)


def _write_onnx(model, card, path):
    """ONNX for users outside TensorFlow, converted by tf2onnx (LSTMs become ONNX `LSTM` ops)."""
    try:
        import tf2onnx
    except ImportError:
        raise ImportError(
            "the onnx format needs tf2onnx and onnxruntime: pip install 'kerasrv[onnx]'"
        ) from None
    spec = tf.TensorSpec((None, *card["input_shape"]), tf.float32, name=card["input_name"])
    output = card["output_name"]
    serve = tf.function(lambda x: {output: model(x, training=False)})
    tf2onnx.convert.from_function(
        serve, input_signature=(spec,), opset=ONNX_OPSET, output_path=str(path)
    )


def _representative(card, data_dir):
    from kerasrv import data

    ds = data.pipeline(card, f"train[:{CALIBRATION_SAMPLES}]", 1, shuffle=False, data_dir=data_dir)
    return lambda: ([x] for x, _ in ds)


def _convert(saved_model, variant, card, representative):
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), ["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "tflite":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "tflite_float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "tflite_int8":  # full integer, calibrated on the entry's own training data
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [INTEGER_OPS[card["int8_activations"]]]
    return converter.convert()


# --- running the artifacts ---------------------------------------------------------------------


class TFLiteModel:
    """Runs an exported TFLite file with the LiteRT interpreter, checking the input first.

    Args:
        path: a `.tflite` file written by `export`.
        num_threads: interpreter threads (None: LiteRT's default).

    Example:
        >>> model = TFLiteModel("export/cnn_lstm.fmnist/1/model.tflite")
        >>> model(images).shape          # images: float32 (batch, 28, 28, 1) in [0, 1]
        (8, 10)
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        ((self.input_name, spec),) = self.runner.get_input_details().items()
        ((self.output_name, _),) = self.runner.get_output_details().items()
        self.input_shape = tuple(int(d) for d in spec["shape_signature"][1:])

    def ops(self):
        """The set of operator names in the file (builtin ops only, for a kerasrv export)."""
        return {op["op_name"] for op in self.interpreter._get_ops_details()}

    def __call__(self, x):
        """Output for a batch `x`, float32 of shape (batch, *input_shape)."""
        x = np.asarray(x)
        expected = f"(batch, {', '.join(str(d) for d in self.input_shape)})"
        if x.ndim != len(self.input_shape) + 1:
            raise ValueError(
                f"{self.path.name} expects input of rank {len(self.input_shape) + 1}, shape "
                f"{expected}, got shape {x.shape}"
            )
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.path.name} expects input of shape {expected}, got {x.shape}")
        if x.dtype != np.float32:
            raise TypeError(
                f"{self.path.name} expects float32 input in [0, 1], got dtype {x.dtype}"
            )
        return self.runner(**{self.input_name: x})[self.output_name]


def onnx_function(path):
    """An ONNX file run by onnxruntime, as a numpy → numpy function."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]


def saved_model_function(directory, card):
    """The SavedModel's serving signature as a numpy → numpy function."""
    signature = tf.saved_model.load(str(directory)).signatures["serving_default"]

    def run(x):
        return signature(**{card["input_name"]: tf.constant(x)})[card["output_name"]].numpy()

    run.signature = signature
    return run


# --- parity ------------------------------------------------------------------------------------


def agreement(card, reference, predicted, targets):
    """How far an export's task answers agree with Keras' on the same inputs.

    Classification: the fraction of equal top-1 labels. Segmentation: the mean IoU of the
    export's masks against Keras' masks. Next-frame: the export's MSE to the true frames divided
    by Keras' (1.0 is parity).
    """
    task = card["task"]
    if task in ("classification", "video_classification"):
        return float((reference.argmax(-1) == predicted.argmax(-1)).mean())
    if task in ("segmentation", "video_segmentation"):
        a, b = reference.argmax(-1).ravel(), predicted.argmax(-1).ravel()
        k = card["num_classes"]
        confusion = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
        union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
        return float((np.diag(confusion)[union > 0] / union[union > 0]).mean())
    return float(((predicted - targets) ** 2).mean() / ((reference - targets) ** 2).mean())


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


def parity(model, card, runners, *, samples=1000, batch_sizes=(1, 7), data_dir=None):
    """Measures each exported format against Keras on real test samples.

    Args:
        model: the Keras model that was exported.
        card: its card.
        runners: format name → numpy function running that artifact.
        samples: real test samples (the first ones of the entry's test split).
        batch_sizes: batch sizes to run the artifacts at.
        data_dir: TFDS data directory.

    Returns:
        format → {"batch_<n>": {"max_abs_diff", "agreement"}, "latency_ms_batch_1"}.
    """
    from kerasrv import data

    ds = data.pipeline(card, f"test[:{samples}]", 64, shuffle=False, data_dir=data_dir)
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
    x, y = np.concatenate(xs), np.concatenate(ys)
    reference = _batched(lambda b: model.predict_on_batch(b), x, 64)
    report = {}
    for name, run in runners.items():
        entry = {}
        for batch_size in batch_sizes:
            predicted = _batched(run, x, batch_size)
            entry[f"batch_{batch_size}"] = {
                "max_abs_diff": float(np.abs(predicted - reference).max()),
                "agreement": agreement(card, reference, predicted, y),
            }
        entry["latency_ms_batch_1"] = median_latency_ms(run, x[:1])
        entry["passes"] = passes(card, name, entry)
        report[name] = entry
    return {"samples": len(x), "agreement_measure": _measure(card["task"]), "formats": report}


def passes(card, name, measured):
    """Whether a format's parity measurements pass (`MAX_ABS_DIFF`, `MIN_AGREEMENT`)."""
    batches = [v for k, v in measured.items() if k.startswith("batch_")]
    if name in MAX_ABS_DIFF:
        return all(b["max_abs_diff"] <= MAX_ABS_DIFF[name] for b in batches)
    if card["task"] == "next_frame":
        return all(b["agreement"] <= MAX_MSE_RATIO for b in batches)
    return all(b["agreement"] >= MIN_AGREEMENT[card["task"]] for b in batches)


def _measure(task):
    if task in ("classification", "video_classification"):
        return "top-1 agreement with Keras"
    if task in ("segmentation", "video_segmentation"):
        return "mean IoU of the masks against Keras' masks"
    return "MSE to the true frames / Keras' MSE"


# --- versions and the export itself ------------------------------------------------------------


def _runner(name, path, card):
    if name == "saved_model":
        return saved_model_function(path, card)
    if name == "onnx":
        return onnx_function(path)
    return TFLiteModel(path)


def next_version(directory):
    """The next integer version under a model's directory (1 when there is none)."""
    existing = [int(p.name) for p in Path(directory).glob("*") if p.name.isdigit()]
    return max(existing, default=0) + 1


def _size(path):
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _publish(staging, root, version):
    """Renames a finished staging directory to the next free version, atomically.

    A rename onto an existing version fails rather than overwrite it; another export that took
    the version first makes this one try the next.
    """
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the version from a server's user
    for _ in range(100):
        final = root / str(version)
        try:
            os.rename(staging, final)  # a server sees the whole version or none of it
            return final
        except OSError:
            if not final.exists():
                raise
            version = next_version(root)
    raise RuntimeError(f"no free version directory under {root}")


def export(
    target,
    formats=("saved_model", "tflite"),
    out="export",
    *,
    parity_samples=1000,
    data_dir=None,
    representative=None,
    int8_activations=None,
):
    """Exports a zoo entry (or a `.keras` file of one) and measures every format against Keras.

    Args:
        target: an entry name ("cnn_lstm") or a `.keras` file.
        formats: any of `FORMATS`.
        out: the export root; the version goes to `<out>/<name>/<next version>/`.
        parity_samples: real test samples for the parity report (0 skips it).
        data_dir: TFDS data directory (test samples and int8 calibration data).
        representative: a callable yielding [input batch] lists to calibrate int8 with;
            default `CALIBRATION_SAMPLES` examples of the entry's own training data.
        int8_activations: 8 or 16, the activation width of `tflite_int8`; default the entry's
            (a `.keras` file takes its architecture's default entry's).

    Returns:
        A dict: `directory` (the version directory), `version`, `files` (format → path) and
        `parity` (the report also written to `parity.json`).
    """
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(
            f"unknown export format(s) {sorted(unknown)}; expected some of {', '.join(FORMATS)}"
        )
    model, card = load(target)
    if int8_activations is not None:
        if int8_activations not in INTEGER_OPS:
            raise ValueError(f"int8_activations must be 8 or 16, got {int8_activations!r}")
        card["int8_activations"] = int8_activations
    root = Path(out) / card["name"]
    root.mkdir(parents=True, exist_ok=True)
    version = next_version(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.partial-", dir=root))
    try:
        files, sizes = {}, {}
        if "saved_model" in formats:
            _write_saved_model(model, card, staging)
            files["saved_model"], sizes["saved_model"] = staging, _size(staging)
        tflite = [f for f in formats if f in TFLITE_FILES]
        if tflite:
            samples = representative
            if "tflite_int8" in tflite and samples is None:
                samples = _representative(card, data_dir)
            with tempfile.TemporaryDirectory() as scratch:
                _write_saved_model(converter_form(model), card, scratch, check_shape=False)
                for variant in tflite:
                    path = staging / TFLITE_FILES[variant]
                    path.write_bytes(_convert(scratch, variant, card, samples))
                    files[variant], sizes[variant] = path, path.stat().st_size
        if "onnx" in formats:
            files["onnx"] = staging / ONNX_FILE
            _write_onnx(model, card, files["onnx"])
            sizes["onnx"] = files["onnx"].stat().st_size
        report = None
        if parity_samples:
            runners = {name: _runner(name, path, card) for name, path in files.items()}
            report = parity(model, card, runners, samples=parity_samples, data_dir=data_dir)
            for name, size in sizes.items():
                report["formats"][name]["size_bytes"] = size
            if "tflite_int8" in files:
                report["formats"]["tflite_int8"]["activations"] = f"int{card['int8_activations']}"
            (staging / PARITY_FILE).write_text(json.dumps(report, indent=1) + "\n")
        final = _publish(staging, root, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = {name: final / path.relative_to(staging) for name, path in files.items()}
    return {"directory": final, "version": int(final.name), "files": files, "parity": report}


def record_in_card(name, result):
    """Writes an export's parity summary into the shipped entry's card (its `exports` table)."""
    directory = zoo.shipped(name)
    if directory is None:
        raise zoo.WeightsError(f"{name} ships no card to record an export in")
    card_path = directory / zoo.CARD_FILE
    card = json.loads(card_path.read_text())
    report = result["parity"]
    card["exports"] = {
        "samples": report["samples"],
        "agreement_measure": report["agreement_measure"],
        "command": f"kerasrv export {card['name']} --format {','.join(result['files'])} --record",
        "formats": {
            fmt: {
                "size_bytes": m["size_bytes"],
                "max_abs_diff": max(m["batch_1"]["max_abs_diff"], m["batch_7"]["max_abs_diff"]),
                "agreement": min(m["batch_1"]["agreement"], m["batch_7"]["agreement"]),
                "latency_ms_batch_1": round(m["latency_ms_batch_1"], 3),
                "passes": m["passes"],
                **({"activations": m["activations"]} if "activations" in m else {}),
            }
            for fmt, m in report["formats"].items()
        },
    }
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card_path
