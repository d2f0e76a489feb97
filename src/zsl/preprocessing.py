"""Feature maps fitted on training features: the RBF anchor map and the generative methods' input space.

``RBFAnchors``: phi(x) = exp(-||x - a_j||^2 / (2 sigma^2)) on m anchors a_j drawn from the
training features, sigma^2 = mean squared distance from samples to anchors (the usual heuristic
of kernelised hashing, Liu et al. 2012), centred with the training mean so linear models need no
bias term. Used by ESZSL, SAE, DAP and ZSH (``kernel="rbf"``) and optionally before the PCA of
:class:`FeaturePreprocessor`. A plain estimator: nothing is kept between fits.

``FeaturePreprocessor``: optional RBF map, optional PCA, then a scale:

* ``"minmax"``: every dimension mapped by its training min and max to [0, 1] (scikit-learn's
  MinMaxScaler, the xlsa17 preprocessing of f-CLSWGAN's code). Non-negative CNN features stay
  non-negative, so a generator can end in a ReLU as the paper's does. Test values may leave [0, 1].
* ``"std"``: centred, divided by one global RMS scale (an average coordinate gets unit variance).
* ``"whiten"``: centred, every component divided by its own standard deviation (PCA whitening:
  on histogram features much class information sits in low-variance directions).
* ``"none"``: centred only when a PCA runs, else unchanged.

PCA uses scikit-learn's randomized solver with a fixed ``random_state`` (deterministic), fitted on
at most ``max_samples`` rows drawn with that seed (a 6252-d AwA1 PCA on all 24k training rows costs
minutes on 2 cores; 4000 rows estimate the leading few hundred directions well).
"""
from __future__ import annotations

import numpy as np

SCALES = ("minmax", "std", "whiten", "none")


def sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances between rows of A (n, d) and B (m, d), float32."""
    a2 = np.einsum("ij,ij->i", A, A)[:, None]
    b2 = np.einsum("ij,ij->i", B, B)[None, :]
    D = a2 + b2 - 2.0 * (A @ B.T)
    np.maximum(D, 0, out=D)
    return D


class RBFAnchors:
    """Centred RBF similarities to ``n_anchors`` training rows: (n, d) -> (n, m)."""

    def __init__(self, n_anchors: int = 1000, random_state: int | None = 0):
        self.n_anchors = n_anchors
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> RBFAnchors:
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


class FeaturePreprocessor:
    """Optional RBF kernel map, optional PCA to ``n_components``, then ``scale`` (see the module docstring)."""

    def __init__(
        self, n_components: int | None = None, scale: str = "std", random_state: int = 0, max_samples: int = 4000,
        rbf_anchors: int | None = None,
    ):
        self.n_components = n_components
        self.scale = scale
        self.random_state = random_state
        self.max_samples = max_samples
        self.rbf_anchors = rbf_anchors

    def fit(self, X: np.ndarray) -> FeaturePreprocessor:
        self.fit_transform(X)
        return self

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        X = np.asarray(X, dtype=np.float32)
        self.kernel_map_ = None
        if self.rbf_anchors:
            self.kernel_map_ = RBFAnchors(self.rbf_anchors, self.random_state)
            X = self.kernel_map_.fit_transform(X)
        self.components_ = None
        self.mean_ = None
        if self.n_components is not None and self.n_components < X.shape[1]:
            from sklearn.decomposition import PCA

            rows = X
            if self.max_samples and len(X) > self.max_samples:
                pick = np.random.default_rng(self.random_state).choice(len(X), self.max_samples, replace=False)
                rows = X[np.sort(pick)]
            k = min(self.n_components, rows.shape[0])
            pca = PCA(n_components=k, svd_solver="randomized", iterated_power=3, random_state=self.random_state).fit(
                rows
            )
            self.components_ = pca.components_.astype(np.float32)  # (k, d)
            self.mean_ = X.mean(0)
        elif self.scale in ("std", "whiten"):
            self.mean_ = X.mean(0)
        Z = self._project(X)
        if self.scale == "minmax":
            lo, hi = Z.min(0), Z.max(0)
            self.offset_ = lo.astype(np.float32)
            self.scale_ = np.where(hi - lo > 1e-12, hi - lo, 1.0).astype(np.float32)
        elif self.scale == "whiten":
            std = Z.std(0)
            self.offset_ = np.float32(0.0)
            self.scale_ = np.where(std > 1e-6 * max(float(std.max()), 1e-12), std, 1.0).astype(np.float32)
        else:
            self.offset_ = np.float32(0.0)
            rms = float(np.sqrt(np.mean(Z**2))) if self.scale == "std" else 1.0
            self.scale_ = np.float32(rms if rms > 0 else 1.0)
        return np.ascontiguousarray((Z - self.offset_) / self.scale_, dtype=np.float32)

    def _project(self, X: np.ndarray) -> np.ndarray:
        Z = np.asarray(X, dtype=np.float32)
        if self.mean_ is not None:
            Z = Z - self.mean_
        return Z @ self.components_.T if self.components_ is not None else Z

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.kernel_map_ is not None:
            X = self.kernel_map_.transform(X)
        return np.ascontiguousarray((self._project(X) - self.offset_) / self.scale_, dtype=np.float32)


__all__ = ["FeaturePreprocessor", "RBFAnchors", "SCALES", "sq_dists"]
