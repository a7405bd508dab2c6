"""kerasrv.zoo: every entry builds, runs, learns, saves and re-heads; names resolve or explain."""

import copy
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ONE_PER_TASK, check_architecture, per_entry, real_batch

import kerasrv
from kerasrv import registry, tasks, zoo

ENTRIES = zoo.list_models()
ARCHITECTURES = {
    "row_rnn",
    "cnn_lstm",
    "renet",
    "reseg",
    "lrcn",
    "convlstm_seg",
    "convlstm_predict",
    "convlstm_forecast",
    "predrnn",
}


def test_the_zoo_covers_every_architecture():
    assert len(ENTRIES) >= 9
    assert {name.split(".")[0] for name in ENTRIES} == ARCHITECTURES
    assert set(zoo.list_architectures()) == ARCHITECTURES


def test_the_default_run_checks_an_entry_of_every_task():
    tasks_of = {name: zoo.info(name)["task"] for name in ENTRIES}
    assert set(ONE_PER_TASK) == set(tasks_of.values())
    assert all(tasks_of[name] == task for task, name in ONE_PER_TASK.items())


def test_list_models_filters_with_wildcards():
    assert zoo.list_models("*lstm*") == sorted(n for n in ENTRIES if "lstm" in n)
    assert "cnn_lstm.fmnist" in zoo.list_models("*lstm*")
    assert zoo.list_models("row_rnn.*") == ["row_rnn.gru", "row_rnn.lstm", "row_rnn.peephole"]
    assert zoo.list_models("nothing*") == []


def test_bare_architecture_names_mean_the_default_entry():
    assert zoo.get_entry("cnn_lstm").name == "cnn_lstm.fmnist"
    assert zoo.get_entry("row_rnn").name == "row_rnn.lstm"


@pytest.mark.parametrize("name", ["cnn_lsmt", "row_rnn.lsmt", "renet.cifar"])
def test_unknown_names_raise_with_the_closest_names(name):
    with pytest.raises(KeyError) as caught:
        zoo.load(name, weights=None)
    message = str(caught.value)
    assert message.startswith(f"unknown model {name!r}; did you mean")
    assert name.split(".")[0][:4] in message.split("did you mean")[1]


@pytest.mark.parametrize("name", ENTRIES)
def test_card_describes_the_model(name):
    card = zoo.info(name)
    model = zoo.load(name, weights=None)
    assert card["name"] == name and card["architecture"] == name.split(".")[0]
    assert card["task"] in tasks.NAMES
    assert tuple(card["input_shape"]) == model.input_shape[1:]
    assert tuple(card["output_shape"]) == model.output_shape[1:]
    assert card["input_dtype"] == "float32" and card["input_range"] == [0.0, 1.0]
    assert card["params"] == model.count_params()
    assert model.input.name == card["input_name"]
    if tasks.get(card["task"]).predicts_frames:
        assert card["num_classes"] is None and card["class_names"] is None
    else:
        assert card["output_shape"][-1] == card["num_classes"] == len(card["class_names"])
    assert isinstance(card["metrics"], dict)
    card["metrics"]["tampered"] = 1.0  # a copy: the zoo's card stays as it was
    assert "tampered" not in zoo.info(name)["metrics"]


@pytest.mark.parametrize("name", ENTRIES)
def test_forward_pass_gives_the_cards_output_shape(name):
    card = zoo.info(name)
    model = zoo.load(name, weights=None)
    x, _ = real_batch(card, n=2)
    y = model(x, training=False).numpy()
    assert y.shape == (2, *card["output_shape"])
    assert np.isfinite(y).all()
    if tasks.get(card["task"]).predicts_frames:
        assert y.min() >= 0.0 and y.max() <= 1.0
    else:
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)  # a distribution per sample/pixel


