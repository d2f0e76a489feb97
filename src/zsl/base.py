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
    presets       named constructor keywords; "default" is required
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
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from .errors import DataError, NotFittedError, ZSLError
from .io import atomic_write
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
    param_grid: ClassVar[dict[str, list]] = {}
    search_space: ClassVar[dict[str, tuple]] = {}
    parameter_constraints: ClassVar[dict[str, list]] = {}
    runtime_params: ClassVar[tuple[str, ...]] = ()
    gzsl_objective: ClassVar[str] = "H"

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
        """Pickle the fitted method to ``path`` atomically (torch modules pickle with it)."""
        path = Path(path)
        with atomic_write(path, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ZSLMethod":
        path = Path(path)
        if not path.is_file():
            raise ZSLError(f"{path}: no saved model there")
        try:
            with open(path, "rb") as fh:
                obj = pickle.load(fh)
        except Exception as exc:  # corrupt or foreign file
            raise ZSLError(f"{path}: not a saved zsl model ({type(exc).__name__}: {exc})") from None
        if not isinstance(obj, ZSLMethod):
            raise ZSLError(f"{path}: contains a {type(obj).__name__}, not a zsl method")
        return obj

    # -- helpers for implementations ------------------------------------------------------
    def _check_is_fitted(self) -> None:
        params = self.get_params(deep=False)
        fitted = [k for k in vars(self) if k.endswith("_") and not k.startswith("_") and k not in params]
        if not fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(X, y, class_embeddings, seen_classes) first")

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
            raise DataError(f"class_embeddings has NaN/inf rows for classes {bad[:10].tolist()}: every class needs a description")
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
            raise DataError(f"candidates must be class ids in [0, {n_classes}); got {candidates.min()}..{candidates.max()}")
        n_features = getattr(self, "n_features_in_", None)
        if n_features is not None and X.shape[1] != n_features:
            raise DataError(f"X has {X.shape[1]} features but the method was fitted on {n_features}")
        return X, candidates


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
        raise DataError(f"features contain NaN/inf in {len(rows)} rows (first: {rows[:5].tolist()}); clean or re-extract them")
    return X
