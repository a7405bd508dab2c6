"""A progress bar with the time left, for commands made of a few long steps (an export's formats,
a benchmark's entries); training's epochs have Keras' own bar.

    [######--------------] 2/6 tflite · 1 min 20 s so far · about 3 min left

It goes to stderr, a line a step (a log keeps every line; stdout keeps only the results). The
time left is the mean step so far times the steps left, as Keras' bar estimates an epoch's.
"""

import sys
import time

WIDTH = 20  # characters of the bar


def duration(seconds):
    """ "45 s", "3 min 20 s", "1 h 05 min"."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts the steps of a command and prints each as it starts.

    Args:
        total: the number of steps.
        file: where the lines go (default stderr).
        clock: seconds, monotonic (a test passes its own).

    Example:
        >>> progress = Progress(3)
        >>> for name in ("saved_model", "tflite", "parity"):
        ...     progress.step(name)   # prints the bar, then the step runs
    """

    def __init__(self, total, file=None, clock=time.monotonic):
        self.total = max(int(total), 1)
        self.done = 0
        self.file = file
        self.clock = clock
        self.started = clock()

    def line(self, what):
        """The line for the step about to start, `what`, after `self.done` finished steps."""
        elapsed = self.clock() - self.started
        filled = WIDTH * self.done // self.total
        parts = [f"[{'#' * filled}{'-' * (WIDTH - filled)}] {self.done + 1}/{self.total} {what}"]
        if self.done:
            parts.append(f"{duration(elapsed)} so far")
            left = elapsed / self.done * (self.total - self.done)
            parts.append(f"about {duration(left)} left")
        return " · ".join(parts)

    def advance(self, what):
        """The line for the step starting now, `what`; the previous step is counted done."""
        line = self.line(what)
        self.done = min(self.done + 1, self.total)
        return line

    def step(self, what):
        """Prints the line for the step starting now; the previous step is counted done."""
        print(self.advance(what), file=self.file or sys.stderr, flush=True)

    def finish(self, what="done"):
        """The last line: the whole bar and the time taken."""
        elapsed = self.clock() - self.started
        self.done = self.total
        line = f"[{'#' * WIDTH}] {self.total}/{self.total} {what} in {duration(elapsed)}"
        print(line, file=self.file or sys.stderr, flush=True)
