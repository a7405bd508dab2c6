"""`kerasrv` on the command line: list, info, train, evaluate, predict, export, bench, data show.

Every command that takes a model takes the same three kinds of target: a zoo name, a run
directory written by `kerasrv train`, or a `.keras` file (`kerasrv.zoo.resolve`).

Errors a user can cause (unknown names, bad data, bad arguments, a file system that refuses)
print one line on stderr and exit with status 2, without a traceback; an internal error is a
traceback and status 1. KERASRV_DEBUG=1 shows the traceback of a user error too.

    __init__   `main`: parse, load TensorFlow quietly, run, turn user errors into one line
    parser     the arguments of every command, checked where they are read
    commands   each command, a thin layer over the public calls a Python user makes
"""

import os
import re
import sys
import warnings

from kerasrv.cli.parser import build_parser

# Only the standard library at the top: TensorFlow, Keras and the zoo load inside the commands
# that need them (quietly: `load_tensorflow`), so `kerasrv --help` answers at once.


def _user_errors():
    """The exceptions that mean the user's input or environment, not a bug of ours: kerasrv's
    own (`kerasrv.errors`) and what the file system refuses."""
    from kerasrv.errors import KerasrvError

    return (KerasrvError, OSError)


def load_tensorflow(verbose):
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
    load_tensorflow(args.verbose)
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
