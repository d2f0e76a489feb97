"""Shared pieces of the hashing methods (LSH, ITQ, SDH, ZSH): packed codes, Hamming distances,
the discrete B-step of supervised discrete hashing, and a kNN-graph Laplacian.

Code layout (every hashing method, every index): a code of ``n_bits`` bits is stored as
``n_bits // 8`` uint8 bytes made by ``np.packbits(bits, axis=1, bitorder="big")``: bit j of the
code (the sign of the j-th real-valued hash projection, 1 for positive) is bit ``7 - j % 8`` (the
most significant bit first) of byte ``j // 8``. This is the layout faiss binary indexes take.
Hamming distance does not depend on the bit order, only on both sides using the same one.

Shapes: X (n, d) float32 features; B (n, r) codes in {-1, +1} (float); packed (n, r // 8) uint8.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..base import ZSLMethod, check_features
from ..errors import DataError


def pack_codes(H: np.ndarray) -> np.ndarray:
    """(n, r) real values or {-1,+1}/{0,1} codes -> (n, r // 8) uint8, bit = value > 0, MSB first."""
    H = np.asarray(H)
    if H.ndim != 2 or H.shape[1] % 8:
        raise DataError(f"codes must be (n, n_bits) with n_bits a multiple of 8; got shape {H.shape}")
    return np.packbits(H > 0, axis=1, bitorder="big")


def unpack_codes(packed: np.ndarray, n_bits: int | None = None) -> np.ndarray:
    """(n, r // 8) uint8 -> (n, r) float32 codes in {-1, +1}."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, bitorder="big")
    if n_bits is not None:
        bits = bits[:, :n_bits]
    return bits.astype(np.float32) * 2.0 - 1.0


def _as_words(packed: np.ndarray) -> np.ndarray:
    """Pad packed codes to a multiple of 8 bytes and view them as uint64 words (for fast popcount)."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    n, nbytes = packed.shape
    pad = (-nbytes) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros((n, pad), np.uint8)], axis=1)
    return np.ascontiguousarray(packed).view(np.uint64)


def hamming_distances(query: np.ndarray, database: np.ndarray, *, block_bytes: int = 1 << 26) -> np.ndarray:
    """(nq, nd) int32 Hamming distances between packed codes, NumPy popcount (``np.bitwise_count``).

    Works in query blocks so the (block, nd, words) XOR temporary stays under ``block_bytes``.
    """
    query = np.asarray(query, dtype=np.uint8)
    database = np.asarray(database, dtype=np.uint8)
    if query.ndim != 2 or database.ndim != 2 or query.shape[1] != database.shape[1]:
        raise DataError(f"packed codes must be 2-d with the same number of bytes; got {query.shape} and {database.shape}")
    qw, dw = _as_words(query), _as_words(database)
    out = np.empty((len(qw), len(dw)), np.int32)
    step = max(1, block_bytes // max(1, dw.size * 8))
    for i in range(0, len(qw), step):
        x = np.bitwise_xor(qw[i : i + step, None, :], dw[None, :, :])
        out[i : i + step] = np.bitwise_count(x).sum(axis=2, dtype=np.int32)
    return out


def dcc_update(B: np.ndarray, Q: np.ndarray, W: np.ndarray, n_sweeps: int = 1) -> np.ndarray:
    """Discrete cyclic coordinate descent, the B-step of SDH (Shen et al. 2015, eq. 12-15).

    Minimises ``||T - B W||^2 - 2 tr(B^T nu F)`` + const over B in {-1, +1}^(n x r) one bit (column)
    at a time, with ``Q = T W^T + nu F`` (n, r) and W (r, c):
        b_k <- sign(q_k - B_{-k} W_{-k} w_k^T)
    where ``_{-k}`` drops bit k. Each column update is exact given the others, so the objective
    never increases. ``sign(0)`` is taken as +1 so codes stay binary.
    """
    Bt = np.ascontiguousarray(B.T)  # (r, n): one bit per contiguous row, so each update is a row write
    Qt = np.ascontiguousarray(Q.T)
    r = Bt.shape[0]
    G = W @ W.T  # (r, r): row k holds w_k . w_j
    for _ in range(n_sweeps):
        for k in range(r):
            g = G[k].copy()
            g[k] = 0.0
            b = Qt[k] - g @ Bt
            Bt[k] = np.where(b >= 0, 1.0, -1.0)
    return np.ascontiguousarray(Bt.T)


def knn_laplacian(X: np.ndarray, k: int = 5, *, block: int = 2048) -> sp.csr_matrix:
    """Unnormalised Laplacian L = D - A of the symmetrised binary k-nearest-neighbour graph of X (n, d).

    A_ij = 1 when j is among the k nearest (Euclidean) neighbours of i or i among those of j
    (the default of Deng Cai's ``constructW`` that the ZSH authors use); self-loops excluded.
    Exact neighbours, computed in row blocks so memory stays O(block * n).
    """
    n = len(X)
    k = min(k, n - 1)
    sq = np.einsum("ij,ij->i", X, X)
    rows, cols = [], []
    for i in range(0, n, block):
        D = sq[i : i + block, None] + sq[None, :] - 2.0 * (X[i : i + block] @ X.T)
        D[np.arange(len(D)), np.arange(i, i + len(D))] = np.inf
        nn = np.argpartition(D, k, axis=1)[:, :k]
        rows.append(np.repeat(np.arange(i, i + len(D)), k))
        cols.append(nn.ravel())
    A = sp.csr_matrix((np.ones(n * k), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    A = ((A + A.T) > 0).astype(np.float64)
    return sp.diags(np.asarray(A.sum(1)).ravel()) - A


class HashingMethod(ZSLMethod):
    """Base of the hashing methods: ``encode(X) -> packed codes`` from ``_project(X) -> (n, n_bits)``.

    ``decision_function`` (zero-shot classification by Hamming similarity to class codes) exists
    only where a method can derive a class code from a class embedding (ZSH); the others raise.
    """

    tags = {"family": "hashing", "supports_gzsl": False, "retrieval": True, "stochastic": True}

    def _check_bits(self) -> None:
        if not isinstance(self.n_bits, (int, np.integer)) or self.n_bits <= 0 or self.n_bits % 8:
            raise ValueError(f"n_bits must be a positive multiple of 8 (codes are packed into bytes); got {self.n_bits!r}")

    def _project(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, X) -> np.ndarray:
        """(n, d) features -> (n, n_bits // 8) uint8 packed codes (layout: module docstring)."""
        self._check_is_fitted()
        X = check_features(X)
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features but the hash functions were fitted on {self.n_features_in_}")
        return pack_codes(self._project(X))

    def decision_function(self, X, candidates):
        raise NotImplementedError(f"{type(self).__name__} has no class codes; use encode() for retrieval")
