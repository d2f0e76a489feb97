"""The method contract every zero-shot method implements (scikit-learn estimator conventions).

Shapes used throughout:
    X                 (n, d) float32 visual features
    y                 (n,)   int64 class ids in [0, C)
    class_embeddings  (C, k) float32 description of *every* class (seen and unseen)
    seen_classes      (S,)   int64 ids of the classes that have training images
    candidates        (m,)   int64 ids of the classes a prediction may choose from

``__init__`` stores keyword-only hyperparameters unchanged; ``fit`` computes and sets attributes
ending in ``_``; ``decision_function(X, candidates)`` returns (n, m) scores where larger means
more likely; ``predict`` returns ``candidates[argmax]``. Hashing methods also implement
``encode(X) -> (n, n_bits // 8) uint8`` packed codes.

Class attributes a method declares:
    name          registry name (``create_method("name.preset")``)
    tags          family, supports_gzsl, retrieval, stochastic
    presets       named constructor keywords, by axis: ``presets`` holds "default" (required, = the
                  class defaults) and budget/variant presets (``tiny``, ``quick``, ...);
                  ``dataset_presets`` the values chosen on one dataset's validation classes (``flo``,
                  ``awa1``; the protocol uses them on that dataset); ``ablations`` a paper's ablation
                  rows. ``create_method("name.X")`` looks X up in all three (names are unique).
    param_grid    small grid searched on validation classes by the protocol (may be empty)
    search_space  Optuna space ``{param: ("float", lo, hi, log) | ("int", lo, hi) | ("categorical", [...])}``
    parameter_constraints  accepted values of every constructor parameter (:mod:`zsl.params`),
                  checked by ``fit`` (and by ``create_method``) with a one-line error
    runtime_params  parameters that do not change a fit's result (progress bars, threads, the
                  checkpoint folder): left out of fit-cache keys and run identities
    gzsl_objective  what GZSL model selection maximises on validation: "H" (calibrated, default)
                  or "H_uncalibrated" (methods whose GZSL scores are meant to be balanced as they are)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from .errors import DataError, NotFittedError, ZSLError
from .params import validate_params


class ZSLMethod(BaseEstimator):
    name: ClassVar[str] = ""
    tags: ClassVar[dict[str, Any]] = {
        "family": "embedding",
        "supports_gzsl": True,
        "retrieval": False,
        "stochastic": False,
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    dataset_presets: ClassVar[dict[str, dict[str, Any]]] = {}
    ablations: ClassVar[dict[str, dict[str, Any]]] = {}
    param_grid: ClassVar[dict[str, list]] = {}
    search_space: ClassVar[dict[str, tuple]] = {}
    parameter_constraints: ClassVar[dict[str, list]] = {}
    runtime_params: ClassVar[tuple[str, ...]] = ()
    gzsl_objective: ClassVar[str] = "H"

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's parameter names (scikit-learn's ``get_params`` keys), sorted."""
        return cls._get_param_names()

    @classmethod
    def all_presets(cls) -> dict[str, dict[str, Any]]:
        """Every named preset of the three axes (presets, dataset presets, ablations)."""
        return {**cls.presets, **cls.dataset_presets, **cls.ablations}

    # -- contract -------------------------------------------------------------------------
    def fit(self, X, y, class_embeddings, seen_classes):  # pragma: no cover - abstract
        raise NotImplementedError

    def decision_function(self, X, candidates):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, X, candidates) -> np.ndarray:
        candidates = np.asarray(candidates, dtype=np.int64)
        scores = self.decision_function(X, candidates)
        return candidates[np.argmax(scores, axis=1)]

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted method to ``path`` as arrays + JSON (:mod:`zsl.persist`), atomically.

        No pickle: :meth:`load` rebuilds only zsl's own classes, standard ``torch.nn`` layers and
        the scikit-learn estimators listed in :mod:`zsl.persist`, and never runs code named by the
        file. A method holding something else (a user-supplied classifier, a function) is refused
        here with a one-line error, so a file that could not be loaded is never written.
        """
        from . import persist

        return persist.dump(self, path, owner=self.name or type(self).__name__,
                            meta={"kind": "zsl-method", "method": self.name, "class": type(self).__qualname__,
                                  "params": {k: _describe_param(v) for k, v in self.get_params(deep=False).items()}})

    @classmethod
    def load(cls, path: str | os.PathLike) -> ZSLMethod:
        """Rebuild a method written by :meth:`save`; refuses pickles and anything else with one line.

        The loaded method's parameters are validated and, when it is fitted, it scores (or
        encodes) one zero feature vector, so a damaged or tampered file fails here with a clear
        error instead of later with a traceback.
        """
        from . import persist

        path = Path(path)
        if not path.exists():
            raise ZSLError(f"{path}: no saved model there")
        obj = persist.load(path)
        if not isinstance(obj, ZSLMethod):
            raise ZSLError(f"{path}: contains a {type(obj).__name__}, not a zsl method")
        if not isinstance(obj, cls):
            raise ZSLError(f"{path}: contains a {type(obj).__name__} ({obj.name}), not a {cls.__name__}")
        try:
            obj.validate_params()
        except ZSLError as exc:
            raise ZSLError(f"{path}: saved parameters are invalid: {exc}") from None
        except TypeError as exc:  # an undeclared parameter in the file
            raise ZSLError(f"{path}: {exc}") from None
        _smoke_check(obj, path)
        return obj

    # -- helpers for implementations ------------------------------------------------------
    def _check_is_fitted(self) -> None:
        params = self.get_params(deep=False)
        fitted = [k for k in vars(self) if k.endswith("_") and not k.startswith("_") and k not in params]
        if not fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet; call fit(X, y, class_embeddings, seen_classes) first"
            )

    def validate_params(self) -> None:
        """Check every constructor parameter against ``parameter_constraints`` (one-line error)."""
        validate_params(self.name or type(self).__name__, self.get_params(deep=False), self.parameter_constraints)

    def _validate_fit(self, X, y, class_embeddings, seen_classes):
        """Check parameters and fit inputs; returns float32 X, int64 y, float32 S, int64 seen."""
        self.validate_params()
        X = check_features(X)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise DataError(f"y must be 1-d with one label per row of X: got shape {y.shape} for X {X.shape}")
        y = y.astype(np.int64)
        S = np.asarray(class_embeddings, dtype=np.float32)
        if S.ndim != 2:
            raise DataError(f"class_embeddings must be (n_classes, k); got shape {S.shape}")
        if not np.isfinite(S).all():
            bad = np.where(~np.isfinite(S).all(1))[0]
            raise DataError(
                f"class_embeddings has NaN/inf rows for classes {bad[:10].tolist()}: every class needs a description"
            )
        seen = np.unique(np.asarray(seen_classes, dtype=np.int64))
        if len(seen) == 0 or seen.min() < 0 or seen.max() >= len(S):
            raise DataError(f"seen_classes must be ids in [0, {len(S)}); got {seen[:10].tolist()}")
        if y.min() < 0 or y.max() >= len(S):
            raise DataError(f"labels must be class ids in [0, {len(S)}); got range [{y.min()}, {y.max()}]")
        extra = np.setdiff1d(np.unique(y), seen)
        if len(extra):
            raise DataError(f"training labels {extra[:10].tolist()} are not in seen_classes")
        return X, y, S, seen

    def _validate_predict(self, X, candidates):
        self._check_is_fitted()
        X = check_features(X)
        candidates = np.asarray(candidates, dtype=np.int64)
        if candidates.ndim != 1 or len(candidates) == 0:
            raise DataError("candidates must be a non-empty 1-d array of class ids")
        n_classes = getattr(self, "n_classes_", None)
        if n_classes is not None and (candidates.min() < 0 or candidates.max() >= n_classes):
            raise DataError(
                f"candidates must be class ids in [0, {n_classes}); got {candidates.min()}..{candidates.max()}"
            )
        n_features = getattr(self, "n_features_in_", None)
        if n_features is not None and X.shape[1] != n_features:
            raise DataError(f"X has {X.shape[1]} features but the method was fitted on {n_features}")
        return X, candidates


def _describe_param(v):
    return v if v is None or isinstance(v, (bool, int, float, str)) else type(v).__name__


def _smoke_check(method: ZSLMethod, path: Path) -> None:
    """Run a loaded, fitted method on one zero vector; any failure means the file is not a working model."""
    params = method.get_params(deep=False)
    fitted = [k for k in vars(method) if k.endswith("_") and not k.startswith("_") and k not in params]
    d = getattr(method, "n_features_in_", None)
    n_classes = getattr(method, "n_classes_", None)
    if not fitted:
        return
    limit = 1 << 24  # no real feature or class count comes near; a crafted one must not allocate gigabytes here
    for name, value in (("n_features_in_", d), ("n_classes_", n_classes)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit):
            raise ZSLError(f"{path}: the saved model has {name}={value!r}; the file is damaged or was tampered with")
    if d is None:
        return
    X = np.zeros((1, d), np.float32)
    try:
        if method.tags.get("retrieval"):
            out = method.encode(X)
        else:
            if n_classes is None:
                raise DataError("no n_classes_")
            out = method.decision_function(X, np.arange(n_classes))
        if not isinstance(out, np.ndarray) or len(out) != 1:
            raise DataError(f"got {type(out).__name__} {getattr(out, 'shape', '')}")
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the file does not hold a working model
        raise ZSLError(f"{path}: the saved {method.name or type(method).__name__} model does not run "
                       f"({type(exc).__name__}: {str(exc)[:150]}); the file is damaged or was tampered with") from None


def check_features(X) -> np.ndarray:
    """Return X as a C-contiguous float32 (n, d) array, or raise a DataError naming the problem."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataError(f"features must be a 2-d (n_samples, n_features) array; got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataError("features are empty (0 samples)")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        rows = np.where(~np.isfinite(X).all(1))[0]
        raise DataError(
            f"features contain NaN/inf in {len(rows)} rows (first: {rows[:5].tolist()}); clean or re-extract them"
        )
    return X
