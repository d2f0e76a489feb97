"""Packed binary codes and Hamming distances, shared by the hashing methods, the retrieval metrics
(``zsl.eval.retrieval``), the search index (``zsl.index``) and the index benchmark.

Code layout (every hashing method, every index): a code of ``n_bits`` bits is stored as
``n_bits // 8`` uint8 bytes made by ``np.packbits(bits, axis=1, bitorder="big")``: bit j of the
code (the sign of the j-th real-valued hash projection, 1 for positive) is bit ``7 - j % 8`` (the
most significant bit first) of byte ``j // 8``. This is the layout faiss binary indexes take.
Hamming distance does not depend on the bit order, only on both sides using the same one.

Shapes: H (n, r) real values or codes; packed (n, r // 8) uint8; words (n, ceil(r / 64)) uint64.
"""
from __future__ import annotations

import numpy as np

from .errors import DataError


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


def as_words(packed: np.ndarray) -> np.ndarray:
    """Packed codes zero-padded to a multiple of 8 bytes and viewed as uint64 words (for popcount).

    The padding bytes are zero on every code, so they add nothing to a Hamming distance.
    """
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
        raise DataError(
            f"packed codes must be 2-d with the same number of bytes; got {query.shape} and {database.shape}"
        )
    qw, dw = as_words(query), as_words(database)
    out = np.empty((len(qw), len(dw)), np.int32)
    step = max(1, block_bytes // max(1, dw.size * 8))
    for i in range(0, len(qw), step):
        x = np.bitwise_xor(qw[i : i + step, None, :], dw[None, :, :])
        out[i : i + step] = np.bitwise_count(x).sum(axis=2, dtype=np.int32)
    return out
