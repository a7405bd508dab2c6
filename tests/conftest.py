"""Shared fixtures of the test suite; shared helpers are in helpers.py."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data directory for the session: kerasrv's builders prepare into it on first use."""
    return str(tmp_path_factory.mktemp("tensorflow_datasets"))


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
