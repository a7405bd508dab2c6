"""The arguments of every `kerasrv` command, each checked where it is read."""

import argparse
import re

from kerasrv.cli.commands import (
    cmd_bench,
    cmd_data_folder,
    cmd_data_show,
    cmd_evaluate,
    cmd_export,
    cmd_info,
    cmd_list,
    cmd_predict,
    cmd_ship,
    cmd_train,
)

# --- argument types: a count or size is checked where it is read ---------------------------------


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def count_or_zero(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}")
    return value


def shape(text):
    """An input shape: positive integers joined by commas or x ("16,112,112,3", "28x28x1")."""
    parts = re.split(r"[,x×]", text.strip())
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive integers joined by commas, like 28,28,3, got {text!r}"
        )
    return values


def weights(text):
    """`--weights`: default (the entry's trained weights), none (fresh) or a weights file."""
    return {"default": "default", "none": None}.get(text.lower(), text)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# --- the parser -----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and status 2, like every user error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


VERBOSE_HELP = "show TensorFlow's own log lines (silenced unless TF_CPP_MIN_LOG_LEVEL is set)"


class _Command(_Parser):
    """A subcommand's parser: takes --verbose after the command too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )


TARGET = "zoo name, run directory written by `kerasrv train`, or .keras file"


def build_parser():
    from kerasrv.registry import PRECISIONS, RECIPE_KEYS, STRATEGIES

    parser = _Parser(
        prog="kerasrv", description="A model zoo of recurrent vision models for Keras 3."
    )
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Command)

    p = commands.add_parser("list", help="the zoo's entries as a table")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. '*lstm*'")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser("info", help="an entry's card as JSON")
    p.add_argument("name", help="entry or architecture name")
    p.set_defaults(run=cmd_info)

    p = commands.add_parser(
        "train",
        help="train an entry and write its artifacts",
        description="Trains a zoo entry on its dataset into OUT/<entry>/ (weights and card). "
        "An interrupted run resumes when the same command runs again; a finished one is never "
        "overwritten unless --overwrite is given.",
    )
    p.add_argument("name", help="entry or architecture name")
    p.add_argument(
        "--data",
        help="your own data: a folder (class folders of images or videos, or images/ and masks/ "
        "with matching names; train/, val/ and test/ folders are used as they are, else 10%% is "
        "held out by a seeded rule) or a locally prepared TFDS dataset name. The run goes to "
        "OUT/<architecture>.<folder name>/ and fine-tunes from the entry's weights",
    )
    p.add_argument(
        "--input-shape",
        type=shape,
        help="the model's input, e.g. 16,112,112,3 (default: the entry's, with your data's "
        "channels)",
    )
    p.add_argument(
        "--weights",
        type=weights,
        default="entry default",
        help="default (the entry's trained weights, adapted), none (fresh) or a .weights.h5 "
        "file; default: none for the entry's own dataset, default with --data",
    )
    p.add_argument("--epochs", type=positive_int, help="default: the entry's recipe")
    p.add_argument(
        "--hours",
        type=positive_float,
        help="a time budget: stop after the last epoch that fits in it, card written (the "
        "next run starts from its weights with --weights)",
    )
    p.add_argument(
        "--recipe",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"change a key of the entry's recipe ({', '.join(RECIPE_KEYS)}), e.g. "
        "--recipe teacher_forcing=0.5,0.25 --recipe fresh_clips=false; repeatable",
    )
    p.add_argument(
        "--batch-size", type=positive_int, help="global batch size; default: the recipe's"
    )
    p.add_argument("--out", default="runs", help="artifacts go to OUT/<entry>/ (default runs)")
    p.add_argument("--overwrite", action="store_true", help="train again where a finished run is")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES)
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="default: the recipe's where the hardware computes it natively, else float32",
    )
    p.add_argument("--jit-compile", action="store_true", help="compile train steps with XLA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=positive_float, help="peak rate of the cosine schedule")
    p.add_argument("--patience", type=positive_int, help="EarlyStopping patience (default: none)")
    p.add_argument(
        "--augment",
        choices=("none", "shift", "flip", "erasing"),
        help="random shifts; flips and shifts; random erasing too; or none (default: the "
        "recipe's on the entry's data, shift for your images, none for clips)",
    )
    p.add_argument(
        "--frames", type=positive_int, help="video entries: train on the first N frames only"
    )
    p.add_argument(
        "--record-baseline",
        action="store_true",
        help="with --frames 1: write the metrics into the shipped entry's card as its "
        "single-frame baseline",
    )
    p.add_argument(
        "--record-attempt",
        action="store_true",
        help="write this run's test metrics, command, epochs and wall time into the shipped "
        "entry's card, under attempts: a recipe tried and measured (train into another --out)",
    )
    p.add_argument(
        "--note", help="with --record-attempt: what the recipe tries, in words, kept beside it"
    )
    p.add_argument("--train-split", help="tfds split to train on (default train[:90%%])")
    p.add_argument("--validation-split", help="split that picks the best epoch (train[90%%:])")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("evaluate", help="measure a model on its test split")
    p.add_argument("target", help=TARGET)
    p.add_argument("--data", help="measure on this data folder (of the model's classes) instead")
    p.add_argument(
        "--split",
        default="test",
        help="split (default test: a data folder's test/, else its held-out files)",
    )
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--out", default="eval", help="pictures go to OUT/<name>/ ('' for none)")
    p.add_argument(
        "--record",
        action="store_true",
        help="write the evaluation's details (per class, per frame...) into the model's card "
        "beside its metrics, which must come out the same (test split only)",
    )
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser(
        "predict",
        help="classes of image or video files, or their masks",
        description="Runs a model on files: prints the top classes of each image or video, or "
        "writes a segmentation model's mask of each image as a PNG (pixel value = class id) "
        "beside it (or into --out).",
    )
    p.add_argument("target", help=TARGET)
    p.add_argument(
        "files", nargs="+", help="image or video files, or folders of them (read recursively)"
    )
    p.add_argument("--top-k", type=positive_int, default=3, help="classes to print (default 3)")
    p.add_argument("--out", default=None, help="folder for the mask PNGs (default: beside)")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser(
        "ship", help="make a finished run of a zoo entry the entry's shipped weights and card"
    )
    p.add_argument(
        "directory",
        metavar="RUN",
        help="the run directory (kerasrv train ENTRY --out DIR writes DIR/ENTRY)",
    )
    p.set_defaults(run=cmd_ship)

    p = commands.add_parser("export", help="SavedModel and TFLite files, checked against Keras")
    p.add_argument("target", help=TARGET)
    p.add_argument(
        "--format",
        default="saved_model,tflite",
        help="comma-separated: saved_model, tflite, tflite_batch1, tflite_dynamic, "
        "tflite_float16, tflite_int8, tflite_int16x8, onnx (default saved_model,tflite)",
    )
    p.add_argument("--out", default="export", help="export root (default export/)")
    p.add_argument(
        "--parity-samples",
        type=count_or_zero,
        default=1000,  # kerasrv.export.PARITY_SAMPLES (not imported: --help loads no TF)
        help="real test samples for parity.json (0 skips it)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="write the parity summary into the model's card.json",
    )
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("bench", help="measure entries beside textbook models (one run)")
    p.add_argument("names", nargs="*", help="entries (default: all)")
    p.add_argument("--quick", action="store_true", help="small inputs, few steps: a smoke run")
    p.add_argument("--out", default="bench/results.json", help="results JSON")
    p.add_argument(
        "--update",
        action="store_true",
        help="re-measure the named entries into the existing results JSON (or precision.json), "
        "keeping the others",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="write BENCHMARKS.md and chart.png beside the results JSON",
    )
    p.add_argument(
        "--precision",
        action="store_true",
        help="float32 against mixed_bfloat16: every entry's training samples/s and a few "
        "entries' test metrics after equal epochs, into precision.json beside the results JSON",
    )
    p.add_argument(
        "--speed-only",
        action="store_true",
        help="with --precision: the samples/s pairs only, keeping the quality pairs a run "
        "measured before (they train for tens of minutes)",
    )
    p.set_defaults(run=cmd_bench)

    p = commands.add_parser("data", help="the embedded datasets")
    data = p.add_subparsers(dest="data_command", required=True)
    p = data.add_parser("show", help="write a PNG grid of examples")
    p.add_argument("name", help="tfds name, e.g. moving_fashion_mnist/small")
    p.add_argument("--split", default="test")
    p.add_argument("--count", type=positive_int, default=8, help="examples to show")
    p.add_argument("--out", default=None, help="PNG path (default: <name>-<split>.png)")
    p.set_defaults(run=cmd_data_show)
    p = data.add_parser(
        "folder",
        help="write a folder of real files to try --data on (from Fashion-MNIST test images)",
    )
    p.add_argument(
        "kind",
        choices=("images", "masks", "videos", "video_masks", "clips"),
        help="images: colour PNGs in 4 class folders; masks: images/ and masks/ PNG pairs; "
        "videos: mp4 clips in 4 folders by direction of motion; video_masks: videos/ and a "
        "folder of mask PNGs per video in masks/; clips: 20-frame mp4s for video prediction",
    )
    p.add_argument("out", help="the folder to write")
    p.add_argument(
        "--count", type=positive_int, default=24, help="files per class, or pairs (default 24)"
    )
    p.set_defaults(run=cmd_data_folder)
    return parser
