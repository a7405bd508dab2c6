"""The `kerasrv` command line."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from helpers import call_cli

from kerasrv import artifacts, cli, zoo


def test_list_prints_every_entry_as_a_table(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "task", "input", "metrics"]
    assert [line.split()[0] for line in out[2:]] == zoo.list_models()


def test_list_filters_with_a_pattern(capsys):
    assert cli.main(["list", "row_rnn*"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == [
        "row_rnn.gru",
        "row_rnn.lstm",
        "row_rnn.peephole",
    ]


def test_info_prints_the_card_as_json(capsys):
    assert cli.main(["info", "cnn_lstm"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card == json.loads(json.dumps(zoo.info("cnn_lstm.fmnist").to_dict()))


def test_an_unknown_name_exits_2_with_the_suggestion_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "kerasrv.cli", "info", "cnn_lsmt"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown model 'cnn_lsmt'; did you mean cnn_lstm" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_show_writes_a_png(tmp_path, tfds_dir, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    out = tmp_path / "moving.png"
    assert cli.main(["data", "show", "moving_fashion_mnist/small", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_evaluate_prints_the_metrics_and_writes_pictures(tmp_path, tfds_dir, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    for name, metric, picture in [
        ("cnn_lstm", "accuracy", "confusion_matrix.png"),
        ("reseg", "mean_iou", "predictions.png"),
        ("convlstm_predict", "copy_last_mse", "predictions.png"),
        ("convlstm_seg", "mean_iou", "iou_per_frame.png"),
    ]:
        assert cli.main(["evaluate", name, "--split", "test[:16]", "--out", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        entry = zoo.get_entry(name).name
        assert out.startswith(f"{entry} on test[:16] (16 examples)")
        assert f"  {metric}" in out
        path = tmp_path / entry / picture
        assert f"picture: {path}" in out and path.read_bytes()[:4] == b"\x89PNG"
        frames = [line.split()[3:] for line in out.splitlines() if "each frame alone" in line]
        assert [len(row) for row in frames] == ([10] if name == "convlstm_seg" else [])


def test_evaluate_record_writes_the_details_beside_the_cards_own_metrics(
    finished_run, tmp_path, tfds_dir, monkeypatch
):
    """`--record` rewrites a card's evaluation (per class, per frame...) from the same weights
    and data; the card's metrics came from its training and must come out the same."""
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    run = tmp_path / finished_run.name
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns("train"))
    card_file = run / artifacts.CARD_FILE
    card = json.loads(card_file.read_text())

    code, _, stderr = call_cli("evaluate", run, "--split", "test[:64]", "--record")
    assert code == 2, stderr
    assert stderr[0].endswith("of the model's own test split; got --split test[:64]")

    other = {**card, "metrics": {**card["metrics"], "accuracy": card["metrics"]["accuracy"] + 0.01}}
    card_file.write_text(json.dumps(other))
    code, _, stderr = call_cli("evaluate", run, "--out", "", "--record")
    assert code == 2, stderr
    assert "this evaluation's metrics are not the card's, nothing recorded: accuracy" in stderr[0]
    assert json.loads(card_file.read_text()) == other

    card_file.write_text(json.dumps({**card, "evaluation": {"split": "test"}}))
    code, stdout, stderr = call_cli("evaluate", run, "--out", "", "--record")
    assert code == 0, stderr
    assert stdout.splitlines()[-1] == f"recorded in {card_file}"
    recorded = json.loads(card_file.read_text())
    assert recorded["evaluation"] == {**card["evaluation"], "command": f"kerasrv evaluate {run}"}
    assert {k: v for k, v in recorded.items() if k != "evaluation"} == {
        k: v for k, v in card.items() if k != "evaluation"
    }


