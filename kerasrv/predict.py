"""What a model says of a user's files: the top classes of an image or a video, or a mask.

Example:
    >>> from kerasrv import predict, zoo
    >>> model, card = zoo.resolve("runs/lrcn.clips")
    >>> predict.predict_file(model, card, "clip.mp4")["top"]
    [('walking', 0.91), ('running', 0.06), ('waving', 0.02)]
"""

from pathlib import Path

import numpy as np

from kerasrv import tasks
from kerasrv.data import files, preprocessing
from kerasrv.data.idx import DatasetError
from kerasrv.errors import UsageError

MASK_SUFFIX = ".mask.png"  # what predict writes beside an image
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
    # the one preparation training and evaluate use (`kerasrv.data.preprocessing`)
    if task.video:
        x = preprocessing.clip_file(path, shape)
    else:
        x = preprocessing.image_file(path, shape)
    probabilities = np.asarray(model.predict_on_batch(preprocessing.scale(x[None])))[0]
    names = card["class_names"]
    if not task.per_pixel:
        order = np.argsort(-probabilities)[:top_k]
        return {"top": [(names[i], float(probabilities[i])) for i in order]}
    return _write_mask(path, probabilities.argmax(-1), names, out)


def _write_mask(path, mask, names, out):
    cv2 = files.opencv()

    original = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    height, width = original.shape[:2]
    mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    folder = Path(out) if out else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.stem}{MASK_SUFFIX}"
    if not cv2.imwrite(str(target), mask):
        raise OSError(f"cannot write {target}")
    counts = np.bincount(mask.ravel(), minlength=len(names))
    shares = [(names[i], counts[i] / mask.size) for i in np.argsort(-counts) if counts[i]]
    return {"mask": str(target), "summary": ", ".join(f"{n} {s:.0%}" for n, s in shares[:4])}


def _folder(path, out):
    folder = Path(out) if out else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _forecast(model, path, shape, out):
    """The frames after a clip's last `shape[0]`, as an mp4 and a picture (given, predicted)."""
    from kerasrv.data import samples

    count = max(preprocessing.frame_count(path), 1)
    wanted = np.arange(max(0, count - shape[0]), count)  # the clip's end: what comes next
    wanted = np.concatenate([np.zeros(shape[0] - len(wanted), int), wanted])  # a short clip
    given = preprocessing.fit(preprocessing.decode_clip_at(path, wanted), shape).numpy()
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

    count = max(preprocessing.frame_count(path), 1)
    wanted = preprocessing.clip_indices(count, shape[0])
    frames = preprocessing.decode_clip_at(path, wanted)
    x = preprocessing.fit(frames, shape).numpy()
    masks = np.asarray(model.predict_on_batch(preprocessing.scale(x[None])))[0].argmax(-1)
    folder = _folder(path, out) / f"{path.stem}.masks"
    folder.mkdir(exist_ok=True)
    height, width = frames.shape[1:3]
    for index, mask in zip(wanted, masks.astype(np.uint8)):
        full = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        if not cv2.imwrite(str(folder / f"{int(index):04d}.png"), full):
            raise OSError(f"cannot write {folder / f'{int(index):04d}.png'}")
    names = card["class_names"]
    counts = np.bincount(masks.ravel(), minlength=len(names))
    shares = [(names[i], counts[i] / masks.size) for i in np.argsort(-counts) if counts[i]]
    return {"masks": str(folder), "summary": ", ".join(f"{n} {s:.0%}" for n, s in shares[:4])}
