"""kerasrv bench --quick as a smoke test: the results carry every field, the report renders."""

import json
import math
import re

import pytest

from kerasrv import bench, tasks, zoo

ENTRY_FIELDS = {
    "input_shape",
    "hardware",
    "batch_size",
    "train_samples_per_s",
    "train_rounds",
    "train_peak_rss_mb",
    "textbook_train_samples_per_s",
    "train_speedup_vs_textbook",
    "params",
    "textbook_params",
    "train_flops_per_sample",
    "train_flops_per_s",
    "textbook_train_flops_per_sample",
    "train_profile",
    "inference",
    "inference_batch_size",
    "artifact_bytes",
    "tflite_peak_rss_mb",
    "pipeline_examples_per_s",
    "pipeline_vs_training",
    "pipeline_dataset",
    "fraction_of_matmul_flops",
    "bench_seconds",
    "measured",
    "matmul_flops_per_s",
    "recurrence",
    "tflite_profile",
}
RUNTIMES = {
    "predict",
    "call",
    "saved_model",
    "tflite_1thread",
    "tflite_2thread",
    "tflite_batch1_1thread",
    "tflite_batch1_2thread",
    "tflite_int8_1thread",
    "tflite_int8_2thread",
}


# Two entries measured for real: training rounds, nine runtimes, exports, a profile (2.5 min).
@pytest.mark.slow
def test_quick_bench_writes_every_field_and_a_report(tmp_path, tfds_dir, monkeypatch):
    out = tmp_path / "results.json"
    bench.run(["row_rnn.gru"], quick=True, out=out, data_dir=tfds_dir, log=lambda _: None)
    first = json.loads(out.read_text())
    # a second run adds lrcn to the same file and keeps row_rnn.gru as measured
    bench.run(["lrcn"], quick=True, out=out, data_dir=tfds_dir, log=lambda _: None, update=True)
    results = json.loads(out.read_text())
    assert results["machine"] == first["machine"]
    assert results["entries"]["row_rnn.gru"] == first["entries"]["row_rnn.gru"]
    assert results["entries"]["lrcn.motion"]["measured"] > first["machine"]["date"]
    assert results["quick"] is True and results["matmul_flops_per_s"] > 0
    assert {"date", "hardware", "cores", "versions"} <= set(results["machine"])
    assert set(results["entries"]) == {"row_rnn.gru", "lrcn.motion"}
    videos = results["entries"]["lrcn.motion"]["video_files"]
    assert videos["clip_shape"] == [4, 32, 32, 3] and videos["decoded_clips_per_s"] > 0
    assert videos["decode_vs_training"] > 0
    lstm, gru = (results["entries"][n]["recurrence"] for n in ("lrcn.motion", "row_rnn.gru"))
    assert lstm["tflite_batch1"] == "fused: UNIDIRECTIONAL_SEQUENCE_LSTM"
    assert lstm["tflite"] == gru["tflite_batch1"] == "unrolled"  # no fused GRU in TFLite
    for name, entry in results["entries"].items():
        assert set(entry) - {"video_files"} == ENTRY_FIELDS, name
        assert set(entry["inference"]) == RUNTIMES
        for runtime in entry["inference"].values():
            assert runtime["latency_ms_batch_1"] > 0 and runtime["samples_per_s_batch_64"] > 0
        numbers = [v for k, v in entry.items() if isinstance(v, float)]
        assert all(math.isfinite(v) and v > 0 for v in numbers), name
        for model in ("entry", "textbook"):  # the profile sees the convolutions and matmuls
            profile = entry["train_profile"][model]
            assert profile["kernel_ms_per_step"] > 0
            assert {"Conv2D", "MatMul"} & set(profile["by_op_type"]), profile
        # the counted FLOPs of one conv/matmul stack sit near what its layers imply
        assert 1e6 < entry["train_flops_per_sample"] < 1e11
    monkeypatch.chdir(tmp_path)
    markdown, chart = bench.report(out)
    text = markdown.read_text()
    assert "## Training" in text and "row_rnn.gru" in text and "## Goals" in text
    assert "### Where training time goes" in text
    assert "Measured again later" in text and "lrcn.motion on" in text
    assert results["entries"]["lrcn.motion"]["hardware"] == results["machine"]["hardware"]
    assert re.search(r"lrcn\.motion on [0-9T:-]+[;.]", text)  # the run's own machine: unsaid
    # an update measured on another machine names it beside its date
    results["entries"]["lrcn.motion"]["hardware"] = "Another CPU, 2 cores, no GPU"
    out.write_text(json.dumps(results))
    again = bench.report(out)[0].read_text()
    assert re.search(r"lrcn\.motion on [0-9T:-]+, Another CPU, 2 cores, no GPU[;.]", again)
    assert "## Video files" in text and "video decoding ×" in text
    assert "## Recurrence in the TFLite files" in text and "fused: UNIDIRECTIONAL" in text
    # the trained video predictors beside OpenSTL's table, from their cards
    assert "## Video prediction at OpenSTL's protocol" in text
    assert "**convlstm_forecast.mfmnist**" in text and "OpenSTL ConvLSTM-S" in text
    assert "## Recipes tried and not shipped" in text
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_the_report_carries_every_recipe_a_card_lists_as_tried_and_the_findings():
    """The history of a result lives in cards and BENCHMARKS.md, not in code comments."""
    from kerasrv.bench import history

    text = "\n".join(history.history_lines())
    tried = [(n, a) for n in zoo.list_models() for a in zoo.info(n).attempts or []]
    assert len(tried) >= 10
    for name, attempt in tried:
        assert f"`{attempt['command']}`" in text, (name, attempt["command"])
        assert attempt.get("note"), f"{name}: an attempt that says not what it tried"
    assert "## Findings with no card to live on" in text


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_entry_has_a_textbook_to_bench_against(name):
    # `kerasrv bench` (all entries) stopped at the first entry without one: the forecasters
    card = zoo.info(name)
    model = bench.textbook(
        card.replace(input_shape=list(tasks.get(card.task).quick_shape or card.input_shape))
    )
    assert model.output_shape[1:] == tuple(
        zoo.build(name, input_shape=model.input_shape[1:]).output_shape[1:]
    )
    assert bench.training_goal(card.architecture) >= 1.0