# --- one line and status 2 for every user error ------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "cnn_lstm", "--epochs", "0"], "argument --epochs: expected a positive integer"),
        (["train", "cnn_lstm", "--batch-size", "0"], "argument --batch-size: expected a positive"),
        (["export", "cnn_lstm", "--parity-samples", "-5"], "expected an integer ≥ 0, got '-5'"),
        (["data", "show", "fashion_mnist_local", "--count", "-3"], "expected a positive integer"),
        (["evaluate", "cnn_lstm", "--batch-size", "0"], "argument --batch-size: expected"),
        (["export", "cnn_lstm", "--format", "tflite,gif"], "unknown export format(s) gif"),
        (["info", "cnn_lsmt"], "unknown model 'cnn_lsmt'; did you mean cnn_lstm"),
        (["evaluate", "no/such/run"], "no/such/run is neither a zoo name, a run directory"),
        (["data", "show", "nosuch"], "unknown dataset 'nosuch': kerasrv's own are"),
        (
            ["train", "cnn_lstm", "--input-shape", "2,2,1", "--out", "unused"],
            "cnn_lstm.fmnist cannot read input_shape (2, 2, 1): its pooling and strides",
        ),
        (["predict", "cnn_lstm", "no/such/folder"], "no such file or folder: no/such/folder"),
    ],
)
def test_user_errors_are_one_line_and_status_2(args, expected):
    code, stdout, stderr = call_cli(*args)
    assert code == 2, stderr
    assert len(stderr) == 1 and expected in stderr[0], stderr
    assert stderr[0].startswith(f"kerasrv {args[0]}")
    assert "Traceback" not in stderr[0] and "\x1b" not in stderr[0]  # no colour codes


def test_an_error_message_loses_keras_colour_codes():
    error = ValueError("Exception encountered when calling \x1b[1mMaxPooling2D\x1b[0m.call().")
    assert cli.one_line(error) == "Exception encountered when calling MaxPooling2D.call()."


def _command(*args, python=(), env=None):
    """The installed `kerasrv` console script, as a user types it."""
    import os

    script = shutil.which("kerasrv", path=str(Path(sys.executable).parent))
    return subprocess.run(
        [sys.executable, *python, script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        # a user's shell, where TF_CPP_MIN_LOG_LEVEL is not set (conftest sets it for the tests)
        env={**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, **(env or {})},
    )


def test_help_and_list_write_nothing_on_stderr_and_help_loads_no_tensorflow():
    for args in (["--help"], ["train", "--help"], ["list"]):
        done = _command(*args)
        assert done.returncode == 0 and done.stderr == "", (args, done.stderr[-2000:])
    assert "cnn_lstm.fmnist" in done.stdout
    # -X importtime lists every module imported, on stderr
    imported = _command("--help", python=("-X", "importtime")).stderr
    assert (
        "kerasrv.cli" in imported
        and "tensorflow" not in imported
        and "keras" not in (imported.replace("kerasrv", ""))
    )


def test_export_help_names_every_export_format_and_the_parity_default():
    """The parser names the formats and the parity default itself (importing kerasrv.export
    would load TensorFlow for --help): they must be the export package's."""
    from kerasrv import export
    from kerasrv.cli.parser import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    options = {a.dest: a for a in commands.choices["export"]._actions}
    listed = options["format"].help.split(": ", 1)[1].split(" (default")[0]
    assert listed.split(", ") == list(export.FORMATS)
    assert options["format"].default == ",".join(export.DEFAULT_FORMATS)
    assert options["parity_samples"].default == export.PARITY_SAMPLES


def test_verbose_or_tf_cpp_min_log_level_leave_tensorflows_lines_alone():
    quiet = _command("info", "row_rnn.gru")
    for loud in (
        _command("info", "row_rnn.gru", "--verbose"),
        _command("info", "row_rnn.gru", env={"TF_CPP_MIN_LOG_LEVEL": "0"}),
    ):
        assert quiet.stdout == loud.stdout and quiet.stderr == ""
        assert "absl::InitializeLog" in loud.stderr  # TensorFlow's first start-up line


def test_predict_takes_a_folder(tmp_path):
    from kerasrv.data import samples

    folder = samples.write("images", tmp_path / "photos", count=2)
    code, stdout, stderr = call_cli("predict", "cnn_lstm", folder)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(p) for p in sorted(folder.rglob("*.png"))]


