"""Where a result was measured: the machine and the library versions, for cards and benchmarks."""

import os
import platform
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def hardware():
    """A short description of the machine: CPU model and cores, GPUs."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    details = tf.config.experimental.get_device_details
    names = [details(g).get("device_name", "GPU") for g in tf.config.list_physical_devices("GPU")]
    text = f"{cpu}, {os.cpu_count()} cores"
    return text + (f", {len(gpus)}× {names[0]}" if gpus else ", no GPU")


def versions():
    """Versions of the libraries that produced an artifact."""
    import tensorflow_datasets as tfds

    from kerasrv import __version__

    return {
        "kerasrv": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "tensorflow_datasets": tfds.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
