"""Frame encoders from keras.applications in the video architectures (no download: weights=None)."""

import importlib

import keras
import numpy as np
import pytest

from kerasrv import export, tasks
from kerasrv.architectures import convlstm_seg, encoders, lrcn


@pytest.mark.parametrize("name", ["MobileNetV3Small", "ResNet50", "MobileNetV2", "DenseNet121"])
def test_the_preprocessing_layer_is_the_applications_own(name):
    constructor = getattr(keras.applications, name)
    layer = encoders.preprocessing(constructor, 3)
    x = np.random.default_rng(0).uniform(size=(2, 5, 5, 3)).astype("float32")
    module = importlib.import_module(constructor.__module__)
    expected = np.asarray(module.preprocess_input(x * 255.0))
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-3)
    grey = encoders.preprocessing(constructor, 1)(x[..., :1]).numpy()
    expected = np.asarray(module.preprocess_input(np.repeat(x[..., :1], 3, -1) * 255.0))
    np.testing.assert_allclose(grey, expected, rtol=1e-5, atol=1e-3)


def test_an_unknown_encoder_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown frame encoder 'alexnet'.*MobileNetV3Small"):
        lrcn((4, 64, 64, 3), 3, frame_encoder="alexnet")


def test_lrcn_reads_each_frame_with_an_applications_encoder():
    model = lrcn((2, 32, 32, 3), 3, frame_encoder="mobilenet_v3_small")
    x = np.random.default_rng(0).uniform(size=(4, 2, 32, 32, 3)).astype("float32")
    probabilities = np.asarray(model(x, training=False))
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    backbone = model.get_layer("encoder").layer.get_layer("backbone")  # the frame encoder's
    assert "MobileNetV3Small" in [layer.name for layer in backbone.layers]


# 35 s: tracing MobileNetV3's training step costs most of it (its forward pass is checked above)
@pytest.mark.slow
def test_lrcn_on_a_mobilenet_trains_saves_and_exports(tmp_path):
    model = lrcn((2, 32, 32, 3), 3, frame_encoder="mobilenet_v3_small")
    tasks.get("video_classification").compile(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 2, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 1])
    losses = [float(model.train_on_batch(x, y)[0]) for _ in range(8)]
    assert losses[-1] < losses[0]
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
    card = {
        "name": "lrcn_mobilenet",
        "task": "video_classification",
        "input_shape": [2, 32, 32, 3],
        "output_shape": [3],
        "num_classes": 3,
    }
    result = export.export(model, card, ("tflite",), tmp_path, parity_data=(x, y))
    assert result["parity"]["formats"]["tflite"]["passes"]


def test_convlstm_seg_takes_an_applications_skips():
    model = convlstm_seg((2, 64, 64, 1), 4, frame_encoder="mobilenet_v3_small")
    assert model.output_shape == (None, 2, 64, 64, 4)
    with pytest.raises(ValueError, match="filters must have 2 stages"):
        convlstm_seg((2, 64, 64, 1), frame_encoder="mobilenet_v3_small", filters=(8, 16, 32))
