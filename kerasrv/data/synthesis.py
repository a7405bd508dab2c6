"""Builds sequences and scenes from real Fashion-MNIST images, deterministically (numpy only).

Moving Fashion-MNIST follows Moving MNIST's recipe (Srivastava et al., 2015): items move with
constant velocity on a larger canvas and bounce off its borders. `moving_sequence` moves every
item of a clip in one of 8 directions (so the clip has a motion label), or each item in its own;
`srivastava_sequence` is the original generator as OpenSTL's video-prediction benchmark runs it.
Scenes put several items on one static canvas without overlap. Each example draws from its own
generator seeded by (seed, split, index), so any example can be rebuilt alone and two builds are
byte-identical.

An item's pixels are its image's pixels of intensity >= `THRESHOLD` (its thresholded
silhouette); fainter pixels are dropped, so a mask is non-zero exactly where a frame is.
"""

import numpy as np

from kerasrv.errors import UsageError

THRESHOLD = 16
MAX_ITEMS = 4  # the `items` and `classes` features are padded with -1 to this length

# Unit steps (dx, dy) of the 8 motion directions, in the order of labels.MOTION_DIRECTIONS:
# counter-clockwise from east, with y growing downwards (north = towards row 0).
DIRECTIONS = np.array(
    [(1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)], dtype=np.int64
)
_SPLIT_IDS = {"train": 0, "test": 1}


def example_rng(seed, split, index):
    """The generator of one example: a function of (seed, split, index) alone."""
    return np.random.default_rng([seed, _SPLIT_IDS[split], index])


def item_pixels(image, size=28):
    """An item as it is drawn: resized to `size` (by block averaging) and thresholded.

    Args:
        image: a (28, 28) uint8 Fashion-MNIST image.
        size: side of the drawn item; must divide 28.

    Returns:
        A (size, size) uint8 array, zero outside the item's silhouette.
    """
    if 28 % size:
        raise UsageError(f"item size must divide 28, got {size}")
    factor = 28 // size
    item = image.reshape(size, factor, size, factor).mean(axis=(1, 3)).round().astype(np.uint8)
    return np.where(item >= THRESHOLD, item, 0).astype(np.uint8)


def bounce(position, velocity, limit):
    """One step of constant velocity between 0 and `limit`, reflecting off the borders.

    Returns:
        The new (position, velocity), numpy arrays of the same shape.
    """
    position, velocity = position + velocity, velocity.copy()
    for axis in range(len(position)):
        if position[axis] < 0:
            position[axis], velocity[axis] = -position[axis], -velocity[axis]
        elif position[axis] > limit:
            position[axis] = 2 * limit - position[axis]
            velocity[axis] = -velocity[axis]
    return position, velocity


def stationary_starts(velocity, limit):
    """Where an item of this velocity starts so that where it is has one distribution at
    every frame.

    Along an axis, bouncing between 0 and `limit` is turning round a circle of 2·limit steps
    (out along one half, back along the other), whatever the speed; a uniform point of that
    circle stays uniform as it turns. So an item moving forwards starts uniform on
    [0, limit - 1], one moving backwards uniform on [1, limit], and one not moving along the
    axis anywhere on [0, limit]: with a direction and its opposite equally likely, every later
    frame has the start's distribution (uniform, but for the borders at half the weight).

    Returns:
        (low, high): the inclusive bounds of the start along each axis.
    """
    low = np.where(velocity < 0, 1, 0)
    high = np.where(velocity > 0, limit - 1, limit)
    return low, high


def _padded(values):
    out = np.full(MAX_ITEMS, -1, dtype=np.int64)
    out[: len(values)] = values
    return out


