"""kerasrv.training: resume after SIGKILL, NaN handling, tf.distribute strategies."""

import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import QUICK_TRAIN as QUICK
from helpers import call_cli, run_cli, tree_digest

from kerasrv import artifacts, registry, training, zoo
from kerasrv.errors import UsageError

HERE = Path(__file__).parent


def kerasrv(*args, tfds_dir, **popen):
    env = {**os.environ, "TFDS_DATA_DIR": tfds_dir, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "kerasrv.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def _copy_of_shipped(name, models):
    """Copies an entry's shipped card and weights into `models` (a KERASRV_MODELS_DIR of the
    test's own, which the test may write); returns the shipped directory."""
    shipped = artifacts.shipped(name)
    (models / name).mkdir(parents=True)
    for file in (artifacts.CARD_FILE, artifacts.WEIGHTS_FILE):
        (models / name / file).write_bytes((shipped / file).read_bytes())
    return shipped


def _epochs_logged(log):
    if not log.exists():
        return 0
    with open(log) as f:
        return len(list(csv.DictReader(f)))


def test_a_killed_run_resumes_at_the_next_epoch(tmp_path, tfds_dir):
    args = ["train", "row_rnn.gru", "--epochs", "4", *QUICK, "--out", str(tmp_path)]
    log = tmp_path / "row_rnn.gru" / "train" / "log.csv"
    first = kerasrv(*args, tfds_dir=tfds_dir)
    deadline = time.monotonic() + 300
    while _epochs_logged(log) < 1 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = _epochs_logged(log)
    assert 1 <= done < 4, f"killed after {done} epochs"

    second = kerasrv(*args, tfds_dir=tfds_dir)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    epochs = [line.split()[1] for line in output.splitlines() if line.startswith("Epoch ")]
    assert epochs[0] == f"{done + 1}/4", output  # not 1/4: it resumed
    with open(log) as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2, 3]
    card = json.loads((tmp_path / "row_rnn.gru" / "card.json").read_text())
    assert card["training"]["epochs_run"] == 4


def test_a_nan_loss_ends_the_run_with_a_message_and_a_loadable_checkpoint(tmp_path, tfds_dir):
    run = kerasrv(
        "train",
        "cnn_lstm",
        "--epochs",
        "2",
        "--learning-rate",
        "1e30",
        *QUICK,
        "--out",
        str(tmp_path),
        tfds_dir=tfds_dir,
    )
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 1, output
    assert "training stopped: the loss became nan at epoch 1" in output
    checkpoint = tmp_path / "cnn_lstm.fmnist" / "train" / "best.weights.h5"
    assert f"the last good weights are in {checkpoint}" in output
    assert "Traceback" not in output
    model = zoo.load("cnn_lstm", weights=checkpoint)
    probabilities = model(np.zeros((2, 28, 28, 1), "float32"), training=False).numpy()
    assert np.isfinite(probabilities).all()


