"""The errors kerasrv raises for what a user gave it; imports nothing.

Every error a user can cause (an unknown name, a damaged file, a value out of range, bad data)
is a `KerasrvError`, and keeps the builtin base a Python caller would catch (`ValueError`,
`KeyError`, ...). The command line prints these as one line with exit status 2; anything else
is a bug of ours or of a library, and it prints the traceback.

Example:
    >>> try:
    ...     kerasrv.zoo.load("cnn_lsmt")
    ... except kerasrv.errors.KerasrvError as error:   # also a KeyError
    ...     print(error)
    unknown model 'cnn_lsmt'; did you mean cnn_lstm?
"""


class KerasrvError(Exception):
    """The base of every error a user's input or environment causes (one line on the CLI)."""


class UsageError(KerasrvError, ValueError):
    """An argument, option or recipe value that cannot be used; the message says what was
    expected and what was given."""


class UnknownModelError(KerasrvError, KeyError):
    """An entry or architecture name the zoo does not know; the message lists the closest names."""

    def __str__(self):
        return str(self.args[0])


class WeightsError(KerasrvError, ValueError):
    """Shipped or given weights that cannot be loaded (missing, corrupt, or of another model)."""


class CardError(KerasrvError, ValueError):
    """A card.json that is missing, not JSON, or not a card; the message names the file."""


class DatasetError(KerasrvError, RuntimeError):
    """A dataset or a user's file that is missing, truncated or not what it should be."""


class RunExistsError(KerasrvError, ValueError):
    """A finished run is where a new one would go; nothing was changed."""


class TrainingDiverged(KerasrvError, RuntimeError):
    """The loss became NaN or infinite; the message names the last good checkpoint."""
