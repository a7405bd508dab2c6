"""`kerasrv` on the command line: list, info, train, evaluate, predict, export, bench, data show.

Every command that takes a model takes the same three kinds of target: a zoo name, a run
directory written by `kerasrv train`, or a `.keras` file (`kerasrv.zoo.resolve`).

Errors a user can cause (unknown names, bad data, bad arguments, a file system that refuses)
print one line on stderr and exit with status 2, without a traceback; an internal error is a
traceback and status 1. KERASRV_DEBUG=1 shows the traceback of a user error too.
"""

import argparse
import dataclasses
import json
import os
import re
import shlex
import sys
import warnings
from pathlib import Path

from kerasrv.progress import Progress

# Only the standard library at the top: TensorFlow, Keras and the zoo load inside the commands
# that need them (quietly: `_load_tensorflow`), so `kerasrv --help` answers at once.

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


# --- commands -------------------------------------------------------------------------------------


def _format_metrics(metrics):
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))


def cmd_list(args):
    from kerasrv import artifacts, registry, zoo

    names = zoo.list_models(args.pattern)
    rows = [("name", "task", "input", "metrics")]
    for name in names:
        entry = registry.get_entry(name)
        try:  # one damaged card must not hide the other entries
            metrics = _format_metrics(zoo.record(name).get("metrics", {})) or "—"
        except artifacts.CardError as error:
            metrics = f"(damaged card: {error})"
        shape = "×".join(str(d) for d in entry.args["input_shape"])
        rows.append((name, entry.task, shape, metrics))
    _table(rows)
    if not names:
        print(f"(no entry matches {args.pattern!r})")


def cmd_info(args):
    from kerasrv import zoo

    print(json.dumps(zoo.info(args.name).to_dict(), indent=2))


def cmd_data_show(args):
    from kerasrv import data

    print(data.show(args.name, split=args.split, out=args.out, count=args.count))


def cmd_data_folder(args):
    from kerasrv.data import samples

    print(samples.write(args.kind, args.out, count=args.count))


def cmd_train(args):
    from kerasrv import training

    options = vars(args)
    fields = {f.name for f in dataclasses.fields(training.Settings)} - {"verbose"}  # TF's logs
    card = training.train(
        args.name,
        training.Settings(**{k: v for k, v in options.items() if k in fields}),
        record="baseline" if args.record_baseline else "attempt" if args.record_attempt else None,
        note=args.note,
        **{k: options[k] for k in ("out", "data", "input_shape", "frames", "weights")},
        overwrite=args.overwrite,
        command=shlex.join(["kerasrv", *args.argv]),
    )
    if card is not None:  # the chief reports; other workers only train
        measured_on = card.data["measured_on"] if card.data else f"{card.dataset}, split test"
        report = {"name": card.name, "metrics": card.metrics, "measured_on": measured_on}
        print(json.dumps(report, indent=1))
        print(f"artifacts: {Path(args.out) / card.training['run']}")


def cmd_evaluate(args):
    from kerasrv import evaluation, zoo

    model, card = zoo.resolve(args.target)
    if args.data:  # another folder of the same classes
        card = with_data(card, args.data)
    out = Path(args.out) / card.name if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)  # a file system that refuses says so now
    result = evaluation.evaluate(model, card, args.split, batch_size=args.batch_size, out_dir=out)
    width = max(len(k) for k in result["metrics"])
    print(f"{card.name} on {result['split']} ({result['examples']} examples)")
    for key, value in result["metrics"].items():
        print(f"  {key.ljust(width)}  {value:.4f}")
    for path in result.get("pictures", []):
        print(f"picture: {path}")


def cmd_export(args):
    from kerasrv.deploy import export_model, progress_steps

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    progress = Progress(progress_steps(formats, args.parity_samples))
    result = export_model(
        args.target,
        formats,
        args.out,
        parity_samples=args.parity_samples,
        record=args.record,
        progress=progress,
    )
    progress.finish("exported")
    print(f"exported {args.target} to {result['directory']}")
    _table(_export_rows(result))
    if result["parity"]:
        print(
            f"parity on {result['parity']['samples']} test samples; agreement = "
            f"{result['parity']['agreement_measure']}"
        )
    if result["recorded"]:
        print(f"recorded in {result['recorded']}")


