"""Video prediction: the cells against their equations in numpy, the rollout, OpenSTL's metrics,
the 20-frame builder, and the forecasters' training, saving and export."""

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from kerasrv import data, export, tasks
from kerasrv.architectures import convlstm_forecast, predrnn
from kerasrv.data import synthesis
from kerasrv.layers import (
    ConvLSTMCell,
    Forecaster,
    ReverseScheduledSampling,
    ScheduledSampling,
    SpatioTemporalLSTMCell,
)

OPENSTL_SMALL = "moving_fashion_mnist/openstl_small"


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def conv(x, kernel):
    """A 'same' 2-D convolution, no bias: x (B, H, W, C_in), kernel (k, k, C_in, C_out)."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros((x.shape[0], height, width, kernel.shape[-1]))
    for dy in range(k):
        for dx in range(k):
            out += padded[:, dy : dy + height, dx : dx + width] @ kernel[dy, dx]
    return out


def randomize(layer, rng, scale=0.3):
    layer.set_weights([rng.normal(0, scale, w.shape).astype("float32") for w in layer.weights])


def st_lstm(x, h, c, m, w):
    """PredRNN's ST-LSTM equations (Wang et al. 2017, as OpenSTL writes them), in numpy."""
    i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = np.split(conv(x, w["conv_x"]), 7, axis=-1)
    i_h, f_h, g_h, o_h = np.split(conv(h, w["conv_h"]), 4, axis=-1)
    i_m, f_m, g_m = np.split(conv(m, w["conv_m"]), 3, axis=-1)
    c = sigmoid(f_x + f_h + 1) * c + sigmoid(i_x + i_h) * np.tanh(g_x + g_h)
    m = sigmoid(f_xm + f_m + 1) * m + sigmoid(i_xm + i_m) * np.tanh(g_xm + g_m)
    memory = np.concatenate([c, m], axis=-1)
    o = sigmoid(o_x + o_h + conv(memory, w["conv_o"]))
    return o * np.tanh(conv(memory, w["conv_last"])), c, m


def weights_of(cell):
    return {v.path.split("/")[-2]: v.numpy() for v in cell.weights}


def test_st_lstm_cell_matches_its_equations():
    rng = np.random.default_rng(0)
    cell = SpatioTemporalLSTMCell(3, kernel_size=3)
    x = rng.normal(size=(2, 5, 4, 2)).astype("float32")
    h, c, m = (rng.normal(size=(2, 5, 4, 3)).astype("float32") for _ in range(3))
    cell.build(x.shape)
    randomize(cell, rng)
    got_h, (_, got_c, got_m) = cell(x, (h, c, m))
    want_h, want_c, want_m = st_lstm(x, h, c, m, weights_of(cell))
    for got, want in ((got_h, want_h), (got_c, want_c), (got_m, want_m)):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_convlstm_cell_matches_its_equations():
    rng = np.random.default_rng(1)
    cell = ConvLSTMCell(3, kernel_size=3)
    x = rng.normal(size=(2, 5, 4, 2)).astype("float32")
    h, c = (rng.normal(size=(2, 5, 4, 3)).astype("float32") for _ in range(2))
    cell.build(x.shape)
    randomize(cell, rng)
    w = weights_of(cell)
    i, f, g, o = np.split(conv(x, w["conv_x"]) + conv(h, w["conv_h"]), 4, axis=-1)
    want_c = sigmoid(f + 1) * c + sigmoid(i) * np.tanh(g)
    want_h = sigmoid(o) * np.tanh(want_c)
    got_h, (_, got_c) = cell(x, (h, c))
    np.testing.assert_allclose(np.asarray(got_c), want_c, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_h), want_h, atol=1e-5)


def test_a_three_step_rollout_zigzags_the_memory_through_two_layers():
    """3 given frames, 1 predicted: three steps of a 2-layer ST-LSTM stack, M passed from layer 1
    to layer 2 within a step and from layer 2 to layer 1 at the next step."""
    rng = np.random.default_rng(2)
    layer = Forecaster(1, cell="stlstm", filters=(3, 3), kernel_size=3, patch_size=1)
    frames = rng.uniform(size=(2, 3, 5, 4, 1)).astype("float32")
    layer.build(frames.shape)
    for sublayer in (*layer.cells, layer.to_frame):
        randomize(sublayer, rng)
    cells = [weights_of(cell) for cell in layer.cells]
    zeros = np.zeros((2, 5, 4, 3))
    h, c, m = [zeros, zeros], [zeros, zeros], zeros
    for t in range(3):
        x = frames[:, t]
        for i in range(2):
            h[i], c[i], m = st_lstm(x, h[i], c[i], m, cells[i])
            x = h[i]
    kernel, bias = layer.to_frame.get_weights()
    expected = sigmoid(conv(h[1], kernel) + bias)
    np.testing.assert_allclose(np.asarray(layer(frames))[:, 0], expected, atol=1e-5)


