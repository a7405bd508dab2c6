"""Starting weights for a zoo entry grown by a path that starts at zero, from its shipped weights.

    .venv/bin/python bench/grown_start.py convlstm_seg.moving recurrent_skips=2 OUT.weights.h5

Some builder arguments add a path whose last layer starts at zero (convlstm_seg's
`clip_context` and `recurrent_skips`): the grown model computes what the model without it
computes until training moves the path. This builds the entry with the given arguments, copies
every layer of the shipped model into the layer of the same name, checks that the two give the
same output on a clip, and saves the weights; `kerasrv train NAME --weights OUT.weights.h5`
then continues the shipped model with the path added (as a registration naming the argument, or
a registered variant, builds it).
"""

import ast
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasrv import registry, zoo  # noqa: E402


def grown(name, changes):
    """(shipped model, the entry built with `changes`, shipped weights copied by layer name)."""
    shipped = zoo.load(name)
    card = zoo.info(name)
    keras.utils.set_random_seed(0)
    model = registry.get_architecture(card.architecture)(**{**card.builder_args, **changes})
    for layer in shipped.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return shipped, model


def main(name, *arguments):
    *changes, out = arguments
    changes = dict(change.split("=", 1) for change in changes)
    changes = {key: ast.literal_eval(value) for key, value in changes.items()}
    shipped, model = grown(name, changes)
    shape = (2, *shipped.input_shape[1:])
    clip = np.random.default_rng(0).random(shape, dtype=np.float32)
    gap = float(np.abs(np.asarray(shipped(clip)) - np.asarray(model(clip))).max())
    if gap > 1e-5:
        sys.exit(f"the grown model differs from the shipped one by {gap:.2e}: its path is not at 0")
    model.save_weights(out)
    added = sorted(
        {w.path.split("/")[0] for w in model.weights}
        - {w.path.split("/")[0] for w in shipped.weights}
    )
    print(f"{out}: {name} with {changes}; new layers {', '.join(added)} (max |diff| {gap:.1e})")


if __name__ == "__main__":
    main(*sys.argv[1:])