def _distributed(strategy, out, env=None):
    return subprocess.Popen(
        [sys.executable, str(HERE / "distributed_run.py"), strategy, str(out)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(*runs):
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "result.json"
    _finish(_distributed("default", out))
    return json.loads(out.read_text())


def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path, single_device):
    out = tmp_path / "result.json"
    _finish(_distributed("mirrored", out))
    mirrored = json.loads(out.read_text())
    assert mirrored["strategy"] == "MirroredStrategy" and mirrored["replicas"] == 2
    assert mirrored["accuracy"] == pytest.approx(single_device["accuracy"], abs=0.005)
    assert mirrored["loss"] == pytest.approx(single_device["loss"], rel=0.01)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # three TensorFlow processes; MirroredStrategy (above) runs by default
def test_two_local_workers_match_one_device(tmp_path, single_device):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    out = tmp_path / "result.json"
    runs = [
        _distributed(
            "multi_worker",
            out,
            {
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
                )
            },
        )
        for i in range(2)
    ]
    _finish(*runs)
    result = json.loads(out.read_text())
    assert result["strategy"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
    assert result["replicas"] == 2
    assert result["accuracy"] == pytest.approx(single_device["accuracy"], abs=0.005)
    assert result["loss"] == pytest.approx(single_device["loss"], rel=0.01)


# --- a finished run is never lost --------------------------------------------------------------


def test_a_finished_run_is_refused_with_one_line_and_kept(finished_run, tfds_dir):
    before = tree_digest(finished_run)
    code, _, stderr = call_cli(
        "train",
        "row_rnn.gru",
        "--epochs",
        "1",
        *QUICK,
        "--out",
        finished_run.parent,
        env={"TFDS_DATA_DIR": tfds_dir},
    )
    assert code == 2 and len(stderr) == 1, stderr
    assert "holds a finished run" in stderr[0] and "--overwrite" in stderr[0]
    assert tree_digest(finished_run) == before


@pytest.mark.slow  # a two-epoch run (70 s)
def test_overwrite_trains_again_and_patience_stops_a_run_that_learns_nothing(
    finished_run, tmp_path, tfds_dir
):
    """README's promises: `--overwrite` replaces a finished run; `--patience N` stops after N
    epochs without a better validation score (a rate of 1e-12 learns nothing after the
    first); every run keeps TensorBoard logs."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(finished_run, runs / "row_rnn.gru")
    before = json.loads((runs / "row_rnn.gru" / artifacts.CARD_FILE).read_text())
    args = ["train", "row_rnn.gru", "--epochs", "4", *QUICK, "--patience", "1"]
    args += ["--learning-rate", "1e-12", "--overwrite", "--out", runs]
    code, _, stderr = run_cli(*args, env={"TFDS_DATA_DIR": tfds_dir})
    assert code == 0, "\n".join(stderr)
    card = json.loads((runs / "row_rnn.gru" / artifacts.CARD_FILE).read_text())
    assert card["training"]["command"] != before["training"]["command"]  # the new run's card
    assert card["training"]["epochs"] == 4 and card["training"]["epochs_run"] == 2
    assert list((runs / "row_rnn.gru" / "train" / "tensorboard").rglob("events.out.tfevents*"))


def test_ship_makes_a_run_the_entrys_weights_and_keeps_what_the_card_recorded(
    finished_run, tmp_path, tfds_dir
):
    """A run from fresh weights replaces the shipped model: the replaced one goes on the card
    as an attempt; the attempts already there stay; the export record waits for a new export."""
    models = tmp_path / "models"
    _copy_of_shipped("row_rnn.gru", models)
    old = json.loads((models / "row_rnn.gru" / artifacts.CARD_FILE).read_text())
    old["attempts"] = [{"metrics": {"accuracy": 0.5}, "command": "tried", "note": "kept"}]
    old["baselines"] = {"single_frame": {"metrics": {"accuracy": 0.4}, "command": "one frame"}}
    (models / "row_rnn.gru" / artifacts.CARD_FILE).write_text(json.dumps(old))
    env = {"TFDS_DATA_DIR": tfds_dir, "KERASRV_MODELS_DIR": str(models)}
    code, stdout, stderr = call_cli("ship", finished_run, env=env)
    assert code == 0, "\n".join(stderr)
    card = json.loads((models / "row_rnn.gru" / artifacts.CARD_FILE).read_text())
    run = json.loads((finished_run / artifacts.CARD_FILE).read_text())
    assert card["metrics"] == run["metrics"] and card["exports"] is None
    assert card["weights"]["sha256"] == artifacts.sha256(
        models / "row_rnn.gru" / "model.weights.h5"
    )
    assert card["weights"]["sha256"] == run["weights"]["sha256"]
    kept, replaced = card["attempts"]
    assert kept["note"] == "kept"
    assert replaced["metrics"] == old["metrics"] and "replaced by" in replaced["note"]
    # whose test split each attempt's metrics are of: one recorded without it, its card's
    assert kept["dataset"] == replaced["dataset"] == old["training"]["dataset"]
    assert card["baselines"]["single_frame"]["dataset"] == old["training"]["dataset"]
    code, _, stderr = call_cli("ship", finished_run / "train", env=env)  # not a finished run
    assert code == 2 and len(stderr) == 1, stderr


def test_a_leg_from_the_shipped_weights_continues_the_model_when_shipped(tmp_path, tfds_dir):
    """`--weights default` names the shipped weights by sha256, so `ship` knows the run
    continues that model: its legs come first, and it goes on the card as no replaced attempt
    (a leg that named the entry alone was shipped as if it had replaced it)."""
    models = tmp_path / "models"
    _copy_of_shipped("row_rnn.gru", models)
    shipped = models / "row_rnn.gru"
    sha = artifacts.sha256(shipped / artifacts.WEIGHTS_FILE)
    before = json.loads((shipped / artifacts.CARD_FILE).read_text())
    earlier_leg = {"command": "an earlier leg, recorded before legs named their dataset"}
    before["training"]["legs"] = [earlier_leg]
    (shipped / artifacts.CARD_FILE).write_text(json.dumps(before))
    env = {"TFDS_DATA_DIR": tfds_dir, "KERASRV_MODELS_DIR": str(models)}
    args = ["train", "row_rnn.gru", "--epochs", "1", *QUICK, "--weights", "default"]
    code, _, stderr = call_cli(*args, "--out", tmp_path / "runs", env=env)
    assert code == 0, "\n".join(stderr)
    run = tmp_path / "runs" / "row_rnn.gru"
    leg = json.loads((run / artifacts.CARD_FILE).read_text())["training"]["legs"][-1]
    assert leg["started_from"] == f"row_rnn.gru (sha256 {sha})"
    attempts = json.loads((shipped / artifacts.CARD_FILE).read_text()).get("attempts")
    code, _, stderr = call_cli("ship", run, env=env)
    assert code == 0, "\n".join(stderr)
    card = json.loads((shipped / artifacts.CARD_FILE).read_text())
    assert card.get("attempts") == attempts  # nothing replaced
    assert card["training"]["legs"][-1]["started_from"] == leg["started_from"]
    # each leg names what it trained on (a leg may fine-tune on another dataset than the
    # last); one recorded before legs did, its card's
    first, last = card["training"]["legs"]
    assert first == {"dataset": "fashion_mnist_local", **earlier_leg}
    assert last["dataset"] == "fashion_mnist_local"


def test_a_recorded_attempt_lands_on_the_shipped_card_and_never_on_itself(tmp_path, tfds_dir):
    models = tmp_path / "models"
    shipped = _copy_of_shipped("row_rnn.gru", models)
    env = {"TFDS_DATA_DIR": tfds_dir, "KERASRV_MODELS_DIR": str(models)}
    args = ["train", "row_rnn.gru", "--epochs", "1", *QUICK, "--record-attempt"]
    code, _, stderr = call_cli(*args[:-1], "--note", "x", "--out", tmp_path / "n", env=env)
    assert code == 2 and len(stderr) == 1 and "--note describes a recorded attempt" in stderr[0]
    start = tmp_path / "start.weights.h5"
    start.write_bytes((shipped / artifacts.WEIGHTS_FILE).read_bytes())
    args += ["--weights", str(start), "--note", "a warm restart from the shipped weights"]
    before = tree_digest(models)
    code, _, stderr = call_cli(*args, "--out", models, env=env)
    assert code == 2 and len(stderr) == 1 and "is the shipped row_rnn.gru itself" in stderr[0]
    assert tree_digest(models) == before  # refused before training: nothing written

    code, _, stderr = call_cli(*args, "--out", tmp_path / "runs", env=env)
    assert code == 0, "\n".join(stderr)
    run = json.loads((tmp_path / "runs" / "row_rnn.gru" / artifacts.CARD_FILE).read_text())
    card = json.loads((models / "row_rnn.gru" / artifacts.CARD_FILE).read_text())
    (attempt,) = card["attempts"]
    assert attempt["metrics"] == run["metrics"] and attempt["command"] == run["training"]["command"]
    assert attempt["wall_time_s"] == run["training"]["wall_time_s"]
    assert attempt["epochs_run"] == run["training"]["epochs_run"] == 1
    assert attempt["builder_args"] == run["builder_args"]  # what the command ran at the time
    assert attempt["augment"] == run["training"]["augment"]
    assert attempt["dataset"] == run["training"]["dataset"] == "fashion_mnist_local"
    # a warm start from a file names it by its sha256, on the run's card and on the attempt
    assert run["training"]["started_from"] == f"{start} (sha256 {artifacts.sha256(start)})"
    assert attempt["started_from"] == run["training"]["started_from"]
    assert attempt["note"] == "a warm restart from the shipped weights"
    assert zoo.info("row_rnn.gru")["metrics"] == card["metrics"]  # the shipped metrics stay


@pytest.mark.slow  # four training runs; the default run kills one at a fixed point (above)
def test_killed_at_random_points_a_run_resumes_and_then_stays_finished(tmp_path, tfds_dir):
    args = ["train", "row_rnn.gru", "--epochs", "4", *QUICK, "--out", str(tmp_path)]
    directory = tmp_path / "row_rnn.gru"
    rng = random.Random(11)  # three points: start-up, an epoch, its checkpoints, ...
    for delay in (rng.uniform(3, 16) for _ in range(3)):
        finished = (directory / artifacts.CARD_FILE).exists()  # a run that beat its kill
        run = kerasrv(*args, tfds_dir=tfds_dir)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        if finished:  # the run after it refuses at once, touching nothing
            assert run.returncode == 2
        else:  # a card only from a run that finished
            assert not (directory / artifacts.CARD_FILE).exists() or run.returncode == 0
    code, stdout, stderr = run_cli(*args, env={"TFDS_DATA_DIR": tfds_dir})
    if code == 2:  # the last kill came after the run had finished
        assert "holds a finished run" in stderr[0]
    else:
        assert code == 0, stderr
    card = json.loads((directory / artifacts.CARD_FILE).read_text())
    assert card["training"]["epochs_run"] == 4
    with open(directory / "train" / "log.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2, 3]
    model, _ = zoo.resolve(directory)  # its weights match its card's sha256
    assert card["metrics"]["accuracy"] > 0.5
    before = tree_digest(directory)
    code, _, stderr = run_cli(*args, env={"TFDS_DATA_DIR": tfds_dir})
    assert code == 2 and "holds a finished run" in stderr[0]
    assert tree_digest(directory) == before


def test_a_diverged_run_leaves_the_precision_policy_as_it_was(tmp_path, tfds_dir):
    settings = training.Settings(
        epochs=1,
        batch_size=64,
        learning_rate=1e30,
        precision="mixed_float16",
        train_split="train[:640]",
        validation_split="train[59000:59100]",
    )
    with pytest.raises(training.TrainingDiverged):
        training.train("row_rnn.gru", settings, out=tmp_path, data_dir=tfds_dir)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not (tmp_path / "row_rnn.gru" / artifacts.CARD_FILE).exists()


class _Interrupted(Exception):
    pass


class _InterruptAt(keras.callbacks.Callback):
    """Stops a run as a kill would, after the backup of the epoch before `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupted


def _averaged_run(out, ema_momentum=0.8, interrupt_at=None):
    import tensorflow as tf

    from kerasrv import tasks

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    tasks.get("classification").compile(model, learning_rate=0.05, ema_momentum=ema_momentum)
    x = np.random.RandomState(0).rand(64, 4).astype("float32")
    y = (x.sum(axis=1) * 1.5).astype("int32") % 3
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    stop = [_InterruptAt(interrupt_at)] if interrupt_at else []
    callbacks = [*training.averaging(ema_momentum), *stop]
    training.fit(model, data, data, epochs=4, out_dir=out, callbacks=callbacks, verbose=0)
    return model, data


def test_an_averaged_run_keeps_the_weights_it_validated_and_resumes_exactly(tmp_path):
    model, data = _averaged_run(tmp_path / "whole")
    with open(tmp_path / "whole" / "log.csv") as f:
        losses = [float(row["val_loss"]) for row in csv.DictReader(f)]
    best = min(losses)
    # the weights compared below come from an epoch after the interruption at epoch 2
    assert losses.index(best) >= 2, losses
    # The checkpoint kept is the averaged weights that scored `best`, not the trained ones.
    assert model.evaluate(data, verbose=0)[0] == pytest.approx(best, rel=1e-5)
    plain, _ = _averaged_run(tmp_path / "plain", ema_momentum=0.0)
    assert not np.allclose(model.get_weights()[0], plain.get_weights()[0], atol=1e-3)

    with pytest.raises(_Interrupted):
        _averaged_run(tmp_path / "killed", interrupt_at=2)
    resumed, _ = _averaged_run(tmp_path / "killed")
    for got, want in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_diverged_averaged_run_puts_back_finite_weights_and_their_average(tmp_path):
    import tensorflow as tf

    from kerasrv import tasks

    layers = [keras.layers.Dense(4, activation="exponential"), keras.layers.Dense(3, "softmax")]
    model = keras.Sequential([keras.Input((4,)), *layers])  # huge steps: exp → inf → NaN
    tasks.get("classification").compile(model, learning_rate=1e30, ema_momentum=0.8)
    x = np.random.RandomState(0).rand(64, 4).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(64) % 3))
    with pytest.raises(training.TrainingDiverged):
        training.fit(
            model,
            data.batch(16),
            data.batch(16),
            epochs=2,
            out_dir=tmp_path,
            callbacks=training.averaging(0.8),
            verbose=0,
        )
    # the average went NaN with the weights; the guard restarted it from the checkpoint's
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_recipe_names_the_splits_and_the_command_line_overrides_them(
    tmp_path, tfds_dir, monkeypatch
):
    """An entry whose recipe is fitted on every training example (the common last step once a
    recipe is chosen on a held-out split) says so in its recipe, so `kerasrv train NAME`
    repeats the shipped run; --train-split and --validation-split still decide when given."""

    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    monkeypatch.setattr(registry, "_DEFAULT_TAG", dict(registry._DEFAULT_TAG))
    registry.register(
        "row_rnn.allsplits",
        task="classification",
        dataset="fashion_mnist_local",
        target="label",
        class_names=None,
        description="a recipe that trains on all of train, for this test",
        recipe={"epochs": 1, "batch_size": 8, "train_split": "train", "validation_split": "test"},
        input_shape=(28, 28, 1),
        num_classes=10,
    )
    run = training.prepare("row_rnn.allsplits", out=tmp_path, data_dir=tfds_dir)
    assert (run.train_split, run.validation_split) == ("train", "test")
    assert run.train_ds.cardinality() == 60_000 // 8
    given = training.Settings(train_split="train[:80]", validation_split="train[80:96]")
    run = training.prepare("row_rnn.allsplits", given, out=tmp_path, data_dir=tfds_dir)
    assert (run.train_split, run.validation_split) == ("train[:80]", "train[80:96]")
    assert run.train_ds.cardinality() == 10
    default = training.prepare("row_rnn.gru", out=tmp_path, data_dir=tfds_dir)
    assert (default.train_split, default.validation_split) == ("train[:90%]", "train[90%:]")


def test_a_time_budget_stops_after_the_last_epoch_that_fits(monkeypatch):
    """Epochs of 100 s (a fake clock) and a budget of 350 s: three epochs run, as a fourth
    would end at 400 s."""
    from kerasrv.training import callbacks

    now = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            now[0] += 100.0

    budget = callbacks.TimeBudget(350)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(
        np.zeros((4, 2)), np.zeros((4, 1)), epochs=10, verbose=0, callbacks=[Tick(), budget]
    )
    assert len(history.history["loss"]) == 3 and budget.stopped_after == 3
    with pytest.raises(ValueError, match="hours must be a positive number"):
        training.Settings(hours=0)


def test_a_tfds_dataset_by_name_trains_at_the_input_shape_asked(tmp_path, tfds_dir):
    """`train --data NAME` for a prepared TFDS dataset (README: `--data cifar10`). cifar10 and
    Fashion-MNIST have only train and test: the last tenth of train picks the epoch unless
    --validation-split says; `--input-shape` is the model's and the card's."""
    run = training.prepare("row_rnn.gru", data="fashion_mnist_local", out=tmp_path / "p")
    assert (run.train_split, run.validation_split) == ("train[:90%]", "train[90%:]")
    args = ["train", "row_rnn.gru", "--data", "fashion_mnist_local", "--epochs", "1", *QUICK]
    code, _, stderr = call_cli(
        *args, "--input-shape", "14,14,1", "--out", tmp_path, env={"TFDS_DATA_DIR": tfds_dir}
    )
    assert code == 0, "\n".join(stderr)
    directory = tmp_path / "row_rnn.fashion_mnist_local"
    card = json.loads((directory / artifacts.CARD_FILE).read_text())
    assert card["dataset"] == "fashion_mnist_local" and card["input_shape"] == [14, 14, 1]
    assert card["class_names"][0] == "T-shirt/top" and len(card["class_names"]) == 10
    assert card["training"]["validation_split"] == "train[59000:]"
    assert zoo.resolve(directory)[0].input_shape == (None, 14, 14, 1)
    assert card["metrics"]["accuracy"] >= 0.3  # chance is 0.1: it learnt at 14×14


@pytest.mark.slow  # 50 s: the baseline run is measured on lrcn.motion's whole test split
def test_record_baseline_writes_the_single_frame_run_on_the_shipped_card(tmp_path, tfds_dir):
    """lrcn.motion's claim that motion needs the sequence rests on the card's baseline: what
    the same encoder reaches from one frame (`--frames 1 --record-baseline`)."""
    models = tmp_path / "models"
    _copy_of_shipped("lrcn.motion", models)
    env = {"TFDS_DATA_DIR": tfds_dir, "KERASRV_MODELS_DIR": str(models)}
    args = ["train", "lrcn.motion", "--epochs", "1", "--batch-size", "16", "--record-baseline"]
    args += ["--train-split", "train[:64]", "--validation-split", "train[9000:9032]"]
    before = tree_digest(models)
    code, _, stderr = run_cli(*args, "--out", tmp_path / "runs", env=env)  # no --frames 1
    assert code == 2 and len(stderr) == 1 and "use it with --frames 1" in stderr[0]
    assert tree_digest(models) == before
    code, _, stderr = run_cli(*args, "--frames", "1", "--out", tmp_path / "runs", env=env)
    assert code == 0, "\n".join(stderr)
    (run,) = (tmp_path / "runs").iterdir()
    run = json.loads((run / artifacts.CARD_FILE).read_text())
    card = json.loads((models / "lrcn.motion" / artifacts.CARD_FILE).read_text())
    baseline = card["baselines"]["single_frame"]
    assert baseline["metrics"] == run["metrics"] and "--frames 1" in baseline["command"]
    assert card["metrics"] == zoo.info("lrcn.motion")["metrics"]  # the entry's own stay


def test_a_models_hours_count_the_epochs_before_a_resume():
    """A leg resumed after a kill has a wall time from its restart only; its curve's hours
    (cumulative over the leg) count every epoch: the card's total sums those."""
    resumed = {"wall_time_s": 2487.6, "curve": [[1, 0.13, 0.04], [7, 1.10, 0.02]]}
    assert artifacts.leg_seconds(resumed) == pytest.approx(1.10 * 3600)
    assert artifacts.leg_seconds({"wall_time_s": 60.0}) == 60.0  # a card from before curves


def test_a_recipes_bfloat16_is_used_only_where_the_hardware_computes_it(
    monkeypatch, tmp_path, tfds_dir
):
    """bfloat16 pays only where it is native (AVX512-BF16 or AMX, GPUs from Ampere); elsewhere
    TensorFlow emulates it, slower than float32. A precision asked for is used as asked."""
    from kerasrv.training import distribution

    choose = distribution.precision_for
    bf16 = "mixed_bfloat16"
    assert choose(bf16, gpus=[], cpu_flags={"avx512f", "avx512_bf16"}) == (bf16, None)
    assert choose(bf16, gpus=[], cpu_flags={"amx_bf16"}) == (bf16, None)
    precision, why = choose(bf16, gpus=[], cpu_flags={"avx512f", "avx2"})
    assert precision == "float32" and "not native" in why
    assert choose(bf16, gpus=[(8, 0)], cpu_flags=set())[0] == bf16  # the GPU trains, not the CPU
    assert choose(bf16, gpus=[(7, 5)], cpu_flags={"avx512_bf16"})[0] == "float32"
    assert choose("mixed_float16", gpus=[(7, 0)])[0] == "mixed_float16"
    assert choose(bf16, asked="float32", gpus=[], cpu_flags={"amx_bf16"}) == ("float32", None)
    assert choose(bf16, asked=bf16, gpus=[], cpu_flags=set()) == (bf16, None)
    assert choose("float32", gpus=[], cpu_flags=set()) == ("float32", None)
    with pytest.raises(UsageError, match="recipe precision must be one of"):
        registry.Recipe(epochs=1, batch_size=8, precision="bfloat16")

    # a run of an entry whose recipe names bfloat16, on hardware with it and without it
    assert registry.get_entry("cnn_lstm").recipe.precision == bf16
    for native, expected in ((True, bf16), (False, "float32")):
        monkeypatch.setattr(distribution, "native_precision", lambda p, native=native: native)
        run = training.prepare("cnn_lstm", out=tmp_path, data_dir=tfds_dir)
        assert run.settings.precision == expected
        assert (f"{expected} (the recipe's" in run.summary()) is not native
    asked = training.Settings(precision="float32")
    run = training.prepare("cnn_lstm", asked, out=tmp_path, data_dir=tfds_dir)
    assert run.settings.precision == "float32" and run.precision_note is None
