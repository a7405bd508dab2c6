"""The metrics every card, evaluation and parity verdict rests on, on cases small enough to work
out by hand: a class absent from the truth, a class never predicted, everything one class."""

import numpy as np
import pytest

from kerasrv import tasks
from kerasrv.tasks import confusion_matrix, intersection_over_union


def _measured(task, num_classes, labels, predicted):
    """What `kerasrv evaluate` reports for predictions given as class ids."""
    measure = tasks.get(task).measure(num_classes)
    labels = np.asarray(labels)
    probabilities = np.eye(num_classes, dtype=np.float32)[np.asarray(predicted)]
    measure.update(labels, probabilities, None)
    return measure.result()


def test_the_confusion_matrix_counts_truth_by_row_and_prediction_by_column():
    confusion = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert confusion.dtype == np.int64 and confusion.sum() == 6


def test_accuracy_is_the_share_of_right_answers():
    result = _measured("classification", 3, [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])
    assert result["metrics"]["accuracy"] == pytest.approx(4 / 6)
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert all(type(count) is int for row in result["confusion_matrix"] for count in row)


def test_iou_by_hand_and_the_mean_over_the_classes_that_occur():
    # class 0: tp 1, fp 1 (a 2 called 0), fn 1 (a 0 called 1): 1 / 3
    # class 1: tp 1, fp 1, fn 0: 1 / 2;  class 2: tp 2, fp 0, fn 1: 2 / 3
    confusion = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    mean, per_class = intersection_over_union(confusion)
    np.testing.assert_allclose(per_class, [1 / 3, 1 / 2, 2 / 3])
    assert mean == pytest.approx((1 / 3 + 1 / 2 + 2 / 3) / 3)


def test_a_class_absent_from_truth_and_prediction_is_left_out_of_the_mean():
    """A test set with no bags does not count bags as an IoU of 0."""
    mean, per_class = intersection_over_union(confusion_matrix([0, 1, 1], [0, 1, 1], 3))
    assert mean == 1.0 and per_class[2] == 0.0


def test_a_class_never_predicted_counts_as_an_iou_of_zero():
    """Present in the truth, never predicted: in the mean, at 0."""
    mean, per_class = intersection_over_union(confusion_matrix([0, 1, 2, 2], [0, 1, 1, 1], 3))
    np.testing.assert_allclose(per_class, [1.0, 1 / 3, 0.0])
    assert mean == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_a_class_predicted_but_absent_from_the_truth_counts_as_zero_too():
    mean, per_class = intersection_over_union(confusion_matrix([0, 0], [0, 2], 3))
    np.testing.assert_allclose(per_class, [0.5, 0.0, 0.0])
    assert mean == pytest.approx(0.25)  # classes 0 and 2 occur; 1 does not


def test_all_one_class_right_is_perfect_and_all_wrong_is_zero():
    right = _measured("segmentation", 2, np.zeros((2, 4, 4), int), np.zeros((2, 4, 4), int))
    assert right["metrics"] == {"mean_iou": 1.0, "pixel_accuracy": 1.0}
    assert right["per_class_iou"] == [1.0, 0.0]
    wrong = _measured("segmentation", 2, np.zeros((2, 4, 4), int), np.ones((2, 4, 4), int))
    assert wrong["metrics"] == {"mean_iou": 0.0, "pixel_accuracy": 0.0}
    everything = _measured("classification", 4, [3, 3, 3], [3, 3, 3])
    assert everything["metrics"]["accuracy"] == 1.0


def test_targets_outside_the_models_classes_are_refused_not_counted():
    with pytest.raises(
        ValueError, match=r"the targets hold class 3, but the model has 3 classes \(0–2\)"
    ):
        _measured("classification", 3, [0, 3], [0, 1])  # one past the last class
    with pytest.raises(ValueError, match="the targets hold class 4, but the model has 3"):
        _measured("classification", 3, [0, 4], [0, 1])
    with pytest.raises(ValueError, match="the targets hold class -1"):
        _measured("classification", 3, [0, -1], [0, 1])