@pytest.fixture(scope="module")
def fitted_on_one_batch():
    """name -> (model, batch, losses): a fresh entry after 30 steps on one batch of 4 samples.

    Made once per entry and shared by the two checks below, since tracing the training step
    of a convolutional entry costs 10-20 s.
    """
    made = {}

    def fit(name):
        if name not in made:
            model = zoo.load(name, weights=None)
            x, y = real_batch(zoo.info(name), n=4)
            losses = [
                float(model.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(30)
            ]
            made[name] = model, (x, y), losses
        return made[name]

    return fit


@pytest.mark.parametrize("name", per_entry(ENTRIES))
def test_thirty_steps_on_one_batch_halve_the_loss(name, fitted_on_one_batch):
    _, _, losses = fitted_on_one_batch(name)
    assert losses[-1] <= 0.5 * losses[0], f"loss went from {losses[0]:.4f} to {losses[-1]:.4f}"


@pytest.mark.parametrize("name", per_entry(ENTRIES))
def test_keras_file_round_trip_gives_identical_outputs(name, fitted_on_one_batch, tmp_path):
    # trained: BatchNorm statistics and the optimizer's state are off their initial values
    model, (x, _), _ = fitted_on_one_batch(name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", ENTRIES)
def test_config_round_trip_rebuilds_the_same_model(name):
    card = zoo.info(name)
    model = zoo.build(name)
    config = model.get_config()
    clone = keras.Model.from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    x, _ = real_batch(card, n=2)
    np.testing.assert_array_equal(clone(x, training=False), model(x, training=False))


@pytest.mark.parametrize("name", per_entry(n for n in ENTRIES if zoo.info(n)["num_classes"]))
def test_num_classes_replaces_only_the_head(name, tmp_path):
    card = zoo.info(name)
    trained = zoo.build(name)
    path = tmp_path / "entry.weights.h5"
    trained.save_weights(path)
    reheaded = zoo.load(name, weights=path, num_classes=3)
    assert reheaded.output_shape[1:] == (*card["output_shape"][:-1], 3)
    for before, after in zip(trained.layers, reheaded.layers, strict=True):
        if before.name == zoo.HEAD:
            assert after.get_weights()[0].shape[-1] == 3
            continue
        for a, b in zip(before.get_weights(), after.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    x, y = real_batch(card, n=4)
    reheaded.fit(x, np.minimum(y, 2), epochs=1, verbose=0)  # compiled and trainable


def test_num_classes_does_not_apply_to_next_frame_prediction():
    with pytest.raises(ValueError, match="num_classes does not apply"):
        zoo.load("convlstm_predict", weights=None, num_classes=3)


def test_weights_of_another_shape_are_refused_with_the_file_named(tmp_path):
    path = tmp_path / "gru.weights.h5"
    zoo.build("row_rnn.gru").save_weights(path)
    with pytest.raises(zoo.WeightsError, match="gru.weights.h5"):
        zoo.load("row_rnn.lstm", weights=path)


def test_a_corrupt_weights_file_is_refused(tmp_path):
    path = tmp_path / "broken.weights.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(zoo.WeightsError, match="broken.weights.h5"):
        zoo.load("cnn_lstm", weights=path)
    with pytest.raises(zoo.WeightsError, match="does not exist"):
        zoo.load("cnn_lstm", weights=tmp_path / "missing.weights.h5")


@pytest.mark.parametrize(
    "name, metrics",
    [
        ("cnn_lstm", {"loss", "accuracy"}),
        ("reseg", {"loss", "pixel_accuracy", "mean_iou"}),
        ("lrcn", {"loss", "accuracy"}),
        ("convlstm_seg", {"loss", "pixel_accuracy", "mean_iou"}),
        ("convlstm_predict", {"loss", "mse"}),
    ],
)
def test_load_compiles_with_the_tasks_loss_and_metrics(name, metrics):
    model = zoo.load(name, weights=None)
    x, y = real_batch(zoo.info(name), n=2)
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(results) == metrics
    assert all(np.isfinite(v) for v in results.values())


def test_input_shape_rebuilds_where_the_architecture_allows():
    model = zoo.load("reseg", weights=None, input_shape=(32, 32, 1))
    assert model.output_shape == (None, 32, 32, 11)


def test_the_package_defaults_to_the_tensorflow_backend():
    assert keras.backend.backend() == "tensorflow"
    assert kerasrv.__version__


@pytest.mark.parametrize("num_classes", [2.5, True, 1, 0, "4"])
def test_num_classes_must_be_an_integer_of_at_least_2(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an integer of at least 2, got"):
        zoo.load("row_rnn.gru", weights=None, num_classes=num_classes)


@pytest.mark.parametrize("weights", ["", 0, ["a.h5"]])
def test_weights_must_be_default_none_or_a_path(weights):
    with pytest.raises(zoo.WeightsError, match="weights must be 'default', None or the path"):
        zoo.load("row_rnn.gru", weights=weights)


@pytest.mark.parametrize("input_shape", [(28, 28), (28, 28, 0), (28.5, 28, 1), "28,28,1"])
def test_input_shape_must_be_positive_integers_of_the_entrys_rank(input_shape):
    with pytest.raises(ValueError, match=r"expects input_shape \(height, width, channels\)"):
        zoo.load("row_rnn.gru", weights=None, input_shape=input_shape)


def test_resolve_takes_a_name_a_run_directory_and_a_keras_file(tmp_path, finished_run):
    model, card = zoo.resolve("row_rnn.gru")
    assert card.name == "row_rnn.gru" and card.metrics
    model, card = zoo.resolve(finished_run)
    assert card.training["epochs"] == 1 and card.weights["sha256"]
    zoo.load("renet", num_classes=3).save(tmp_path / "three.keras")
    model, card = zoo.resolve(tmp_path / "three.keras")
    assert card.name == "three" and card.num_classes == 3 and card.architecture == "renet"
    assert card.metrics == {} and len(card.class_names) == 3


def test_resolve_names_what_it_cannot_take(tmp_path):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs), name="my_model").save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="holds a model named 'my_model', which is not one of"):
        zoo.resolve(tmp_path / "m.keras")
    with pytest.raises(FileNotFoundError, match="no such .keras file"):
        zoo.resolve(tmp_path / "nothing.keras")
    with pytest.raises(zoo.CardError, match="holds no card.json"):
        zoo.resolve(tmp_path)


# --- trained weights under another input spec ---------------------------------------------------


@pytest.mark.parametrize("name", per_entry(ENTRIES))
def test_three_channels_keep_the_trained_weights_and_see_grey_as_before(name):
    card = zoo.info(name)
    shape = (*card["input_shape"][:-1], 3)
    with pytest.warns(zoo.WeightsAdaptedWarning, match="adapted to 3 input channels") as caught:
        rgb = zoo.load(name, input_shape=shape)
    (warning,) = caught  # one warning
    assert "re-initialised" not in str(warning.message)
    grey = zoo.load(name)
    adapted = [part.strip() for part in str(warning.message).split(":", 2)[2].split(",")]
    for before, after in zip(grey.weights, rgb.weights, strict=True):
        if after.path not in adapted:
            np.testing.assert_array_equal(before.numpy(), after.numpy(), err_msg=after.path)
    x, _ = real_batch(card, n=2)
    expected = grey(x, training=False).numpy()
    got = rgb(np.repeat(x, 3, axis=-1), training=False).numpy()
    if tasks.get(card["task"]).predicts_frames:  # a grey frame, predicted in each channel
        expected = np.repeat(expected, 3, axis=-1)
    np.testing.assert_allclose(got, expected, atol=2e-5)


# Another size each design admits: rows are time steps (row_rnn), columns are (cnn_lstm), the
# classifiers pool to their trained grid (cnn_lstm, renet, lrcn), and the segmenters and the
# predictor are convolutional through and through.
OTHER_SIZES = {
    "row_rnn": (40, 28, 1),
    "cnn_lstm": (32, 128, 1),
    "renet": (32, 36, 1),
    "reseg": (128, 128, 1),
    "lrcn": (16, 112, 112, 1),
    "convlstm_seg": (8, 96, 96, 1),
    "convlstm_predict": (12, 96, 96, 1),
    "convlstm_forecast": (6, 96, 96, 1),  # 6 frames in, still 10 out
    "predrnn": (6, 96, 96, 1),
}


@pytest.mark.parametrize("name", per_entry(ENTRIES))
def test_another_size_keeps_every_trained_weight(name):
    shape = OTHER_SIZES[name.split(".")[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", zoo.WeightsAdaptedWarning)  # nothing adapted or re-made
        model = zoo.load(name, input_shape=shape)
    for before, after in zip(zoo.load(name).weights, model.weights, strict=True):
        np.testing.assert_array_equal(before.numpy(), after.numpy(), err_msg=after.path)
    card = {**zoo.info(name).to_dict(), "input_shape": list(shape)}
    x, y = real_batch(card, n=2)
    if card["task"] == "classification":  # Fashion-MNIST images, resized to the new size
        x = tf.image.resize(x, shape[:2]).numpy()
    out = model(x, training=False).numpy()
    assert out.shape[0] == 2 and np.isfinite(out).all()
    # and it trains at that size: one step, run eagerly (tracing the training step at a new
    # size took 3-5× as long as the step itself: 10 s for reseg at 128×128, 2 s eagerly)
    model.run_eagerly = True
    model.fit(x, y, epochs=1, verbose=0)


def test_a_users_video_shape_loads_pretrained_weights():
    """The size and head a user brings: 16 RGB frames of 112×112, 5 classes."""
    with pytest.warns(zoo.WeightsAdaptedWarning) as caught:
        model = zoo.load("lrcn", input_shape=(16, 112, 112, 3), num_classes=5)
    assert model.output_shape == (None, 5)
    message = str(caught[0].message)
    assert "adapted to 3 input channels: block1_conv/kernel" in message
    assert "re-initialised" not in message  # the new head is what was asked for


def test_row_rnn_drops_out_between_its_layers_only_when_asked():
    from kerasrv.architectures import row_rnn

    def between(model):
        names = [layer.name for layer in model.layers]
        return names[names.index("lstm1") + 1 : names.index("lstm2")]

    assert between(row_rnn()) == []
    assert between(row_rnn(dropout_between=0.3)) == ["dropout1"]
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    plain, dropping = row_rnn(), row_rnn(dropout_between=0.3)
    dropping.set_weights(plain.get_weights())  # the same weights: dropout has none
    np.testing.assert_allclose(dropping(x), plain(x), atol=1e-6)  # inference: no dropout


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"label_smothing": 0.1}, r"unknown recipe keys \['label_smothing'\]"),
        ({"ema_momentum": 1.0}, r"ema_momentum must be in \[0, 1\)"),
    ],
)
def test_a_misspelt_or_impossible_recipe_is_refused_at_registration(recipe, message):
    from kerasrv import registry

    with pytest.raises(ValueError, match=message):
        registry.register(
            "row_rnn.misspelt",
            task="classification",
            dataset="fashion_mnist_local",
            target="label",
            class_names=None,
            description="",
            recipe={"epochs": 1, "batch_size": 8, **recipe},
        )
    assert "row_rnn.misspelt" not in zoo.list_models()


