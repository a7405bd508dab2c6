"""`kerasrv` on the command line: list, info, data show (and the commands later issues add).

Errors a user can cause (unknown names, bad data, bad arguments) print one line and exit with
status 2, without a traceback; KERASRV_DEBUG=1 shows the traceback instead.
"""

import argparse
import json
import os
import sys

import kerasrv


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
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if not names:
        print(f"(no entry matches {args.pattern!r})")


def cmd_info(args):
    print(json.dumps(kerasrv.zoo.info(args.name), indent=2))


def cmd_data_show(args):
    from kerasrv.data import show

    path = show.write_grid(args.name, split=args.split, out=args.out, count=args.count)
    print(path)


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
        from kerasrv.zoo import UnknownModelError, WeightsError

        if isinstance(error, (UnknownModelError, WeightsError, DatasetError, ValueError)):
            print(f"kerasrv {args.command}: error: {error}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
