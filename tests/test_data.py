"""kerasrv.data: the IDX reader, the TFDS builders and what they build, the pipelines."""

import gzip
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasrv import data, zoo
from kerasrv.data import idx, synthesis
from kerasrv.data.augment import AUGMENT_SHIFT, ERASE_AREA, random_erasing
from kerasrv.labels import FASHION_MNIST_CLASSES

MOVING = "moving_fashion_mnist/small"
SCENES = "fashion_mnist_scenes/small"


def _examples(name, split, tfds_dir, count=None):
    ds, _ = data.load_split(name, split if count is None else f"{split}[:{count}]", tfds_dir)
    return list(tfds.as_numpy(ds))


# --- the IDX reader ----------------------------------------------------------------------------


def test_fashion_mnist_has_its_counts_shapes_and_classes():
    train_images, train_labels = data.load_fashion_mnist("train")
    test_images, test_labels = data.load_fashion_mnist("test")
    assert train_images.shape == (60_000, 28, 28) and train_labels.shape == (60_000,)
    assert test_images.shape == (10_000, 28, 28) and test_labels.shape == (10_000,)
    assert train_images.dtype == test_images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(test_labels), [1000] * 10)
    assert test_labels[:3].tolist() == [9, 2, 1]  # ankle boot, pullover, trouser


def _copy_data(tmp_path):
    for name in Path(idx.DEFAULT_DIR).iterdir():
        shutil.copy(name, tmp_path / name.name)
    return tmp_path


def test_a_truncated_idx_file_is_named_in_the_error(tmp_path):
    directory = _copy_data(tmp_path)
    path = directory / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))  # a valid gzip of a short file
    with pytest.raises(idx.DatasetError, match=r"t10k-labels-idx1-ubyte.gz is truncated"):
        data.load_fashion_mnist("test", directory)
    path.write_bytes(path.read_bytes()[:2000])  # a gzip stream cut in the middle
    with pytest.raises(idx.DatasetError, match=r"t10k-labels-idx1-ubyte.gz is corrupt"):
        data.load_fashion_mnist("test", directory)


def test_raw_idx_files_work_and_a_wrong_magic_number_is_refused(tmp_path):
    directory = _copy_data(tmp_path)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        gz = directory / f"{stem}.gz"
        (directory / stem).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    images, _ = data.load_fashion_mnist("test", directory)
    np.testing.assert_array_equal(images, data.load_fashion_mnist("test")[0])
    path = directory / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(idx.DatasetError, match="magic number 0x00000803, expected 0x00000801"):
        data.load_fashion_mnist("test", directory)


