"""Exceptions that the command line turns into a one-line message and a non-zero exit."""
from __future__ import annotations


class ZSLError(Exception):
    """A user-facing error: the message names the file or input and how to fix it."""


class DataError(ZSLError):
    """Input data is missing, corrupt, of the wrong shape, or inconsistent."""


class NotFittedError(ZSLError, AttributeError):
    """A method was used before ``fit``."""


def require_extra(module: str, extra: str):
    """Import an optional dependency or raise an error naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ZSLError(f"{module!r} is needed for this; install it with: pip install 'zsl[{extra}]'") from None
