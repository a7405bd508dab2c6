"""tensorflow-datasets builders for the embedded data; importing this module registers them.

    fashion_mnist_local     Fashion-MNIST from the local IDX files (train 60,000 / test 10,000)
    moving_fashion_mnist    items moving and bouncing on a canvas, with masks and motion labels
    fashion_mnist_scenes    2–4 items on one static canvas, with per-pixel masks

None of them downloads anything: they read Debian's `dataset-fashion-mnist` (or the directory in
$KERASRV_FASHION_MNIST_DIR) and build the rest from it. The train split of every builder uses
only Fashion-MNIST's train images, the test split only its test images.

Example:
    >>> import kerasrv.data, tensorflow_datasets as tfds
    >>> ds = tfds.load("moving_fashion_mnist/small", split="test")
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kerasrv.data import synthesis
from kerasrv.data.idx import load_fashion_mnist
from kerasrv.labels import FASHION_MNIST_CLASSES, MOTION_DIRECTIONS

_HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
_CITATION = """@article{xiao2017fashion,
  title={Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  author={Xiao, Han and Rasul, Kashif and Vollgraf, Roland},
  journal={arXiv preprint arXiv:1708.07747}, year={2017}}"""


def _uint8(shape):
    # zlib, not PNG: encoding and decoding thousands of small frames is several times faster.
    return tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB)


def _indices(shape=(synthesis.MAX_ITEMS,)):
    return tfds.features.Tensor(shape=shape, dtype=np.int64)


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (Xiao et al., 2017) read from local IDX files, never downloaded."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            description="Fashion-MNIST from the local IDX files of Debian's dataset-fashion-mnist.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(names=FASHION_MNIST_CLASSES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage=_HOMEPAGE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        images, labels = load_fashion_mnist(split)
        for index in range(len(images)):
            yield index, {"image": images[index][..., None], "label": int(labels[index])}


@dataclasses.dataclass(eq=False)
class MovingConfig(tfds.core.BuilderConfig):
    """Moving Fashion-MNIST settings.

    `recipe` "directions" is `synthesis.moving_sequence` (all items in one of 8 directions,
    or with `shared_direction` False each in its own; with masks and a motion label);
    "srivastava" is `synthesis.srivastava_sequence`, Moving MNIST's own generator as OpenSTL's
    video-prediction benchmark runs it (frames only).
    """

    canvas: int = 64
    frames: int = 10
    items: tuple = (1, 2)
    item_size: int = 28
    speeds: tuple = (2, 4)
    train_examples: int = 10_000
    test_examples: int = 2_000
    seed: int = 0
    recipe: str = "directions"
    shared_direction: bool = True  # False: each item its own direction, frames alike over time


class _BuiltFromFashionMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder whose example i of a split is `example(example_rng(seed, split, i), ...)`.

    The train split draws from Fashion-MNIST's train images only, the test split from its test
    images; the config gives the seed and the number of examples of each split. TFDS stores the
    examples in an order fixed by their keys, so a slice such as test[:500] is always the same
    examples.
    """

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        c = self.builder_config
        return {
            "train": self._generate_examples("train", c.train_examples),
            "test": self._generate_examples("test", c.test_examples),
        }

    def _generate_examples(self, split, count):
        images, labels = load_fashion_mnist(split)
        for index in range(count):
            rng = synthesis.example_rng(self.builder_config.seed, split, index)
            yield index, self.example(rng, images, labels)

    def example(self, rng, images, labels):
        raise NotImplementedError


class MovingFashionMnist(_BuiltFromFashionMnist):
    """Moving Fashion-MNIST: Srivastava et al. (2015)'s Moving MNIST recipe on Fashion-MNIST."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.1.0": "All items of a clip move in one direction, `motion`; no bounce in 2 steps.",
        "1.0.0": "Each item had its own direction; `motion` was item 0's.",
    }
    BUILDER_CONFIGS = [
        MovingConfig(
            name="default",
            description="64×64 canvas, 10 frames, 1–2 items of 28×28, speed 2–4 px/frame.",
        ),
        MovingConfig(
            name="small",
            description="32×32 canvas, 8 frames, 1–2 items of 14×14, speed 1–2 px/frame; for "
            "tests and quick demos.",
            canvas=32,
            frames=8,
            item_size=14,
            speeds=(1, 2),
            train_examples=1_000,
            test_examples=200,
        ),
        MovingConfig(
            name="independent",
            description="The default canvas, items and speeds, each item moving in its own "
            "direction from where a bouncing item is equally likely to be at any time, so every "
            "frame of a clip is drawn from the same distribution (the default's later frames "
            "hold more overlaps than its first); `motion` is item 0's direction. For measuring "
            "what a video model's memory adds frame by frame.",
            shared_direction=False,
        ),
        MovingConfig(
            name="openstl",
            description="OpenSTL's Moving FashionMNIST protocol: 64×64 canvas, 20 frames (10 "
            "in, 10 to predict), two 28×28 items on their own straight paths, bouncing "
            "(Srivastava et al. 2015's generator); 10,000 train clips from train images, "
            "10,000 test clips from test images.",
            frames=20,
            items=(2, 2),
            train_examples=10_000,
            test_examples=10_000,
            recipe="srivastava",
        ),
        MovingConfig(
            name="openstl_small",
            description="The openstl recipe with few clips; for tests.",
            frames=20,
            items=(2, 2),
            train_examples=200,
            test_examples=100,
            recipe="srivastava",
        ),
    ]

    def _info(self):
        c = self.builder_config
        if c.recipe == "srivastava":
            return self.dataset_info_from_configs(
                description=(
                    "Clips of two Fashion-MNIST items moving on straight paths of their own "
                    "direction and bouncing off the canvas edges (Srivastava et al. 2015), "
                    "drawn as their pixel-wise maximum: OpenSTL's Moving FashionMNIST."
                ),
                features=tfds.features.FeaturesDict(
                    {
                        "frames": _uint8((c.frames, c.canvas, c.canvas, 1)),
                        "items": _indices(),
                        "classes": _indices(),
                        "positions": _indices((synthesis.MAX_ITEMS, c.frames, 2)),
                    }
                ),
                homepage=_HOMEPAGE,
                citation=_CITATION,
            )
        return self.dataset_info_from_configs(
            description=(
                "Sequences of Fashion-MNIST items moving with constant velocity and bouncing off "
                "the canvas borders, with per-frame masks (class id + 1 of the nearest item, 0 = "
                "background), the class of the nearest item (`label`) and the direction "
                + ("all items start" if c.shared_direction else "the nearest item starts")
                + " moving in (`motion`, one of 8)."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "frames": _uint8((c.frames, c.canvas, c.canvas, 1)),
                    "masks": _uint8((c.frames, c.canvas, c.canvas)),
                    "label": tfds.features.ClassLabel(names=FASHION_MNIST_CLASSES),
                    "motion": tfds.features.ClassLabel(names=MOTION_DIRECTIONS),
                    "items": _indices(),
                    "classes": _indices(),
                    "positions": _indices((synthesis.MAX_ITEMS, c.frames, 2)),
                }
            ),
            homepage=_HOMEPAGE,
            citation=_CITATION,
        )

    def example(self, rng, images, labels):
        c = self.builder_config
        if c.recipe == "srivastava":
            return synthesis.srivastava_sequence(
                rng, images, labels, canvas=c.canvas, frames=c.frames, items=c.items[0]
            )
        return synthesis.moving_sequence(
            rng,
            images,
            labels,
            canvas=c.canvas,
            frames=c.frames,
            items=c.items,
            item_size=c.item_size,
            speeds=c.speeds,
            shared_direction=c.shared_direction,
        )


@dataclasses.dataclass(eq=False)
class ScenesConfig(tfds.core.BuilderConfig):
    """Fashion-MNIST scenes settings (see `synthesis.scene`)."""

    canvas: int = 64
    items: tuple = (2, 4)
    train_examples: int = 20_000
    test_examples: int = 2_000
    seed: int = 0


class FashionMnistScenes(_BuiltFromFashionMnist):
    """Static scenes of 2–4 non-overlapping Fashion-MNIST items with per-pixel masks."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        ScenesConfig(name="default", description="64×64 canvas, 2–4 items."),
        ScenesConfig(
            name="small",
            description="64×64 canvas, 2–4 items, few examples; for tests and quick demos.",
            train_examples=1_000,
            test_examples=200,
        ),
    ]

    def _info(self):
        c = self.builder_config
        return self.dataset_info_from_configs(
            description=(
                "Fashion-MNIST items placed without overlap on one canvas, with a mask holding "
                "class id + 1 of the item on each pixel (0 = background)."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": _uint8((c.canvas, c.canvas, 1)),
                    "mask": _uint8((c.canvas, c.canvas)),
                    "items": _indices(),
                    "classes": _indices(),
                    "boxes": _indices((synthesis.MAX_ITEMS, 4)),
                }
            ),
            homepage=_HOMEPAGE,
            citation=_CITATION,
        )

    def example(self, rng, images, labels):
        c = self.builder_config
        return synthesis.scene(rng, images, labels, canvas=c.canvas, items=c.items)


NAMES = ("fashion_mnist_local", "moving_fashion_mnist", "fashion_mnist_scenes")
