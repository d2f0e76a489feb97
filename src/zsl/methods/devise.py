"""DeViSE -- A deep visual-semantic embedding model (Frome et al., NIPS 2013), the linear baseline.

A linear map M (k x d) projects visual features into the semantic space; the compatibility of an
image x with class c is the dot product with the class's unit-norm embedding, F(x, c) = t_c^T M x.
M is trained on the seen classes with the hinge rank loss of the paper (eq. in section 3.2):

    loss(x, y) = sum_{j in seen, j != y} max(0, margin - t_y^T M x + t_j^T M x)

Prediction ranks candidates by F(x, c) (unseen classes for ZSL, all classes for GZSL).

Shapes: X (n, d); class_embeddings (C, k); M (k, d); scores (n, m).

Choices where the paper leaves room:
* The paper fine-tunes the whole CNN and stops summing the loss after the first margin-violating
  label (a sampled approximation for 1,000 classes). Here the visual model is fixed (features in),
  only M is learnt, and the loss sums over *all* seen labels (exact; the benchmarks have <= 1,000
  seen classes, so it is cheap).
* Features are standardised (mean/std of the training features), class embeddings L2-normalised,
  M starts at small random values and is trained with Adam (``lr``, ``weight_decay`` = L2 on M) for
  ``epochs`` passes over minibatches of ``batch_size``; the shuffling order and the initial M come
  from ``random_state`` so the same seed gives the same model on CPU.
"""
from __future__ import annotations

import numpy as np

from .._registry import register_method
from ..base import ZSLMethod
from ..params import Interval


@register_method
class DeViSE(ZSLMethod):
    name = "devise"
    tags = {"family": "embedding", "supports_gzsl": True, "retrieval": False, "stochastic": True}
    presets = {
        "default": {},
        "tiny": {"margin": 0.1, "lr": 1e-2, "weight_decay": 1e-4, "epochs": 5, "batch_size": 64},
        "quick": {"margin": 0.1, "lr": 1e-3, "weight_decay": 1e-3, "epochs": 6, "batch_size": 256},
    }
    dataset_presets = {
        "awa1": {"margin": 0.1, "lr": 1e-3, "weight_decay": 1e-3, "epochs": 10, "batch_size": 256},
    }
    param_grid = {"margin": [0.1, 0.5], "weight_decay": [1e-4, 1e-2]}
    search_space = {
        "margin": ("float", 0.01, 1.0, True),
        "lr": ("float", 1e-4, 1e-2, True),
        "weight_decay": ("float", 1e-6, 1e-1, True),
    }

    parameter_constraints = {
        "margin": [Interval(float, 0, None, closed="neither")],
        "lr": [Interval(float, 0, None, closed="neither")],
        "weight_decay": [Interval(float, 0, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "random_state": [None, Interval(int, 0, None)],
    }

    def __init__(self, *, margin: float = 0.1, lr: float = 1e-3, weight_decay: float = 1e-4, epochs: int = 30,
                 batch_size: int = 256, random_state: int = 0):
        self.margin = margin
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, X, y, class_embeddings, seen_classes):
        import torch

        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        gen = torch.Generator().manual_seed(int(self.random_state))
        self.mean_ = X.mean(0)
        self.std_ = X.std(0) + 1e-6
        Xs = torch.from_numpy((X - self.mean_) / self.std_)
        T = torch.from_numpy(S / np.linalg.norm(S, axis=1, keepdims=True))  # (C, k) unit rows
        Tseen = T[torch.from_numpy(seen)]  # (z, k)
        col = torch.from_numpy(np.searchsorted(seen, y))  # position of each label among the seen classes
        d, k = X.shape[1], S.shape[1]
        M = torch.nn.Parameter(torch.randn(k, d, generator=gen) * (1.0 / np.sqrt(d)))
        opt = torch.optim.Adam([M], lr=self.lr, weight_decay=self.weight_decay)
        n = len(Xs)
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, self.batch_size):
                b = order[start:start + self.batch_size]
                proj = Xs[b] @ M.T  # (b, k)
                scores = proj @ Tseen.T  # (b, z)
                true = scores.gather(1, col[b, None])
                viol = torch.clamp(self.margin - true + scores, min=0.0)
                viol = viol.scatter(1, col[b, None], 0.0)  # j != y
                loss = viol.sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.M_ = M.detach().numpy().astype(np.float32)
        self.class_embeddings_ = T.numpy().astype(np.float32)
        return self

    def transform(self, X) -> np.ndarray:
        """M x: (n, d) -> (n, k) projections into the semantic space."""
        self._check_is_fitted()
        X = np.asarray(X, dtype=np.float32)
        return ((X - self.mean_) / self.std_) @ self.M_.T

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        return self.transform(X) @ self.class_embeddings_[candidates].T
