"""Pictures: dataset grids, confusion matrices, predictions beside the ground truth (PNG)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kerasrv.labels import SEGMENTATION_CLASSES  # noqa: E402


def mask_colors(num_classes=len(SEGMENTATION_CLASSES)):
    """RGBA colours per mask class: transparent background, one distinct colour per class."""
    colors = plt.get_cmap("tab10")(np.arange(num_classes - 1) % 10)
    colors[:, 3] = 0.55
    return np.concatenate([np.zeros((1, 4)), colors])


def overlay(ax, image, mask=None, num_classes=len(SEGMENTATION_CLASSES)):
    """Draws an image (grey or RGB, 0–255) with its class mask (0 = background) tinted on top."""
    image = np.squeeze(image)
    if image.ndim == 3:  # colour
        ax.imshow(np.clip(image, 0, 255).astype(np.uint8), interpolation="nearest")
    else:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if mask is not None:
        ax.imshow(mask_colors(num_classes)[np.asarray(mask)], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(fig, class_names=SEGMENTATION_CLASSES):
    """The mask colours' legend, class 0 (background, left clear) left out. `class_names` are
    the model's (a user's classes.txt), by default the embedded scenes' classes."""
    colors = mask_colors(len(class_names))
    handles = [
        matplotlib.patches.Patch(color=colors[i][:3], label=class_names[i])
        for i in range(1, len(class_names))
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)


