"""A user's own data from disk: images in class folders, image/mask pairs, videos in class folders.

    image folders      PATH/<class>/<image>         .png .jpg .jpeg .bmp .gif
    image/mask pairs   PATH/images/<name>.<ext>     PATH/masks/<name>.png  (pixel value = class id)
    video folders      PATH/<class>/<video>         .mp4 .avi .webm .mkv .mov
    video/mask-folder  PATH/videos/<name>.<ext>     PATH/masks/<name>/<frame>.png, one PNG per
      pairs                                         frame in name order (a video codec would
                                                    change the ids, so masks are PNGs)
    clips              PATH/**/<video>              every video under PATH (video prediction:
                                                    the given frames, then those to predict)

Class names are the folder names in sorted order (for masks, the lines of an optional
PATH/classes.txt, else class_0, class_1, ... up to the largest id in the masks). Splits: a
`train/` folder with `val/` (or `validation/`) and `test/` beside it are used as they are;
otherwise PATH is the training pool and the held-out split is Keras' rule for
`image_dataset_from_directory`: the files shuffled with the seed, the last 10% held out. The
held-out split measures the model when there is no `test/` folder.

Every file is checked when the folder is read, before anything is trained or written: an
unreadable image, mask or video, an empty class folder, a mask without its image or one holding
a class id the model does not have is a one-line `DatasetError` naming the file.

Images are read as Keras' `image_dataset_from_directory` reads them (the same files, classes and
held-out split, bilinear resizing), in `tf.data`; videos are decoded by OpenCV
(opencv-python-headless: its FFmpeg read 16×112×112 clips from mp4 about 3× faster than PyAV and
6× faster than imageio-ffmpeg here), in parallel inside `tf.data`, never held in memory whole.
A clip is `frames` frames at a fixed stride (the video's length over `frames`): centred for
evaluation, at a random offset for training.

Example:
    >>> from kerasrv.data import files
    >>> found = files.scan("my_photos", "classification")
    >>> found.class_names, len(found.train), len(found.validation)
"""

import dataclasses
import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasrv import tasks
from kerasrv.data import checks, preprocessing
from kerasrv.data.augment import augmentation
from kerasrv.data.idx import DatasetError
from kerasrv.data.preprocessing import opencv
from kerasrv.errors import UsageError

IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
)  # what image_dataset_from_directory reads
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov")
VALIDATION_FRACTION = 0.1


LAYOUTS = {
    "classification": "image folders",
    "segmentation": "image/mask pairs",
    "video_classification": "video folders",
    "video_segmentation": "video/mask-folder pairs",
    "video_prediction": "clips",
}


@dataclasses.dataclass
class Found:
    """A checked folder of data: its classes and the files of each split.

    Attributes:
        path: the folder.
        layout: "image folders", "image/mask pairs" or "video folders".
        class_names: the classes, in the order of the model's outputs.
        train: training items: (file, class id) or (image, mask) pairs.
        validation: held-out items (a val/ folder, or Keras' seeded rule).
        test: test items (a test/ folder), or None.
        seed: the seed of the held-out rule.
        channels: 3 when any image or video has colour, else 1.
        size: (height, width) of every image or video frame when they all share one (and the
            files were checked), else None.
        test_held_out: the test items are a seeded 10% of the training files (no test/).
        typical_size: the median (height, width) of the training images or frames (None when
            the files were not checked): the scale a model learnt them at, which prediction on
            an image of another size keeps (`kerasrv.predict`).
    """

    path: Path
    layout: str
    class_names: list
    train: list
    validation: list
    test: list | None
    seed: int
    channels: int
    size: tuple | None = None
    test_held_out: bool = False
    typical_size: tuple | None = None

    def split(self, name):
        """The items of "train", "validation" or "test" (the held-out split without test/)."""
        if name == "train":
            return self.train
        if name == "validation":
            return self.validation
        if name == "test":
            return self.test if self.test is not None else self.validation
        raise UsageError(f"splits of a data folder are train, validation and test, got {name!r}")

    def record(self):
        """What a card records of the data a model was trained on."""
        if self.test_held_out:
            measured_on = f"the last 10% of the training files shuffled with seed {self.seed}"
        elif self.test is not None:
            measured_on = "test/"
        elif _split_dirs(self.path)[1] is not None:
            measured_on = "val/"
        else:
            measured_on = f"the last 10% of the files shuffled with seed {self.seed}"
        record = {
            "path": str(self.path),
            "layout": self.layout,
            "seed": self.seed,
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test) if self.test is not None else None,
            "measured_on": measured_on,
        }
        if self.test_held_out:  # read back by `kerasrv.data.pipeline`; older cards lack it
            record["test_held_out"] = True
        if self.typical_size is not None:  # read back by `kerasrv.predict`
            record["typical_size"] = list(self.typical_size)
        return record


