"""One training run for the distribution tests: `python distributed_run.py STRATEGY OUT.json`.

Trains a small row RNN (no dropout, no BatchNorm: nothing that differs by replica) with
`kerasrv.training.fit` on 2,048 real Fashion-MNIST images at a global batch of 64, and writes
its final weights' loss and accuracy on 1,000 test images. Run as a subprocess: the number of
logical CPU devices and TF_CONFIG must be set before TensorFlow starts.
"""

import json
import sys

import tensorflow as tf

strategy_name, out = sys.argv[1], sys.argv[2]
if strategy_name == "mirrored":  # two logical CPU devices stand in for two GPUs
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from kerasrv import tasks, training  # noqa: E402
from kerasrv.architectures import row_rnn  # noqa: E402
from kerasrv.data import load_fashion_mnist  # noqa: E402

strategy = training.strategy_for(strategy_name)  # before any op: collectives need it first
images, labels = load_fashion_mnist("train")
x = images[:2048, :, :, None].astype("float32") / 255.0
y = labels[:2048].astype("int32")
test_images, test_labels = load_fashion_mnist("test")
test_x = test_images[:1000, :, :, None].astype("float32") / 255.0
test_y = test_labels[:1000].astype("int32")

options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
train = tf.data.Dataset.from_tensor_slices((x, y)).batch(64).with_options(options)
val = tf.data.Dataset.from_tensor_slices((test_x, test_y)).batch(100).with_options(options)

keras.utils.set_random_seed(0)
with strategy.scope():
    model = row_rnn(units=32, num_layers=1, dropout=0.0)
    tasks.get("classification").compile(model)
work = out + ".train"
if not training.is_chief():
    work += "-worker"
training.fit(model, train, val, epochs=2, out_dir=work, verbose=0)
loss, accuracy = model.evaluate(val, verbose=0)
if training.is_chief():
    with open(out, "w") as f:
        json.dump(
            {
                "loss": loss,
                "accuracy": accuracy,
                "replicas": strategy.num_replicas_in_sync,
                "strategy": type(strategy).__name__,
            },
            f,
        )
