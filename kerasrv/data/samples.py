"""Folders of real files made from Fashion-MNIST test images, laid out as a user's data is.

What `kerasrv data folder KIND OUT` writes, so the own-data commands can be tried (and tested,
and benchmarked) on files written with real codecs, offline:

    images   OUT/<class>/<n>.png          colour PNGs of Fashion-MNIST items, 4 coarse classes
    masks    OUT/images/<n>.png, OUT/masks/<n>.png, OUT/classes.txt
                                          scenes of 2–4 items, tinted; mask value = class id
    videos   OUT/<direction>/<n>.mp4      Moving Fashion-MNIST clips in colour (MPEG-4 part 2),
                                          4 directions of motion
    video_masks  OUT/videos/<n>.mp4, OUT/masks/<n>/<frame>.png, OUT/classes.txt
                                          Moving Fashion-MNIST clips with a mask per frame
    clips    OUT/<n>.mp4                  20-frame clips of two items bouncing (OpenSTL's
                                          Moving FashionMNIST), for video prediction

Every file comes from Fashion-MNIST's test images, drawn by a seeded generator.

Example:
    >>> from kerasrv.data import samples
    >>> samples.write("videos", "my_clips", count=12)
"""

from pathlib import Path

import numpy as np

from kerasrv.data import files, synthesis
from kerasrv.data.idx import load_fashion_mnist
from kerasrv.errors import UsageError
from kerasrv.labels import COARSE_CLASSES, COARSE_OF_CLASS, MOTION_DIRECTIONS, SEGMENTATION_CLASSES

KINDS = ("images", "masks", "videos", "video_masks", "clips")
VIDEO_DIRECTIONS = (0, 2, 4, 6)  # east, north, west, south


def _tint(rng):
    """A random colour for an item: each channel scaled by its own factor in [0.35, 1]."""
    return rng.uniform(0.35, 1.0, size=3)


def _coloured(grey, rng):
    return np.clip(grey[..., None] * _tint(rng), 0, 255).astype(np.uint8)


def write(kind, out, *, count=24, size=None, frames=None, seed=0):
    """Writes a folder of one kind (see the module docstring) and returns its path.

    Args:
        kind: "images", "masks" or "videos".
        out: the folder to write (made if missing).
        count: files per class (images, videos), image/mask pairs (masks) or videos
            (video_masks, clips).
        size: image or frame side (default 28 for images, 64 for scenes and videos).
        frames: frames per video (default 10, the clip length of lrcn.motion; 20 for clips).
        seed: the generator's seed.
    """
    cv2 = files.opencv()

    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UsageError(f"count must be a positive integer, got {count!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_fashion_mnist("test")
    rng = np.random.default_rng(seed)
    if kind == "images":
        side = size or 28
        coarse = np.asarray(COARSE_OF_CLASS)[labels]
        for c, name in enumerate(COARSE_CLASSES):
            folder = out / name.replace(" ", "_")
            folder.mkdir(exist_ok=True)
            for i, index in enumerate(rng.choice(np.flatnonzero(coarse == c), count, False)):
                image = _coloured(images[index], rng)
                if side != 28:
                    image = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR)
                cv2.imwrite(str(folder / f"{i:04d}.png"), image[..., ::-1])
    elif kind == "masks":
        side = size or 64
        (out / "images").mkdir(exist_ok=True)
        (out / "masks").mkdir(exist_ok=True)
        (out / "classes.txt").write_text("\n".join(SEGMENTATION_CLASSES) + "\n")
        for i in range(count):
            scene = synthesis.scene(
                synthesis.example_rng(seed, "test", i), images, labels, canvas=side
            )
            cv2.imwrite(
                str(out / "images" / f"{i:04d}.png"),
                _coloured(scene["image"][..., 0], rng)[..., ::-1],
            )
            cv2.imwrite(str(out / "masks" / f"{i:04d}.png"), scene["mask"])
    elif kind == "video_masks":
        side, steps = size or 64, frames or 10
        (out / "videos").mkdir(exist_ok=True)
        (out / "classes.txt").write_text("\n".join(SEGMENTATION_CLASSES) + "\n")
        for i in range(count):
            clip = synthesis.moving_sequence(
                synthesis.example_rng(seed, "test", i),
                images,
                labels,
                canvas=side,
                frames=steps,
                item_size=28 if side >= 48 else 14,
            )
            tint = _tint(rng)
            write_video(
                out / "videos" / f"{i:04d}.mp4",
                np.clip(clip["frames"] * tint, 0, 255).astype(np.uint8),
            )
            masks = out / "masks" / f"{i:04d}"
            masks.mkdir(parents=True, exist_ok=True)
            for t, mask in enumerate(clip["masks"]):
                cv2.imwrite(str(masks / f"{t:04d}.png"), mask)
    elif kind == "clips":
        side, steps = size or 64, frames or 20
        for i in range(count):
            clip = synthesis.srivastava_sequence(
                synthesis.example_rng(seed, "test", i), images, labels, canvas=side, frames=steps
            )
            write_video(out / f"{i:04d}.mp4", np.repeat(clip["frames"], 3, axis=-1))
    else:
        side, steps = size or 64, frames or 10
        for direction in VIDEO_DIRECTIONS:
            folder = out / MOTION_DIRECTIONS[direction]
            folder.mkdir(exist_ok=True)
            made = 0
            for index in range(10_000):
                if made == count:
                    break
                clip = synthesis.moving_sequence(
                    synthesis.example_rng(seed, "test", index),
                    images,
                    labels,
                    canvas=side,
                    frames=steps,
                    item_size=28 if side >= 48 else 14,
                )
                if clip["motion"] != direction:
                    continue
                tint = _tint(rng)
                video = np.clip(clip["frames"] * tint, 0, 255).astype(np.uint8)
                write_video(folder / f"{made:04d}.mp4", video)
                made += 1
    return out


def write_video(path, frames, fps=10):
    """Writes RGB frames (T, H, W, 3) uint8 as a video file (mp4: MPEG-4 part 2; avi: MJPEG;
    webm: VP8; mkv: MJPEG), with OpenCV's FFmpeg."""
    cv2 = files.opencv()

    codecs = {".mp4": "mp4v", ".avi": "MJPG", ".webm": "VP80", ".mkv": "MJPG"}
    path = Path(path)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*codecs[path.suffix]), fps, (width, height)
    )
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()
    return path
