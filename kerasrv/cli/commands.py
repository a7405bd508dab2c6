"""Each `kerasrv` command: a thin layer over the public calls a Python user makes (the zoo,
`kerasrv.training.train`, `kerasrv.evaluation`, `kerasrv.export_model`, `kerasrv.predict`,
`kerasrv.bench`), printing their results. Each imports what it needs when it runs."""

import dataclasses
import functools
import json
import shlex
import sys
from pathlib import Path

from kerasrv.progress import Progress

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


def cmd_ship(args):
    from kerasrv import training

    directory = training.ship(args.directory)
    print(f"shipped {args.directory} as {directory}")
    print(f"next: kerasrv export {directory.name} --format <the formats recorded> --record")


def cmd_evaluate(args):
    from kerasrv import evaluation, zoo

    model, card = zoo.resolve(args.target)
    directory = _recorded_directory(args) if args.record else None  # refused before measuring
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
    if "per_frame_iou" in result:  # a clip's masks, frame by frame
        rows = {"reading the clip": result["per_frame_iou"]}
        if "frame_alone" in result:
            rows["each frame alone"] = result["frame_alone"]["per_frame_iou"]
        print(f"  mean IoU of frames 1..{len(result['per_frame_iou'])}:")
        for label, values in rows.items():
            print(f"    {label}  {' '.join(f'{v:.4f}' for v in values)}")
    for path in result.get("pictures", []):
        print(f"picture: {path}")
    if directory is not None:
        command = shlex.join(["kerasrv", "evaluate", str(args.target)])
        print(f"recorded in {evaluation.record(directory, card, result, command)}")


def _recorded_directory(args):
    """Where `evaluate --record` writes: the card of a run directory or of a shipped entry."""
    from kerasrv import artifacts
    from kerasrv.errors import UsageError

    if args.data or args.split != "test":
        raise UsageError(
            "--record writes an evaluation of the model's own test split; "
            f"got {'--data ' + args.data if args.data else '--split ' + args.split}"
        )
    target = Path(args.target)
    if target.is_dir():
        return target
    if target.suffix == ".keras":
        raise UsageError(f"--record needs a model with a card (a zoo name or a run), got {target}")
    directory = artifacts.shipped(args.target)
    if directory is None:
        raise UsageError(f"--record: {args.target} ships no card to write into")
    return directory


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
    if args.speed_only and not args.precision:
        from kerasrv.errors import UsageError

        raise UsageError("--speed-only leaves out the bfloat16 quality pairs: give --precision")
    if args.precision:
        from kerasrv.bench import precision

        out = Path(args.out).parent / precision.RESULTS.name
        log = functools.partial(print, file=sys.stderr)
        pairs = {} if args.speed_only else precision.QUALITY
        precision.run(args.names, out=out, log=log, update=args.update, pairs=pairs)
        print(out)
        return
    bench.run(args.names, quick=args.quick, out=args.out, update=args.update)
    print(args.out)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