def test_missing_files_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv(idx.ENV_DIR, str(tmp_path))
    with pytest.raises(idx.DatasetError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist("train")


# --- the TFDS builders -------------------------------------------------------------------------


def test_fashion_mnist_builder_has_the_counts_dtypes_and_shapes(tfds_dir):
    builder = tfds.builder("fashion_mnist_local", data_dir=tfds_dir)
    builder.download_and_prepare()
    assert builder.info.splits["train"].num_examples == 60_000
    assert builder.info.splits["test"].num_examples == 10_000
    assert builder.info.features["label"].names == list(FASHION_MNIST_CLASSES)
    example = next(iter(tfds.load("fashion_mnist_local", split="test", data_dir=tfds_dir)))
    assert example["image"].shape == (28, 28, 1) and example["image"].dtype == tf.uint8
    images, labels = data.load_fashion_mnist("test")
    first = _examples("fashion_mnist_local", "test", tfds_dir, 1)[0]  # tfds order is shuffled
    match = np.flatnonzero((images == first["image"][..., 0]).all(axis=(1, 2)))
    assert labels[match[0]] == first["label"]


def test_moving_and_scenes_have_their_dtypes_and_shapes(tfds_dir):
    clip = _examples(MOVING, "test", tfds_dir, 1)[0]
    assert clip["frames"].shape == (8, 32, 32, 1) and clip["frames"].dtype == np.uint8
    assert clip["masks"].shape == (8, 32, 32) and clip["masks"].dtype == np.uint8
    assert 0 <= clip["label"] < 10 and 0 <= clip["motion"] < 8
    scene = _examples(SCENES, "test", tfds_dir, 1)[0]
    assert scene["image"].shape == (64, 64, 1) and scene["mask"].shape == (64, 64)
    counts = tfds.builder(MOVING, data_dir=tfds_dir).info.splits
    assert counts["train"].num_examples == 1_000 and counts["test"].num_examples == 200


def test_two_builds_with_the_same_seed_are_byte_identical(tmp_path):
    def build(directory):
        builder = tfds.builder(MOVING, data_dir=str(directory))
        builder.download_and_prepare()
        return sorted(Path(builder.data_dir).glob("*.tfrecord*"))

    first, second = build(tmp_path / "a"), build(tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second] and first
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()


def test_another_seed_builds_other_examples():
    images, labels = data.load_fashion_mnist("test")
    a = synthesis.moving_sequence(synthesis.example_rng(0, "test", 5), images, labels)
    b = synthesis.moving_sequence(synthesis.example_rng(1, "test", 5), images, labels)
    assert not np.array_equal(a["frames"], b["frames"])


def _item(images, index, size):
    return synthesis.item_pixels(images[index], size)


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_item_comes_from_its_own_split(split, tfds_dir):
    images, _ = data.load_fashion_mnist(split)
    for clip in _examples(MOVING, split, tfds_dir, 50):
        item = _item(images, clip["items"][0], 14)  # item 0 is nearest, never hidden
        for t, (x, y) in enumerate(clip["positions"][0]):
            window = clip["frames"][t, y : y + 14, x : x + 14, 0]
            np.testing.assert_array_equal(window[item > 0], item[item > 0])
    for scene in _examples(SCENES, split, tfds_dir, 50):
        for index, (y, x, h, w) in zip(scene["items"], scene["boxes"]):
            if index < 0:
                break
            item = _item(images, index, 28)
            rows, cols = np.nonzero(item)
            crop = item[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            window = scene["image"][y : y + h, x : x + w, 0]
            np.testing.assert_array_equal(window[crop > 0], crop[crop > 0])


def test_masks_are_non_zero_exactly_on_items_and_carry_their_class(tfds_dir):
    images, labels = data.load_fashion_mnist("test")
    for clip in _examples(MOVING, "test", tfds_dir, 50):
        np.testing.assert_array_equal(clip["masks"] > 0, clip["frames"][..., 0] > 0)
        item = _item(images, clip["items"][0], 14) > 0
        for t, (x, y) in enumerate(clip["positions"][0]):
            assert (clip["masks"][t, y : y + 14, x : x + 14][item] == clip["label"] + 1).all()
        assert clip["label"] == labels[clip["items"][0]] == clip["classes"][0]
    for scene in _examples(SCENES, "test", tfds_dir, 50):
        np.testing.assert_array_equal(scene["mask"] > 0, scene["image"][..., 0] > 0)
        placed = scene["items"][scene["items"] >= 0]
        assert 2 <= len(placed) <= 4
        covered = 0
        for index, cls, (y, x, h, w) in zip(placed, scene["classes"], scene["boxes"]):
            item = _item(images, index, 28)
            rows, cols = np.nonzero(item)
            silhouette = item[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] > 0
            assert (scene["mask"][y : y + h, x : x + w][silhouette] == cls + 1).all()
            covered += silhouette.sum()
        assert covered == (scene["mask"] > 0).sum()  # no pixel belongs to two items


def test_items_never_leave_the_canvas(tfds_dir):
    for clip in _examples(MOVING, "train", tfds_dir):
        placed = clip["positions"][clip["items"] >= 0]
        assert placed.min() >= 0 and placed.max() <= 32 - 14
    for scene in _examples(SCENES, "train", tfds_dir, 200):
        boxes = scene["boxes"][scene["items"] >= 0]
        assert boxes[:, :2].min() >= 0
        assert (boxes[:, 0] + boxes[:, 2]).max() <= 64 and (boxes[:, 1] + boxes[:, 3]).max() <= 64


def test_motion_labels_agree_with_the_items_centroid(tfds_dir):
    checked = 0
    for clip in _examples(MOVING, "test", tfds_dir):
        classes = clip["classes"][clip["classes"] >= 0]
        if (classes[1:] == classes[0]).any():
            continue  # two items of one class: the mask cannot tell their pixels apart
        pixels = clip["masks"] == clip["label"] + 1
        centroids = [np.argwhere(frame).mean(axis=0)[::-1] for frame in pixels]  # (x, y)
        direction = tuple(synthesis.DIRECTIONS[clip["motion"]])
        for step in (centroids[1] - centroids[0], centroids[2] - centroids[1]):
            assert tuple(np.sign(np.round(step)).astype(int)) == direction
        checked += 1
    assert checked > 150


def test_every_item_of_a_clip_starts_moving_in_its_direction(tfds_dir):
    for clip in _examples(MOVING, "train", tfds_dir, 300):
        placed = clip["positions"][clip["items"] >= 0]
        steps = np.sign(placed[:, 1] - placed[:, 0])
        assert (steps == synthesis.DIRECTIONS[clip["motion"]]).all()


# Directions moving along the same axes: east/west, north/south, the four diagonals.
_SAME_AXES = {"horizontal": (0, 4), "vertical": (2, 6), "diagonal": (1, 3, 5, 7)}


@pytest.mark.parametrize("speed", [1, 2, 3, 4])
@pytest.mark.parametrize("axes", sorted(_SAME_AXES))
def test_items_of_their_own_direction_are_anywhere_equally_often_at_every_frame(axes, speed):
    """Exact, over every start `moving_sequence(shared_direction=False)` can draw for the
    directions along these axes (each as likely as the others): where the items are at frame t
    is where they are at frame 0, each start counted once."""
    limit, states = 36, []
    for direction in _SAME_AXES[axes]:
        velocity = synthesis.DIRECTIONS[direction] * speed
        low, high = synthesis.stationary_starts(velocity, limit)
        xs, ys = range(low[0], high[0] + 1), range(low[1], high[1] + 1)
        states += [(np.array((x, y)), velocity) for x in xs for y in ys]
    first = sorted(tuple(p) for p, _ in states)
    for _ in range(40):  # past every bounce of the slowest item
        states = [synthesis.bounce(p, v, limit) for p, v in states]
        assert sorted(tuple(p) for p, _ in states) == first


def test_items_of_one_direction_overlap_more_later_and_of_their_own_do_not():
    """Why the `independent` config exists: in the default's clips two items overlap more in
    later frames than in the first; with each item in its own direction they do not."""
    images, labels = data.load_fashion_mnist("test")
    overlap = {}
    for shared in (True, False):
        area = np.zeros(10)
        for i in range(1000):
            rng = synthesis.example_rng(0, "test", i)
            clip = synthesis.moving_sequence(rng, images, labels, shared_direction=shared)
            if (clip["items"] >= 0).sum() == 2:
                gap = np.abs(clip["positions"][0] - clip["positions"][1])
                area += np.prod(np.clip(28 - gap, 0, None), axis=1)
        overlap[shared] = area[-5:].sum() / area[:5].sum()
    assert overlap[True] > 1.2
    assert 0.9 < overlap[False] < 1.1


def test_the_default_configs_clips_are_the_ones_its_models_were_trained_on():
    """The digest of 100 default training clips as kerasrv 0.7.2 drew them (before items could
    move in their own directions): the shipped lrcn and convlstm_predict weights, and their
    cards' metrics, belong to those clips."""
    images, labels = data.load_fashion_mnist("train")
    digest = hashlib.sha256()
    for i in range(100):
        clip = synthesis.moving_sequence(synthesis.example_rng(0, "train", i), images, labels)
        for key in ("frames", "masks", "positions", "items", "classes"):
            digest.update(np.ascontiguousarray(clip[key]).tobytes())
        digest.update(bytes([clip["label"], clip["motion"]]))
    assert digest.hexdigest() == "542c140653ab26f0a80dc8e709cd9363ee26ab1fbd317715ee899d187cba33be"


def test_own_directions_change_nothing_else_of_a_clip():
    images, labels = data.load_fashion_mnist("test")
    for i in range(20):
        shared, own = (
            synthesis.moving_sequence(
                synthesis.example_rng(0, "test", i), images, labels, shared_direction=flag
            )
            for flag in (True, False)
        )
        for key in ("items", "classes", "label", "motion"):
            np.testing.assert_array_equal(shared[key], own[key])
        placed = own["positions"][own["items"] >= 0]
        assert ((placed >= 0) & (placed <= 36)).all()


# --- pipelines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, dataset, input_shape",
    [
        ("cnn_lstm", None, None),
        ("reseg", SCENES, None),
        ("lrcn", MOVING, (8, 32, 32, 1)),
        ("convlstm_seg", MOVING, (8, 32, 32, 1)),
        ("convlstm_predict", MOVING, (7, 32, 32, 1)),
    ],
)
def test_pipelines_match_the_entrys_card(name, dataset, input_shape, tfds_dir):
    card = zoo.info(name)
    ds = data.pipeline(
        card, "test[:20]", 8, dataset=dataset, input_shape=input_shape, data_dir=tfds_dir
    )
    x, y = next(iter(ds))
    shape = input_shape or tuple(card["input_shape"])
    assert x.shape == (8, *shape) and x.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    if card["task"] == "next_frame":
        assert y.shape == x.shape and y.dtype == tf.float32
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets are the inputs, one later
    elif card["task"] in ("segmentation", "video_segmentation"):
        assert y.shape == x.shape[:-1] and y.dtype == tf.int32
        assert int(tf.reduce_max(y)) <= 10
    else:
        assert y.shape == (8,) and y.dtype == tf.int32
    assert sum(int(b[0].shape[0]) for b in ds) == 20


def test_one_hot_targets_and_training_shuffles(tfds_dir):
    ds = data.pipeline(zoo.info("cnn_lstm"), "test[:64]", 64, one_hot=True, data_dir=tfds_dir)
    _, y = next(iter(ds))
    assert y.shape == (64, 10) and (tf.reduce_sum(y, 1).numpy() == 1).all()
    shuffled = data.pipeline(zoo.info("cnn_lstm"), "test[:64]", 64, shuffle=True, data_dir=tfds_dir)
    epochs = [next(iter(shuffled))[1].numpy() for _ in range(2)]
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch


def _flips_and_shifts(image):
    """Every flip and shift of up to AUGMENT_SHIFT pixels of an (H, W, C) array, zero-filled."""
    height, width = image.shape[:2]
    pad = [(AUGMENT_SHIFT, AUGMENT_SHIFT)] * 2 + [(0, 0)]
    for flipped in (image, image[:, ::-1]):
        padded = np.pad(flipped, pad)
        for dy in range(2 * AUGMENT_SHIFT + 1):
            for dx in range(2 * AUGMENT_SHIFT + 1):
                yield padded[dy : dy + height, dx : dx + width]


@pytest.mark.parametrize("name, dataset", [("cnn_lstm", None), ("reseg", SCENES)])
def test_augmentation_flips_and_shifts_each_image_with_its_mask(name, dataset, tfds_dir):
    plain, augmented = (
        next(
            iter(
                data.pipeline(
                    zoo.info(name),
                    "train[:32]",
                    32,
                    dataset=dataset,
                    shuffle=False,
                    augment=a,
                    data_dir=tfds_dir,
                )
            )
        )
        for a in (False, True)
    )
    (x, y), (ax, ay) = [(a.numpy(), b.numpy()) for a, b in (plain, augmented)]
    if y.ndim == 3:  # segmentation: the mask rides along as one more channel
        x, ax = np.concatenate([x, y[..., None]], -1), np.concatenate([ax, ay[..., None]], -1)
    else:
        np.testing.assert_array_equal(ay, y)
    for i in range(len(x)):
        assert any(np.array_equal(ax[i], c) for c in _flips_and_shifts(x[i])), i
    changed = sum(not np.array_equal(ax[i], x[i]) for i in range(len(x)))
    assert changed > len(x) // 2  # 49 of the 50 transforms move an image


def test_random_erasing_fills_one_rectangle_of_half_the_images_and_keeps_labels():
    images = tf.zeros((2000, 28, 28, 1), tf.uint8)  # every non-zero pixel is erasing's noise
    labels = tf.range(2000)
    erased, kept = random_erasing(images, labels)
    np.testing.assert_array_equal(kept, labels)
    erased = erased.numpy()[..., 0]
    touched = [e for e in erased if e.any()]
    assert 0.45 < len(touched) / len(erased) < 0.55  # ERASE_PROBABILITY = 0.5, seeded
    for e in touched:
        rows, cols = np.nonzero(e.any(axis=1))[0], np.nonzero(e.any(axis=0))[0]
        box = e[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert np.mean(box > 0) > 0.9  # one filled rectangle (noise is 0 once in 256)
        assert box.size <= ERASE_AREA[1] * 28 * 28 * 1.3  # rounding the sides to pixels


def test_random_erasing_refuses_masks():
    with pytest.raises(ValueError, match="classifiers"):
        random_erasing(tf.zeros((2, 8, 8, 1)), tf.zeros((2, 8, 8), tf.uint8))


def test_a_dataset_that_does_not_fit_the_entry_is_refused(tfds_dir):
    with pytest.raises(
        data.DatasetError,
        match=r"gives frames of shape \(8, 32, 32, 1\), but "
        r"the model expects \(10, 64, 64, 1\)",
    ):
        data.pipeline(zoo.info("lrcn"), "test", dataset=MOVING, data_dir=tfds_dir)


def test_standard_tfds_datasets_pass_through_the_same_pipeline():
    with tfds.testing.mock_data(num_examples=12):
        ds = data.pipeline(zoo.info("cnn_lstm"), "train", 4, dataset="cifar10")
        x, y = next(iter(ds))
    assert x.shape == (4, 28, 28, 1) and x.dtype == tf.float32  # resized, to grayscale
    assert y.shape == (4,) and y.dtype == tf.int32


def test_a_standard_dataset_not_prepared_here_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(data.DatasetError, match="'mnist' is not prepared .* never downloads"):
        data.pipeline(zoo.info("cnn_lstm"), "train", dataset="mnist", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30  # not minutes of network retries
    with pytest.raises(data.DatasetError, match="unknown dataset 'no_such_dataset'"):
        data.load_split("no_such_dataset", "train", str(tmp_path))


def test_a_dataset_is_built_again_from_other_files_and_never_read_stale(tmp_path, monkeypatch):
    data_dir = str(tmp_path / "tfds")
    first = _examples(MOVING, "test", data_dir, 5)
    monkeypatch.setenv(idx.ENV_DIR, str(tmp_path / "empty"))  # pointed at nothing
    (tmp_path / "empty").mkdir()
    with pytest.raises(idx.DatasetError, match=r"empty/\S+-idx\d-ubyte\S* is missing"):
        data.load_split(MOVING, "test[:5]", data_dir)
    (tmp_path / "copy").mkdir()
    copy = _copy_data(tmp_path / "copy")
    path = copy / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[16:] = bytes(255 - b for b in raw[16:])  # the same files, every test image inverted
    path.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv(idx.ENV_DIR, str(copy))
    rebuilt = _examples(MOVING, "test", data_dir, 5)
    assert not np.array_equal(rebuilt[0]["frames"], first[0]["frames"])
    monkeypatch.delenv(idx.ENV_DIR)
    again = _examples(MOVING, "test", data_dir, 5)
    np.testing.assert_array_equal(again[0]["frames"], first[0]["frames"])


# Two commands on a fresh data directory at once: each loads the split and prints a digest.
LOAD_AND_DIGEST = """
import hashlib, sys
import numpy as np
from kerasrv import data
ds, _ = data.load_split(sys.argv[1], "test[:4]", sys.argv[2])
print(hashlib.sha256(b"".join(np.asarray(e["frames"]).tobytes() for e in ds)).hexdigest())
"""


def test_two_commands_preparing_one_dataset_at_once_both_read_it(tmp_path):
    data_dir = str(tmp_path / "tfds")
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD_AND_DIGEST, MOVING, data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, results, strict=True):
        assert run.returncode == 0, stderr[-2000:]
    first, second = (stdout.split()[-1] for stdout, _ in results)
    assert first == second == _digest(_examples(MOVING, "test", data_dir, 4))


def _digest(examples):
    return hashlib.sha256(b"".join(e["frames"].tobytes() for e in examples)).hexdigest()
