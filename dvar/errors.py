"""dvar's own error type."""

from __future__ import annotations


class DvarError(Exception):
    """A user-facing error (a configuration, data or setup mistake) printed as one line by
    the CLI; any other exception is a bug and propagates as a traceback."""


class UnknownName(DvarError, KeyError):
    """An unknown task, objective, decoder or other registered name."""

    def __str__(self) -> str:  # KeyError's would be the quoted repr
        return str(self.args[0]) if self.args else ""


class TextError(DvarError, ValueError):
    """A task text the tokenizer cannot encode (a character outside its vocabulary)."""