def test_a_recipe_is_typed_and_every_key_can_be_changed_from_the_command_line():
    from kerasrv.registry import RECIPE_KEYS, Recipe

    recipe = zoo.get_entry("convlstm_forecast").recipe
    assert isinstance(recipe, Recipe) and recipe.teacher_forcing == (1.0, 0.25)
    assert Recipe.parse("teacher_forcing=1,0.5") == ("teacher_forcing", (1.0, 0.5))
    assert Recipe.parse("fresh_clips=False") == ("fresh_clips", False)
    assert Recipe.parse("augment=true") == ("augment", True)
    assert Recipe.parse("augment=shift") == ("augment", "shift")
    assert Recipe.parse("epochs=3") == ("epochs", 3)
    assert Recipe.parse("learning_rate=none") == ("learning_rate", None)
    changed = recipe.replace(**dict([Recipe.parse("epochs=2"), Recipe.parse("fresh_clips=false")]))
    assert changed.epochs == 2 and not changed.fresh_clips
    assert changed.batch_size == recipe.batch_size
    assert set(recipe.to_dict()) == set(RECIPE_KEYS)
    with pytest.raises(ValueError, match="fresh_clips takes a bool, got 'no'"):
        Recipe.parse("fresh_clips=no")
    with pytest.raises(ValueError, match="teacher_forcing is"):
        recipe.replace(teacher_forcing=(1.5, 0.25))
    assert Recipe.parse("reverse_sampling=0.2,0.4") == ("reverse_sampling", (0.2, 0.4))
    with pytest.raises(ValueError, match="reverse_sampling takes a FIRST,LAST such as 0.2,0.4"):
        Recipe.parse("reverse_sampling=0.2")
    with pytest.raises(ValueError, match="0 <= first < last <= 1, got \\(0.4, 0.2\\)"):
        recipe.replace(reverse_sampling=(0.4, 0.2))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        recipe.replace(epochs=0)
    with pytest.raises(ValueError, match="KEY one of epochs"):
        Recipe.parse("epoch=3")


