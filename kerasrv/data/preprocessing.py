"""The one way a user's image or clip becomes a model's input: decode → fit → scale.

Training, `evaluate`, `predict` and the parity checks of the exported files all prepare a
file with these functions, so a model never meets an image prepared another way than the
one it was trained on (`predict` once resized with OpenCV's area filter where training used
TensorFlow's bilinear one, and answered differently on the same files):

    decode   an image file by TensorFlow (`tf.io.decode_image`), a video's frames by OpenCV
             (TensorFlow decodes no video), both as RGB uint8 at the file's own size
    fit      to the model's (height, width, channels): grey by `tf.image.rgb_to_grayscale`,
             then `tf.image.resize` (bilinear, antialiased: a large photo shrunk to 64×64 is
             averaged, not sampled), rounded back to uint8 — the same function for an image
             and for every frame of a clip
    scale    uint8 → float32 in [0, 1] (`scale`), the value range every card states

Example:
    >>> from kerasrv.data import preprocessing
    >>> image = preprocessing.image_file("cat.png", (28, 28, 1))        # uint8 (28, 28, 1)
    >>> x = preprocessing.scale(image[None])                           # float32 in [0, 1]
"""

import contextlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasrv.data.idx import DatasetError

RESIZE_METHOD = "bilinear"  # with antialias=True; the one resize of every image and frame


def opencv():
    """OpenCV, with FFmpeg's own log quiet: a file it cannot read gets our one-line error."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg starts up
    import cv2

    return cv2


def scale(images):
    """uint8 pixels → float32 in [0, 1]: a model's input (numpy or tensor in, same kind out)."""
    if isinstance(images, np.ndarray):
        return images.astype(np.float32) / np.float32(255.0)
    return tf.cast(images, tf.float32) / 255.0


def fit(images, shape):
    """RGB uint8 images (..., h, w, 3) → uint8 (..., height, width, channels) of `shape`.

    `shape` is (height, width, channels) with channels 1 (grey) or 3; the resize happens only
    when the size differs, so an image already at the model's size is passed through exactly.
    """
    height, width, channels = (int(s) for s in shape[-3:])
    images = tf.convert_to_tensor(images, tf.uint8)
    if channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    if tuple(images.shape[-3:-1]) != (height, width):
        resized = tf.image.resize(images, (height, width), method=RESIZE_METHOD, antialias=True)
        images = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return images


def decode_image(path):
    """An image file (PNG, JPEG, BMP, GIF's first frame) as RGB uint8 (h, w, 3); `path` may
    be a string tensor (inside a tf.data pipeline)."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def image_file(path, shape):
    """An image file as the model takes it, before `scale`: uint8 (height, width, channels).

    Raises:
        DatasetError: the file is not a readable image (eagerly; in a pipeline TensorFlow's
            own error names it).
    """
    if tf.executing_eagerly():
        try:
            decoded = decode_image(str(path))
        except tf.errors.OpError:
            raise DatasetError(f"cannot read image {path}: not a readable image file") from None
        return fit(decoded, shape).numpy()
    return tf.ensure_shape(fit(decode_image(path), shape), shape)


def clip_indices(count, frames, offset=None, stride=None):
    """The frame indices a clip of `frames` takes from a video of `count` frames.

    Frames are spread evenly over the video (every stride-th frame, stride = count // frames),
    or `stride` apart when given (1: consecutive frames, as video prediction reads them);
    `offset` in [0, 1) places the window (training draws it at random), None centres it. A
    video shorter than the clip repeats its last frame.
    """
    stride = stride or max(1, count // frames)
    span = stride * (frames - 1) + 1
    room = max(0, count - span)
    start = room // 2 if offset is None else int(offset * (room + 1))
    return np.minimum(start + stride * np.arange(frames), count - 1)


def decode_clip(path, frames, offset=None, stride=None):
    """`frames` frames of a video file as RGB uint8 (frames, h, w, 3) at the video's own size,
    taken at `clip_indices(..., offset, stride)`.

    Raises:
        DatasetError: no frame of the file could be decoded.
    """
    return decode_frames(path, lambda count: clip_indices(count, frames, offset, stride))[0]


def frame_count(path):
    """The number of frames a video file says it holds (0 when it cannot be opened)."""
    with _video(path) as capture:
        return _frames_held(capture)


def decode_frames(path, pick):
    """Frames of a video file as RGB uint8 (n, h, w, 3), and their indices.

    Args:
        path: the video file.
        pick: the indices to decode, from the number of frames the file holds (at least 1):
            `count -> int array`. The file is opened once for both.

    Raises:
        DatasetError: no frame of the file could be decoded.
    """
    with _video(path) as capture:
        wanted = np.asarray(pick(max(_frames_held(capture), 1)))
        picked, last = {}, None
        for index in range(int(wanted.max()) + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    picked[index] = last = frame
    if last is None:
        raise DatasetError(f"cannot read video {path}: no decodable frame")
    # OpenCV decodes BGR; the swap is exact, so a frame is the RGB an image decoder gives
    return np.stack([picked.get(i, last)[..., ::-1] for i in wanted]), wanted


@contextlib.contextmanager
def _video(path):
    capture = opencv().VideoCapture(str(path))
    try:
        yield capture
    finally:
        capture.release()


def _frames_held(capture):
    return int(capture.get(opencv().CAP_PROP_FRAME_COUNT))


def clip_file(path, shape, offset=None, stride=None):
    """A video file as the model takes it, before `scale`: uint8 (frames, height, width, C)."""
    return fit(decode_clip(path, shape[0], offset, stride), shape).numpy()


def mask_frames(folder, wanted, size):
    """The masks of frames `wanted` from a folder of one PNG per video frame (in name order;
    pixel value = class id), resized to (height, width) `size` by nearest neighbour, so a class
    id stays an id: uint8 (len(wanted), height, width)."""
    cv2 = opencv()

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".png")
    masks = []
    for index in wanted:
        mask = cv2.imread(str(files[min(int(index), len(files) - 1)]), cv2.IMREAD_UNCHANGED)
        if mask.ndim == 3:
            mask = mask[..., 0]
        masks.append(cv2.resize(mask, size[::-1], interpolation=cv2.INTER_NEAREST))
    return np.stack(masks).astype(np.uint8)