def _export_rows(result):
    """The table of an export: a row per format, with its parity when measured."""
    report = result["parity"]
    rows = [("format", "file", "size", "max |Δ| b1/b7", "agreement b1/b7", "latency b1", "parity")]
    for name, path in result["files"].items():
        cells = [name, str(path.relative_to(result["directory"].parent.parent)), "", "", "", "", ""]
        if report:
            m = report["formats"][name]
            cells[2:] = [
                f"{m['size_bytes'] / 1e6:.2f} MB",
                f"{m['batch_1']['max_abs_diff']:.1e}/{m['batch_7']['max_abs_diff']:.1e}",
                f"{m['batch_1']['agreement']:.4f}/{m['batch_7']['agreement']:.4f}",
                f"{m['latency_ms_batch_1']:.2f} ms",
                "passes" if m["passes"] else "FAILS",
            ]
        rows.append(tuple(cells))
    return rows


def with_data(card, path):
    """The card of a model measured on a data folder (checked against the model's classes)."""
    from kerasrv.data import files

    found = files.scan(path, card.task, class_names=card.class_names)
    return card.replace(data=found.record(), dataset=None)


def cmd_predict(args):
    from kerasrv import predict, zoo

    model, card = zoo.resolve(args.target)
    for path in predict.files_in(args.files):
        answer = predict.predict_file(model, card, path, top_k=args.top_k, out=args.out)
        if "mask" in answer:
            print(f"{path}: mask {answer['mask']} ({answer['summary']})")
        elif "masks" in answer:
            print(f"{path}: masks {answer['masks']}/ ({answer['summary']})")
        elif "video" in answer:
            print(
                f"{path}: {answer['frames']} frames {answer['video']}, picture {answer['picture']}"
            )
        else:
            ranked = ", ".join(f"{name} {p:.3f}" for name, p in answer["top"])
            print(f"{path}: {ranked}")


def cmd_bench(args):
    from kerasrv import bench

    if args.report:
        for path in bench.report(args.out):
            print(path)
        return
    bench.run(args.names, quick=args.quick, out=args.out, update=args.update)
    print(args.out)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


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
    p.add_argument("--precision", default="float32", choices=PRECISIONS)
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
        help="re-measure the named entries into the existing results JSON, keeping the others",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="write BENCHMARKS.md and chart.png beside the results JSON",
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


def _user_errors():
    """The exceptions that mean the user's input or environment, not a bug of ours: kerasrv's
    own (`kerasrv.errors`) and what the file system refuses."""
    from kerasrv.errors import KerasrvError

    return (KerasrvError, OSError)


def _load_tensorflow(verbose):
    """Imports TensorFlow with its C++ start-up lines (oneDNN, CPU features, absl's "before
    InitializeLog" notice) and later INFO and WARNING logs silenced, unless `verbose` or the
    user set TF_CPP_MIN_LOG_LEVEL. The start-up lines are written before TensorFlow reads any
    setting, so the process's stderr is pointed at /dev/null while it loads."""
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)  # tfds' deprecation notes, say
    tensorflow.get_logger().setLevel("ERROR")


_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def one_line(error):
    """An error's message as one line, without the terminal colour codes Keras adds."""
    return " ".join(_COLOUR.sub("", str(error)).split()) or type(error).__name__


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    _load_tensorflow(args.verbose)
    from kerasrv import zoo

    before = warnings.showwarning

    def shown(message, category, filename, lineno, file=None, line=None):
        # kerasrv's own notes (weights adapted to an input shape) as one line, not source
        if issubclass(category, zoo.WeightsAdaptedWarning):
            print(f"kerasrv: note: {message}", file=file or sys.stderr)
        else:
            before(message, category, filename, lineno, file, line)

    warnings.showwarning = shown
    try:
        args.run(args)
    except Exception as error:
        if os.environ.get("KERASRV_DEBUG"):
            raise
        from kerasrv.errors import TrainingDiverged

        if isinstance(error, TrainingDiverged):
            print(f"kerasrv {args.command}: {error}", file=sys.stderr)
            return 1
        if isinstance(error, _user_errors()):
            print(f"kerasrv {args.command}: error: {one_line(error)}", file=sys.stderr)
            return 2
        raise
    finally:
        warnings.showwarning = before
    return 0


if __name__ == "__main__":
    sys.exit(main())
