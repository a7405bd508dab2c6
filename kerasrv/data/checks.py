"""Each file of a user's data folder read once before anything trains: `checker(item,
num_classes)` → (channels, the largest class id in its mask or None, its (height, width)), or
a one-line `DatasetError` naming the file (`kerasrv.data.files.scan` runs them in threads)."""

import numpy as np

from kerasrv.data import preprocessing
from kerasrv.data.idx import DatasetError
from kerasrv.data.preprocessing import opencv


def image(item, num_classes):
    cv2 = opencv()

    path = item[0]
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise DatasetError(f"cannot read image {path}: not a readable image file")
    colour = 3 if image.ndim == 3 and image.shape[-1] >= 3 and coloured(image) else 1
    return colour, None, image.shape[:2]


def coloured(image, tolerance=0):
    """Whether an image's channels differ by more than `tolerance` anywhere."""
    channels = image[..., :3].astype(np.int16)
    return bool((np.abs(channels - channels[..., :1]) > tolerance).any())


# A video codec stores colour at a quarter of the resolution, rounded: a grey video decodes
# with its channels a few levels apart (2 in an mp4v file of grey frames here, against 103 in a
# tinted one).
VIDEO_GREY_TOLERANCE = 12


def _mask_ids(path, size, of, num_classes, refuse_colours=True):
    """A mask PNG's class ids (uint8, height × width), checked: readable, of its image's `size`
    (`of` names the image in the message), one value a pixel, ids within `num_classes`."""
    cv2 = opencv()

    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.size == 0:
        raise DatasetError(f"cannot read mask {path}: not a readable image file")
    if mask.shape[:2] != tuple(size):
        raise DatasetError(
            f"mask {path} is {mask.shape[1]}×{mask.shape[0]}, {of} {size[1]}×{size[0]}"
        )
    if mask.ndim == 3:
        if refuse_colours and (mask[..., :3] != mask[..., :1]).any():
            raise DatasetError(f"mask {path} has colours: a mask's pixel value is a class id")
        mask = mask[..., 0]
    if num_classes is not None and int(mask.max()) >= num_classes:
        raise DatasetError(
            f"mask {path} holds class id {int(mask.max())}, but there are {num_classes} "
            f"classes (0–{num_classes - 1})"
        )
    return mask


def image_and_mask(item, num_classes):
    image_path, mask_path = item
    channels, _, size = image((image_path,), num_classes)
    mask = _mask_ids(mask_path, size, "its image", num_classes)
    return channels, int(mask.max()), size


def video(item, num_classes):
    cv2 = opencv()

    path = item[0]
    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None or count < 1:
        raise DatasetError(f"cannot read video {path}: no decodable frame")
    return (3 if coloured(frame, VIDEO_GREY_TOLERANCE) else 1), None, frame.shape[:2]


def video_and_masks(item, num_classes):
    clip, folder = item
    channels, _, size = video((clip,), num_classes)
    masks = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    count = preprocessing.frame_count(clip)
    if len(masks) != count:
        raise DatasetError(
            f"mask folder {folder} holds {len(masks)} PNGs, its video {clip.name} {count} frames: "
            f"one mask per frame"
        )
    highest = 0
    for path in masks:  # a video's masks are read by their first channel
        mask = _mask_ids(path, size, "its video's frames", num_classes, refuse_colours=False)
        highest = max(highest, int(mask.max()))
    return channels, highest, size
