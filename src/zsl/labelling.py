"""Zero-shot labelling of any image against any vocabulary with ConSE (Norouzi et al., ICLR 2014).

The seen model is the ImageNet-1k EfficientNet-Lite0 classifier. Its 1,000 classes and the
vocabulary's labels live in one *label space* (:mod:`zsl.semantics.label_spaces`: ``glove``,
``minilm``, ``minilm-gloss``, ``wordnet`` and combinations such as ``wordnet+minilm``). An image is
embedded as the top-T convex combination of the class vectors, f(x) = sum_t p(y_t|x) s(y_t) / Z
(each class vector the mean of its synonyms' vectors), and every label is scored by the best cosine
between f(x) and its synonyms' individual vectors (:func:`zsl.methods.conse.best_over_synonyms`).
``||f(x)||`` is reported as confidence.

Vocabularies:
    ``imagenet21k``   the 21,843 synsets of ImageNet-21k (fall 2011 release) with their WordNet
                      lemmas, read from the data files that the ``timm`` package ships
                      (:mod:`zsl.semantics.imagenet`).
    a file            one label per line; ``a, b, c`` on one line are synonyms of one label; blank
                      lines and ``#`` comments are ignored.
    a list of str     same as the lines of a file.

Vocabulary handling, in this order:
    1. ``exclude_seen`` removes labels that are ImageNet-1k classes (by WordNet id for
       ``imagenet21k``; for other vocabularies when any synonym equals, case-insensitively, a synonym
       of a 1k class), so every answer is a class the classifier was never trained on.
    2. Labels with the same name (first synonym, case and spacing ignored) are merged into one label
       -- the union of their synonyms and WordNet ids -- and reported in ``Vocabulary.duplicates``:
       otherwise one name (ImageNet-21k has 1,470 such names, e.g. ``crane`` the bird and the machine)
       takes several of the top-k slots.
    3. Labels none of whose synonyms has a vector in the space (only GloVe lacks words: the other
       spaces describe any string) are reported in ``Vocabulary.missing``, never silently dropped.

Honest output: ConSE always returns *some* nearest labels, even when the vocabulary is far from
everything the classifier knows. Two cases, each flagged (``far``, with ``far_reason``):

``label``: the answer is far from every class the classifier knows (flower species under an
ImageNet-1k classifier, which has one flower class, daisy). Each label gets a *known* score in [0, 1]:
the share of the label's WordNet information (IC-weighted ancestors, as in the ``wordnet`` space) that
its nearest classifier class holds too -- 1 for ``dog`` (the classifier has 118 dogs below it) or
``bird``, 0.45 for ``primrose`` (nearest class: daisy, shared up to "flower"). A result carries its
top label's ``known`` score and that nearest class, and ``far`` = known < ``FAR_THRESHOLD`` (chosen on
development images by balanced accuracy, see ``benchmarks/results/conse.md``): the classifier has no
class at or below the answer, so the answer is inferred from loosely related classes. The score is the
same in every label space (it needs WordNet; words WordNet lacks use the MiniLM similarity of their
fallback placement). Two per-image alternatives were measured on the development images and rejected
because near and far vocabularies overlap almost entirely: the cosine of f(x) to the best label, and
its ratio to the cosine of f(x) to the best classifier class.

``image``: nothing in the vocabulary is close to what the classifier sees in this image (a cup of
coffee against the ten CIFAR-10 names): the top label's cosine to f(x) is below the space's
``SCORE_THRESHOLDS`` value, chosen on the same development images with ``FAR_THRESHOLD`` fixed.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, ZSLError
from .eval.metrics import ranked_hit_at_k
from .io import IMAGE_EXTENSIONS
from .methods.conse import best_over_synonyms, softmax, top_t_weights
from .semantics.imagenet import imagenet1k_classes, imagenet21k_synsets  # noqa: F401  (public re-exports)
from .semantics.label_spaces import SPACES, LabelVectors, embed_labels, needs_wordnet, parse_space

#: the space ``zsl label`` uses unless told otherwise: chosen on the development set (CIFAR-10 train
#: images, see benchmarks/results/conse.md), never on the reported test images
DEFAULT_SPACE = "wordnet+minilm"
#: ``far`` = the top label's known score below this; chosen on development images
#: (benchmarks/results/conse.md, "far-flag threshold"); None = no flag until measured
FAR_THRESHOLD: float | None = 0.753
#: per space, ``far`` also when the top label's cosine to f(x) is below this (development images,
#: with FAR_THRESHOLD fixed; benchmarks/results/conse.md)
SCORE_THRESHOLDS: dict[str, float] = {"glove": 0.635, "minilm": 0.134, "minilm-gloss": 0.386, "wordnet": 0.430,
                                      "wordnet+minilm": 0.525, "wordnet+minilm-gloss": 0.408}
#: WordNet 3.0 synset of each CIFAR-10 class name (its first noun sense; evaluation of labelling)
CIFAR10_WNIDS = {"airplane": "n02691156", "automobile": "n02958343", "bird": "n01503061", "cat": "n02121620",
                 "deer": "n02430045", "dog": "n02084071", "frog": "n01639765", "horse": "n02374451",
                 "ship": "n04194289", "truck": "n04490091"}
_ROWS_PER_CHUNK = 4_000_000  # entry scores computed per chunk of images (n * entries floats)


def _norm_name(name: str) -> str:
    return " ".join(name.lower().split())


@dataclass
class Vocabulary:
    """Candidate labels after exclusion and merging.

    ``names`` (first synonym), ``synonyms`` and ``wnids`` (a list per label: empty when unknown,
    several for merged duplicates); ``vectors`` the entry vectors (owner = label index);
    ``missing`` names of labels that have no vector (dropped from ranking); ``duplicates``
    {name: number of labels merged}; ``excluded`` how many ImageNet-1k labels were removed.
    """

    names: list[str]
    synonyms: list[list[str]]
    wnids: list[list[str]]
    vectors: LabelVectors
    missing: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    excluded: int = 0
    source: str = ""
    space: str = ""

    def __len__(self) -> int:
        return len(self.names)


# -- label lists -------------------------------------------------------------------------------------
def read_vocabulary_lines(lines: Sequence[str], where: str = "vocabulary") -> list[list[str]]:
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            syn = [s.strip() for s in line.split(",") if s.strip()]
            if syn:
                out.append(syn)
    if not out:
        raise DataError(f"{where}: no labels (one label per line; `a, b` are synonyms of one label)")
    return out


def vocabulary_labels(spec: Any = "imagenet21k") -> tuple[list[list[str]], list[str | None], str]:
    """(synonyms, wnid or None per label, source) from ``"imagenet21k"``, a file path or a list of labels."""
    if isinstance(spec, str) and spec == "imagenet21k":
        wnids, synonyms = imagenet21k_synsets()
        return synonyms, list(wnids), "imagenet21k"
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise DataError(
                f"{path}: vocabulary file not found (give a file with one label per line, or 'imagenet21k')"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{path}: cannot read the vocabulary file ({type(exc).__name__}); it must be UTF-8 text"
            ) from None
        synonyms = read_vocabulary_lines(text.splitlines(), str(path))
        return synonyms, [None] * len(synonyms), str(path)
    synonyms = read_vocabulary_lines([str(s) for s in spec], "vocabulary list")
    return synonyms, [None] * len(synonyms), "list"


def seen_mask(synonyms: Sequence[Sequence[str]], wnids: Sequence[str | None]) -> np.ndarray:
    """True for labels that are ImageNet-1k classes (by wnid, else by any shared synonym)."""
    seen_wnids, seen_synonyms = imagenet1k_classes()
    seen_ids = set(seen_wnids)
    seen_names = {_norm_name(s) for syn in seen_synonyms for s in syn}
    return np.array([(w in seen_ids) if w else any(_norm_name(s) in seen_names for s in syn)
                     for w, syn in zip(wnids, synonyms)], dtype=bool)


def load_vocabulary(spec: Any = "imagenet21k", *, space: str = DEFAULT_SPACE, exclude_seen: bool = False,
                    cache_dir=None, progress: bool = False) -> Vocabulary:
    """Vocabulary from ``"imagenet21k"``, a file path or a list of labels, embedded in ``space``
    (steps 1-3 of the module docstring)."""
    synonyms, wnids, source = vocabulary_labels(spec)
    # embed the whole list (one cache entry whether or not seen classes are excluded), then select
    vectors = embed_labels(space, synonyms, wnids, cache_dir=cache_dir, progress=progress)
    keep = ~seen_mask(synonyms, wnids) if exclude_seen else np.ones(len(synonyms), bool)
    excluded = int((~keep).sum())
    # merge labels with the same name
    label_of: dict[str, int] = {}
    merged_of = np.full(len(synonyms), -1, np.int64)
    names, merged_syn, merged_wnids, counts = [], [], [], []
    for i in np.flatnonzero(keep):
        key = _norm_name(synonyms[i][0])
        if key not in label_of:
            label_of[key] = len(names)
            names.append(synonyms[i][0])
            merged_syn.append([])
            merged_wnids.append([])
            counts.append(0)
        j = label_of[key]
        merged_of[i] = j
        counts[j] += 1
        merged_syn[j] += [s for s in synonyms[i] if s not in merged_syn[j]]
        if wnids[i] and wnids[i] not in merged_wnids[j]:
            merged_wnids[j].append(wnids[i])
    duplicates = {names[j]: c for j, c in enumerate(counts) if c > 1}
    entry_label = merged_of[vectors.owner]
    lv = vectors.select_entries(entry_label >= 0, owner=entry_label, n_labels=len(names))
    has = lv.labels_with_vector()
    missing = [names[j] for j in np.flatnonzero(~has)]
    if not has.all():  # labels without any vector cannot be ranked: drop them (they are reported)
        new_index = np.cumsum(has) - 1
        ok_entry = has[lv.owner] & (lv.entry_norms() > 0)
        lv = lv.select_entries(ok_entry, owner=new_index[lv.owner], n_labels=int(has.sum()))
        names = [n for n, h in zip(names, has) if h]
        merged_syn = [s for s, h in zip(merged_syn, has) if h]
        merged_wnids = [w for w, h in zip(merged_wnids, has) if h]
    return Vocabulary(names, merged_syn, merged_wnids, lv, missing, duplicates, excluded, source, space)


# -- the labeller --------------------------------------------------------------------------------------
@dataclass
class LabelResult:
    """Top labels for one image: ``labels`` [(name, cosine score, wnids)], ``confidence`` ||f(x)||;
    ``known`` the top label's known score and ``nearest_class`` the classifier class it comes from;
    ``far`` flagged (``far_reason``: ``label`` = known below threshold, ``image`` = top score below the
    space's threshold, see the module docstring)."""

    image: str
    labels: list[tuple[str, float, list[str]]]
    confidence: float
    known: float = float("nan")
    nearest_class: str = ""
    far: bool = False
    far_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        known = round(self.known, 4) if np.isfinite(self.known) else None
        return {
            "image": self.image,
            "confidence": round(self.confidence, 4),
            "known": known,
            "nearest_classifier_class": self.nearest_class,
            "far_from_classifier": bool(self.far),
            **({"far_reason": self.far_reason} if self.far else {}),
            "labels": [
                {"label": n, "score": round(s, 4), **({"wnids": list(w)} if w else {})} for n, s, w in self.labels
            ],
        }


@dataclass
class Ranking:
    """Output of :meth:`ZeroShotLabeller.rank` for n images: ``top`` (n, k) label indices best first,
    ``scores`` (n, k) their cosines to f(x), ``confidence`` (n,) ||f(x)||, ``known`` (n,) the top
    label's known score, ``nearest`` (n,) the index of the classifier class it comes from."""

    top: np.ndarray
    scores: np.ndarray
    confidence: np.ndarray
    known: np.ndarray
    nearest: np.ndarray


class ZeroShotLabeller:
    """ConSE over the ImageNet-1k classifier: ``ZeroShotLabeller("imagenet21k").label(paths, top_k=5)``.

    ``space`` a label space (:data:`zsl.semantics.label_spaces.SPACES`, default :data:`DEFAULT_SPACE`);
    ``T`` the number of top classifier labels combined (None = all); ``far_threshold`` and
    ``score_threshold`` override :data:`FAR_THRESHOLD` and the space's :data:`SCORE_THRESHOLDS`;
    ``synonyms="best"`` ranks a label by its best synonym (the paper), ``"mean"`` by the mean of its
    synonyms' vectors (what zsl did before; kept to measure the difference).
    """

    def __init__(
        self, vocabulary: Any = "imagenet21k", *, space: str = DEFAULT_SPACE, T: int | None = 10,
        exclude_seen: bool = False, resolution: int = 224, batch_size: int = 32, num_workers: int | None = None,
        far_threshold: float | None = None, score_threshold: float | None = None, synonyms: str = "best",
        cache_dir=None, progress: bool = False,
    ):
        parse_space(space)  # a bad name is a one-line error before any work
        if T is not None and (not isinstance(T, (int, np.integer)) or T < 1):
            raise ZSLError(f"T must be a positive integer or None (all classes), got {T!r}")
        if synonyms not in ("best", "mean"):
            raise ZSLError(f"synonyms must be 'best' or 'mean', got {synonyms!r}")
        if needs_wordnet(space):
            from .semantics.wordnet import wordnet_available

            if not wordnet_available():
                raise ZSLError(f"label space {space!r} needs WordNet 3.0: `apt-get install wordnet-base` "
                               "(Debian/Ubuntu), or use --space minilm")
        self.space = space
        self.T = T
        self.resolution = resolution
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.seen_wnids, self.seen_synonyms = imagenet1k_classes()
        seen = embed_labels(
            space, self.seen_synonyms, self.seen_wnids, cache_dir=cache_dir, progress=progress
        ).label_means()
        self.columns = seen.columns_used()  # all a convex combination of seen classes can touch
        self.seen_blocks = [np.asarray(B.toarray() if hasattr(B, "toarray") else B, np.float32)
                            for B in seen.restrict(self.columns).blocks]  # (1000, k_b) unit rows overall
        vocab = vocabulary if isinstance(vocabulary, Vocabulary) else load_vocabulary(
            vocabulary, space=space, exclude_seen=exclude_seen, cache_dir=cache_dir, progress=progress)
        if vocab.space and vocab.space != space:
            raise ZSLError(f"vocabulary embedded in {vocab.space!r} but the labeller uses {space!r}")
        if len(vocab) == 0:
            raise DataError(
                f"vocabulary {vocab.source!r}: no label left to rank ({vocab.excluded} excluded as ImageNet-1k "
                f"classes, {len(vocab.missing)} without a vector in space {space!r})"
            )
        self.vocabulary = vocab
        self.excluded = vocab.excluded
        self.missing = list(vocab.missing)
        self.synonyms = synonyms
        self.candidates = (vocab.vectors if synonyms == "best" else vocab.vectors.label_means()).restrict(self.columns)
        self.known, self.nearest_class = self._known_scores()
        self.far_threshold = FAR_THRESHOLD if far_threshold is None else float(far_threshold)
        self.score_threshold = SCORE_THRESHOLDS.get(space) if score_threshold is None else float(score_threshold)

    def far_reasons(self, ranking: Ranking) -> list[str]:
        """Per image: ``"label"``, ``"image"`` or ``""`` (not flagged); see the module docstring."""
        out = []
        for known, score in zip(ranking.known, ranking.scores[:, 0]):
            if self.far_threshold is not None and np.isfinite(known) and known < self.far_threshold:
                out.append("label")
            elif self.score_threshold is not None and score < self.score_threshold:
                out.append("image")
            else:
                out.append("")
        return out

    def _known_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Per label: its known score and the index of the classifier class it comes from. (V,), (V,).

        known = max over the label's synsets (its wnids, else its synonyms resolved in WordNet) of
        :func:`zsl.semantics.label_spaces.containment` against the 1,000 classes: the share of the
        label's WordNet information that some classifier class holds too. A label WordNet does not
        know gets the MiniLM similarity of its words to the nearest class name (the evidence its
        text-fallback placement rests on), or NaN (never flagged) in spaces that compute none.
        Without WordNet installed every label is NaN. Cached by content beside the label-space
        embeddings, so a warm start does not parse WordNet.
        """
        from .io import atomic_save_npz, cache_root, config_hash
        from .semantics.label_spaces import VERSION
        from .semantics.wordnet import wordnet_available

        V = self.vocabulary
        key = config_hash([VERSION, self.space, self.synonyms, V.synonyms, V.wnids, self.seen_wnids,
                           wordnet_available()], length=20)
        path = cache_root(self.cache_dir) / "labelling" / f"known-{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if len(z["known"]) == len(V):
                        return z["known"], z["nearest"]
            except Exception:  # noqa: BLE001 - a corrupt cache entry is recomputed, not trusted
                pass
        known, nearest = self._compute_known_scores()
        atomic_save_npz(path, known=known, nearest=nearest)
        return known, nearest

    def _compute_known_scores(self) -> tuple[np.ndarray, np.ndarray]:
        from .semantics.label_spaces import containment, resolve_entries
        from .semantics.wordnet import noun_database, wordnet_available

        V = self.vocabulary
        known = np.full(len(V), np.nan, np.float32)
        nearest = np.zeros(len(V), np.int64)
        C = self.candidates
        if C.fallback_similarity is not None:  # evidence of text-fallback entries
            ev = np.where(np.isnan(C.fallback_similarity), -np.inf, C.fallback_similarity)
            order = np.lexsort((-ev, C.owner))
            first = order[np.r_[True, C.owner[order][1:] != C.owner[order][:-1]]]
            ok = first[np.isfinite(ev[first])]
            known[C.owner[ok]] = ev[ok]
            nearest[C.owner[ok]] = C.fallback_class[ok]
        if not wordnet_available():
            return known, nearest
        db = noun_database()
        synsets, owner = [], []
        for j, (ws, syn) in enumerate(zip(V.wnids, V.synonyms)):
            ids = [w for w in ws if w in db]
            if not ids:
                ids = [s for s in resolve_entries(list(syn), np.zeros(len(syn), np.int64), None, db)[0] if s]
            synsets += ids
            owner += [j] * len(ids)
        if synsets:
            frac, arg = containment(db, synsets, self.seen_wnids)
            owner = np.asarray(owner, np.int64)
            order = np.lexsort((-frac, owner))
            first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
            known[owner[first]] = frac[first]
            nearest[owner[first]] = arg[first]
        return known, nearest

    # ConSE on classifier logits: the step whose cost bench_label.py measures
    def embed(self, logits: np.ndarray) -> list[np.ndarray]:
        """f(x) per block: (n, 1000) logits -> [(n, k_b)] (eq. 1-2 of the paper)."""
        W = top_t_weights(softmax(logits), self.T)  # (n, 1000), rows sum to 1
        return [(W @ S).astype(np.float32) for S in self.seen_blocks]

    def entry_scores(self, F: list[np.ndarray]) -> np.ndarray:
        """cos(f(x), entry) for every vocabulary entry: (n, m)."""
        norm = np.sqrt(sum((Fb.astype(np.float64) ** 2).sum(1) for Fb in F))
        out = None
        for Fb, Cb in zip(F, self.candidates.blocks):
            part = np.asarray((Cb @ Fb.T).T)  # works for dense and sparse candidates
            out = part if out is None else out + part
        return (out / np.maximum(norm, 1e-12)[:, None]).astype(np.float32)

    def rank(self, logits: np.ndarray, top_k: int = 5) -> Ranking:
        """(n, 1000) logits -> top-k labels, their scores, ||f(x)|| and the top label's known score."""
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim != 2 or logits.shape[1] != len(self.seen_wnids):
            raise DataError(f"logits must be (n, {len(self.seen_wnids)}); got {logits.shape}")
        n, V = len(logits), len(self.vocabulary)
        k = min(top_k, V)
        top = np.zeros((n, k), np.int64)
        top_scores = np.zeros((n, k), np.float32)
        conf = np.zeros(n, np.float32)
        step = max(1, _ROWS_PER_CHUNK // max(1, self.candidates.n_entries))
        for s in range(0, n, step):
            F = self.embed(logits[s:s + step])
            norm = np.sqrt(sum((Fb.astype(np.float64) ** 2).sum(1) for Fb in F))
            conf[s:s + step] = norm
            scores = best_over_synonyms(self.entry_scores(F), self.candidates.owner, V)
            t = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            ts = np.take_along_axis(scores, t, 1)
            order = np.argsort(-ts, axis=1, kind="stable")
            top[s:s + step] = np.take_along_axis(t, order, 1)
            top_scores[s:s + step] = np.take_along_axis(ts, order, 1)
        return Ranking(top, top_scores, conf, self.known[top[:, 0]], self.nearest_class[top[:, 0]])

    def label_logits(self, logits: np.ndarray, names: Sequence[str], top_k: int = 5) -> list[LabelResult]:
        r = self.rank(np.asarray(logits), top_k)
        V = self.vocabulary
        reasons = self.far_reasons(r)
        return [LabelResult(name, [(V.names[j], float(s), V.wnids[j]) for j, s in zip(r.top[i], r.scores[i])],
                            float(r.confidence[i]), float(r.known[i]), self.seen_synonyms[r.nearest[i]][0],
                            bool(reasons[i]), reasons[i])
                for i, name in enumerate(names)]

    def label(
        self, images: Sequence[Any], top_k: int = 5, *, progress: bool = True
    ) -> tuple[list[LabelResult], list[str]]:
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


def label_images(images: Sequence[Any], vocabulary: Any = "imagenet21k", *, space: str = DEFAULT_SPACE, top_k: int = 5,
                 T: int | None = 10, exclude_seen: bool = False, resolution: int = 224) -> list[LabelResult]:
    """One-call API: ``label_images(["cat.jpg"], "imagenet21k", exclude_seen=True)`` -> [LabelResult]."""
    labeller = ZeroShotLabeller(vocabulary, space=space, T=T, exclude_seen=exclude_seen, resolution=resolution)
    results, _ = labeller.label(images, top_k)
    return results


# -- evaluation on labelled images (used by benchmarks/conse_tables.py) ---------------------------------
def labelled_images(path_or_tar, part: str = "test", *, per_class: int | None = None, seed: int = 0,
                    cache_dir=None) -> tuple[list[str], list[str], np.ndarray]:
    """(image paths, class names, class id per image) of one part (``train``/``test``/``all``) of an
    image folder or archive; ``per_class`` keeps that many images per class (seeded, sorted)."""
    from .data.image_folder import resolve_image_root, scan_image_folder

    names, parts = scan_image_folder(resolve_image_root(path_or_tar, cache_dir))
    if part not in parts:
        raise DataError(f"{path_or_tar}: no part {part!r}; parts: {', '.join(parts)}")
    rows = parts[part]
    y = np.asarray([c for _, c in rows], np.int64)
    keep = np.arange(len(rows))
    if per_class is not None:
        rng = np.random.default_rng([seed, 16])
        keep = np.sort(
            np.concatenate(
                [
                    rng.choice(np.flatnonzero(y == c), min(per_class, int((y == c).sum())), replace=False)
                    for c in np.unique(y)
                ]
            )
        )
    return [rows[i][0] for i in keep], names, y[keep]


def classifier_ceiling(logits: np.ndarray, true_wnids: Sequence[str]) -> float:
    """Fraction of images whose classifier top-1 ImageNet-1k class is the true synset or lies under it
    in WordNet: what a label space could reach at best from the classifier's single best guess."""
    from .semantics.wordnet import noun_database

    db = noun_database()
    seen_wnids, _ = imagenet1k_classes()
    top1 = np.asarray(logits).argmax(1)
    memo: dict[tuple[int, str], bool] = {}
    hits = []
    for c, t in zip(top1.tolist(), true_wnids):
        if (c, t) not in memo:
            memo[(c, t)] = db.is_under(seen_wnids[c], t)
        hits.append(memo[(c, t)])
    return float(np.mean(hits)) if hits else float("nan")


def partition_hit_at_1(logits: np.ndarray, class_wnids: Sequence[str], y: np.ndarray, T: int | None = 10) -> float:
    """hit@1 of an oracle label space: each name scores the top-T probability of the classifier
    classes that lie under its synset in WordNet (classes under no name count for nothing). A bound
    on what re-describing the same labels can gain, given this classifier's probabilities."""
    from .semantics.wordnet import noun_database

    db = noun_database()
    seen_wnids, _ = imagenet1k_classes()
    M = np.array([[db.is_under(w, c) for c in class_wnids] for w in seen_wnids], np.float64)  # (1000, C)
    S = top_t_weights(softmax(logits), T) @ M
    return float(np.mean((S.argmax(1) == np.asarray(y)) & (S.max(1) > 0)))


def _flag_rates(pool_known: np.ndarray, pool_score: np.ndarray | None, known_threshold: float | None,
                cands: np.ndarray, on: str) -> np.ndarray:
    """Fraction of a pool flagged for every candidate threshold (vectorised with searchsorted)."""
    if on == "known":
        k = np.sort(pool_known[np.isfinite(pool_known)])
        return np.searchsorted(k, cands, side="left") / max(1, len(pool_known))  # known < t
    base = np.isfinite(pool_known) & (pool_known < known_threshold)
    rest = np.sort(pool_score[~base])
    return (base.sum() + np.searchsorted(rest, cands, side="left")) / max(1, len(pool_score))  # score < t


def choose_far_threshold(near: Sequence[np.ndarray], far: Sequence[np.ndarray]) -> tuple[float, float]:
    """Threshold on the known score that best separates development results whose vocabulary holds
    what the classifier knows (``near``: one array of known scores per pool) from results whose
    vocabulary does not (``far``), by balanced accuracy (every pool weighs the same within its group;
    ties: the lowest threshold, flagging least). Returns (threshold, balanced accuracy); flag = known < t."""
    values = np.unique(np.concatenate([np.asarray(p)[np.isfinite(p)] for p in [*near, *far]]))
    cands = np.r_[values, values[-1] + 1e-6]
    acc = 0.5 * (np.mean([1 - _flag_rates(np.asarray(p), None, None, cands, "known") for p in near], axis=0)
                 + np.mean([_flag_rates(np.asarray(p), None, None, cands, "known") for p in far], axis=0))
    i = int(np.flatnonzero(acc >= acc.max() - 1e-9)[0])  # first maximum = lowest threshold
    return float(cands[i]), float(acc[i])


def choose_score_threshold(near: Sequence[tuple[np.ndarray, np.ndarray]], far: Sequence[tuple[np.ndarray, np.ndarray]],
                           known_threshold: float) -> tuple[float, float]:
    """Score threshold for the ``image`` flag with the ``label`` flag fixed at ``known_threshold``:
    pools are (known, top score) arrays; flag = known < known_threshold or score < threshold; the
    threshold with the best balanced accuracy (ties: the lowest, flagging least). Returns (t, acc)."""
    values = np.unique(np.concatenate([np.asarray(sc) for _, sc in [*near, *far]]))
    cands = np.r_[values[0] - 1e-6, values]
    rates = lambda pool: _flag_rates(np.asarray(pool[0]), np.asarray(pool[1]), known_threshold, cands, "score")
    acc = 0.5 * (np.mean([1 - rates(p) for p in near], axis=0) + np.mean([rates(p) for p in far], axis=0))
    i = int(np.flatnonzero(acc >= acc.max() - 1e-9)[0])
    return float(cands[i]), float(acc[i])


def names_hit_at_k(ranking: Ranking, vocabulary: Vocabulary, class_names: Sequence[str], y: np.ndarray,
                   ks: Sequence[int] = (1, 2)) -> dict[int, float]:
    """hit@k when the vocabulary is the class names: the true class's label among the first k."""
    index = {_norm_name(n): i for i, n in enumerate(vocabulary.names)}
    true = np.array([index.get(_norm_name(class_names[c]), -1) for c in y])
    return {k: ranked_hit_at_k(ranking.top, true, k) for k in ks}


def label_of_wnid(vocabulary_wnids: Sequence[Sequence[str]], wnids: Sequence[str]) -> np.ndarray:
    """Index of the label holding each WordNet id (-1 when none does); a merged label holds several ids.

    Merging makes the map exact: each wnid belongs to at most one label of a vocabulary.
    """
    owner = {w: j for j, ws in enumerate(vocabulary_wnids) for w in ws}
    return np.array([owner.get(w, -1) for w in wnids], dtype=np.int64)


def hierarchy_scores(
    ranking: Ranking, vocabulary: Vocabulary, true_wnids: Sequence[str], k: int = 5
) -> dict[str, float]:
    """Flat hit@k and hierarchical precision@k (Frome et al. 2013) of a ranking over a vocabulary with
    WordNet ids (merged labels count as correct when any of their ids is)."""
    from .eval.hierarchy import hierarchical_precision_at_k

    ranked = [[vocabulary.wnids[j] for j in row] for row in ranking.top]
    valid = {w for ws in vocabulary.wnids for w in ws}
    return {f"hit@{k}": ranked_hit_at_k(ranking.top, label_of_wnid(vocabulary.wnids, true_wnids), k),
            f"hp@{k}": hierarchical_precision_at_k(ranked, true_wnids, k, valid)}


__all__ = [
    "CIFAR10_WNIDS", "DEFAULT_SPACE", "FAR_THRESHOLD", "IMAGE_EXTENSIONS", "LabelResult", "Ranking", "SPACES",
    "Vocabulary", "SCORE_THRESHOLDS", "ZeroShotLabeller", "choose_far_threshold", "choose_score_threshold",
    "classifier_ceiling", "expand_images", "hierarchy_scores", "imagenet1k_classes", "imagenet21k_synsets",
    "label_images", "labelled_images", "load_vocabulary", "label_of_wnid", "names_hit_at_k", "partition_hit_at_1",
    "read_vocabulary_lines", "seen_mask", "vocabulary_labels",
]
