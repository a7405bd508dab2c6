"""The main job on the embedded default data (`make demo`).

Loads the `cnn_lstm` entry with its trained weights, measures it on the Fashion-MNIST test
split, fine-tunes it for one epoch on a task it was not trained for (Fashion-MNIST regrouped into
four coarse categories, 500 training images), measures that, and exports the fine-tuned model
(SavedModel for TF Serving, TFLite for LiteRT), each format checked against Keras. It prints a
short table and the paths of the pictures it wrote.
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np

from kerasrv import evaluation, export, pictures, zoo
from kerasrv.data import coarse_fashion_mnist
from kerasrv.labels import COARSE_CLASSES

ENTRY = "cnn_lstm"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="pictures and exports go here")
    args = parser.parse_args(argv)
    out = Path(args.out)
    start = time.perf_counter()
    rows = []

    print(f"1. {ENTRY}: the trained entry on the Fashion-MNIST test split")
    card = zoo.info(ENTRY)
    model = zoo.load(ENTRY)
    measured = evaluation.evaluate(model, card, "test", out_dir=out / "entry")
    rows.append(
        (
            f"{card['name']} (10 classes)",
            "Fashion-MNIST test, 10,000 images",
            f"accuracy {measured['metrics']['accuracy']:.4f}",
        )
    )
    pictured = list(measured["pictures"])

    print("2. a new task: Fashion-MNIST in 4 coarse categories, 500 training images, 1 epoch")
    x, y = coarse_fashion_mnist("train", count=500, seed=0)
    test_x, test_y = coarse_fashion_mnist("test")
    results = {}
    for start_from in ("default", None):
        keras.utils.set_random_seed(0)
        tuned = zoo.load(ENTRY, weights=start_from, num_classes=len(COARSE_CLASSES))
        tuned.fit(x, y, epochs=1, batch_size=32, verbose=0)
        results[start_from] = (
            tuned,
            tuned.evaluate(test_x, test_y, verbose=0, return_dict=True)["accuracy"],
        )
    tuned, accuracy = results["default"]
    rows.append(
        ("fine-tuned from the entry", "coarse test, 10,000 images", f"accuracy {accuracy:.4f}")
    )
    rows.append(
        (
            "same, from fresh weights",
            "coarse test, 10,000 images",
            f"accuracy {results[None][1]:.4f}",
        )
    )
    confusion = np.zeros((4, 4), dtype=int)
    np.add.at(confusion, (test_y, tuned.predict(test_x, verbose=0).argmax(-1)), 1)
    pictured.append(
        pictures.confusion_matrix(
            confusion,
            COARSE_CLASSES,
            out / "fine_tuned" / "confusion_matrix.png",
            f"{ENTRY} fine-tuned on coarse Fashion-MNIST (500 images, 1 epoch): {accuracy:.4f}",
        )
    )

    print("3. export the fine-tuned model: SavedModel and TFLite, checked against Keras")
    keras_file = out / "fine_tuned" / "cnn_lstm_coarse.keras"
    tuned.save(keras_file)
    exported = export.export(
        keras_file, ("saved_model", "tflite"), out / "export", parity_samples=0
    )
    runners = {
        "saved_model": export.saved_model_function(exported["files"]["saved_model"], card),
        "tflite": export.TFLiteModel(exported["files"]["tflite"]),
    }
    expected = tuned.predict(test_x[:64], verbose=0)
    for name, run in runners.items():
        agree = float((run(test_x[:64]).argmax(-1) == expected.argmax(-1)).mean())
        rows.append(
            (f"export: {name}", "64 coarse test images", f"top-1 agreement with Keras {agree:.4f}")
        )

    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print()
    for path in pictured:
        print(f"picture: {path}")
    print(f"exported: {exported['directory']}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