def moving_sequence(
    rng,
    images,
    labels,
    *,
    canvas=64,
    frames=10,
    items=(1, 2),
    item_size=28,
    speeds=(2, 4),
    shared_direction=True,
):
    """One Moving Fashion-MNIST sequence.

    With `shared_direction`, all items move in one of 8 directions, each at its own integer
    speed (pixels per frame along each moving axis), so `motion` is a property of the clip that
    every item shows (were it one item's own, a clip of two items moving apart would not tell
    which one). Each item starts at least two steps away from the borders it moves towards, so
    the first two steps never bounce, then moves with constant velocity and reflects off the
    borders. Such clips are not alike over time: at the start every item moves the same way,
    away from the borders, and later the items that bounced come back towards the others, so
    later frames hold more overlaps.

    Without it, each item draws its own direction (Srivastava et al. 2015's recipe, on the 8
    directions) and starts as a bouncing item is placed at any time (see
    `stationary_starts`): every frame of a clip is drawn from the same distribution, so what
    a model does better on later frames is what it remembers, not easier frames. `motion` is
    then item 0's direction.

    Item 0 is drawn last (nearest): it is never hidden, and its class is `label`.

    Args:
        rng: a `numpy.random.Generator` (see `example_rng`).
        images: (N, 28, 28) uint8 images to draw items from.
        labels: (N,) their classes.
        canvas: side of the square frames.
        frames: number of frames T.
        items: (fewest, most) items per sequence.
        item_size: side of a drawn item (28, or 14 for small canvases).
        speeds: (slowest, fastest) integer speed.
        shared_direction: whether all items move in one direction (see above).

    Returns:
        A dict: `frames` (T, canvas, canvas, 1) uint8, `masks` (T, canvas, canvas) uint8 holding
        class + 1 of the nearest item on each pixel (0 = background), `label` (item 0's class),
        `motion` (the clip's direction, or item 0's), `items` (indices into `images`) and
        `classes`, padded with -1, and `positions` (MAX_ITEMS, T, 2) top-left (x, y) of each
        item in each frame (-1 padding).
    """
    if item_size >= canvas:
        raise UsageError(f"items of {item_size} px do not move on a {canvas} px canvas")
    count = int(rng.integers(items[0], items[1] + 1))
    indices = rng.integers(len(images), size=count)
    direction = int(rng.integers(len(DIRECTIONS)))
    speed = rng.integers(speeds[0], speeds[1] + 1, size=count)
    if not shared_direction:  # drawn after the shared draws, so item counts and speeds match
        own = [direction, *rng.integers(len(DIRECTIONS), size=count - 1)]
    limit = canvas - item_size  # largest top-left coordinate
    if limit < 2 * speeds[1]:
        raise UsageError(f"a {canvas} px canvas leaves {item_size} px items no room for two steps")
    positions = np.full((MAX_ITEMS, frames, 2), -1, dtype=np.int64)
    for j in range(count):
        if shared_direction:
            velocity = DIRECTIONS[direction] * speed[j]
            low = np.where(velocity < 0, -2 * velocity, 0)
            high = np.where(velocity > 0, limit - 2 * velocity, limit)
        else:
            velocity = DIRECTIONS[own[j]] * speed[j]
            low, high = stationary_starts(velocity, limit)
        position = rng.integers(low, high + 1)
        for t in range(frames):
            positions[j, t] = position
            position, velocity = bounce(position, velocity, limit)
    video = np.zeros((frames, canvas, canvas), dtype=np.uint8)
    masks = np.zeros((frames, canvas, canvas), dtype=np.uint8)
    for j in reversed(range(count)):  # farthest first, item 0 last
        item = item_pixels(images[indices[j]], item_size)
        silhouette = item > 0
        for t in range(frames):
            x, y = positions[j, t]
            window = (t, slice(y, y + item_size), slice(x, x + item_size))
            video[window][silhouette] = item[silhouette]
            masks[window][silhouette] = labels[indices[j]] + 1
    return {
        "frames": video[..., None],
        "masks": masks,
        "label": int(labels[indices[0]]),
        "motion": direction,
        "items": _padded(indices),
        "classes": _padded(labels[indices]),
        "positions": positions,
    }


