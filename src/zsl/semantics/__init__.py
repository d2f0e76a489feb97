"""Class descriptions (class embeddings) from names: GloVe word vectors, MiniLM sentence vectors.

Submodules are imported on use so importing :mod:`zsl.semantics` stays cheap:
    zsl.semantics.glove.glove_vectors(names) -> ((n, 50) float32, missing names)
    zsl.semantics.minilm.minilm_vectors(names) -> (n, 384) float32 (optional extra ``minilm``)
    zsl.semantics.class_embeddings(names, source) -> (n, k) for ``glove`` | ``minilm``
"""
from __future__ import annotations

import numpy as np

SOURCES = ("glove", "minilm")


def class_embeddings(names: list[str], source: str = "glove") -> tuple[np.ndarray, list[str]]:
    """(n, k) float32 class embeddings of ``names`` from ``source`` and the names it could not describe."""
    if source == "glove":
        from .glove import glove_vectors

        return glove_vectors(names)
    if source == "minilm":
        from .minilm import minilm_vectors

        return minilm_vectors(names), []
    from ..errors import ZSLError

    raise ZSLError(f"unknown semantics source {source!r} for class names; valid: {', '.join(SOURCES)}")
