"""Declared parameter constraints, checked once (after scikit-learn's ``_parameter_constraints``).

Each method lists, for every constructor parameter, the values it accepts::

    parameter_constraints = {
        "lambda_": [Interval(float, 0, None, closed="neither")],
        "kernel": [Options("linear", "rbf")],
        "n_anchors": [Interval(int, 1, None)],
        "pca_dim": [None, Interval(int, 1, None)],
        "checkpoint_dir": [None, str],
    }

A value is valid when it satisfies any entry of its list. ``validate_params`` turns the first
violation into one :class:`ParameterError` naming the method, the parameter, the value and what
is accepted, e.g. ``eszsl: lambda_=nan is invalid; expected a finite float in (0, inf)``. NaN and
infinity never satisfy an interval; booleans are not integers here (``n_anchors=True`` is refused).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from .errors import ZSLError


class ParameterError(ZSLError, ValueError):
    """A constructor parameter has a value outside its declared constraints."""


class Interval:
    """Numbers of ``kind`` (int or float) between ``lo`` and ``hi`` (None = unbounded), finite.

    ``closed``: "both" (default), "left", "right" or "neither" says which ends are included.
    ``float`` intervals accept integers too (``lambda_=1``).
    """

    def __init__(self, kind: type, lo: float | None, hi: float | None, *, closed: str = "both"):
        if kind not in (int, float):
            raise TypeError("Interval kind must be int or float")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be both/left/right/neither, got {closed!r}")
        self.kind, self.lo, self.hi, self.closed = kind, lo, hi, closed

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, Integral):
            return False
        if self.kind is float and not isinstance(value, Real):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v < self.lo or (v == self.lo and self.closed in ("right", "neither"))):
            return False
        if self.hi is not None and (v > self.hi or (v == self.hi and self.closed in ("left", "neither"))):
            return False
        return True

    def describe(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.lo is not None else "("
        right = "]" if self.closed in ("both", "right") and self.hi is not None else ")"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        name = "an integer" if self.kind is int else "a finite float"
        return f"{name} in {left}{lo}, {hi}{right}"


class Options:
    """One of a fixed set of values (strings, numbers or booleans)."""

    def __init__(self, *values: Any):
        self.values = values

    def accepts(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def _accepts(constraint, value) -> bool:
    if constraint is None:
        return value is None
    if constraint is bool:
        return isinstance(value, bool)
    if constraint is str:
        return isinstance(value, str)
    if constraint is object:
        return True
    if isinstance(constraint, (Interval, Options)):
        return constraint.accepts(value)
    raise TypeError(f"unknown parameter constraint {constraint!r}")


def _describe(constraint) -> str:
    if constraint is None:
        return "None"
    if constraint is bool:
        return "True or False"
    if constraint is str:
        return "a string"
    if constraint is object:
        return "any object"
    return constraint.describe()


def validate_params(owner: str, params: dict[str, Any], constraints: dict[str, list]) -> None:
    """Raise :class:`ParameterError` for the first parameter whose value no constraint accepts.

    Every key of ``params`` must be declared in ``constraints`` (an undeclared parameter is a bug
    in the method, reported as such).
    """
    for name, value in params.items():
        if name not in constraints:
            raise TypeError(f"{owner}: parameter {name!r} has no declared constraint")
        allowed = constraints[name]
        if not any(_accepts(c, value) for c in allowed):
            expected = " or ".join(_describe(c) for c in allowed)
            raise ParameterError(f"{owner}: {name}={value!r} is invalid; expected {expected}")


__all__ = ["Interval", "Options", "ParameterError", "validate_params"]