def dataset_grid(examples, features, name, split, out):
    """Writes a PNG of a dataset's examples and returns its path.

    Images are shown with their class names; scenes with their masks tinted by class; sequences
    one per row, frame by frame, with masks, the item's class and its direction of motion.

    Args:
        examples: feature dicts of numpy arrays.
        features: the dataset's `tfds.features.FeaturesDict`.
        name: the dataset's name, for the title.
        split: which split they come from, for the title.
        out: PNG path.

    Returns:
        The `Path` written.
    """
    if "frames" in features:
        steps = examples[0]["frames"].shape[0]
        fig, axes = plt.subplots(
            len(examples), steps, figsize=(1.1 * steps, 1.25 * len(examples) + 0.8), squeeze=False
        )
        for row, example in zip(axes, examples):
            for t, ax in enumerate(row):
                overlay(ax, example["frames"][t], example["masks"][t])
            label = features["label"].int2str(example["label"])
            motion = features["motion"].int2str(example["motion"])
            row[0].set_ylabel(f"{label}\n→ {motion}", fontsize=7, rotation=0, ha="right")
        _legend(fig)
        fig.suptitle(f"{name} ({split}): frames left to right, masks tinted", fontsize=10)
    elif "mask" in features:
        columns = min(4, len(examples))
        rows = -(-len(examples) // columns)
        fig, axes = plt.subplots(
            rows, 2 * columns, figsize=(2.4 * columns, 1.5 * rows + 0.8), squeeze=False
        )
        for ax in axes.flat:
            ax.axis("off")
        for i, example in enumerate(examples):
            r, c = divmod(i, columns)
            overlay(axes[r, 2 * c], example["image"])
            overlay(axes[r, 2 * c + 1], example["image"], example["mask"])
            axes[r, 2 * c].axis("on")
            axes[r, 2 * c + 1].axis("on")
        _legend(fig)
        fig.suptitle(f"{name} ({split}): image, then its mask tinted by class", fontsize=10)
    else:
        columns = min(8, len(examples))
        rows = -(-len(examples) // columns)
        fig, axes = plt.subplots(
            rows, columns, figsize=(1.3 * columns, 1.5 * rows + 0.4), squeeze=False
        )
        for ax in axes.flat:
            ax.axis("off")
        for ax, example in zip(axes.flat, examples):
            overlay(ax, example["image"])
            ax.set_title(features["label"].int2str(example["label"]), fontsize=8)
        fig.suptitle(f"{name} ({split})", fontsize=10)
    return _save(fig, out)


def _save(fig, out):
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def confusion_matrix(confusion, class_names, out, title):
    """Draws a confusion matrix (rows: truth, columns: prediction) with counts in the cells."""
    confusion = np.asarray(confusion)
    size = 0.55 * len(class_names) + 2
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    ax.set_title(title, fontsize=10)
    return _save(fig, out)


def evaluation_title(card, result):
    """A picture's title: the model, the split and what was measured on it."""
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
    return f"{card['name']} on {result['split']} ({result['examples']} examples): {metrics}"


def image_masks(card, shown, out, title):
    """Images with their true and predicted masks, one (image, mask, prediction) triple a row."""
    fig, axes = plt.subplots(len(shown), 3, figsize=(5.4, 1.8 * len(shown) + 0.8), squeeze=False)
    names = card["class_names"]
    for row, (x, y, p) in zip(axes, shown):
        image = x * 255
        overlay(row[0], image)
        overlay(row[1], image, y, len(names))
        overlay(row[2], image, p.argmax(-1), len(names))
    for ax, label in zip(axes[0], ("image", "true mask", "predicted mask")):
        ax.set_title(label, fontsize=9)
    _legend(fig, names)
    fig.suptitle(title, fontsize=8)
    return _save(fig, out)


def clip_labels(card, shown, out, title):
    """Up to 4 clips, a clip a row, with the true and predicted label beside each."""
    clips, names = shown[:4], card["class_names"]
    steps = clips[0][0].shape[0]
    fig, axes = plt.subplots(
        len(clips), steps, figsize=(1.2 * steps + 1.5, 1.3 * len(clips) + 0.6), squeeze=False
    )
    for row, (x, y, p) in zip(axes, clips):
        for t, ax in enumerate(row):
            overlay(ax, x[t] * 255)
        row[0].set_ylabel(
            f"true: {names[int(y)]}\npredicted:\n{names[int(p.argmax())]}",
            fontsize=7,
            rotation=0,
            ha="right",
            va="center",
        )
    fig.suptitle(title, fontsize=8)
    return _save(fig, out)


def _clip_rows(shown, draw_truth, draw_prediction, truth_label):
    clips = shown[:3]
    steps = clips[0][0].shape[0]
    fig, axes = plt.subplots(
        2 * len(clips), steps, figsize=(1.1 * steps, 2.3 * len(clips) + 1), squeeze=False
    )
    for c, (x, y, p) in enumerate(clips):
        top, bottom = axes[2 * c], axes[2 * c + 1]
        for t in range(steps):
            draw_truth(top[t], x[t], y[t])
            draw_prediction(bottom[t], x[t], p[t])
        top[0].set_ylabel(truth_label, fontsize=7)
        bottom[0].set_ylabel("predicted", fontsize=7)
    return fig


def clip_masks(card, shown, out, title):
    """Up to 3 clips: true masks on the frames above, predicted masks below."""
    names = card["class_names"]
    fig = _clip_rows(
        shown,
        lambda ax, x, y: overlay(ax, x * 255, y, len(names)),
        lambda ax, x, p: overlay(ax, x * 255, p.argmax(-1), len(names)),
        "true masks",
    )
    _legend(fig, names)
    fig.suptitle(title, fontsize=8)
    return _save(fig, out)


def next_frames(shown, out, title):
    """Up to 3 clips: the true next frames above, the predicted ones below."""
    fig = _clip_rows(
        shown,
        lambda ax, x, y: overlay(ax, y * 255),
        lambda ax, x, p: overlay(ax, p * 255),
        "true next frames",
    )
    fig.suptitle(title, fontsize=8)
    return _save(fig, out)


def per_frame_mse(per_frame, out, title):
    """The MSE of each predicted frame (OpenSTL's: summed over a frame's pixels), the model's
    beside copying the last given frame."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    steps = np.arange(1, len(per_frame["mse"]) + 1)
    ax.plot(steps, per_frame["copy_last_mse"], "o--", color="grey", label="copy the last frame")
    ax.plot(steps, per_frame["mse"], "o-", label="model")
    ax.set_xlabel("predicted frame (1 = the first after the given ones)", fontsize=8)
    ax.set_ylabel("MSE (summed over a frame's pixels)", fontsize=8)
    ax.set_xticks(steps)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=7)
    return _save(fig, out)


def per_frame_iou(per_frame, out, title, frame_alone=None):
    """Each frame's mean IoU over the split: a model that gathers evidence over the clip
    segments its later frames better than its first. With `frame_alone` (the same weights
    reading each frame alone), the gap between the two lines is what the recurrence adds at
    each frame, apart from how hard that frame is."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    frames = np.arange(1, len(per_frame) + 1)
    ax.plot(frames, per_frame, "o-", label="reading the clip")
    if frame_alone is not None:
        ax.plot(frames, frame_alone, "s--", label="the same weights, each frame alone")
        ax.legend(fontsize=8)
    ax.set_xlabel("frame of the clip", fontsize=8)
    ax.set_ylabel("mean IoU of that frame's masks", fontsize=8)
    ax.set_xticks(frames)
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=7)
    return _save(fig, out)


def rollouts(shown, out, title):
    """Up to 3 clips: the given frames, then the true future above and the predicted below."""
    clips = shown[:3]
    given, future = clips[0][0].shape[0], clips[0][1].shape[0]
    steps = given + future
    fig, axes = plt.subplots(
        2 * len(clips), steps, figsize=(0.9 * steps, 2.1 * len(clips) + 1), squeeze=False
    )
    for c, (x, y, p) in enumerate(clips):
        top, bottom = axes[2 * c], axes[2 * c + 1]
        for t in range(given):
            overlay(top[t], x[t] * 255)
            bottom[t].axis("off")
        for t in range(future):
            overlay(top[given + t], y[t] * 255)
            overlay(bottom[given + t], np.clip(p[t], 0, 1) * 255)
        top[0].set_ylabel("given, true", fontsize=7)
        bottom[given].set_ylabel("predicted", fontsize=7)
    fig.suptitle(title, fontsize=8)
    return _save(fig, out)