def test_segmentation_measures_accumulate_over_batches_as_one_confusion():
    """Two batches measured one after the other give the numbers of the pooled pixels, not the
    mean of two batch means."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 5, 6, 6))
    predicted = np.where(rng.uniform(size=labels.shape) < 0.7, labels, (labels + 1) % 3)
    measure = tasks.get("video_segmentation").measure(3)
    for y, p in zip(labels, predicted):
        measure.update(y, np.eye(3, dtype=np.float32)[p], None)
    pooled = intersection_over_union(confusion_matrix(labels, predicted, 3))[0]
    assert measure.result()["metrics"]["mean_iou"] == pytest.approx(pooled)
    assert measure.result()["metrics"]["pixel_accuracy"] == pytest.approx(
        (labels == predicted).mean()
    )


def test_video_prediction_metrics_by_hand_and_beside_copying_the_last_frame():
    """OpenSTL's units: squared error summed over a frame's pixels, averaged over frames; two
    batches measured one after the other count as one set of clips."""
    given = np.zeros((1, 3, 8, 8, 1), np.float32)
    given[0, -1] = 0.5  # the last of three given frames: copying it is right on frames 1, 2
    true = np.full((1, 3, 8, 8, 1), 0.5, np.float32)
    true[0, 2] = 1.0
    predicted = np.full((1, 3, 8, 8, 1), 0.5, np.float32)  # right on frames 1, 2; 0.5 off on 3
    further = np.full((1, 3, 8, 8, 1), 0.25, np.float32)  # a second clip: 0.25 off everywhere
    measure = tasks.get("video_prediction").measure(None)
    measure.update(true, predicted, given)
    measure.update(np.full_like(true, 0.5), further, np.full_like(given, 0.5))
    result = measure.result()
    metrics, per_frame = result["metrics"], result["per_frame"]
    # 6 frames: one 0.5 off (64 × 0.25 = 16), three 0.25 off (64 × 0.0625 = 4 each)
    assert metrics["mse"] == pytest.approx((16 + 3 * 4) / 6)
    assert metrics["mae"] == pytest.approx((32 + 3 * 16) / 6)
    assert metrics["copy_last_mse"] == pytest.approx(16 / 6)  # copy-last: only frame 3 off
    assert metrics["mse_vs_copy_last"] == pytest.approx(28 / 16)
    np.testing.assert_allclose(per_frame["mse"], [2, 2, 10])  # per clip, each frame
    np.testing.assert_allclose(per_frame["copy_last_mse"], [0, 0, 8])


def test_openstl_psnr_and_ssim_clip_the_prediction_to_the_frame_range():
    """A prediction of 1.5 where the truth is 1.0 costs MSE 0.25 but PSNR and SSIM see 1.0:
    OpenSTL clips before them, not before MSE."""
    from skimage.metrics import structural_similarity

    true = np.zeros((1, 2, 8, 8, 1))
    true[..., 4:, :] = 1.0
    predicted = np.where(true == 1.0, 1.5, 0.5)  # over the range above, 0.5 off below
    sums = tasks.openstl_metrics(predicted, true)
    assert sums["frames"] == 2
    assert sums["mse"] == pytest.approx(2 * 64 * 0.25)  # before clipping: 0.5 off everywhere
    # after clipping, half of each frame is 0.5 off: per-frame MSE 0.125
    assert sums["psnr"] == pytest.approx(2 * -10 * np.log10(0.125))
    clipped = np.clip(predicted, 0, 1)[0, 0]
    expected = structural_similarity(clipped, true[0, 0], data_range=2.0, channel_axis=-1)
    assert sums["ssim"] == pytest.approx(2 * expected)


@pytest.mark.parametrize(
    "task, bar, above, below",
    [
        ("classification", 0.99, 0.9901, 0.9899),
        ("video_classification", 0.99, 0.99, 0.9899),
        ("segmentation", 0.95, 0.95, 0.9499),
        ("video_segmentation", 0.95, 0.9501, 0.9499),
    ],
)
def test_agreement_bars_pass_at_and_above_and_fail_just_below(task, bar, above, below):
    task = tasks.get(task)
    assert task.min_agreement == bar
    assert task.agrees(above) and task.agrees(bar)
    assert not task.agrees(below)


@pytest.mark.parametrize("task", ["video_prediction", "next_frame"])
def test_frame_tasks_pass_an_mse_up_to_1_1_times_keras_and_fail_just_over(task):
    task = tasks.get(task)
    assert task.agrees(1.1) and task.agrees(0.9) and not task.agrees(1.1001)


def test_top1_agreement_and_mask_iou_agreement_by_hand():
    keras_answers = np.eye(3)[[0, 1, 2, 0]]
    exported = np.eye(3)[[0, 1, 1, 0]]
    assert tasks.get("classification").agreement(keras_answers, exported, None, 3) == 0.75
    keras_masks = np.array([[0, 0, 1], [1, 1, 1]])  # one 2×3 mask: classes on the last axis
    moved = np.array([[0, 1, 1], [1, 1, 1]])
    # class 0: tp 1, fp 0, fn 1 → 1/2; class 1: tp 4, fp 1, fn 0 → 4/5
    agreement = tasks.get("segmentation").agreement(
        np.eye(2)[keras_masks][None], np.eye(2)[moved][None], None, 2
    )
    assert agreement == pytest.approx((1 / 2 + 4 / 5) / 2)


def test_frame_agreement_is_the_exports_error_over_keras_error():
    true = np.full((1, 2, 4, 4, 1), 0.8)
    keras_frames = np.full_like(true, 0.6)  # 0.2 off: MSE 0.04
    exported = np.full_like(true, 0.5)  # 0.3 off: MSE 0.09
    ratio = tasks.get("video_prediction").agreement(keras_frames, exported, true, None)
    assert ratio == pytest.approx(0.09 / 0.04)


def _verdict(task, fmt, **batch):
    from kerasrv import export

    return export.passes({"task": task}, fmt, {"batch_1": batch, "batch_7": batch})


@pytest.mark.parametrize(
    "fmt, limit",
    [("saved_model", 1e-5), ("tflite", 1e-4), ("tflite_batch1", 1e-4), ("onnx", 1e-4)],
)
def test_a_float_file_passes_up_to_its_largest_difference_and_fails_just_over(fmt, limit):
    """Float files are judged by the largest difference from Keras, whatever the agreement."""
    assert _verdict("classification", fmt, max_abs_diff=limit, agreement=0.0)
    assert not _verdict("classification", fmt, max_abs_diff=limit * 1.01, agreement=1.0)


@pytest.mark.parametrize("fmt", ["tflite_dynamic", "tflite_float16", "tflite_int8"])
@pytest.mark.parametrize("task, bar", [("classification", 0.99), ("segmentation", 0.95)])
def test_a_reduced_precision_file_passes_by_the_tasks_bar_at_every_batch(fmt, task, bar):
    from kerasrv import export

    assert _verdict(task, fmt, max_abs_diff=1.0, agreement=bar)
    assert not _verdict(task, fmt, max_abs_diff=0.0, agreement=bar - 1e-4)
    # one batch size below the bar fails the file
    measured = {"batch_1": {"agreement": bar}, "batch_7": {"agreement": bar - 1e-4}}
    assert not export.passes({"task": task}, fmt, measured)


def test_the_smoothed_loss_survives_a_save_and_keeps_its_smoothing():
    """A model compiled with label smoothing is saved with its loss: the config must restore it."""
    loss = tasks.get("classification").loss(0.1)
    again = type(loss).from_config(loss.get_config())
    assert again.label_smoothing == 0.1 and again.name == loss.name
    y, p = np.array([1, 2]), np.array([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]], np.float32)
    assert float(again(y, p)) == pytest.approx(float(loss(y, p)))


def test_a_clips_masks_are_measured_frame_by_frame_too():
    """Two batches of one clip each, two 1×3-pixel frames per clip: every frame right but the
    first clip's second, which has one pixel wrong; the frames' counts add up over batches."""
    truth = np.array([[[[0, 1, 1]], [[0, 1, 1]]], [[[1, 1, 0]], [[1, 1, 0]]]])  # (clips, T, H, W)
    predicted = truth.copy()
    predicted[0, 1, 0, 2] = 0
    measure = tasks.get("video_segmentation").measure(2)
    for clip in range(2):
        measure.update(truth[clip : clip + 1], np.eye(2)[predicted[clip : clip + 1]], None)
    result = measure.result()
    # frame 2: class 0 is 2 true pixels, 3 predicted, 2 both: 2/3; class 1: 4, 3, 3: 3/4
    assert result["per_frame_iou"] == [1.0, round((2 / 3 + 3 / 4) / 2, 4)]
    # all frames: class 0: 4 true, 5 predicted, 4 both; class 1: 8, 7, 7
    assert result["metrics"]["mean_iou"] == pytest.approx((4 / 5 + 7 / 8) / 2)
    image = tasks.get("segmentation").measure(2)
    image.update(truth[0], np.eye(2)[predicted[0]], None)  # two images, not a clip
    assert "per_frame_iou" not in image.result()


def test_a_video_segmenter_is_measured_reading_each_frame_alone_too():
    """The same weights in a model of one-frame clips: frame 1 is the same computation (an
    empty state either way), later frames differ by what the ConvLSTM remembers; `measure`
    reports that model's per-frame IoU beside the clip model's, computed from its own masks."""
    import keras

    from kerasrv import evaluation
    from kerasrv.architectures.convlstm import convlstm_seg

    keras.utils.set_random_seed(1)
    shape = [4, 16, 16, 1]
    model = convlstm_seg(shape, num_classes=3, filters=(4, 8), recurrent_filters=(8,))
    recurrent = model.get_layer("convlstm1")  # fresh weights barely remember: make it matter
    recurrent.set_weights([5 * w for w in recurrent.get_weights()])
    head = model.get_layer("head")  # its prior bias answers background everywhere at first
    kernel, bias = head.get_weights()
    head.set_weights([30 * kernel, 0 * bias])
    card = {
        "task": "video_segmentation",
        "num_classes": 3,
        "input_shape": shape,
        "architecture": "convlstm_seg",
        "builder_args": {"filters": [4, 8], "recurrent_filters": [8], "num_classes": 3},
    }
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, *shape)).astype("float32")
    y = rng.integers(3, size=(3, *shape[:-1]))
    alone = evaluation.frame_alone(model, card)
    reading_the_clip = np.asarray(model(x))
    one_by_one = np.asarray(alone(x.reshape(-1, 1, *shape[1:]))).reshape(reading_the_clip.shape)
    np.testing.assert_allclose(one_by_one[:, 0], reading_the_clip[:, 0], atol=1e-5)
    assert np.abs(one_by_one[:, 1:] - reading_the_clip[:, 1:]).max() > 1e-3  # memory
    assert len(np.unique(one_by_one.argmax(-1))) == 3

    result = evaluation.measure(model, card, [(x, y)])
    by_hand = tasks.get("video_segmentation").measure(3)
    answers = np.asarray(alone.predict_on_batch(x.reshape(-1, 1, *shape[1:])))
    by_hand.update(y, answers.reshape(*y.shape, 3), x)
    assert result["frame_alone"]["per_frame_iou"] == by_hand.result()["per_frame_iou"]
    assert len(result["per_frame_iou"]) == 4
    image_card = {**card, "task": "segmentation", "input_shape": shape[1:]}
    assert evaluation.frame_alone(model, image_card) is None
    assert evaluation.frame_alone(model, {**card, "architecture": "no_such_model"}) is None