def test_openstl_metrics_agree_with_a_direct_computation():
    rng = np.random.default_rng(3)
    true = rng.uniform(size=(2, 3, 16, 16, 1))
    predicted = np.clip(true + rng.normal(0, 0.1, true.shape), -0.2, 1.2)
    sums = tasks.openstl_metrics(predicted, true)
    frames = 6
    assert sums["frames"] == frames
    # MSE and MAE: per-frame sums over the pixels, before any clipping
    assert sums["mse"] / frames == pytest.approx(((predicted - true) ** 2).sum() / frames)
    assert sums["mae"] / frames == pytest.approx(np.abs(predicted - true).sum() / frames)
    clipped = np.clip(predicted, 0, 1)
    psnr = [
        -10 * np.log10(((p - t) ** 2).mean())
        for p, t in zip(clipped.reshape(6, 16, 16), true.reshape(6, 16, 16))
    ]
    assert sums["psnr"] / frames == pytest.approx(np.mean(psnr))

    def ssim(a, b, data_range=2.0, size=7):  # 7×7 uniform windows, sample covariance
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        windows = np.lib.stride_tricks.sliding_window_view
        wa, wb = windows(a, (size, size)), windows(b, (size, size))
        n = size * size
        mu_a, mu_b = wa.mean((-1, -2)), wb.mean((-1, -2))
        var_a = wa.var((-1, -2)) * n / (n - 1)
        var_b = wb.var((-1, -2)) * n / (n - 1)
        cov = ((wa - mu_a[..., None, None]) * (wb - mu_b[..., None, None])).sum((-1, -2)) / (n - 1)
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        )
        return s.mean()  # over the windows that fit (scikit-image crops the border half-window)

    expected = np.mean(
        [ssim(p, t) for p, t in zip(clipped.reshape(6, 16, 16), true.reshape(6, 16, 16))]
    )
    assert sums["ssim"] / frames == pytest.approx(expected, abs=1e-6)


def _examples(split, data_dir):
    ds, _ = data.load_split(OPENSTL_SMALL, split, data_dir)
    return list(tfds.as_numpy(ds))


def test_the_20_frame_builder_is_deterministic_and_its_test_clips_are_test_images(tmp_path):
    first = Path(tmp_path / "a")
    clips = _examples("test", str(first))
    again = _examples("test", str(tmp_path / "b"))
    assert all(np.array_equal(x["frames"], y["frames"]) for x, y in zip(clips, again))
    assert clips[0]["frames"].shape == (20, 64, 64, 1) and len(clips) == 100
    test_images, _ = data.load_fashion_mnist("test")
    train_images, _ = data.load_fashion_mnist("train")
    for clip in clips[:20]:
        for j, index in enumerate(clip["items"][:2]):
            for t, (x, y) in enumerate(clip["positions"][j]):
                window = clip["frames"][t, y : y + 28, x : x + 28, 0]
                assert (window >= test_images[index]).all()  # drawn as the pixel-wise max
                if index < len(train_images):  # the same index in train is another image
                    assert (
                        not (window >= train_images[index]).all() or not train_images[index].any()
                    )


def test_srivastava_paths_bounce_inside_the_canvas():
    rng = np.random.default_rng(0)
    for _ in range(50):
        path = synthesis.srivastava_trajectory(rng, 20)
        assert path.min() >= 0 and path.max() <= 1
        steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
        assert steps.max() <= 0.1 + 1e-9


def test_the_video_prediction_pipeline_splits_clips_in_half(tmp_path):
    card = {"task": "video_prediction", "dataset": OPENSTL_SMALL, "input_shape": [10, 64, 64, 1]}
    x, y = next(iter(data.pipeline(card, "test[:4]", 4, data_dir=str(tmp_path))))
    assert x.shape == y.shape == (4, 10, 64, 64, 1)
    clip = _examples("test[:1]", str(tmp_path))[0]["frames"] / 255.0
    np.testing.assert_allclose(x[0], clip[:10], atol=1e-6)
    np.testing.assert_allclose(y[0], clip[10:], atol=1e-6)


