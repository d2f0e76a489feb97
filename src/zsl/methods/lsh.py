"""LSH -- locality-sensitive hashing by random hyperplanes (Charikar, STOC 2002; the sign-random-
projection family of Indyk & Motwani 1998), the data-independent baseline of the hashing papers.

    h_j(x) = sign(w_j^T (x - mu)),   w_j ~ N(0, I_d),  j = 1..r

mu is the mean of the training features (choice: centring makes each bit split the data roughly
in half; uncentred non-negative CNN features would give near-constant bits). Labels and class
embeddings are ignored: LSH is unsupervised. Shapes: X (n, d) -> W (d, r) -> packed (n, r // 8).
"""
from __future__ import annotations

import numpy as np

from .._registry import register_method
from ..params import Interval
from ._hashing import HashingMethod


@register_method
class LSH(HashingMethod):
    name = "lsh"
    tags = {"family": "hashing", "supports_gzsl": False, "retrieval": True, "stochastic": True}
    presets = {"default": {}, "tiny": {"n_bits": 16}}
    param_grid: dict = {}
    search_space: dict = {}

    parameter_constraints = {"n_bits": [Interval(int, 8, None)], "random_state": [None, Interval(int, 0, None)],}

    def __init__(self, *, n_bits: int = 64, random_state: int = 0):
        self.n_bits = n_bits
        self.random_state = random_state

    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        self._check_bits()
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        self.mean_ = X.mean(0)
        self.projection_ = rng.standard_normal((X.shape[1], self.n_bits)).astype(np.float32)
        return self

    def _project(self, X):
        return (X - self.mean_) @ self.projection_