def test_the_tflite_cost_profile_counts_each_ops_multiply_adds(tmp_path):
    import numpy as np
    import tensorflow as tf

    from kerasrv.bench import measure

    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(3, 3, 2, 4)).astype("float32"))
    weights = tf.constant(rng.normal(size=(100, 8)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec((1, 5, 5, 2), tf.float32)])
    def convolve_then_project(x):
        y = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))
        return tf.matmul(tf.reshape(y, (1, 100)), weights)

    function = convolve_then_project.get_concrete_function()
    path = tmp_path / "model.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([function]).convert())
    profile = measure.tflite_cost_profile(path)
    # a 3×3×2 window for each of 5×5×4 outputs; 100 inputs for each of 8 outputs
    assert profile["macs"] == {"CONV_2D": 5 * 5 * 4 * 3 * 3 * 2, "FULLY_CONNECTED": 100 * 8}
    assert profile["ops"]["CONV_2D"] == profile["ops"]["FULLY_CONNECTED"] == 1


def test_graph_flops_counts_what_the_layers_imply():
    import keras

    dense = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    # forward x·W, and the gradient of W (the input's gradient is never needed)
    assert bench.graph_flops(dense, (2, 784)) == 2 * (2 * 784 * 10)

    convs = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, padding="same"),
            keras.layers.Conv2D(4, 3, padding="same"),
        ]
    )
    first, second = 2 * 28 * 28 * 9 * 1 * 8, 2 * 28 * 28 * 9 * 8 * 4
    # first: forward + filter gradient; second: forward + filter gradient + input gradient
    assert bench.graph_flops(convs, (2, 28, 28, 1)) == 2 * first + 3 * second

    lstm = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)])
    # unrolled, per step: x·W (3→16) and h·U (4→16) forward, the same again for the weights'
    # gradients, and dh·Uᵀ for the 4 steps whose h came from an earlier step (h_0 is constant)
    forward = 5 * (2 * 3 * 16 + 2 * 4 * 16)
    assert bench.graph_flops(lstm, (2, 5, 3)) == 2 * forward + 4 * 2 * 16 * 4