@pytest.mark.parametrize("builder", [convlstm_forecast, predrnn])
def test_a_forecaster_learns_saves_and_exports_with_its_loop_inside(builder, tmp_path):
    model = builder((4, 16, 16, 1), output_frames=3, filters=(8, 8), kernel_size=3)
    tasks.get("video_prediction").compile(model, learning_rate=3e-3)
    rng = np.random.default_rng(0)
    clips = rng.uniform(size=(8, 7, 16, 16, 1)).astype("float32") ** 4
    x, y = clips[:, :4], clips[:, 4:]
    schedule = ScheduledSampling(steps=6)
    history = model.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[schedule])
    assert history.history["loss"][-1] < history.history["loss"][0]
    (forecaster,) = [layer for layer in model.layers if isinstance(layer, Forecaster)]
    assert float(forecaster.teacher_forcing.numpy()) == 0.0  # lowered to 0 after 6 batches
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
    card = {
        "name": builder.__name__,
        "task": "video_prediction",
        "input_shape": [4, 16, 16, 1],
        "output_shape": [3, 16, 16, 1],
        "num_classes": None,
    }
    result = export.export(model, card, ("saved_model", "tflite"), tmp_path, parity_data=(x, y))
    formats = result["parity"]["formats"]
    assert formats["saved_model"]["passes"] and formats["tflite"]["passes"], formats
    ops = export.TFLiteModel(result["files"]["tflite"]).ops()
    assert "WHILE" not in ops and not [op for op in ops if op.startswith("Flex")]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_forecaster_trains_under_a_mixed_policy_with_teacher_forcing(policy):
    """The teacher-forcing probability stays float32 under a mixed policy (a bfloat16 read of
    it could not be compared with the float32 draws), and the frames come out float32."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = convlstm_forecast((3, 8, 8, 1), output_frames=2, filters=(4,), kernel_size=3)
        tasks.get("video_prediction").compile(model)
        (forecaster,) = [layer for layer in model.layers if isinstance(layer, Forecaster)]
        forecaster.teacher_forcing.assign(0.5)
        clips = np.random.default_rng(0).uniform(size=(4, 5, 8, 8, 1)).astype("float32")
        logs = model.train_on_batch(clips[:, :3], clips[:, 3:], return_dict=True)
        assert np.isfinite(logs["loss"])
        assert keras.backend.standardize_dtype(model(clips[:, :3]).dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_reverse_scheduled_sampling_follows_predrnn_v2s_schedule():
    """Both probabilities hold at 0.5 until `first`; then teacher forcing falls linearly to 0 at
    `last` and the given frames' rises to 1 as 1 - 0.5·exp(-t/τ), τ a fifth of the span."""
    schedule = ReverseScheduledSampling(first=100, last=300)
    assert schedule.probabilities(0) == schedule.probabilities(100) == (0.5, 0.5)
    forcing, given = schedule.probabilities(200)
    assert forcing == pytest.approx(0.25)
    assert given == pytest.approx(1 - 0.5 * np.exp(-2.5))
    assert schedule.probabilities(300) == schedule.probabilities(10_000) == (0.0, 1.0)


def test_reverse_sampling_reads_the_models_own_predictions_for_given_frames():
    """With `sample_given` and a given frames' probability of 0, a training rollout reads only
    the first given frame (the rest are its own predictions): changing frames 2..T_in changes
    nothing. Without it, or at probability 1, they are read."""
    keras.utils.set_random_seed(0)
    model = convlstm_forecast((4, 8, 8, 1), output_frames=2, filters=(4,), kernel_size=3)
    (forecaster,) = [layer for layer in model.layers if isinstance(layer, Forecaster)]
    randomize(forecaster, np.random.default_rng(0))
    forecaster.teacher_forcing.assign(0.0)
    rng = np.random.default_rng(1)
    clips = rng.uniform(size=(2, 6, 8, 8, 1)).astype("float32")
    other = clips.copy()
    other[:, 1:4] = rng.uniform(size=(2, 3, 8, 8, 1))  # the same first frame, other frames 2..4

    def rollout(x, **kwargs):
        return forecaster(x, future=clips[:, 4:], training=True, **kwargs).numpy()

    forecaster.given_truth.assign(0.0)
    np.testing.assert_array_equal(
        rollout(clips, sample_given=True), rollout(other, sample_given=True)
    )
    assert np.abs(rollout(clips) - rollout(other)).max() > 1e-3
    forecaster.given_truth.assign(1.0)
    assert (
        np.abs(rollout(clips, sample_given=True) - rollout(other, sample_given=True)).max() > 1e-3
    )


