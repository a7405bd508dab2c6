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

__version__ = "0.8.0"

__all__ = ["artifacts", "layers", "registry", "tasks", "zoo", "__version__"]


def _the_command_line():
    """Whether this process is the `kerasrv` console script, `python -m kerasrv.cli` or the demo
    (`make demo`: `python -m kerasrv.demo`), which load TensorFlow quietly themselves. A `-m`
    module's `__main__` is not yet set while its parent packages import: the interpreter's own
    arguments say it."""
    import sys

    if getattr(sys, "orig_argv", [])[1:3] in (["-m", "kerasrv.cli"], ["-m", "kerasrv.demo"]):
        return True
    return os.path.basename(getattr(sys.modules.get("__main__"), "__file__", None) or "") in (
        "kerasrv",
        "kerasrv.exe",
    )


# Importing the layers registers them with Keras: a .keras file of an entry then loads after
# `import kerasrv`. The `kerasrv` command loads them (and TensorFlow) in the commands that need
# them, so `kerasrv --help` needs no TensorFlow and its start-up log lines can be silenced.
if not _the_command_line():
    from kerasrv import artifacts, layers, registry, tasks, zoo  # noqa: E402

# The heavier parts (tensorflow-datasets, the TFLite converter) load on first use:
# `kerasrv.data.pipeline(...)` works after a bare `import kerasrv`.
_LAZY = (
    *__all__[:-1],
    "data",
    "deploy",
    "evaluation",
    "export",
    "training",
    "bench",
    "pictures",
)


def __getattr__(name):
    if name == "export_model":  # what `kerasrv export` does, as one call
        from kerasrv.deploy import export_model

        return export_model
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"kerasrv.{name}")
    raise AttributeError(f"module 'kerasrv' has no attribute {name!r}")
