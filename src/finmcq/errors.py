"""Errors finmcq shows to its user.

A ``FinmcqError`` is meant to be printed as is (the CLI prints ``str(error)`` and exits with
code 2), so its text must be one readable paragraph: what is wrong, where, and what to do.
The original exception, if any, stays available as ``__cause__`` for debugging.
"""

from __future__ import annotations


class FinmcqError(Exception):
    """Base class of every error finmcq reports to its user.

    Renders as ``"{what} ({where}). {fix}"``; ``where`` and ``fix`` are optional.
    """

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        # Pass everything to Exception so that the error pickles and repr()s faithfully.
        super().__init__(what, where, fix)
        self.what = what
        self.where = where
        self.fix = fix

    def __str__(self) -> str:
        text = self.what.rstrip().rstrip(".")
        if self.where:
            text += f" ({self.where})"
        text += "."
        if self.fix:
            fix = self.fix.strip()
            text += " " + (fix if fix.endswith((".", "!", "?")) else fix + ".")
        return text


class InputError(FinmcqError):
    """The input data (a dataset, a file, a folder) cannot be used as given."""


class ConfigError(FinmcqError):
    """The settings (command-line options, environment, config file) are invalid."""
