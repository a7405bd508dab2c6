"""The main job on the embedded default data (`make demo`).

For now: the zoo table, every entry built, and the image classifiers run on real Fashion-MNIST
test images read straight from the IDX files. Trained weights, evaluation, fine-tuning and
export join it as they land.
"""

import time

import numpy as np

from kerasrv import cli, zoo
from kerasrv.data import load_fashion_mnist
from kerasrv.labels import FASHION_MNIST_CLASSES


def main():
    print("The zoo\n")
    cli.main(["list"])
    images, labels = load_fashion_mnist("test")
    batch = images[:16, :, :, None].astype("float32") / 255.0
    print(f"\nEvery entry built; classifiers run on {len(batch)} real Fashion-MNIST test images\n")
    for name in zoo.list_models():
        card = zoo.info(name)
        start = time.perf_counter()
        model = zoo.load(name, weights="default" if card["weights"] else None)
        line = f"{name:26s} built in {time.perf_counter() - start:4.1f} s, output {card['output_shape']}"
        if card["task"] == "classification":
            predicted = np.argmax(model.predict(batch, verbose=0), axis=-1)
            correct = int((predicted == labels[:16]).sum())
            state = "trained" if card["weights"] else "fresh weights"
            line += f", {correct}/16 right ({state}); first: {FASHION_MNIST_CLASSES[predicted[0]]}"
        print(line)


if __name__ == "__main__":
    main()
