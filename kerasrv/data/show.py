"""Pictures of the datasets: image grids, masks overlaid, sequences as frame strips."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from kerasrv.data.pipeline import load_split  # noqa: E402
from kerasrv.labels import SEGMENTATION_CLASSES  # noqa: E402


def mask_colors(num_classes=len(SEGMENTATION_CLASSES)):
    """RGBA colours per mask class: transparent background, one distinct colour per class."""
    colors = plt.get_cmap("tab10")(np.arange(num_classes - 1) % 10)
    colors[:, 3] = 0.55
    return np.concatenate([np.zeros((1, 4)), colors])


def overlay(ax, image, mask=None):
    """Draws a grayscale image with its class mask (0 = background) tinted on top."""
    ax.imshow(np.squeeze(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if mask is not None:
        ax.imshow(mask_colors()[np.asarray(mask)], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(fig):
    colors = mask_colors()
    handles = [
        matplotlib.patches.Patch(color=colors[i][:3], label=SEGMENTATION_CLASSES[i])
        for i in range(1, len(SEGMENTATION_CLASSES))
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)


def write_grid(name, split="test", out=None, count=8, data_dir=None):
    """Writes a PNG of `count` examples of a dataset and returns its path.

    Images are shown with their class names; scenes with their masks tinted by class; sequences
    one per row, frame by frame, with masks, the item's class and its direction of motion.

    Args:
        name: a tfds name ("fashion_mnist_local", "fashion_mnist_scenes",
            "moving_fashion_mnist/small", ...).
        split: which split.
        out: PNG path; default "<name>-<split>.png" in the working directory.
        count: number of examples.
        data_dir: TFDS data directory.

    Returns:
        The `Path` written.
    """
    ds, info = load_split(name, f"{split}[:{count}]", data_dir)
    examples = list(tfds.as_numpy(ds))
    features = info.features
    out = Path(out or f"{name.replace('/', '-')}-{split}.png")
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
        fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.4 * columns, 1.5 * rows + 0.8),
                                 squeeze=False)
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
        fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows + 0.4),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, example in zip(axes.flat, examples):
            overlay(ax, example["image"])
            ax.set_title(features["label"].int2str(example["label"]), fontsize=8)
        fig.suptitle(f"{name} ({split})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
