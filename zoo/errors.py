"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

import difflib
import traceback
from collections.abc import Iterable
from pathlib import Path


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """``"; did you mean 'x'?"`` for the closest candidates, or ``""``: the hint of every unknown-name error."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class ZooError(Exception):
    """A user-facing error: bad input, unknown name, missing file. Never a bug."""


class UnknownModelError(ZooError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginConflictError(ZooError):
    """Two plugin distributions registered the same model name."""


class PluginWarning(UserWarning):
    """A plugin failed to load or to register; every other model still works."""


def one_line(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame, on one line; a ZooError's message alone."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ZooError):  # a message for the user, already saying where the problem is
        return text
    return f"{type(exc).__name__}: {text}{where}"
