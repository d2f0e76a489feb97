"""DAP -- Direct Attribute Prediction (Lampert, Nickisch & Harmeling, CVPR 2009 / TPAMI 2014).

One probabilistic classifier per attribute, trained on the seen classes, then (eq. 2 of the
TPAMI paper) for a candidate class z with binary attribute signature a^z:

    p(z | x)  proportional to  prod_m  p(a_m = a^z_m | x) / p(a_m = a^z_m)

evaluated in log space as the score. Attribute priors p(a_m) are the attribute frequencies over
the seen classes (Lampert's choice), clipped to [0.05, 0.95] so an attribute that is constant on
seen classes cannot dominate.

Choices where the paper's SVM pipeline does not carry over:
* Classifiers: multi-output logistic regression (one sigmoid per attribute, L2 weight ``C``),
  trained jointly with full-batch L-BFGS in torch on RBF-anchor features (the kernel map shared
  with ESZSL/SAE) instead of 85 chi-square-kernel SVMs with Platt scaling; the sigmoid outputs are
  the calibrated probabilities. Per-attribute positive classes are re-weighted so each attribute
  sees balanced positives and negatives (attributes are often rare on the seen classes).
* Continuous class embeddings are binarised at each attribute's mean over all classes (this is
  how the AwA binary matrix relates to the continuous one), so DAP also runs on word vectors.
"""
from __future__ import annotations

import numpy as np

from .._registry import register_method
from ..base import ZSLMethod
from ._kernels import RBFAnchors


@register_method
class DAP(ZSLMethod):
    name = "dap"
    tags = {"family": "attribute", "supports_gzsl": True, "retrieval": False, "stochastic": False}
    presets = {
        "default": {"C": 1e-4, "kernel": "rbf", "n_anchors": 2000, "max_iter": 200},
        "tiny": {"C": 1e-3, "kernel": "rbf", "n_anchors": 200, "max_iter": 50},
    }
    param_grid = {"C": [1e-6, 1e-5, 1e-4]}
    search_space = {"C": ("float", 1e-6, 1e-1, True)}

    def __init__(self, *, C: float = 1e-3, kernel: str = "rbf", n_anchors: int = 2000, max_iter: int = 200,
                 random_state: int = 0):
        self.C = C
        self.kernel = kernel
        self.n_anchors = n_anchors
        self.max_iter = max_iter
        self.random_state = random_state

    def _phi(self, X):
        return self.kmap_.transform(X) if self.kmap_ is not None else X

    def fit(self, X, y, class_embeddings, seen_classes):
        import torch

        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        self.signatures_ = (S > S.mean(0, keepdims=True)).astype(np.float32)  # (C, k) binary
        self.kmap_ = RBFAnchors(self.n_anchors, self.random_state).fit(X) if self.kernel == "rbf" else None
        Z = self._phi(X)
        mu, sd = Z.mean(0), Z.std(0) + 1e-6
        self.scaler_ = (mu.astype(np.float32), sd.astype(np.float32))
        Zt = torch.from_numpy((Z - mu) / sd)
        T = torch.from_numpy(self.signatures_[y])  # (n, k) attribute targets per sample
        pos = T.mean(0).clamp(1e-3, 1 - 1e-3)
        w_pos, w_neg = 0.5 / pos, 0.5 / (1 - pos)  # balance each attribute's positives and negatives
        weights = T * w_pos + (1 - T) * w_neg

        torch.manual_seed(self.random_state)
        lin = torch.nn.Linear(Zt.shape[1], T.shape[1]).double()
        torch.nn.init.zeros_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        Zt, T, weights = Zt.double(), T.double(), weights.double()
        opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=self.max_iter, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(Zt), T, weight=weights)
            loss = loss + self.C * lin.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.coef_ = lin.weight.detach().float().numpy().T.copy()  # (d', k)
        self.intercept_ = lin.bias.detach().float().numpy().copy()
        self.attribute_priors_ = np.clip(self.signatures_[seen].mean(0), 0.05, 0.95)
        return self

    def predict_attributes(self, X) -> np.ndarray:
        """(n, k) probabilities p(a_m = 1 | x)."""
        X, _ = self._validate_predict(X, np.zeros(1, np.int64))
        mu, sd = self.scaler_
        logits = ((self._phi(X) - mu) / sd) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        P = np.clip(self.predict_attributes(X), 1e-4, 1 - 1e-4).astype(np.float64)
        A = self.signatures_[candidates].astype(np.float64)  # (m, k)
        prior = self.attribute_priors_.astype(np.float64)
        log_pos = np.log(P) - np.log(prior)  # a_m = 1
        log_neg = np.log1p(-P) - np.log1p(-prior)  # a_m = 0
        return log_pos @ A.T + log_neg @ (1 - A).T
