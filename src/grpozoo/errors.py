"""Errors that mean bad input rather than a bug.

The command line shows these as one line without a traceback; every other exception is a bug
and keeps its traceback. They subclass ``ValueError``, as the checks they replace did.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UserInputError(ValueError):
    """Configuration or input the run cannot use; the message names the culprit and the fix."""


class ConfigError(UserInputError):
    """A configuration value or key that cannot be used; the message says which and how to fix it."""


class DataError(UserInputError):
    """A data file or row that cannot be used; the message names the file, the row or line, and
    what was expected."""


class MachineSetupError(UserInputError):
    """Something this machine lacks for the run (a system package, a kernel feature); the message
    names what to install or allow."""


class EngineError(RuntimeError):
    """The generation engine could not sample or take new weights (a server down, slow or answering
    nonsense); the message names the engine's address and what to check. Not a bug: the command
    line shows it as one line, after the last checkpoint is secured."""


@contextmanager
def checking_input() -> Iterator[None]:
    """Mark the set-up of a command (resolving the configuration, building the model, task,
    components and loggers) as the check of what the user gave: a ``ValueError``, ``OSError`` or
    ``ImportError`` raised there (a bad parameter, a missing file or package) becomes a
    :class:`UserInputError` with the same message. Other exceptions keep their type."""
    try:
        yield
    except UserInputError:
        raise
    except (ValueError, OSError, ImportError) as error:
        raise UserInputError(str(error)) from error
