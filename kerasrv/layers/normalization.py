"""BatchNormalization whose training step is TensorFlow's fused kernel.

Keras 3's BatchNormalization trains through generic ops on every backend: a mean, a squared
difference, another mean, then the normalisation as multiplies and adds, each with its own
gradient kernels. tf.keras used `FusedBatchNormV3` for 4-D channels-last inputs (one oneDNN or
cuDNN kernel forward, one backward); Keras 3 does not (keras-team/keras-core#225). On 2 CPU
cores the unfused ops were ~11% of cnn_lstm's training kernel time for two normalisations of
small maps (profiled: AddN, Mul, Square, RealDiv); fused, they drop out of the profile.

The class keeps Keras' name on purpose: a `.weights.h5` file keys each layer's variables by its
class name, so this layer reads and writes the same weights files as `keras.layers
.BatchNormalization` (every entry trained before it, and any user's).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kerasrv")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel.

    Same weights, same config, same inference (Keras' own path, which every exporter knows);
    in training, a 4-D channels-last input without mask or renormalisation goes through
    `FusedBatchNormV3` and its gradient kernel, and the moving statistics are updated as Keras
    updates them (with the biased batch variance). Anything else falls back to Keras' path.

    Example:
        >>> layer = BatchNormalization(name="bn")
        >>> layer(keras.ops.ones((2, 4, 4, 3)), training=True).shape
        (2, 4, 4, 3)
    """

    def _fusable(self, inputs, training, mask):
        axis = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        return (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and list(axis) in ([3], [-1])
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras does: statistics in float32 under mixed precision
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The kernel returns the unbiased (Bessel-corrected) variance; Keras' moving variance
        # averages the biased one, which is what the output was normalised with.
        count = tf.cast(tf.size(x) // channels, "float32")
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(y, self.compute_dtype)
