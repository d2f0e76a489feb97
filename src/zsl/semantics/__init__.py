"""Class descriptions (class embeddings) from names: GloVe word vectors, MiniLM sentence vectors, WordNet.

Submodules are imported on use so importing :mod:`zsl.semantics` stays cheap:
    zsl.semantics.glove.glove_vectors(names) -> ((n, 50) float32, missing names)
    zsl.semantics.minilm.minilm_vectors(names) -> (n, 384) float32
    zsl.semantics.label_spaces.embed_labels(space, synonyms, wnids) -> entry vectors of labels in a label space
    zsl.semantics.class_embeddings(names, source) -> ((n, k), missing names) for any source in ``SOURCES``

Sources: ``glove`` and ``minilm`` (the name's words / phrase), and the label spaces of
:mod:`zsl.semantics.label_spaces` -- ``minilm-gloss`` (phrase + WordNet gloss), ``wordnet`` (the
WordNet noun hierarchy, words WordNet lacks placed through MiniLM) and their combinations
``wordnet+minilm``, ``wordnet+minilm-gloss`` -- usable by every method as class embeddings
(``zsl run --semantics wordnet``).
"""
from __future__ import annotations

import numpy as np

#: label spaces a dataset computes from its class names on request (the readers provide glove/minilm)
LABEL_SPACE_SOURCES = ("minilm-gloss", "wordnet", "wordnet+minilm", "wordnet+minilm-gloss")
SOURCES = ("glove", "minilm", *LABEL_SPACE_SOURCES)


def class_embeddings(names: list[str], source: str = "glove", *, cache_dir=None) -> tuple[np.ndarray, list[str]]:
    """(n, k) float32 class embeddings of ``names`` from ``source`` and the names it could not describe."""
    if source == "glove":
        from .glove import glove_vectors

        return glove_vectors(names)
    if source == "minilm":
        from .minilm import minilm_vectors

        return minilm_vectors(names, cache_dir=cache_dir), []
    from ..errors import ZSLError
    from .label_spaces import class_embeddings as label_space_embeddings
    from .label_spaces import parse_space

    try:
        parse_space(source)
    except ZSLError:
        raise ZSLError(f"unknown semantics source {source!r} for class names; valid: {', '.join(SOURCES)}") from None
    return label_space_embeddings(names, source, cache_dir=cache_dir)