def _split_dirs(path):
    train = path / "train"
    if not train.is_dir():
        return None, None, None
    val = next((path / n for n in ("val", "validation") if (path / n).is_dir()), None)
    test = path / "test" if (path / "test").is_dir() else None
    return train, val, test


def _held_out(items, seed, shares=1):
    """Keras' rule (`image_dataset_from_directory`), for `shares` held-out parts: shuffle
    with the seed, hold out the last 10% (then the 10% before it, ...).

    Returns:
        [kept items, the first held-out part, ...]: with shares=2, (train, validation, test)
        where test is the last 10% and validation the 10% before it.
    """
    items = list(items)
    order = np.random.RandomState(seed).permutation(len(items))
    items = [items[i] for i in order]
    held = int(VALIDATION_FRACTION * len(items))
    if held < 1:
        raise DatasetError(
            f"{len(items)} files are too few to hold 10% out for validation: add more, or a "
            f"val/ folder beside a train/ folder"
        )
    parts = [items[len(items) - held :]]
    for _ in range(shares - 1):
        rest = len(items) - held * len(parts)
        parts.insert(0, items[rest - held : rest])
    return [items[: len(items) - held * shares], *parts]


# --- scanning and checking -----------------------------------------------------------------------


def scan(path, task, *, seed=0, class_names=None, check=True, hold_out_test=True):
    """Reads and checks a data folder for a task.

    Args:
        path: the folder.
        task: the task (name or `kerasrv.tasks.Task`) whose layout it holds.
        seed: the seed of the held-out rule.
        class_names: the classes a model already has (evaluating a trained run on new data):
            the folder must hold these.
        check: read every file once to check it (off: list them only, for a folder that was
            checked when its model was trained).
        hold_out_test: with no test/ folder, hold a seeded 10% of the training files out as the
            test split, so the split that picks the best epoch is not the one reported (False:
            the validation files are the test split too, as runs made before this did).

    Returns:
        A `Found`.

    Raises:
        DatasetError: not a folder of this layout, or a file that cannot be used (named).
    """
    task = tasks.get(task)
    if task.name not in LAYOUTS:
        raise DatasetError(
            f"kerasrv reads folders of data for {', '.join(LAYOUTS)} models, not for a "
            f"{task.name} model; give it a prepared TFDS dataset instead"
        )
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"--data {path} is not a folder")
    train_dir, val_dir, test_dir = _split_dirs(path)
    pool = train_dir or path
    if task.name == "segmentation":
        read = functools.partial(_pairs, known=class_names)
    elif task.name == "video_segmentation":
        read = functools.partial(_video_pairs, known=class_names)
    elif task.name == "video_prediction":
        read = _clips
    else:
        suffixes = VIDEO_SUFFIXES if task.video else IMAGE_SUFFIXES
        read = functools.partial(_class_folders, suffixes=suffixes, known=class_names)
    names, items = read(pool)
    test = read(test_dir, expect=names)[1] if test_dir is not None else None
    carve_test = test is None and hold_out_test
    if val_dir is not None:
        _, validation = read(val_dir, expect=names)
        train, test = _held_out(items, seed) if carve_test else (items, test)
    elif carve_test:
        train, validation, test = _held_out(items, seed, shares=2)
    else:
        train, validation = _held_out(items, seed)
    everything = [*train, *validation, *(test or [])] if check or names is None else []
    checker = {
        "segmentation": checks.image_and_mask,
        "video_segmentation": checks.video_and_masks,
    }.get(task.name, checks.video if task.video else checks.image)
    count = len(names) if names else None
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as workers:
        checked = list(workers.map(lambda item: checker(item, count), everything))
    colours = [c for c, _, _ in checked]
    if names is None and task.targets_are_classes:  # masks without classes.txt: ids reached
        names = [f"class_{i}" for i in range(max(2, max(m for _, m, _ in checked) + 1))]
    sizes = {tuple(int(side) for side in size) for _, _, size in checked}
    trained_on = np.array([size for _, _, size in checked[: len(train)]]).reshape(-1, 2)
    typical = tuple(int(s) for s in np.median(trained_on, axis=0)) if len(trained_on) else None
    return Found(
        path=path.resolve(),
        layout=LAYOUTS[task.name],
        class_names=names,
        train=train,
        validation=validation,
        test=test,
        seed=seed,
        channels=3 if any(c == 3 for c in colours) else 1,
        size=sizes.pop() if len(sizes) == 1 else None,
        test_held_out=carve_test,
        typical_size=typical,
    )