def _read_only_dir(tmp_path):
    """A directory this process cannot write into: without write permission for a user that
    is not root; for root, whom permissions do not stop, a read-only tmpfs mount or the
    immutable attribute."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return directory, lambda: directory.chmod(0o755)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "none", str(directory)])
    if mounted.returncode == 0:
        return directory, lambda: subprocess.run(["umount", str(directory)])
    if subprocess.run(["chattr", "+i", str(directory)]).returncode == 0:
        return directory, lambda: subprocess.run(["chattr", "-i", str(directory)])
    pytest.skip("this machine can make no read-only directory (no mount, no chattr)")


@pytest.mark.parametrize(
    "command",
    [
        ["export", "row_rnn.gru", "--parity-samples", "0"],
        ["evaluate", "row_rnn.gru", "--split", "test[:8]"],
        ["train", "row_rnn.gru", "--epochs", "1"],
    ],
)
def test_an_out_that_is_a_file_or_read_only_is_one_line(command, tmp_path, tfds_dir):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine\n")
    code, _, stderr = call_cli(*command, "--out", a_file)
    assert code == 2 and len(stderr) == 1, stderr
    assert str(a_file) in stderr[0]
    assert a_file.read_text() == "mine\n"
    directory, release = _read_only_dir(tmp_path)
    try:
        code, _, stderr = call_cli(*command, "--out", directory)
    finally:
        release()
    assert code == 2 and len(stderr) == 1, stderr
    refused = ("Read-only file system", "not permitted", "Permission denied")
    assert any(reason in stderr[0] for reason in refused), stderr


# --- the three kinds of target -----------------------------------------------------------------


def test_evaluate_and_export_take_a_name_a_run_and_a_keras_file(
    finished_run, tmp_path, tfds_dir, monkeypatch
):
    """A user's re-headed model, saved as .keras, exports with its own 4 classes."""
    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    zoo.load("row_rnn.gru").save(tmp_path / "gru.keras")
    for target in ("row_rnn.gru", finished_run, tmp_path / "gru.keras"):
        code, stdout, stderr = call_cli("evaluate", target, "--split", "test[:64]", "--out", "")
        assert code == 0, stderr
        assert "(64 examples)" in stdout and "accuracy" in stdout
        code, stdout, stderr = call_cli(  # the TFLite file: the test below, on a .keras file
            *("export", target, "--format", "saved_model", "--parity-samples", "16"),
            *("--out", tmp_path / "export"),
        )
        assert code == 0, stderr
        assert stdout.count("passes") == 1, stdout
    tuned = zoo.load("row_rnn.gru", num_classes=4)
    tuned.save(tmp_path / "my_model.keras")
    code, _, stderr = call_cli("evaluate", tmp_path / "my_model.keras")
    assert code == 2 and "the targets hold class 9, but the model has 4 classes" in stderr[0]
    code, stdout, stderr = call_cli(
        "export",
        tmp_path / "my_model.keras",
        "--parity-samples",
        "16",
        "--out",
        tmp_path / "export",
    )
    assert code == 0, stderr
    version = tmp_path / "export" / "my_model" / "1"
    card = json.loads((version / "card.json").read_text())
    assert card["num_classes"] == 4 and card["output_shape"] == [4]
    assert card["class_names"] == ["class_0", "class_1", "class_2", "class_3"]
    assert card["metrics"] == {}  # nothing measured of the entry is this model's
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    assert signature.structured_outputs["probabilities"].shape.as_list() == [None, 4]
    parity = json.loads((version / "parity.json").read_text())
    assert parity["samples"] == 16 and all(f["passes"] for f in parity["formats"].values())
    run_card = json.loads((tmp_path / "export" / "row_rnn.gru" / "2" / "card.json").read_text())
    assert run_card["training"]["epochs"] == 1  # the run's own card, not the entry's


