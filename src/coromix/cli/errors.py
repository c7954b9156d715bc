"""`FitError`: a problem with the inputs of ``coromix fit``, reported as one line (exit code 2)."""

from __future__ import annotations


class FitError(Exception):
    """A problem with the model file, the data or the model; the message is one line.

    ``details``: the user's traceback (frames of the model file only), printed before the message.

    Example:

    >>> err = FitError("data file d.csv not found")
    >>> str(err), err.details
    ('data file d.csv not found', '')
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details
