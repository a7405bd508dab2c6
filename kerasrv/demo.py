"""The main job on the embedded default data (`make demo`).

Loads the `cnn_lstm` entry with its trained weights, measures it on the Fashion-MNIST test
split, fine-tunes it for one epoch on a task it was not trained for (Fashion-MNIST regrouped into
four coarse categories, 500 training images), measures that, and exports the fine-tuned model
(SavedModel for TF Serving, TFLite for LiteRT) with its own card (4 classes, their names), each
format checked against Keras. It prints a short table and the paths of the pictures it wrote.
"""

import argparse
import time
from pathlib import Path

from kerasrv.cli import load_tensorflow

ENTRY = "cnn_lstm"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="pictures and exports go here")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    args = parser.parse_args(argv)
    load_tensorflow(args.verbose)  # as the CLI does: a user's first command prints no C++ logs
    import keras

    from kerasrv import evaluation, zoo
    from kerasrv.data import coarse_fashion_mnist
    from kerasrv.deploy import export_model
    from kerasrv.labels import COARSE_CLASSES

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
    coarse = zoo.describe(tuned, ENTRY, name="cnn_lstm_coarse", class_names=COARSE_CLASSES)
    measured = evaluation.measure(
        tuned,
        coarse,
        [(test_x[i : i + 500], test_y[i : i + 500]) for i in range(0, len(test_x), 500)],
        split="coarse test",
        out_dir=out / "fine_tuned",
    )
    pictured.extend(measured["pictures"])

    print("3. export the fine-tuned model: SavedModel and TFLite, checked against Keras")
    exported = export_model(
        tuned,
        ("saved_model", "tflite"),
        out / "export",
        card=coarse,
        parity_data=(test_x[:64], test_y[:64]),
    )
    for name, parity in exported["parity"]["formats"].items():
        agree = min(parity["batch_1"]["agreement"], parity["batch_7"]["agreement"])
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
