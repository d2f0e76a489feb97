"""ZSH -- zero-shot hashing via transferring supervised knowledge (Yang, Luo, Chen, Shen, Shao, Shen,
ACM MM 2016, arXiv:1606.05032).

Hash functions are learnt on seen classes only and then encode images of unseen classes. Every
equation below is what :meth:`ZSH.fit` computes (row layout: one sample per row).

Inputs, on n training samples of the seen classes (subsampled to ``max_train``, seeded):
    Phi (n, m+1)   RBF kernel features on m anchors, ``RBFAnchors`` (phi_j(x) = exp(-||x-a_j||^2 /
                   2 sigma^2), centred), plus a constant column (the bias of the authors' code)
    T   (n, k)     label targets. ``label_embedding="embedding"`` (ZSH): the 0/1 label vector y_i
                   projected into the word-vector / attribute space, t_i = S^T y_i = s_{y_i}, with the
                   class embeddings S L2-normalised per class and centred over the seen classes
                   (choice: the common component carries no label information and no code can fit
                   it). ``"onehot"`` (SDH): t_i = y_i over the seen classes.

Objective (the authors' formulation; their released MATLAB ``computeCost``):

    min_{B,W,P,R}  ||T R - B W||^2 + lambda ||W||^2                  (embedded-label fit)
                 + nu ||B - Phi P||^2 + epsilon ||P||^2              (hash function, ridge)
                 + delta tr(R^T T^T L T R)                           (local structure)
                 + gamma' ||R - I||^2                                (ours: keeps R a full-rank map)
    s.t. B in {-1, +1}^(n x r),   gamma' = gamma tr(T^T T) / k

    B (n, r) codes, W (r, k) code -> semantics, P (m+1, r) hash projection, R (k, k) alignment,
    L = D - A the Laplacian of the symmetrised binary k-NN graph of Phi (``knn_laplacian``).
    The local-structure term equals (delta/2) sum_ij A_ij ||t_i R - t_j R||^2: semantic directions
    along which visually neighbouring images disagree are shrunk, i.e. the embedded semantics are
    aligned with the visual space.

Alternating optimisation, ``n_iter`` rounds of (authors' order P, B, R, W):
    P-step  P = (Phi^T Phi + (epsilon / nu) I)^-1 Phi^T B                (factorised once)
    B-step  discrete cyclic coordinate descent (SDH, ``dcc_update``) with Q = T R W^T + nu Phi P
    R-step  ``rotation="linear"`` (default):  R = (T^T T + delta T^T L T + gamma' I)^-1 (T^T B W + gamma' I).
            ``rotation="orthogonal"``: R^T R = I, the orthogonal Procrustes solution R = U V^T of
            T^T B W = U S V^T (the local-structure term is then constant).
    W-step  W = (B^T B + lambda I)^-1 B^T T R
Initialisation: B random signs (seeded), R = I, W from the W-step.
Encoding: h(x) = sign(phi(x) P) (the hash function; R and W only shape the training codes).

Where the paper / code is ambiguous, and what we chose:
* Rotation. With R orthogonal the objective is invariant to R: W absorbs it in the first term
  (||T R - B W|| = ||T - B W R^T||, ||W R^T|| = ||W||) and tr(R^T M R) = tr(M). Alternation then
  produces exactly the codes of R = I, so an orthogonal R cannot change the hash functions. The
  authors' code has both variants (``orth=1`` Stiefel-manifold descent, ``orth=0`` an unconstrained
  closed form). Unconstrained, alternating the R- and W-steps is a power iteration: R collapses to
  rank one (every class code becomes the same up to sign -- we observed it) or to zero. We default
  to the unconstrained map with a proximity term gamma' ||R - I||^2 (our addition), so R stays a
  full-rank deformation of the embedding space that the local-structure term bends towards the
  visual neighbourhoods; it changes the codes through the metric R R^T. ``rotation="orthogonal"``
  is kept for the comparison (tests check it reproduces ``rotate=False``).
* ``rotate=False`` drops R and the local-structure term (R = I, delta = 0), which is SDH (Shen
  et al., CVPR 2015) on the given label targets -- ``zsl.methods.sdh.SDH`` is that with one-hot
  labels, the baseline of the paper.
* k-NN graph: k = 5 neighbours on the kernel features Phi (the authors' ``constructW`` default,
  binary weights), searched exactly in Phi's top-128 principal subspace (``_knn_space``: the full
  1001-d search is 8x the cost and dominated training time).
* Hyperparameters default to the authors' released script: m = 1000 anchors, nu = 1e-5,
  epsilon = 1e-2, lambda = 1e-2, delta = 1e-2, k = 5, 10 iterations, 10,000 training samples;
  gamma = 1 (ours). threadpoolctl (a scikit-learn dependency) limits BLAS to one thread in the
  alternation, whose many small products otherwise spend their time in thread hand-offs.

Class codes (``decision_function``): a class with embedding s gets the code b minimising
||t R - b W||^2 (t = normalised, centred s), by DCC from sign(t R W^T); the score of an image for
that class is minus the Hamming distance between its code and the class code.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from ..params import Interval, Options
from .._registry import register_method
from ._hashing import HashingMethod, dcc_update, hamming_distances, knn_laplacian, pack_codes
from ._kernels import RBFAnchors


def normalise_embeddings(S: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """L2-normalise each class embedding, then subtract the mean over the seen classes."""
    Sn = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-12)
    return (Sn - Sn[seen].mean(0)).astype(np.float64)


@register_method
class ZSH(HashingMethod):
    name = "zsh"
    tags = {"family": "hashing", "supports_gzsl": False, "retrieval": True, "stochastic": True}
    presets = {
        "default": {},
        "tiny": {"n_bits": 16, "n_anchors": 100, "n_iter": 3, "max_train": 2000},
        "orthogonal": {"n_bits": 64, "rotation": "orthogonal"},
    }
    param_grid = {"delta": [1e-2, 1e-1, 1.0]}
    search_space = {
        "delta": ("float", 1e-4, 1.0, True),
        "lambda_": ("float", 1e-4, 1.0, True),
        "nu": ("float", 1e-6, 1e-2, True),
    }
    knn_dims = 128  # dimensionality of the space the k-NN graph is searched in (see _knn_space)

    parameter_constraints = {
        "n_bits": [Interval(int, 8, None)], "n_anchors": [Interval(int, 1, None)], "lambda_": [Interval(float, 0, None)],
        "nu": [Interval(float, 0, None)], "epsilon": [Interval(float, 0, None)], "delta": [Interval(float, 0, None)],
        "gamma": [Interval(float, 0, None)], "n_neighbors": [Interval(int, 1, None)], "n_iter": [Interval(int, 1, None)],
        "rotate": [bool], "rotation": [Options("linear", "orthogonal")], "label_embedding": [Options("embedding", "onehot")],
        "max_train": [None, Interval(int, 2, None)], "random_state": [None, Interval(int, 0, None)],
    }

    def __init__(self, *, n_bits: int = 64, n_anchors: int = 1000, lambda_: float = 1e-2, nu: float = 1e-5,
                 epsilon: float = 1e-2, delta: float = 1e-2, gamma: float = 1.0, n_neighbors: int = 5, n_iter: int = 10,
                 rotate: bool = True, rotation: str = "linear", label_embedding: str = "embedding",
                 max_train: int | None = 10000, random_state: int = 0):
        self.n_bits = n_bits
        self.n_anchors = n_anchors
        self.lambda_ = lambda_
        self.nu = nu
        self.epsilon = epsilon
        self.delta = delta
        self.gamma = gamma
        self.n_neighbors = n_neighbors
        self.n_iter = n_iter
        self.rotate = rotate
        self.rotation = rotation
        self.label_embedding = label_embedding
        self.max_train = max_train
        self.random_state = random_state

    # -- features -------------------------------------------------------------------------
    def _phi(self, X: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, m+1) kernel features with the constant column."""
        return self._with_bias(self.kmap_.transform(X))

    @staticmethod
    def _with_bias(F: np.ndarray) -> np.ndarray:
        return np.concatenate([F, np.ones((len(F), 1), F.dtype)], axis=1)

    def _targets(self, y: np.ndarray, S: np.ndarray, seen: np.ndarray) -> np.ndarray:
        if self.label_embedding == "embedding":
            self.semantic_ = normalise_embeddings(S, seen)  # (C, k)
            return self.semantic_[y]
        if self.label_embedding == "onehot":
            self.semantic_ = None
            T = np.zeros((len(y), len(seen)))
            T[np.arange(len(y)), np.searchsorted(seen, y)] = 1.0
            return T
        raise ValueError(f"label_embedding must be 'embedding' or 'onehot', got {self.label_embedding!r}")

    # -- fit --------------------------------------------------------------------------------
    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        self._check_bits()
        if self.rotation not in ("linear", "orthogonal"):
            raise ValueError(f"rotation must be 'linear' or 'orthogonal', got {self.rotation!r}")
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        if self.max_train and len(X) > self.max_train:
            keep = np.sort(rng.choice(len(X), self.max_train, replace=False))
            X, y = X[keep], y[keep]

        self.kmap_ = RBFAnchors(self.n_anchors, self.random_state)
        Phi = self._with_bias(self.kmap_.fit_transform(X))  # (n, m+1) float32; products below are float32, solves float64
        T = self._targets(y, S, seen)  # (n, k)
        n, k, r = len(X), T.shape[1], self.n_bits
        use_rotation = bool(self.rotate)
        delta = self.delta if use_rotation else 0.0

        # P-step system matrix: factorise once, it does not change across iterations
        gram = (Phi.T @ Phi).astype(np.float64)
        chol = scipy.linalg.cho_factor(gram + (self.epsilon / self.nu) * np.eye(Phi.shape[1]))
        if use_rotation and self.rotation == "linear":
            L = knn_laplacian(self._knn_space(Phi, gram), self.n_neighbors)
            TLT = T.T @ (L @ T)  # (k, k)
            # gamma anchors R to the identity (see docstring); scaled like T^T T so it is unit-free
            gamma_abs = self.gamma * np.trace(T.T @ T) / k
            M_pinv = np.linalg.inv(T.T @ T + delta * TLT + gamma_abs * np.eye(k))
            self._gamma_abs = gamma_abs
        else:
            TLT = M_pinv = None

        B = np.where(rng.standard_normal((n, r)) >= 0, 1.0, -1.0)
        R = np.eye(k)
        W = self._w_step(B, T @ R)
        self.objective_ = []
        # the alternation is many small products: one BLAS thread avoids spin-waiting between them
        with threadpool_limits(limits=1, user_api="blas"):
            self._alternate(Phi, T, B, R, W, chol, M_pinv, TLT, delta, use_rotation, k)
        return self

    def _alternate(self, Phi, T, B, R, W, chol, M_pinv, TLT, delta, use_rotation, k):
        for _ in range(self.n_iter):
            P = scipy.linalg.cho_solve(chol, Phi.T @ B.astype(np.float32))  # (m+1, r)
            F = (Phi @ P.astype(np.float32)).astype(np.float64)
            TR = T @ R
            B = dcc_update(B, TR @ W.T + self.nu * F, W)
            if use_rotation:
                TBW = T.T @ (B @ W)  # (k, k)
                if self.rotation == "linear":
                    R = M_pinv @ (TBW + self._gamma_abs * np.eye(k))
                else:
                    U, _, Vt = np.linalg.svd(TBW)
                    R = U @ Vt
            W = self._w_step(B, T @ R)
            self.objective_.append(self._objective(T, R, B, W, P, F, TLT, delta))
        self.projection_ = scipy.linalg.cho_solve(chol, Phi.T @ B.astype(np.float32)).astype(np.float32)  # final P for B
        self.rotation_ = R.astype(np.float32)
        self.code_weights_ = W.astype(np.float32)

    def _knn_space(self, Phi: np.ndarray, gram: np.ndarray) -> np.ndarray:
        """Phi projected on its top ``knn_dims`` principal directions (uncentred, from Phi^T Phi).

        Exact k-NN on all m+1 kernel dimensions costs n^2 m (10^11 flops at n = 10^4); the leading
        128 directions keep the neighbourhoods (the RBF map is smooth and low-rank) at 1/8 of it.
        """
        if Phi.shape[1] <= self.knn_dims:
            return Phi.astype(np.float32)
        # leading eigenvectors of Phi^T Phi by randomised subspace iteration (Halko et al. 2011):
        # a full eigendecomposition of the (m+1)^2 Gram matrix costs more than the search it saves
        rng = np.random.default_rng(self.random_state)
        with threadpool_limits(limits=1, user_api="blas"):  # small factorisations: threads only spin
            Q = np.linalg.qr(gram @ rng.standard_normal((gram.shape[0], self.knn_dims + 16)))[0]
            for _ in range(3):
                Q = np.linalg.qr(gram @ Q)[0]
            evals, U = np.linalg.eigh(Q.T @ gram @ Q)
        V = Q @ U[:, ::-1][:, : self.knn_dims]
        return Phi @ V.astype(np.float32)

    def _w_step(self, B: np.ndarray, TR: np.ndarray) -> np.ndarray:
        return np.linalg.solve(B.T @ B + self.lambda_ * np.eye(B.shape[1]), B.T @ TR)  # (r, k)

    def _objective(self, T, R, B, W, P, F, TLT, delta) -> float:
        """Value of the objective (module docstring); F = Phi P."""
        val = np.sum((T @ R - B @ W) ** 2) + self.lambda_ * np.sum(W**2)
        val += self.nu * np.sum((B - F) ** 2) + self.epsilon * np.sum(P**2)
        if TLT is not None and delta:
            val += delta * np.trace(R.T @ TLT @ R) + self._gamma_abs * np.sum((R - np.eye(len(R))) ** 2)
        return float(val)

    # -- use ----------------------------------------------------------------------------------
    def _project(self, X):
        return self._phi(X) @ self.projection_

    def class_codes(self, class_ids) -> np.ndarray:
        """(m,) class ids -> (m, n_bits // 8) packed codes derived from their class embeddings."""
        self._check_is_fitted()
        if self.semantic_ is None:
            raise NotImplementedError("class codes need label_embedding='embedding' (one-hot labels have no code for unseen classes)")
        TR = self.semantic_[np.asarray(class_ids)] @ self.rotation_.astype(np.float64)
        W = self.code_weights_.astype(np.float64)
        B0 = np.where(TR @ W.T >= 0, 1.0, -1.0)
        return pack_codes(dcc_update(B0, TR @ W.T, W, n_sweeps=3))

    def decision_function(self, X, candidates):
        """(n, m) minus the Hamming distance between each image's code and each candidate's class code."""
        X, candidates = self._validate_predict(X, candidates)
        return -hamming_distances(self.encode(X), self.class_codes(candidates)).astype(np.float32)