def _class_folders(root, *, suffixes, known, expect=None):
    """(class names, [(file, class id)]) of a folder of class folders."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(
            f"{root} holds no class folders: expected {root}/<class>/<file> with files ending "
            f"in {', '.join(suffixes)}"
        )
    names = [p.name for p in folders]
    wanted = expect or known
    if wanted is not None and names != list(wanted):
        raise DatasetError(
            f"{root} holds the classes {', '.join(names)}, expected {', '.join(wanted)}"
        )
    items = []
    for label, folder in enumerate(folders):
        found = sorted(p for p in folder.rglob("*") if p.is_file())
        usable = [p for p in found if p.suffix.lower() in suffixes]
        if not usable:
            others = f" (it holds {found[0].name}, ...)" if found else ""
            raise DatasetError(
                f"class folder {folder} holds no file ending in {', '.join(suffixes)}{others}"
            )
        items.extend((p, label) for p in usable)
    return names, items


def _pairs(root, *, known, expect=None):
    """(class names, [(image, mask)]) of images/ and masks/ matched by file name."""
    return _matched(
        root,
        known,
        expect,
        inputs="images",
        suffixes=IMAGE_SUFFIXES,
        mask_is_folder=False,
        layout=f"{root}/images/<name>.png and {root}/masks/<name>.png (mask pixel value = "
        f"class id)",
    )


def _video_pairs(root, *, known, expect=None):
    """(class names, [(video, mask folder)]) of videos/ and masks/<name>/ matched by name."""
    return _matched(
        root,
        known,
        expect,
        inputs="videos",
        suffixes=VIDEO_SUFFIXES,
        mask_is_folder=True,
        layout=f"{root}/videos/<name>.mp4 and {root}/masks/<name>/<frame>.png (one PNG per "
        f"frame; pixel value = class id)",
    )


def _matched(root, known, expect, *, inputs, suffixes, mask_is_folder, layout):
    """(class names, [(input file, its mask or mask folder)]) of root/<inputs>/ and root/masks/
    matched by name; an input without its mask, or a mask without its input, is named."""
    inputs_dir, masks_dir = root / inputs, root / "masks"
    for folder in (inputs_dir, masks_dir):
        if not folder.is_dir():
            raise DatasetError(f"{root} has no {folder.name}/ folder: expected {layout}")
    found = {p.stem: p for p in inputs_dir.iterdir() if p.suffix.lower() in suffixes}
    masks = {
        (p.name if mask_is_folder else p.stem): p
        for p in masks_dir.iterdir()
        if (p.is_dir() if mask_is_folder else p.is_file())
    }
    kind = inputs[:-1]  # "image", "video"
    for name, mask in sorted(masks.items()):
        if name not in found:
            raise DatasetError(
                f"mask{' folder' if mask_is_folder else ''} {mask} has no {kind} of the same "
                f"name in {inputs_dir}"
            )
    for name, path in sorted(found.items()):
        if name not in masks:
            where = (
                f"mask folder {masks_dir / name}/"
                if mask_is_folder
                else f"mask of the same name in {masks_dir}"
            )
            raise DatasetError(f"{kind} {path} has no {where}")
    if not found:
        raise DatasetError(f"{inputs_dir} holds no {inputs} ({', '.join(suffixes)})")
    names = expect or known or _mask_classes(root)
    return list(names) if names else None, [(found[n], masks[n]) for n in sorted(found)]


def _clips(root, expect=None):
    """(None, [(video, 0)]): every video under root, for video prediction (no classes)."""
    del expect
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DatasetError(
            f"{root} holds no video ({', '.join(VIDEO_SUFFIXES)}): a video-prediction model "
            f"learns from a folder of clips"
        )
    return None, [(p, 0) for p in videos]


def _mask_classes(root):
    listing = root / "classes.txt"
    if not listing.exists() and (root.parent / "classes.txt").exists():
        listing = root.parent / "classes.txt"  # beside train/ and val/
    if listing.exists():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        if len(names) < 2:
            raise DatasetError(f"{listing} names {len(names)} class; a mask needs at least 2")
        return names
    return None  # counted from the masks once they are read


# --- reading ------------------------------------------------------------------------------------


_SLICE = re.compile(r"^(\w+)(?:\[(-?\d*):(-?\d*)\])?$")


def _items(found, split):
    match = _SLICE.match(split)
    if not match:
        raise UsageError(f"a data folder's split is train, validation or test[:N], got {split!r}")
    name, start, stop = match.groups()
    items = found.split(name)
    return items[int(start) if start else None : int(stop) if stop else None]


def dataset(found, card, split, batch_size, *, shuffle=None, seed=0, augment=False):
    """Batches of (inputs, targets) from a checked folder, shaped for a model's card.

    Args:
        found: what `scan` read.
        card: the model's card (task, input shape).
        split: "train", "validation" or "test", sliced like tfds' ("test[:500]").
        batch_size: examples per batch.
        shuffle: shuffle the files (default: for the train split).
        seed: shuffling and clip-offset seed.
        augment: one of `kerasrv.data.augment.AUGMENTATIONS` (image tasks), or True ("flip"),
            False ("none").

    Returns:
        A `tf.data.Dataset` of (inputs float32 in [0, 1], targets), as `pipeline` gives.
    """
    task = tasks.get(card["task"])
    shape = tuple(card["input_shape"])
    items = _items(found, split)
    if not items:
        raise DatasetError(f"{found.path} has no examples in split {split!r}")
    training = split.startswith("train")
    first, second = (list(column) for column in zip(*items))
    ds = tf.data.Dataset.from_tensor_slices(
        ([str(p) for p in first], [str(p) for p in second] if task.per_pixel else second)
    )
    if training if shuffle is None else shuffle:
        ds = ds.shuffle(len(items), seed=seed, reshuffle_each_iteration=True)
    if task.name == "video_prediction":  # the given frames and the future, consecutive
        clip = (shape[0] + card["output_shape"][0], *shape[1:])
        ds = _decoded_clips(ds, clip, training, seed, stride=1)
    elif task.name == "video_segmentation":
        ds = _decoded_clips_and_masks(ds, shape, training, seed)
    elif task.video:
        ds = _decoded_clips(ds, shape, training, seed)
    elif task.per_pixel:
        ds = ds.map(lambda x, y: _image_and_mask(x, y, shape), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(
            lambda x, y: (preprocessing.image_file(x, shape), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(batch_size)
    augment = augmentation(augment)
    if augment is not None:
        if task.video:
            raise UsageError(f"augment= applies to image tasks, not to a {task.name} model")
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    classes = len(found.class_names) if found.class_names else None
    ds = ds.map(
        lambda x, y: task.batch(x, y, num_classes=classes), num_parallel_calls=tf.data.AUTOTUNE
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def _image_and_mask(image_path, mask_path, shape):
    mask = tf.io.decode_image(tf.io.read_file(mask_path), channels=1, expand_animations=False)
    mask = tf.image.resize(mask, shape[:2], method="nearest")[..., 0]  # class ids stay ids
    return preprocessing.image_file(image_path, shape), tf.ensure_shape(
        tf.cast(mask, tf.uint8), shape[:2]
    )


def _decoded_clips(ds, shape, training, seed, stride=None):
    """Clips decoded by OpenCV, several at once (it releases Python's lock while it decodes);
    frames `stride` apart (default: spread over the video)."""
    cv2 = opencv()

    cv2.setNumThreads(1)  # tf.data runs the decoders in parallel; OpenCV's own pool would fight

    def decode(path, offset):
        offset = float(offset) if training else None
        return preprocessing.decode_clip(path.decode(), shape[0], offset, stride)

    def load(path, label):
        offset = tf.random.uniform([], seed=seed) if training else tf.constant(0.0)
        clip = tf.numpy_function(decode, [path, offset], tf.uint8, stateful=training)
        clip = tf.ensure_shape(clip, (shape[0], None, None, 3))  # the video's own size
        return tf.ensure_shape(preprocessing.fit(clip, shape), shape), label

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)


def _decoded_clips_and_masks(ds, shape, training, seed):
    """Clips and their per-frame masks (the same frame indices), decoded several at once."""
    cv2 = opencv()

    cv2.setNumThreads(1)
    frames, height, width, _ = shape

    def decode(video, folder, offset):
        video = video.decode()
        start = float(offset) if training else None
        clip, wanted = preprocessing.decode_frames(
            video, lambda count: preprocessing.clip_indices(count, frames, start)
        )
        return clip, preprocessing.mask_frames(folder.decode(), wanted, (height, width))

    def load(video, folder):
        offset = tf.random.uniform([], seed=seed) if training else tf.constant(0.0)
        clip, masks = tf.numpy_function(
            decode, [video, folder, offset], (tf.uint8, tf.uint8), stateful=training
        )
        clip = tf.ensure_shape(clip, (frames, None, None, 3))
        masks = tf.ensure_shape(masks, (frames, height, width))
        return tf.ensure_shape(preprocessing.fit(clip, shape), shape), masks

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
