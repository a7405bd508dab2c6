"""Helpers shared by the tests (in the spirit of keras-hub's TestCase helpers)."""

import numpy as np
import pytest

from kerasrv.data import synthesis
from kerasrv.data.idx import load_fashion_mnist


def real_batch(card, n=16, seed=0):
    """A batch (inputs, targets) of real Fashion-MNIST test data shaped for an entry's card.

    Built straight from the IDX files with the same generators the datasets use, so the zoo's
    tests do not depend on TFDS.
    """
    images, labels = load_fashion_mnist("test")
    task, shape = card["task"], tuple(card["input_shape"])
    rng = np.random.default_rng(seed)
    if task == "classification":
        index = rng.choice(len(images), n, replace=False)
        return images[index][..., None].astype("float32") / 255.0, labels[index].astype("int32")
    if task == "segmentation":
        scenes = [synthesis.scene(rng, images, labels, canvas=shape[0]) for _ in range(n)]
        x = np.stack([s["image"] for s in scenes]).astype("float32") / 255.0
        return x, np.stack([s["mask"] for s in scenes]).astype("int32")
    if task == "video_prediction":  # OpenSTL's clips: the given frames, then those to predict
        frames = shape[0] + card["output_shape"][0]
        clips = [
            synthesis.srivastava_sequence(rng, images, labels, canvas=shape[1], frames=frames)
            for _ in range(n)
        ]
        x = np.stack([c["frames"] for c in clips]).astype("float32") / 255.0
        return x[:, : shape[0]], x[:, shape[0] :]
    frames = shape[0] + 1 if task == "next_frame" else shape[0]
    item = 28 if shape[1] >= 48 else 14
    clips = [
        synthesis.moving_sequence(
            rng, images, labels, canvas=shape[1], frames=frames, item_size=item
        )
        for _ in range(n)
    ]
    x = np.stack([c["frames"] for c in clips]).astype("float32") / 255.0
    if task == "next_frame":
        return x[:, :-1], x[:, 1:]
    if task == "video_segmentation":
        return x, np.stack([c["masks"] for c in clips]).astype("int32")
    target = card.get("target", "label")
    return x, np.array([c[target] for c in clips], dtype="int32")


# TensorFlow writes these to stderr while it loads, before any of kerasrv's code runs (absl's
# pre-initialisation INFO lines, which no environment variable turns off): they are not ours.
_TF_STARTUP = (
    "WARNING: All log messages before absl::InitializeLog()",
    "I0000 ",
    "To enable the following instructions",
)


def run_cli(*args, env=None, cwd=None, timeout=900):
    """`kerasrv ARGS` in a subprocess, as a user runs it.

    Returns:
        (exit status, stdout, stderr lines of kerasrv's own: TensorFlow's start-up lines left out).
    """
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "kerasrv.cli", *map(str, args)],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    ours = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith(_TF_STARTUP)
    ]
    return done.returncode, done.stdout, ours


def tree_digest(directory):
    """One sha256 over every file's path and bytes under a directory."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return digest.hexdigest()


def call_cli(*args, env=None):
    """`kerasrv ARGS` in this process, with `env` set in os.environ while it runs: no start-up
    cost (a process that imports TensorFlow takes 4-7 s to start here); usage errors exit as
    argparse does. What needs a process of its own (a kill, a clean import) uses `run_cli`.

    Returns:
        (exit status, stdout, stderr lines).
    """
    import contextlib
    import io
    import os
    from unittest import mock

    from kerasrv import cli

    out, err = io.StringIO(), io.StringIO()
    variables = {name: str(value) for name, value in (env or {}).items()}
    with mock.patch.dict(os.environ, variables):  # restored as they were, unset ones unset
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main([str(a) for a in args])
            except SystemExit as exit:
                code = exit.code
    return code, out.getvalue(), [line for line in err.getvalue().splitlines() if line.strip()]


# The default run (`make test`) makes each per-entry check on one entry of every task, the
# cheapest one; `make test-slow` makes it on the other entries. Entries of one task share the
# task's rules, its data and most of their layers, so the default run still builds, trains,
# saves, re-heads and exports every kind of model the zoo holds.
ONE_PER_TASK = {
    "classification": "row_rnn.lstm",
    "video_classification": "lrcn.motion",
    "segmentation": "reseg.scenes",
    "video_segmentation": "convlstm_seg.moving",
    "next_frame": "convlstm_predict.moving",
    "video_prediction": "convlstm_forecast.mfmnist",
}


def in_the_default_run(name):
    """Whether the default run makes the per-entry checks on `name` (`make test-slow`: on all)."""
    return name in ONE_PER_TASK.values()


def per_entry(names):
    """pytest parameters for a check made on each entry: those outside ONE_PER_TASK are slow."""
    return [
        name if in_the_default_run(name) else pytest.param(name, marks=pytest.mark.slow, id=name)
        for name in names
    ]


def write_digits(out):
    """scikit-learn's 1,797 handwritten digits (8×8, 0–16) as a user's folder of grey PNGs:
    out/train/<digit>/<n>.png (1,437) and out/test/<digit>/<n>.png (360), split as
    `train_test_split(test_size=0.2, random_state=0)` splits them. Real data nobody here made,
    shipped inside scikit-learn (no download)."""
    import cv2
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    parts = train_test_split(images, digits.target, test_size=0.2, random_state=0)
    for split, x, y in (("train", parts[0], parts[2]), ("test", parts[1], parts[3])):
        for n, (image, label) in enumerate(zip(x, y)):
            folder = out / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{n:04d}.png"), image)
    return out


def check_architecture(
    name, task, out, *, formats=("saved_model", "tflite"), input_shape=None, num_classes=3, **args
):
    """Builds a zoo architecture with fresh weights at its task's small shape, runs it, saves
    and reloads it as a .keras file, and exports it as a SavedModel and a TFLite file, each
    answering as Keras does: what a new family must pass before it has trained weights (the
    manner of keras-hub's `run_backbone_test`).

    Args:
        name: the architecture (its builder's name in `kerasrv.registry`).
        task: the task its models serve (`kerasrv.tasks`).
        out: a folder to write into.
        input_shape: default: the task's `quick_shape`, else the builder's own default.
        formats: the export formats to write and run.
        num_classes: classes of a classifier or segmenter.
        **args: the builder's other arguments.

    Returns:
        The model built.
    """
    import keras

    from kerasrv import artifacts, export, registry, tasks

    task = tasks.get(task)
    builder = registry.get_architecture(name)
    shape = input_shape or task.quick_shape
    if shape is not None:
        args["input_shape"] = tuple(shape)
    if not task.predicts_frames:
        args["num_classes"] = num_classes
    model = builder(**args)
    x = np.random.default_rng(0).uniform(size=(3, *model.input_shape[1:])).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape[0] == 3 and np.isfinite(y).all(), f"{name}: outputs {y.shape}"
    if not task.predicts_frames:
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-4)  # class probabilities
    path = out / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(again(x, training=False)), y, atol=1e-6)
    card = artifacts.Card(
        name=name,
        task=task.name,
        input_shape=list(model.input_shape[1:]),
        output_shape=list(model.output_shape[1:]),
        architecture=name,
        num_classes=None if task.predicts_frames else num_classes,
        class_names=None if task.predicts_frames else [f"c{i}" for i in range(num_classes)],
    )
    made = export.export(model, card, formats, out / "export")
    for fmt, path in made["files"].items():
        run = export.FORMATS[fmt].run(path, card)
        np.testing.assert_allclose(run(x), y, atol=1e-4, err_msg=f"{name}: {fmt}")
    return model