def scene(rng, images, labels, *, canvas=64, items=(2, 4), attempts=100):
    """One static scene: 2–4 items whose silhouettes do not overlap, and its mask.

    Items are cropped to their silhouette's bounding box and placed one by one at random
    positions where they touch no item already placed; a scene that cannot be completed in
    `attempts` draws per item is drawn again from the same generator.

    Args:
        rng: a `numpy.random.Generator` (see `example_rng`).
        images: (N, 28, 28) uint8 images to draw items from.
        labels: (N,) their classes.
        canvas: side of the square canvas.
        items: (fewest, most) items per scene.
        attempts: placement draws per item before the scene is started again.

    Returns:
        A dict: `image` (canvas, canvas, 1) uint8, `mask` (canvas, canvas) uint8 (class + 1 of
        the item on each pixel, 0 = background), `items` and `classes` padded with -1, and
        `boxes` (MAX_ITEMS, 4) as (y, x, height, width) of each placed crop (-1 padding).
    """
    while True:
        count = int(rng.integers(items[0], items[1] + 1))
        image = np.zeros((canvas, canvas), dtype=np.uint8)
        mask = np.zeros((canvas, canvas), dtype=np.uint8)
        boxes = np.full((MAX_ITEMS, 4), -1, dtype=np.int64)
        indices = []
        for j in range(count):
            for _ in range(attempts):
                index = int(rng.integers(len(images)))
                item = item_pixels(images[index])
                rows, cols = np.nonzero(item)
                if rows.size == 0:
                    continue
                item = item[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
                height, width = item.shape
                y = int(rng.integers(canvas - height + 1))
                x = int(rng.integers(canvas - width + 1))
                silhouette = item > 0
                window = (slice(y, y + height), slice(x, x + width))
                if (mask[window][silhouette] > 0).any():
                    continue
                image[window][silhouette] = item[silhouette]
                mask[window][silhouette] = labels[index] + 1
                boxes[j] = (y, x, height, width)
                indices.append(index)
                break
            else:
                break  # this item found no room: draw the whole scene again
        if len(indices) == count:
            return {
                "image": image[..., None],
                "mask": mask,
                "items": _padded(indices),
                "classes": _padded(labels[np.array(indices)]),
                "boxes": boxes,
            }


def srivastava_trajectory(rng, frames, step=0.1):
    """One item's path in Srivastava et al. (2015)'s Moving MNIST generator, as OpenSTL runs it.

    The position starts uniform in [0, 1)², the direction uniform on the circle; every frame
    moves `step` along it, and an edge clamps the position and reverses that axis' motion.

    Returns:
        (frames, 2) positions (y, x) in [0, 1].
    """
    y, x = rng.random(), rng.random()
    theta = rng.random() * 2 * np.pi
    v_y, v_x = np.sin(theta), np.cos(theta)
    path = np.zeros((frames, 2))
    for t in range(frames):
        y += v_y * step
        x += v_x * step
        if x <= 0 or x >= 1:
            x, v_x = min(max(x, 0.0), 1.0), -v_x
        if y <= 0 or y >= 1:
            y, v_y = min(max(y, 0.0), 1.0), -v_y
        path[t] = y, x
    return path


def srivastava_sequence(rng, images, labels, *, canvas=64, frames=20, items=2, step=0.1):
    """A clip in Srivastava et al. (2015)'s recipe, the one OpenSTL's Moving (Fashion-)MNIST uses.

    `items` whole 28×28 images move on straight paths of their own direction, bouncing off the
    edges (`srivastava_trajectory`), drawn as the pixel-wise maximum of the items.

    Returns:
        A dict: `frames` (T, canvas, canvas, 1) uint8, `items` (indices into `images`) and
        `classes`, padded with -1, and `positions` (MAX_ITEMS, T, 2) top-left (x, y) of each
        item in each frame (-1 padding).
    """
    limit = canvas - 28
    video = np.zeros((frames, canvas, canvas), dtype=np.uint8)
    positions = np.full((MAX_ITEMS, frames, 2), -1, dtype=np.int64)
    indices = rng.integers(len(images), size=items)
    for j, index in enumerate(indices):
        path = (limit * srivastava_trajectory(rng, frames, step)).astype(np.int64)
        for t, (top, left) in enumerate(path):
            window = video[t, top : top + 28, left : left + 28]
            np.maximum(window, images[index], out=window)
            positions[j, t] = left, top
    return {
        "frames": video[..., None],
        "items": _padded(indices),
        "classes": _padded(labels[indices]),
        "positions": positions,
    }
