"""Kernel feature maps shared by the closed-form baselines (ESZSL, SAE) and hashing (ZSH).

``RBFAnchors``: phi(x) = exp(-||x - a_j||^2 / (2 sigma^2)) on m anchors a_j drawn from the
training features, sigma^2 = mean squared distance from samples to anchors (the usual heuristic
of kernelised hashing, Liu et al. 2012). The map is centred with the training mean so linear
models need no bias term.

The map is a plain estimator: ``fit`` draws anchors and the bandwidth, ``transform`` evaluates
the kernel; nothing is kept between fits (a validation grid that refits ESZSL recomputes the map,
which the protocol's explicit fit cache avoids for identical fits).
"""
from __future__ import annotations

import numpy as np


def sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances between rows of A (n, d) and B (m, d), float32."""
    a2 = np.einsum("ij,ij->i", A, A)[:, None]
    b2 = np.einsum("ij,ij->i", B, B)[None, :]
    D = a2 + b2 - 2.0 * (A @ B.T)
    np.maximum(D, 0, out=D)
    return D


class RBFAnchors:
    def __init__(self, n_anchors: int = 1000, random_state: int | None = 0):
        self.n_anchors = n_anchors
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> "RBFAnchors":
        self._fit(X)
        return self

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """``fit(X).transform(X)`` with one kernel evaluation of X (the mean needs it anyway)."""
        K = self._fit(X)
        K -= self.mean_
        return K

    def _fit(self, X: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.random_state)
        m = min(self.n_anchors, len(X))
        self.anchors_ = X[np.sort(rng.choice(len(X), m, replace=False))].astype(np.float32)
        sample = X[rng.choice(len(X), min(len(X), 2000), replace=False)]
        self.sigma2_ = float(np.mean(sq_dists(sample, self.anchors_))) / 2.0 or 1.0
        K = self._kernel(X)
        self.n_features_in_ = X.shape[1]
        self.mean_ = K.mean(0)
        return K

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, m) centred kernel features."""
        out = self._kernel(X)
        out -= self.mean_
        return out

    def _kernel(self, X: np.ndarray, batch: int = 8192) -> np.ndarray:
        """(n, m) uncentred kernel values."""
        out = np.empty((len(X), len(self.anchors_)), np.float32)
        for i in range(0, len(X), batch):
            D = sq_dists(X[i : i + batch], self.anchors_)
            out[i : i + batch] = np.exp(-D / (2.0 * self.sigma2_))
        return out
