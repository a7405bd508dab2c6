"""What a model says of a user's files: the top classes of an image or a video, or a mask.

Example:
    >>> from kerasrv import predict, zoo
    >>> model, card = zoo.resolve("runs/lrcn.clips")
    >>> predict.predict_file(model, card, "clip.mp4")["top"]
    [('walking', 0.91), ('running', 0.06), ('waving', 0.02)]
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasrv import tasks
from kerasrv.data import files, preprocessing
from kerasrv.data.idx import DatasetError
from kerasrv.errors import UsageError

MASK_SUFFIX = ".mask.png"  # what predict writes beside an image
OVERLAP = 1 / 3  # of a window, shared with its neighbours when a large image is segmented
PREDICTED = (
    "classification",
    "video_classification",
    "segmentation",
    "video_segmentation",
    "video_prediction",
)


def files_in(paths):
    """The files to predict on: each path that is a file, and the image and video files under
    each folder (recursively, sorted; the masks and forecasts predict wrote earlier left out).

    Raises:
        DatasetError: a path that does not exist, or a folder with no image or video file.
    """
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in (*files.IMAGE_SUFFIXES, *files.VIDEO_SUFFIXES)
                and not p.name.endswith(MASK_SUFFIX)
                and PREDICTED_SUFFIX not in p.name
            )
            if not inside:
                raise DatasetError(
                    f"{path} is a folder with no image or video file (expected files ending in "
                    f"{', '.join((*files.IMAGE_SUFFIXES, *files.VIDEO_SUFFIXES))})"
                )
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            raise DatasetError(f"no such file or folder: {path}")
    return found


def predict_file(model, card, path, *, top_k=3, out=None):
    """Runs a classification or segmentation model on one image or video file.

    Args:
        model: the `keras.Model`.
        card: its card (input shape, classes).
        path: an image file (for image models) or a video file (for video classifiers).
        top_k: how many classes to report.
        out: the folder a mask goes to (default: beside the image).

    Returns:
        {"top": [(class name, probability), ...]} for a classifier; {"mask": path of the PNG
        written (pixel value = class id, at the image's own size), "summary": the classes it
        covers} for a segmenter.

    Raises:
        DatasetError: a file that cannot be read, or of the wrong kind for the model.
        ValueError: a model of a task that predicts neither classes nor masks of images.
    """
    task = tasks.get(card["task"])
    path = Path(path)
    if task.name not in PREDICTED:
        raise UsageError(
            f"predict runs {', '.join(PREDICTED)} models; {card['name']} is a {task.name} model"
        )
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    kind = "video" if path.suffix.lower() in files.VIDEO_SUFFIXES else "image"
    wanted = "video" if task.video else "image"
    if kind != wanted:
        raise DatasetError(
            f"{path} is a{'n' if kind == 'image' else ''} {kind}; {card['name']} takes {wanted}s"
        )
    shape = tuple(card["input_shape"])
    if task.name == "video_prediction":
        return _forecast(model, path, shape, out)
    if task.name == "video_segmentation":
        return _segment_clip(model, card, path, shape, out)
    if task.name == "segmentation":
        return _segment_image(model, card, path, shape, out)
    # the one preparation training and evaluate use (`kerasrv.data.preprocessing`)
    if task.video:
        x = preprocessing.clip_file(path, shape)
    else:
        x = preprocessing.image_file(path, shape)
    probabilities = np.asarray(model.predict_on_batch(preprocessing.scale(x[None])))[0]
    names = card["class_names"]
    order = np.argsort(-probabilities)[:top_k]
    return {"top": [(names[i], float(probabilities[i])) for i in order]}


def window_starts(size, window, overlap=OVERLAP):
    """Where windows of `window` pixels start so that they cover `size` pixels, neighbours
    sharing at least `overlap` of a window (the last one flush with the edge)."""
    if size <= window:
        return [0]
    stride = max(1, int(window * (1 - overlap)))
    count = -(-(size - window) // stride) + 1
    return sorted({min(i * stride, size - window) for i in range(count)})


def segment(model, image, shape, typical_size=None, batch_size=16):
    """Class probabilities for every pixel of an image of any size, at its own size.

    The image is resized by the factor that brought the model's training images (median
    `typical_size`) to its input size, so things appear at the scale the model learnt them at;
    windows of the input size then slide over it, overlapping by a third, and their
    probabilities are averaged where they overlap (the "slide" inference of MMSegmentation and
    of the fully-convolutional segmentation papers). The probabilities are resized bilinearly
    to the image's own size: masks with the image's resolution, not the model's pixels blown up.
    An image of the typical size is one window, prepared as training prepared it.

    Args:
        model: a segmentation model taking (batch, *shape).
        image: RGB uint8 (height, width, 3).
        shape: the model's input (height, width, channels).
        typical_size: (height, width) of the images it was trained on (default: `shape`'s).

    Returns:
        float32 (height, width, classes).
    """
    height, width = image.shape[:2]
    window_height, window_width, channels = (int(s) for s in shape)
    typical_height, typical_width = typical_size or (window_height, window_width)
    scaled = (
        max(window_height, round(height * window_height / typical_height)),
        max(window_width, round(width * window_width / typical_width)),
    )
    x = preprocessing.fit(image, (*scaled, channels)).numpy()
    corners = [
        (top, left)
        for top in window_starts(scaled[0], window_height)
        for left in window_starts(scaled[1], window_width)
    ]
    total, counts = None, np.zeros((*scaled, 1), np.float32)
    for start in range(0, len(corners), batch_size):
        chunk = corners[start : start + batch_size]
        crops = np.stack([x[t : t + window_height, c : c + window_width] for t, c in chunk])
        answers = np.asarray(model.predict_on_batch(preprocessing.scale(crops)), np.float32)
        if total is None:
            total = np.zeros((*scaled, answers.shape[-1]), np.float32)
        for (top, left), answer in zip(chunk, answers):
            total[top : top + window_height, left : left + window_width] += answer
            counts[top : top + window_height, left : left + window_width] += 1
    return _at_size(total / counts, (height, width))


def _at_size(probabilities, size):
    """Per-pixel probabilities (..., h, w, classes) resized bilinearly to `size`."""
    if tuple(probabilities.shape[-3:-1]) == tuple(size):
        return probabilities
    return tf.image.resize(probabilities, size, method="bilinear").numpy()


def _segment_image(model, card, path, shape, out):
    """A mask of an image at its own size (`segment`), as a PNG of class ids."""
    try:
        image = preprocessing.decode_image(str(path)).numpy()
    except tf.errors.OpError:
        raise DatasetError(f"cannot read image {path}: not a readable image file") from None
    typical = (card.get("data") or {}).get("typical_size")
    mask = segment(model, image, shape, typical).argmax(-1).astype(np.uint8)
    cv2 = files.opencv()
    target = _folder(path, out) / f"{path.stem}{MASK_SUFFIX}"
    if not cv2.imwrite(str(target), mask):
        raise OSError(f"cannot write {target}")
    return {"mask": str(target), "summary": _shares(mask, card["class_names"])}


def _shares(masks, names):
    """The classes masks cover most, with their shares: "road 61%, car 22%, ..."."""
    counts = np.bincount(masks.ravel(), minlength=len(names))
    shares = [(names[i], counts[i] / masks.size) for i in np.argsort(-counts) if counts[i]]
    return ", ".join(f"{n} {s:.0%}" for n, s in shares[:4])


def _folder(path, out):
    folder = Path(out) if out else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _forecast(model, path, shape, out):
    """The frames after a clip's last `shape[0]`, as an mp4 and a picture (given, predicted)."""
    from kerasrv.data import samples

    def the_end(count):  # the clip's last frames: what comes next; a short clip's first repeated
        wanted = np.arange(max(0, count - shape[0]), count)
        return np.concatenate([np.zeros(shape[0] - len(wanted), int), wanted])

    given = preprocessing.fit(preprocessing.decode_frames(path, the_end)[0], shape).numpy()
    predicted = np.asarray(model.predict_on_batch(preprocessing.scale(given[None])))[0]
    frames = np.round(np.clip(predicted, 0, 1) * 255).astype(np.uint8)
    folder = _folder(path, out)
    video = samples.write_video(folder / f"{path.stem}{PREDICTED_SUFFIX}.mp4", _rgb(frames))
    picture = folder / f"{path.stem}{PREDICTED_SUFFIX}.png"
    rows = [np.concatenate(list(_rgb(row)), axis=1) for row in (given, frames)]
    if not files.opencv().imwrite(str(picture), np.concatenate(rows, axis=0)[..., ::-1]):
        raise OSError(f"cannot write {picture}")
    return {"video": str(video), "picture": str(picture), "frames": len(frames)}


PREDICTED_SUFFIX = ".predicted"  # <clip>.predicted.mp4 and .png beside a forecast clip


def _rgb(frames):
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def _segment_clip(model, card, path, shape, out):
    """A mask per frame of a clip (the frames training reads), as PNGs at the video's size in
    <clip>.masks/<frame index>.png."""
    cv2 = files.opencv()

    frames, wanted = preprocessing.decode_frames(
        path, lambda count: preprocessing.clip_indices(count, shape[0])
    )
    x = preprocessing.fit(frames, shape).numpy()
    probabilities = np.asarray(model.predict_on_batch(preprocessing.scale(x[None])))[0]
    masks = _at_size(probabilities, frames.shape[1:3]).argmax(-1).astype(np.uint8)
    folder = _folder(path, out) / f"{path.stem}.masks"
    folder.mkdir(exist_ok=True)
    for index, mask in zip(wanted, masks):
        if not cv2.imwrite(str(folder / f"{int(index):04d}.png"), mask):
            raise OSError(f"cannot write {folder / f'{int(index):04d}.png'}")
    return {"masks": str(folder), "summary": _shares(masks, card["class_names"])}
