"""`kerasrv` on the command line: list, info, train, evaluate, export, bench, data show.

Errors a user can cause (unknown names, bad data, bad arguments) print one line and exit with
status 2, without a traceback; KERASRV_DEBUG=1 shows the traceback instead.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import kerasrv


def training_choices(name):
    from kerasrv import training

    return getattr(training, name)


def _format_metrics(metrics):
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))


def cmd_list(args):
    names = kerasrv.zoo.list_models(args.pattern)
    rows = [("name", "task", "input", "params", "metrics")]
    for name in names:
        card = kerasrv.zoo.info(name)
        rows.append(
            (
                name,
                card["task"],
                "×".join(str(d) for d in card["input_shape"]),
                f"{card['params']:,}",
                _format_metrics(card["metrics"]) or "—",
            )
        )
    _table(rows)
    if not names:
        print(f"(no entry matches {args.pattern!r})")


def cmd_info(args):
    print(json.dumps(kerasrv.zoo.info(args.name), indent=2))


def cmd_data_show(args):
    from kerasrv import pictures

    path = pictures.dataset_grid(args.name, split=args.split, out=args.out, count=args.count)
    print(path)


def cmd_train(args):
    from kerasrv import training

    if args.record_baseline and args.frames != 1:
        raise ValueError(
            "--record-baseline records a single-frame baseline: use it with --frames 1"
        )
    record = training.train_entry(
        args.name,
        epochs=args.epochs,
        batch_size=args.batch_size,
        out=args.out,
        strategy=args.strategy,
        precision=args.precision,
        jit_compile=args.jit_compile,
        seed=args.seed,
        learning_rate=args.learning_rate,
        patience=args.patience,
        frames=args.frames,
        train_split=args.train_split,
        validation_split=args.validation_split,
    )
    if record is not None:  # the chief reports; other workers only train
        print(json.dumps({k: record[k] for k in ("name", "metrics", "evaluation")}, indent=1))
        print(f"artifacts: {Path(args.out) / record['training']['run']}")
        if args.record_baseline:
            print(f"recorded in {training.record_baseline(record)}")


def cmd_evaluate(args):
    from kerasrv import evaluation

    model, card = load_for_evaluation(args.target)
    out = Path(args.out) / card["name"] if args.out else None
    result = evaluation.evaluate(model, card, args.split, batch_size=args.batch_size, out_dir=out)
    width = max(len(k) for k in result["metrics"])
    print(f"{card['name']} on {result['split']} ({result['examples']} examples)")
    for key, value in result["metrics"].items():
        print(f"  {key.ljust(width)}  {value:.4f}")
    for path in result.get("pictures", []):
        print(f"picture: {path}")


def cmd_export(args):
    from kerasrv import export

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    result = export.export(args.target, formats, args.out, parity_samples=args.parity_samples)
    print(f"exported {args.target} to {result['directory']}")
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
    _table(rows)
    if report:
        print(
            f"parity on {report['samples']} test samples; agreement = {report['agreement_measure']}"
        )
    if args.record:
        path = export.record_in_card(args.target, result)
        print(f"recorded in {path}")


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


def load_for_evaluation(target):
    """(model, card) for a zoo name, or for a directory written by `kerasrv train`."""
    path = Path(target)
    if path.is_dir() and (path / kerasrv.zoo.CONFIG_FILE).exists():
        config = json.loads((path / kerasrv.zoo.CONFIG_FILE).read_text())
        shape = config["builder_args"]["input_shape"]
        model = kerasrv.zoo.load(
            config["name"], weights=path / kerasrv.zoo.WEIGHTS_FILE, input_shape=shape
        )
        return model, {**kerasrv.zoo.info(config["name"]), "input_shape": shape}
    return kerasrv.zoo.load(target), kerasrv.zoo.info(target)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasrv", description="A model zoo of recurrent vision models for Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("list", help="the zoo's entries as a table")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. '*lstm*'")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser("info", help="an entry's card as JSON")
    p.add_argument("name", help="entry or architecture name")
    p.set_defaults(run=cmd_info)

    p = commands.add_parser("train", help="train an entry and write its artifacts")
    p.add_argument("name", help="entry or architecture name")
    p.add_argument("--epochs", type=int, help="default: the entry's recipe")
    p.add_argument("--batch-size", type=int, help="global batch size; default: the recipe's")
    p.add_argument("--out", default="runs", help="artifacts go to OUT/<entry>/ (default runs)")
    p.add_argument("--strategy", default="auto", choices=training_choices("STRATEGIES"))
    p.add_argument("--precision", default="float32", choices=training_choices("PRECISIONS"))
    p.add_argument("--jit-compile", action="store_true", help="compile train steps with XLA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, help="peak rate of the cosine schedule")
    p.add_argument("--patience", type=int, help="EarlyStopping patience (default: none)")
    p.add_argument("--frames", type=int, help="video entries: train on the first N frames only")
    p.add_argument(
        "--record-baseline",
        action="store_true",
        help="with --frames 1: write the metrics into the shipped entry's card as its "
        "single-frame baseline",
    )
    p.add_argument("--train-split", help="tfds split to train on (default train[:90%%])")
    p.add_argument("--validation-split", help="split that picks the best epoch (train[90%%:])")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("evaluate", help="measure an entry on its test split")
    p.add_argument("target", help="entry name, or a directory written by `kerasrv train`")
    p.add_argument("--split", default="test", help="tfds split (default test)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="eval", help="pictures go to OUT/<entry>/ ('' for none)")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("export", help="SavedModel and TFLite files, checked against Keras")
    p.add_argument("target", help="entry name or a .keras file of a zoo architecture")
    p.add_argument(
        "--format",
        default="saved_model,tflite",
        help="comma-separated: saved_model, tflite, tflite_dynamic, tflite_float16, "
        "tflite_int8, onnx (default saved_model,tflite)",
    )
    p.add_argument("--out", default="export", help="export root (default export/)")
    p.add_argument(
        "--parity-samples",
        type=int,
        default=1000,
        help="real test samples for parity.json (0 skips it)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="write the parity summary into the shipped entry's card.json",
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
        help="write BENCHMARKS.md and bench/chart.png from the results JSON",
    )
    p.set_defaults(run=cmd_bench)

    p = commands.add_parser("data", help="the embedded datasets")
    data = p.add_subparsers(dest="data_command", required=True)
    p = data.add_parser("show", help="write a PNG grid of examples")
    p.add_argument("name", help="tfds name, e.g. moving_fashion_mnist/small")
    p.add_argument("--split", default="test")
    p.add_argument("--count", type=int, default=8, help="examples to show")
    p.add_argument("--out", default=None, help="PNG path (default: <name>-<split>.png)")
    p.set_defaults(run=cmd_data_show)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except Exception as error:
        if os.environ.get("KERASRV_DEBUG"):
            raise
        from kerasrv.data.idx import DatasetError
        from kerasrv.training import TrainingDiverged
        from kerasrv.zoo import UnknownModelError, WeightsError

        if isinstance(error, TrainingDiverged):
            print(f"kerasrv {args.command}: {error}", file=sys.stderr)
            return 1
        if isinstance(
            error, (UnknownModelError, WeightsError, DatasetError, ValueError, FileNotFoundError)
        ):
            print(f"kerasrv {args.command}: error: {error}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