def test_forecaster_weight_files_from_before_reverse_sampling_still_load(tmp_path):
    """A weight file written when the forecaster held teacher forcing alone (the shipped ones)
    loads, with the given frames' probability at its rest value, 1."""
    import h5py

    model = convlstm_forecast((3, 8, 8, 1), output_frames=2, filters=(4,), kernel_size=3)
    (forecaster,) = [layer for layer in model.layers if isinstance(layer, Forecaster)]
    forecaster.teacher_forcing.assign(0.25)
    path = tmp_path / "old.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r+") as f:  # as written before given_truth existed
        own = f["layers/forecaster/vars"]
        assert sorted(own) == ["0", "1"]
        del own["1"]
    fresh = convlstm_forecast((3, 8, 8, 1), output_frames=2, filters=(4,), kernel_size=3)
    (loaded,) = [layer for layer in fresh.layers if isinstance(layer, Forecaster)]
    loaded.given_truth.assign(0.0)
    fresh.load_weights(path)
    assert float(loaded.teacher_forcing.numpy()) == 0.25
    assert float(loaded.given_truth.numpy()) == 1.0
    x = np.random.default_rng(0).uniform(size=(1, 3, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(fresh.predict_on_batch(x), model.predict_on_batch(x))


def test_a_recipe_with_reverse_sampling_schedules_the_given_frames_too(monkeypatch):
    """`reverse_sampling` in a recipe gives the task's ReverseScheduledSampling over those shares
    of the run, and a model whose training steps read given frames as its own predictions."""
    from kerasrv.registry import Recipe

    recipe = Recipe(epochs=2, batch_size=4, given_frames_loss=True, reverse_sampling=(0.25, 0.75))
    task = tasks.get("video_prediction")
    model = task.configure(
        convlstm_forecast((3, 8, 8, 1), output_frames=2, filters=(4,), kernel_size=3), recipe
    )
    task.compile(model)
    (forecaster,) = [layer for layer in model.layers if isinstance(layer, Forecaster)]
    calls = []
    traced = forecaster.call
    monkeypatch.setattr(
        forecaster,
        "call",
        lambda *a, **kw: calls.append(kw.get("sample_given")) or traced(*a, **kw),
    )
    (schedule,) = task.callbacks(steps=12, recipe=recipe)
    clips = np.random.default_rng(0).uniform(size=(24, 5, 8, 8, 1)).astype("float32")
    history = model.fit(
        clips[:, :3], clips[:, 3:], batch_size=4, epochs=2, verbose=0, callbacks=[schedule]
    )
    assert True in calls  # the training step asked for it
    # 12 batches: held at 0.5 for 3, moving from batch 3 to 9; epoch 1's last batch is 5
    assert history.history["teacher_forcing"][0] == pytest.approx(0.5 * (1 - 2 / 6))
    assert history.history["given_truth"][0] == pytest.approx(1 - 0.5 * np.exp(-2 / (6 / 5)))
    assert [history.history[k][1] for k in ("teacher_forcing", "given_truth")] == [0.0, 1.0]
    assert not task.configure(model, Recipe(epochs=1, batch_size=4)).reverse_sampling


def test_kerasrv_train_samples_the_true_future_in_the_first_half_only(tmp_path, monkeypatch):
    """A video-prediction run gets the task's ScheduledSampling: the true future frames stand in
    with a probability that reaches 0 halfway through, so the second half trains the rollout."""
    from kerasrv import registry, training

    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    monkeypatch.setattr(registry, "_DEFAULT_TAG", dict(registry._DEFAULT_TAG))
    registry.register(
        "convlstm_forecast.tiny",
        task="video_prediction",
        dataset=OPENSTL_SMALL,
        target="frames",
        class_names=None,
        description="a one-layer ConvLSTM, for this test",
        recipe={"epochs": 3, "batch_size": 8},
        filters=(4,),
        kernel_size=3,
    )
    settings = training.Settings(
        train_split="train[:96]", validation_split="train[96:112]", verbose=0
    )
    card = training.train("convlstm_forecast.tiny", settings, out=tmp_path)
    with open(tmp_path / "convlstm_forecast.tiny" / "train" / "log.csv") as f:
        forcing = [float(row["teacher_forcing"]) for row in csv.DictReader(f)]
    # 12 batches an epoch, 36 in all: the probability falls to 0 over the first 18
    assert forcing[0] == pytest.approx(1 - 11 / 18)
    assert forcing[1:] == [0.0, 0.0]
    metrics = card.metrics
    assert {"mse", "mae", "ssim", "psnr", "copy_last_mse", "mse_vs_copy_last"} <= set(metrics)
