"""ITQ -- iterative quantisation (Gong & Lazebnik, CVPR 2011; TPAMI 2013), PCA-ITQ variant.

Unsupervised: centre, project on the top-r principal directions V (d, r), then find the rotation
R (r, r) minimising the quantisation loss (paper eq. 2)

    Q(B, R) = || B - V_x R ||_F^2,   B in {-1, +1}^(n x r),  R^T R = I,   V_x = (X - mu) V

by alternating (paper section 2.3), ``n_iter`` times (the paper uses 50):
    B-step:  B = sign(V_x R)
    R-step:  orthogonal Procrustes, SVD  B^T V_x = U S Wt  ->  R = (U Wt)^T = Wt^T U^T
Initial R: a random orthogonal matrix (QR of a Gaussian, seeded). Codes: sign((x - mu) V R).
Requires r <= d (PCA to r dimensions). Above 2048 dimensions the principal directions come from a
randomised SVD (Halko et al. 2011; 5 power iterations) instead of the d x d covariance. Labels and
class embeddings are ignored.
"""
from __future__ import annotations

import numpy as np

from .._registry import register_method
from ..errors import DataError
from ..params import Interval
from ._hashing import HashingMethod


@register_method
class ITQ(HashingMethod):
    name = "itq"
    tags = {"family": "hashing", "supports_gzsl": False, "retrieval": True, "stochastic": True}
    presets = {"default": {}, "tiny": {"n_bits": 16, "n_iter": 20}}
    param_grid: dict = {}
    search_space: dict = {"n_iter": ("int", 10, 100)}

    parameter_constraints = {
        "n_bits": [Interval(int, 8, None)],
        "n_iter": [Interval(int, 0, None)],
        "max_train": [None, Interval(int, 2, None)],
        "random_state": [None, Interval(int, 0, None)],
    }

    def __init__(self, *, n_bits: int = 64, n_iter: int = 50, max_train: int | None = 20000, random_state: int = 0):
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.max_train = max_train
        self.random_state = random_state

    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        self._check_bits()
        if self.n_bits > X.shape[1]:
            raise DataError(
                f"ITQ projects on {self.n_bits} principal directions but the features have only {X.shape[1]} dimensions"
            )
        rng = np.random.default_rng(self.random_state)
        if self.max_train and len(X) > self.max_train:  # PCA + rotation converge on a subsample
            X = X[np.sort(rng.choice(len(X), self.max_train, replace=False))]
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        self.mean_ = X.mean(0)
        Xc = (X - self.mean_).astype(np.float64)
        if Xc.shape[1] <= 2048:
            # top-r eigenvectors of the covariance (eigh returns ascending order)
            evals, evecs = np.linalg.eigh(Xc.T @ Xc / len(Xc))
            V = evecs[:, ::-1][:, : self.n_bits]
        else:  # high-dimensional features (AwA1: 6252-d): randomised SVD finds the same leading subspace
            from sklearn.utils.extmath import randomized_svd

            _, _, Vt = randomized_svd(Xc, self.n_bits, n_oversamples=20, n_iter=5, random_state=self.random_state)
            V = Vt.T
        V *= np.where(V[np.abs(V).argmax(0), np.arange(V.shape[1])] < 0, -1.0, 1.0)  # deterministic sign
        Vx = Xc @ V
        R, _ = np.linalg.qr(rng.standard_normal((self.n_bits, self.n_bits)))
        self.quantisation_loss_ = []
        for _ in range(self.n_iter):
            B = np.where(Vx @ R >= 0, 1.0, -1.0)
            U, _, Wt = np.linalg.svd(B.T @ Vx)
            R = (U @ Wt).T
            self.quantisation_loss_.append(float(np.sum((B - Vx @ R) ** 2)))
        self.projection_ = (V @ R).astype(np.float32)
        return self

    def _project(self, X):
        return (X - self.mean_) @ self.projection_