def test_forward_macs_give_openstl_s_flops_at_its_model_sizes():
    """OpenSTL's FLOPs column (fvcore: a multiply-accumulate is one) for its ConvLSTM-S and
    PredRNN on Moving FashionMNIST, 56.8 G and 116.0 G, within 0.1% from our builders at those
    sizes (PredRNN: 115.95 G)."""
    from kerasrv.architectures import convlstm_forecast, predrnn

    openstl_size = {"filters": (128, 128, 128, 128), "kernel_size": 5, "patch_size": 4}
    clip = (10, 64, 64, 1)
    convlstm = bench.forward_macs(convlstm_forecast(**openstl_size), clip)
    assert convlstm == pytest.approx(56.8e9, rel=1e-3)
    assert bench.forward_macs(predrnn(**openstl_size), clip) == pytest.approx(116.0e9, rel=1e-3)


def test_the_row_rnn_textbook_is_as_wide_as_the_entry():
    # row_rnn.lstm ships 2×LSTM(256); a 128-unit textbook made it look 3.5× slower to train
    card = zoo.info("row_rnn.lstm")
    assert bench.textbook(card).count_params() == zoo.build("row_rnn.lstm").count_params()


def test_the_precision_section_reports_each_pair_from_its_json(tmp_path):
    from kerasrv.bench import precision

    rates = {"float32": 100.0, "mixed_bfloat16": 165.0}
    run = {"metrics": {"accuracy": 0.9}, "wall_time_s": 3600.0, "command": "kerasrv train x"}
    results = {
        "machine": {"date": "2026-12-06", "hardware": "a CPU", "versions": {}},
        "speed": {
            "cnn_lstm.fmnist": {
                "batch_size": 128,
                "samples_per_s": rates,
                "rounds": {"float32": [100.0, 90.0], "mixed_bfloat16": [150.0, 165.0]},
                "bfloat16_speedup": 1.65,
            },
            "row_rnn.gru": {  # measured again later, with more rounds
                "batch_size": 128,
                "samples_per_s": rates,
                "rounds": {p: [r] * 4 for p, r in rates.items()},
                "bfloat16_speedup": 1.65,
            },
        },
        "quality": {
            "cnn_lstm.fmnist": {
                "arguments": ["--epochs", "5"],
                "float32": run,
                "mixed_bfloat16": {**run, "metrics": {"accuracy": 0.8}},
            }
        },
    }
    path = tmp_path / "precision.json"
    assert precision.report_lines(path) == []  # no run yet: no section
    path.write_text(json.dumps(results))
    text = "\n".join(precision.report_lines(path))
    assert "| cnn_lstm.fmnist | 128 | 100.0 | 165.0 | 1.65 |" in text
    assert "best of 2 or 4 alternating rounds (each row's own count, in precision.json)" in text
    assert "| cnn_lstm.fmnist | `--epochs 5` | accuracy 0.9 | accuracy 0.8 |" in text


def test_a_precision_update_keeps_the_other_rows_and_names_its_own_machine(tmp_path, monkeypatch):
    from kerasrv.bench import precision

    def speed(name):
        return {
            "input_shape": [28, 28],
            "params": 1,
            "batch_size": 8,
            "samples_per_s": {"float32": 10.0, "mixed_bfloat16": 20.0},
            "rounds": {"float32": [10.0, 9.0], "mixed_bfloat16": [20.0, 19.0]},
            "bfloat16_speedup": 2.0,
        }

    monkeypatch.setattr(precision, "speed", speed)
    monkeypatch.setattr(precision, "hardware", lambda: "the first CPU")
    path = tmp_path / "precision.json"
    precision.run(["row_rnn.gru", "row_rnn.lstm"], out=path, log=lambda line: None, pairs={})
    first = json.loads(path.read_text())
    monkeypatch.setattr(precision, "hardware", lambda: "another CPU")
    precision.run(["row_rnn.lstm"], out=path, log=lambda line: None, pairs={}, update=True)
    second = json.loads(path.read_text())
    assert second["machine"] == first["machine"]  # the header stays the run that made the file
    assert second["speed"]["row_rnn.gru"] == first["speed"]["row_rnn.gru"]
    assert second["speed"]["row_rnn.lstm"]["hardware"] == "another CPU"
    text = "\n".join(precision.report_lines(path))
    assert "| row_rnn.gru | 8 |" in text and "best of 2 alternating rounds on" in text
    assert f"| row_rnn.lstm (measured {first['machine']['date']}, another CPU) | 8 |" in text
    precision.run(["row_rnn.lstm"], out=path, log=lambda line: None, pairs={})  # no --update
    assert list(json.loads(path.read_text())["speed"]) == ["row_rnn.lstm"]