def test_export_model_on_a_keras_file_writes_what_kerasrv_export_writes(
    tmp_path, tfds_dir, monkeypatch
):
    """The CLI is a thin layer over the public call: the same files, card and verdicts."""
    from kerasrv import export_model

    monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
    path = tmp_path / "gru.keras"
    zoo.load("row_rnn.gru").save(path)
    formats = ("saved_model", "tflite")
    result = export_model(path, formats, tmp_path / "python", parity_samples=16)
    code, stdout, stderr = call_cli(
        "export", path, "--parity-samples", "16", "--out", tmp_path / "cli"
    )
    assert code == 0, stderr
    by_python, by_cli = result["directory"], tmp_path / "cli" / "gru" / "1"
    assert by_python == tmp_path / "python" / "gru" / "1"
    listing = [sorted(p.relative_to(d) for p in d.rglob("*")) for d in (by_python, by_cli)]
    assert listing[0] == listing[1]
    for name in ("card.json", "model.tflite"):
        assert (by_python / name).read_bytes() == (by_cli / name).read_bytes(), name
    reports = [json.loads((d / "parity.json").read_text()) for d in (by_python, by_cli)]
    for report in reports:  # latency differs run to run, and a SavedModel's graph names too
        for measured in report["formats"].values():
            del measured["latency_ms_batch_1"]
        del report["formats"]["saved_model"]["size_bytes"]
    assert reports[0] == reports[1] and result["parity"]["samples"] == 16
    assert all(f["passes"] for f in reports[0]["formats"].values())


def test_list_survives_a_damaged_card(tmp_path):
    for name in ("row_rnn.gru", "row_rnn.lstm"):
        shutil.copytree(artifacts.shipped(name), tmp_path / name)
    (tmp_path / "row_rnn.gru" / "card.json").write_text('{"name": "row_rnn.gru",\n')
    env = {"KERASRV_MODELS_DIR": str(tmp_path)}
    code, stdout, stderr = call_cli("list", "row_rnn*", env=env)
    assert code == 0, stderr
    rows = {line.split()[0]: line for line in stdout.splitlines()[2:]}
    assert "damaged card" in rows["row_rnn.gru"] and "is not valid JSON" in rows["row_rnn.gru"]
    accuracy = artifacts.read_record(tmp_path / "row_rnn.lstm")["metrics"]["accuracy"]
    assert f"accuracy {accuracy}" in rows["row_rnn.lstm"]  # the undamaged card still lists
    code, _, stderr = call_cli("info", "row_rnn.gru", env=env)
    assert code == 2 and len(stderr) == 1 and "card.json is not valid JSON" in stderr[0]


@pytest.mark.parametrize("bug", [ValueError("a shape went wrong inside"), KeyError("units")])
def test_an_internal_error_is_a_traceback_not_one_line(bug, monkeypatch):
    """A ValueError or KeyError from deep inside (a bug of ours or of a library) reaches the user
    as its traceback; only kerasrv's own errors (kerasrv.errors) and the file system's are one
    line with status 2."""

    def broken(name):
        raise bug

    monkeypatch.setattr(zoo, "info", broken)
    with pytest.raises(type(bug)):
        cli.main(["info", "cnn_lstm"])


def test_every_user_facing_error_is_a_kerasrv_error_and_keeps_its_builtin_base():
    from kerasrv import errors

    for error, base in (
        (errors.UsageError, ValueError),
        (errors.UnknownModelError, KeyError),
        (errors.WeightsError, ValueError),
        (errors.CardError, ValueError),
        (errors.DatasetError, RuntimeError),
        (errors.RunExistsError, ValueError),
        (errors.TrainingDiverged, RuntimeError),
    ):
        assert issubclass(error, errors.KerasrvError) and issubclass(error, base)
    with pytest.raises(errors.UsageError):
        zoo.load("cnn_lstm", input_shape=(28, 28))


