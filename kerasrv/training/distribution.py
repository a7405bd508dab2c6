"""How a run is spread and what precision it computes in: `tf.distribute` strategies (with the
multi-worker support Keras 3 lacks) and Keras' dtype policy for a block."""

import contextlib
import json
import os

import keras
import tensorflow as tf

from kerasrv.errors import UsageError
from kerasrv.registry import STRATEGIES


def strategy_for(name="auto"):
    """A `tf.distribute` strategy by name.

    Args:
        name: "auto" (several workers in TF_CONFIG → multi-worker; several GPUs → mirrored;
            else the default strategy), "default" (one device), "mirrored" (every visible GPU,
            or every logical CPU device where there is no GPU) or "multi_worker"
            (`MultiWorkerMirroredStrategy`, configured from the TF_CONFIG environment variable).

    Returns:
        A `tf.distribute.Strategy`.
    """
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    workers = len(_tf_config().get("cluster", {}).get("worker", []))
    if name == "multi_worker" or (name == "auto" and workers > 1):
        if workers < 1:
            raise UsageError(
                "the multi_worker strategy reads its cluster from TF_CONFIG, which names no "
                'workers; set e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:port", '
                '"host2:port"]}, "task": {"type": "worker", "index": 0}}\''
            )
        _support_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _support_multi_worker():
    """Mends the two places where Keras 3.15's `fit` breaks under MultiWorkerMirroredStrategy.

    Both are reductions across workers that TensorFlow refuses (keras-team/keras#20585):
    1. before its first step, the trainer builds the model symbolically from the first batch,
       averaged across replicas; the average fails ("Attempt to convert a value (PerReplica...").
       The build reads only shapes and dtypes, which one replica's batch has too.
    2. after each step, it averages the per-replica logs with `reduce("MEAN", v, axis=0)`,
       which fails on the scalar metric values ("Invalid reduction dimension 0"); averaging
       whole values (axis=None) is what a mean over workers means for scalars.
    Single-process strategies keep Keras' own code paths.
    """
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "kerasrv_multi_worker", False):
        return
    build, reduce_per_replica = (
        trainer.TensorFlowTrainer._maybe_symbolic_build,
        trainer.reduce_per_replica,
    )

    def multi_worker(strategy):
        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def build_from_one_replica(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(batches)
                )
                break
            iterator = None
        return build(self, iterator=iterator, data_batch=data_batch)

    def reduce_whole_values(values, strategy, reduction):
        if multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_one_replica
    trainer.reduce_per_replica = reduce_whole_values
    trainer.kerasrv_multi_worker = True


def _tf_config():
    return json.loads(os.environ.get("TF_CONFIG", "{}"))


def is_chief():
    """True on the process that writes files: the chief, worker 0, or a single process."""
    config = _tf_config()
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("index", 0) == 0


@contextlib.contextmanager
def global_policy(precision):
    """Keras' global dtype policy set to `precision` for the block, and restored after it."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


# Where each mixed policy runs natively: GPUs from this compute capability, CPUs with one of
# these /proc/cpuinfo flags. Elsewhere TensorFlow emulates the 16-bit type, slower than float32.
_NATIVE = {
    "mixed_bfloat16": ((8, 0), {"avx512_bf16", "amx_bf16"}),
    "mixed_float16": ((7, 0), {"avx512_fp16", "amx_fp16"}),
}


def native_precision(precision, *, gpus=None, cpu_flags=None):
    """True where `precision` computes natively on this machine's accelerator or CPU.

    Args:
        precision: a Keras dtype policy name.
        gpus: compute capabilities of the visible GPUs (default: asked of TensorFlow).
        cpu_flags: the CPU's feature flags (default: read from /proc/cpuinfo; none elsewhere).
    """
    if precision not in _NATIVE:
        return True
    capability, flags = _NATIVE[precision]
    if gpus is None:
        gpus = [
            tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    if gpus:
        return all(tuple(gpu) >= capability for gpu in gpus)
    if cpu_flags is None:
        cpu_flags = _cpu_flags()
    return bool(flags & set(cpu_flags))


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def precision_for(recipe_precision, asked=None, **hardware):
    """The precision a run trains in, and why, in words (None when it is simply the one asked).

    A precision asked for (`--precision`) is used as it is. A recipe's mixed policy is used
    where the hardware computes it natively (`native_precision`), float32 elsewhere: an entry's
    recipe names bfloat16 because it trained 2.5× faster on a CPU with AVX512-BF16, and on a CPU
    without it TensorFlow emulates bfloat16, slower than float32.

    Args:
        recipe_precision: the entry's recipe's `precision`.
        asked: the precision asked for, or None.
        **hardware: `native_precision`'s gpus and cpu_flags (for tests).

    Returns:
        (precision, reason): reason is None, or a phrase for the run's summary line.
    """
    if asked is not None:
        return asked, None
    if native_precision(recipe_precision, **hardware):
        return recipe_precision, None
    return "float32", f"the recipe's {recipe_precision} is not native on this hardware"
