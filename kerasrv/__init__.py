"""kerasrv: a model zoo of recurrent vision models for Keras 3 on TensorFlow.

Example:
    >>> import kerasrv
    >>> kerasrv.zoo.list_models("*lstm*")
    ['cnn_lstm.fmnist', ...]
    >>> model = kerasrv.zoo.load("cnn_lstm")
"""

import os

# The zoo's layers run on any Keras backend, but export, training recipes and data pipelines are
# TensorFlow's: default to it unless the user chose a backend before importing us.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

# Importing the layers registers them with Keras: a .keras file of an entry then loads.
from kerasrv import artifacts, layers, registry, tasks, zoo  # noqa: E402

__all__ = ["artifacts", "layers", "registry", "tasks", "zoo", "__version__"]

# The heavier parts (tensorflow-datasets, the TFLite converter) load on first use:
# `kerasrv.data.pipeline(...)` works after a bare `import kerasrv`.
_LAZY = ("data", "evaluation", "export", "training", "bench", "pictures")


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"kerasrv.{name}")
    raise AttributeError(f"module 'kerasrv' has no attribute {name!r}")