@pytest.mark.parametrize("name", registry.list_architectures())
def test_every_architecture_builds_runs_saves_and_exports_with_fresh_weights(name, tmp_path):
    """What a new family passes before it has trained weights (`helpers.check_architecture`);
    the TFLite file of each is written in the slow run (test_export converts each task's)."""
    check_architecture(name, zoo.get_entry(name).task, tmp_path, formats=("saved_model",))


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.list_architectures())
def test_every_architecture_converts_to_tflite_with_fresh_weights(name, tmp_path):
    check_architecture(name, zoo.get_entry(name).task, tmp_path, formats=("tflite",))


@pytest.mark.parametrize("added", [{"clip_context": 8}, {"recurrent_skips": 2}])
def test_a_segmenters_added_memory_starts_as_the_model_without_it_and_stays_causal(added):
    """The paths a segmenter can gain start at zero, so a model warm-started from weights
    without them begins as that model; with them, frame t's mask still depends on frames 1..t
    alone (the ConvLSTM reads the clip forwards)."""
    from kerasrv.architectures.convlstm import convlstm_seg

    shape = (4, 16, 16, 1)
    keras.utils.set_random_seed(0)
    base = convlstm_seg(shape, num_classes=3, filters=(4, 8), recurrent_filters=(8,))
    grown = convlstm_seg(shape, num_classes=3, filters=(4, 8), recurrent_filters=(8,), **added)
    for layer in base.layers:
        grown.get_layer(layer.name).set_weights(layer.get_weights())
    assert grown.count_params() > base.count_params()
    clip = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    np.testing.assert_allclose(grown(clip), base(clip), atol=1e-6)
    for layer in grown.layers:  # the new paths away from zero, so they change the answer
        if layer.name not in {b.name for b in base.layers} and layer.weights:
            layer.set_weights([w + 0.5 for w in layer.get_weights()])
    changed_later = clip.copy()
    changed_later[:, 2:] = 1 - changed_later[:, 2:]
    before, after = grown(clip), grown(changed_later)
    assert np.abs(grown(clip) - base(clip)).max() > 1e-3
    np.testing.assert_allclose(after[:, :2], before[:, :2], atol=1e-6)
    assert np.abs(after[:, 2:] - before[:, 2:]).max() > 1e-3


def test_recurrent_skips_are_at_most_the_skip_connections():
    from kerasrv.architectures.convlstm import convlstm_seg

    with pytest.raises(kerasrv.errors.UsageError, match="recurrent_skips must be between 0 and 2"):
        convlstm_seg(recurrent_skips=3)
