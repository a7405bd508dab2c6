"""Shared fixtures of the test suite; shared helpers are in helpers.py."""

import fcntl
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


def _for_every_worker(tmp_path_factory, name):
    """A session's folder `name`: under pytest-xdist one for all workers, in the run's common
    temporary folder (what goes in it is guarded by a lock), else the worker's own."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        directory = tmp_path_factory.getbasetemp().parent / name
        directory.mkdir(exist_ok=True)
        return directory
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session", autouse=True)
def tfds_dir(tmp_path_factory):
    """A TFDS data directory for the session: kerasrv's builders prepare into it on first use.

    Every test and every command it starts reads and writes datasets there ($TFDS_DATA_DIR),
    never in the user's ~/tensorflow_datasets. Under pytest-xdist (`make test`) the workers share
    one, in the run's common temporary folder: kerasrv locks a dataset while preparing it, so each
    is built once per run, by whichever worker needs it first.
    """
    directory = str(_for_every_worker(tmp_path_factory, "tensorflow_datasets"))
    os.environ["TFDS_DATA_DIR"] = directory
    return directory


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)


# A short real training run: what `kerasrv train` writes, for the commands that take a run.
QUICK_TRAIN = [
    "--batch-size",
    "64",
    "--train-split",
    "train[:3000]",
    "--validation-split",
    "train[59000:]",
]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tfds_dir):
    """A finished `kerasrv train row_rnn.gru` run directory (1 epoch on 3,000 images).

    The tests only read it, so under pytest-xdist the workers share one, trained by whichever
    needs it first while the other waits on a lock (it takes half a minute).
    """
    from helpers import run_cli

    out = _for_every_worker(tmp_path_factory, "finished_run")
    run = out / "row_rnn.gru"
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (run / "card.json").exists():  # written last, when the run has finished
            code, stdout, stderr = run_cli(
                "train",
                "row_rnn.gru",
                "--epochs",
                "1",
                *QUICK_TRAIN,
                "--out",
                out,
                env={"TFDS_DATA_DIR": tfds_dir},
            )
            assert code == 0, "\n".join(stderr)
    return run


# Under pytest-xdist (`--dist loadfile --no-loadscope-reorder`) each test file is one unit of
# work, handed out in collection order to whichever worker is free: longest first (seconds of
# tests in a clean-clone run on 2 cores, 2026-12-07), so that no long file starts last while the
# other workers sit idle. xdist's own order (most tests first) started test_training, 190 s in
# 23 tests, after test_layers' 141 tests of 34 s, and one worker finished a minute after the other.
LONGEST_FIRST = (
    "test_export.py",  # 211 s, most of it exporting each task's entry once in every format
    "test_zoo.py",  # 200
    "test_training.py",  # 187
    "test_files.py",  # 128
    "test_cli.py",  # 122
    "test_entries.py",  # 108
    "test_layers.py",  # 34
    "test_forecast.py",  # 31
    "test_data.py",  # 24
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file
