"""Shared pieces of the hashing methods (LSH, ITQ, SDH, ZSH): the discrete B-step of supervised
discrete hashing (with an optional graph term on the codes), the k-NN graph of the ZSH authors'
code, and the ``HashingMethod`` base class.

Packed codes and Hamming distances live in :mod:`zsl.codes` (public: the methods, the retrieval
metrics and the index use them).

Shapes: X (n, d) float32 features; B (n, r) codes in {-1, +1} (float); packed (n, r // 8) uint8.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..base import ZSLMethod, check_features
from ..codes import pack_codes
from ..errors import DataError


def dcc_update(B: np.ndarray, Q: np.ndarray, W: np.ndarray, n_sweeps: int = 1, *, graph: CodeGraph | None = None,
               beta: float = 0.0) -> np.ndarray:
    """Discrete cyclic coordinate descent, the B-step of SDH (Shen et al. 2015, eq. 12-15), with an
    optional graph-Laplacian term on the codes (the ZSH local-structure term).

    Minimises, over B in {-1, +1}^(n x r), one bit (column) at a time,

        ||T - B W||^2 - 2 tr(B^T nu F) + beta tr(B^T L_n B)          (+ const)

    with ``Q = T W^T + nu F`` (n, r), W (r, c) and L_n = I - A_n the normalised Laplacian of
    ``graph`` (:class:`CodeGraph`). For column k, with the other columns fixed and
    g_k = q_k - B_{-k} W_{-k} w_k^T (``_{-k}`` drops bit k), the objective is
        -2 g_k^T b_k - beta b_k^T A_n b_k + const          (b^T b = n for binary b)
    Without the graph term the exact update is b_k <- sign(g_k) (SDH). With it, the bit of every
    sample is minimised exactly given the others, b_ik <- sign(g_ik + beta (A_n b_k)_i), over the
    colour classes of the graph in turn (no two samples of one class are neighbours, so a class is
    updated at once and each update is still exact): the objective never increases.
    ``sign(0)`` is taken as +1 so codes stay binary.
    """
    Bt = np.ascontiguousarray(B.T)  # (r, n): one bit per contiguous row, so each update is a row write
    Qt = np.ascontiguousarray(Q.T)
    r = Bt.shape[0]
    G = W @ W.T  # (r, r): row k holds w_k . w_j
    use_graph = graph is not None and beta > 0
    for _ in range(n_sweeps):
        for k in range(r):
            g = G[k].copy()
            g[k] = 0.0
            b = Qt[k] - g @ Bt
            if use_graph:
                graph.minimise_bits(b, Bt[k], beta)
            else:
                Bt[k] = np.where(b >= 0, 1.0, -1.0)
    return np.ascontiguousarray(Bt.T)


def greedy_colouring(A: sp.spmatrix) -> np.ndarray:
    """(n,) colour of each vertex of the graph A such that no edge joins two vertices of one colour
    (greedy, in vertex order: at most max degree + 1 colours)."""
    A = sp.csr_matrix(A)
    colour = np.full(A.shape[0], -1, np.int64)
    for i in range(A.shape[0]):
        used = set(colour[A.indices[A.indptr[i] : A.indptr[i + 1]]].tolist())
        c = 0
        while c in used:
            c += 1
        colour[i] = c
    return colour


class CodeGraph:
    """The graph of the code-side term beta tr(B^T L_n B), L_n = I - A_n, prepared for the B-step:
    A_n (n, n) the normalised adjacency (zero diagonal) split into its colour classes."""

    def __init__(self, A_n: sp.spmatrix):
        self.A_n = sp.csr_matrix(A_n)
        if np.any(self.A_n.diagonal() != 0):
            raise ValueError("the code graph must have no self-loops (zero diagonal)")
        colour = greedy_colouring(self.A_n)
        self.blocks = [(idx, self.A_n[idx]) for idx in (np.flatnonzero(colour == c) for c in range(colour.max() + 1))]

    def minimise_bits(self, g: np.ndarray, b: np.ndarray, beta: float) -> None:
        """In place: b <- argmin over binary b of -2 g^T b - beta b^T A_n b by exact per-sample
        updates, one colour class at a time (one sweep)."""
        for idx, rows in self.blocks:
            b[idx] = np.where(g[idx] + beta * (rows @ b) >= 0, 1.0, -1.0)

    def smoothness(self, B: np.ndarray) -> float:
        """tr(B^T L_n B) = sum_k (b_k^T b_k - b_k^T A_n b_k)."""
        return float(np.sum(B * B) - np.sum(B * (self.A_n @ B)))


def knn_graph(X: np.ndarray, k: int = 5, *, random_state: int | None = 0, block: int = 2048) -> sp.csr_matrix:
    """(n, n) symmetric k-nearest-neighbour graph of X (n, d) with heat-kernel weights.

    The defaults of Deng Cai's ``constructW`` that the ZSH authors call: each point's k nearest
    (Euclidean) neighbours, weight ``exp(-||x_i - x_j||^2 / (2 t^2))`` with t the mean pairwise
    distance (over at most 3,000 points, drawn with ``random_state``), symmetrised by the maximum,
    no self-loops. Exact neighbours, computed in row blocks so memory stays O(block * n).
    """
    X = np.asarray(X, np.float32)
    n = len(X)
    k = min(k, n - 1)
    sq = np.einsum("ij,ij->i", X, X)
    rng = np.random.default_rng(random_state)
    sample = X[rng.choice(n, min(n, 3000), replace=False)]
    s2 = np.einsum("ij,ij->i", sample, sample)
    t = float(np.mean(np.sqrt(np.maximum(s2[:, None] + s2[None, :] - 2.0 * (sample @ sample.T), 0.0)))) or 1.0
    rows, cols, vals = [], [], []
    for i in range(0, n, block):
        D = sq[i : i + block, None] + sq[None, :] - 2.0 * (X[i : i + block] @ X.T)
        D[np.arange(len(D)), np.arange(i, i + len(D))] = np.inf
        nn = np.argpartition(D, k, axis=1)[:, :k]
        d2 = np.maximum(np.take_along_axis(D, nn, axis=1), 0.0)
        rows.append(np.repeat(np.arange(i, i + len(D)), k))
        cols.append(nn.ravel())
        vals.append(np.exp(-d2.ravel() / (2.0 * t * t)))
    A = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float64), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    A = A.maximum(A.T).tocsr()
    A.setdiag(0.0)  # duplicate points (distance 0) can still list each other, never themselves
    A.eliminate_zeros()
    return A


def normalised_adjacency(A: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 of a symmetric non-negative adjacency A; the normalised Laplacian is I minus it."""
    deg = np.asarray(A.sum(1)).ravel() + 1e-12  # the authors' guard against isolated points
    d = sp.diags(1.0 / np.sqrt(deg))
    An = d @ A @ d
    return ((An + An.T) * 0.5).tocsr()


class HashingMethod(ZSLMethod):
    """Base of the hashing methods: ``encode(X) -> packed codes`` from ``_project(X) -> (n, n_bits)``.

    ``decision_function`` (zero-shot classification by Hamming similarity to class codes) exists
    only where a method can derive a class code from a class embedding (ZSH); the others raise.
    """

    tags = {"family": "hashing", "supports_gzsl": False, "retrieval": True, "stochastic": True}

    def _check_bits(self) -> None:
        if not isinstance(self.n_bits, (int, np.integer)) or self.n_bits <= 0 or self.n_bits % 8:
            raise ValueError(
                f"n_bits must be a positive multiple of 8 (codes are packed into bytes); got {self.n_bits!r}"
            )

    def _project(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, X) -> np.ndarray:
        """(n, d) features -> (n, n_bits // 8) uint8 packed codes (layout: :mod:`zsl.codes`)."""
        self._check_is_fitted()
        X = check_features(X)
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features but the hash functions were fitted on {self.n_features_in_}")
        return pack_codes(self._project(X))

    def decision_function(self, X, candidates):
        raise NotImplementedError(f"{type(self).__name__} has no class codes; use encode() for retrieval")