def test_bench_update_report_and_precision_reach_the_benchmark(monkeypatch, tmp_path):
    """`kerasrv bench NAME --update` re-measures one entry into the existing results (the
    measuring itself is `make test-slow`'s test_quick_bench_writes_every_field_and_a_report)."""
    from kerasrv import bench

    calls = []
    monkeypatch.setattr(bench, "run", lambda *a, **k: calls.append(("run", a, k)))
    monkeypatch.setattr(bench, "report", lambda out: calls.append(("report", out)) or [])
    out = str(tmp_path / "results.json")
    assert call_cli("bench", "lrcn", "--update", "--quick", "--out", out)[0] == 0
    assert call_cli("bench", "--out", out)[0] == 0
    assert call_cli("bench", "--report", "--out", out)[0] == 0
    (_, names, first), (_, no_names, second), report = calls
    assert names == (["lrcn"],) and first == {"quick": True, "out": out, "update": True}
    assert no_names == ([],) and second == {"quick": False, "out": out, "update": False}
    assert report == ("report", out)
    from kerasrv.bench import precision

    def precision_run(names, out, log, update, pairs=precision.QUALITY):
        calls.append((names, out, update, pairs))

    monkeypatch.setattr(precision, "run", precision_run)
    assert call_cli("bench", "cnn_lstm", "--precision", "--out", out)[0] == 0
    beside_the_results = tmp_path / "precision.json"
    assert calls[-1] == (["cnn_lstm"], beside_the_results, False, precision.QUALITY)
    assert call_cli("bench", "lrcn", "--precision", "--update", "--out", out)[0] == 0
    assert calls[-1] == (["lrcn"], beside_the_results, True, precision.QUALITY)
    args = ("bench", "--precision", "--update", "--speed-only", "--out", out)
    assert call_cli(*args)[0] == 0
    assert calls[-1] == ([], beside_the_results, True, {})  # every row, no quality pair
    before = len(calls)
    code, _, stderr = call_cli("bench", "--speed-only", "--out", out)
    assert code == 2 and len(stderr) == 1 and "give --precision" in stderr[0]
    assert len(calls) == before


@pytest.mark.slow  # a minute: the demo evaluates 10,000 images twice and exports
def test_make_demo_prints_the_entrys_card_number_and_exports_that_agree(tmp_path, tfds_dir):
    """What `make demo` runs, as a user sees it: the table, no TensorFlow C++ logs (the first
    run on a machine also shows TFDS preparing Fashion-MNIST from Debian's files, done here)."""
    from kerasrv import data

    data.load_split("fashion_mnist_local", "test[:1]", tfds_dir)
    done = subprocess.run(
        [sys.executable, "-m", "kerasrv.demo", "--out", tmp_path],
        # as a user's shell has it: conftest sets TF_CPP_MIN_LOG_LEVEL, which means "verbose"
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
        | {"TFDS_DATA_DIR": tfds_dir},
        capture_output=True,
        text=True,
        check=True,
    )
    table = [line for line in done.stdout.splitlines() if "  " in line]
    rows = {line.split("  ")[0]: line.split()[-1] for line in table}
    card_accuracy = zoo.info("cnn_lstm")["metrics"]["accuracy"]
    assert rows["cnn_lstm.fmnist (10 classes)"] == f"{card_accuracy:.4f}"
    tuned, fresh = float(rows["fine-tuned from the entry"]), float(rows["same, from fresh weights"])
    assert tuned >= 0.9 and tuned >= fresh + 0.2, (tuned, fresh)
    for export in ("saved_model", "tflite"):
        assert float(rows[f"export: {export}"]) >= 0.99
    for picture in ("entry", "fine_tuned"):
        assert (tmp_path / picture / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    exported = next((tmp_path / "export" / "cnn_lstm_coarse").iterdir())
    assert (exported / "saved_model.pb").is_file() and (exported / "model.tflite").is_file()
    # LiteRT's one INFO line about its XNNPACK delegate has no switch; TensorFlow's are silenced
    logs = [line for line in done.stderr.splitlines() if line and "XNNPACK delegate" not in line]
    assert not logs, logs