def test_every_bfloat16_row_was_measured_on_the_model_it_builds_now():
    """BENCHMARKS.md's bfloat16 rows describe the entries that ship: one whose architecture
    changed since is measured again (`kerasrv bench NAME --precision --update`)."""
    from kerasrv.bench import precision

    rows = json.loads(precision.RESULTS.read_text())["speed"]
    stale = {
        name: (row["params"], zoo.build(name, input_shape=tuple(row["input_shape"])).count_params())
        for name, row in rows.items()
        if name in zoo.list_models()
    }
    assert {name: p for name, p in stale.items() if p[0] != p[1]} == {}


def _benchmarked():
    from kerasrv.bench.runner import RESULTS

    return json.loads(RESULTS.read_text())["entries"]


# Entries changed since their speed rows were measured, each with what changed; measuring them
# again takes the machine to itself for minutes (not while a training leg holds the cores).
MEASURED_ON_AN_EARLIER_MODEL = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n, marks=pytest.mark.xfail(strict=True, reason=MEASURED_ON_AN_EARLIER_MODEL[n])
        )
        if n in MEASURED_ON_AN_EARLIER_MODEL
        else n
        for n in sorted(_benchmarked())
    ],
)
def test_every_benchmarked_entry_was_measured_on_the_model_it_builds_now(name):
    """BENCHMARKS.md's speed rows describe the entry that ships: an entry whose architecture
    changed since (more layers, other widths) is measured again (`kerasrv bench NAME --update`);
    until it is, the report says so."""
    from kerasrv.bench.report import earlier_models

    entry = _benchmarked()[name]
    assert earlier_models({name: entry}) == {}, (
        f"`kerasrv bench {name} --update` measures the model it builds now"
    )


def test_the_pilots_table_says_what_each_pilot_changes_from_the_baseline(tmp_path, monkeypatch):
    """Each pilot's change is read from its file against the baseline's, not written by hand; a
    recipe key the baseline's file predates counts at its default."""
    from kerasrv.bench import history

    def pilot(name, builder_args, recipe):
        curve = [[1, 0.1, 0.05], [2, 0.2, 0.04]]
        record = {"builder_args": builder_args, "recipe": recipe, "curve": curve}
        record.update(date="2026-12-07", hardware="a CPU")
        (tmp_path / f"{name}.json").write_text(json.dumps(record))

    base = {"patch_size": 8, "kernel_size": 3}
    pilot("p8", base, {"epochs": 6, "learning_rate": 1e-3})
    pilot("p8_k5", {**base, "kernel_size": 5}, {"epochs": 6, "learning_rate": 1e-3})
    pilot("p8_rss", base, {"epochs": 2, "learning_rate": 1e-3, "reverse_sampling": [0.2, 0.4]})
    pilot("p8_same", base, {"epochs": 6, "learning_rate": 1e-3, "reverse_sampling": None})
    monkeypatch.setattr(history, "PILOTS", tmp_path)
    rows = {line.split(" | ")[0][2:]: line for line in history.pilot_lines() if line[:4] == "| p8"}
    assert rows["p8"].startswith("| p8 | — (the baseline) | 204.8, 163.8 | 0.20 |")
    assert rows["p8_k5"].startswith("| p8_k5 | kernel_size=5 |")
    assert rows["p8_rss"].startswith("| p8_rss | reverse_sampling=[0.2, 0.4] |")  # not epochs
    assert rows["p8_same"].startswith("| p8_same | — (the baseline) |")
