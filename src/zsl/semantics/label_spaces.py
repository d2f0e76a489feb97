"""Label spaces: vectors of class labels that ConSE (or any method) compares by cosine similarity.

A *label* is a list of synonyms (``["dog", "domestic dog", "Canis familiaris"]``), optionally with
the WordNet noun synset it names (its wnid, as ImageNet labels carry). A label space gives every
(label, synonym) pair one unit vector, an *entry*; ConSE ranks a label by the best cosine over its
entries (Norouzi et al. 2014: candidates are ranked by the individual word vectors) and describes a
seen class by the mean of its entries (the paper averages the synonyms of a synset).

Spaces (``zsl label --space NAME``; ``class_embeddings(names, NAME)`` for a dataset's classes)::

    glove         GloVe 6B-50d: the mean of the word vectors of the synonym (GloVe's own vocabulary
                  of 400k lowercase words; an entry with no known word has no vector).
    minilm        all-MiniLM-L6-v2 sentence vector of the synonym itself (the lemma).
    minilm-gloss  MiniLM vector of ``"<lemmas of the synset>: <WordNet gloss>"`` for the synset the
                  synonym names; every synonym of one synset shares this vector (the gloss describes
                  the sense, not the word). A synonym WordNet does not know gets its ``minilm`` vector.
    wordnet       the WordNet 3.0 noun hierarchy (below).
    A+B           the concatenation of spaces A and B, each block unit-norm and weighted sqrt(1/2)
                  (weights are a parameter), so the cosine of two labels is the mean of their cosines
                  in A and in B: ``wordnet+minilm``, ``wordnet+minilm-gloss``.

The hierarchy space. A synset s is the set A(s) of itself and all its hypernym / instance-hypernym
ancestors (every inheritance path). Its vector has the coordinate sqrt(IC(a)) on each a in A(s),
zero elsewhere, normalised, with IC(a) = log(N / |descendants(a)|) the intrinsic information content
of Seco, Veale & Hayes (2004) (N = 82,115 noun synsets; descendants include a itself), so that::

    cos(s, t) = sum_{a in A(s) & A(t)} IC(a) / sqrt(sum_{A(s)} IC * sum_{A(t)} IC)

-- the information the two synsets share, relative to what each holds. ``entity`` (IC 0) counts for
nothing, a shared genus a lot. With uniform weights (``wordnet-uniform``) this is |A(s) & A(t)| /
sqrt(|A(s)| |A(t)|), the geometric-mean form of Wu-Palmer similarity 2 depth(lcs) / (depth(s) +
depth(t)) on a tree. Being a vector space (not only a similarity), it works for ConSE's convex
combination and for every method that takes class embeddings.

Words to synsets. A label that carries a wnid (ImageNet) uses it. Otherwise each synonym is looked up
as a noun (morphy(7WN) base forms, hyphen variants): among its senses the first that is an
ImageNet-21k synset is taken (ImageNet's synsets are picturable concepts: ``crane`` is the machine or
the bird, not Stephen Crane, WordNet's first sense), else the most frequent sense. A phrase WordNet
lacks backs off to its head (``hard-leaved pocket orchid`` -> ``pocket orchid`` -> ``orchid``).

Words WordNet does not know fall back to the text space: such a synonym is placed in the hierarchy at
its ``FALLBACK_NEIGHBOURS`` = 3 nearest ImageNet-1k classes by MiniLM cosine of the names (best over
each class's synonyms), as their cosine-weighted combination -- the ConSE rule applied to the word
itself. One space therefore ranks every label on one scale; the labels placed this way are reported
(``LabelVectors.how == "fallback"``). Why the 1k classes and not the 21k synsets: their 1,860 names
are embedded anyway (ConSE's seen classes) and take seconds to encode, while the 21k synsets' 40,742
names take minutes on 2 cores -- a cost a user with one unknown word in a ten-word vocabulary
should not pay.

Storage: blocks are dense float32 (text spaces) or scipy CSR over all 82,115 synsets (hierarchy);
:meth:`LabelVectors.restrict` keeps the columns a set of seen classes spans, which is all a convex
combination of seen classes can touch. Embeddings are cached under ``<cache>/labelling/`` keyed by the
space, its version and the labels' text (and wnids), so a warm ``zsl label`` loads neither MiniLM nor
WordNet.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, ZSLError

VERSION = 3  # part of the cache key: bump when a space's definition changes
BASE_SPACES = ("glove", "minilm", "minilm-gloss", "wordnet", "wordnet-uniform")
#: the spaces ``zsl label --space`` offers
SPACES = ("glove", "minilm", "minilm-gloss", "wordnet", "wordnet+minilm", "wordnet+minilm-gloss")
FALLBACK_NEIGHBOURS = 3
_PUNCT = re.compile(r"[()\[\]{},;:!?\"]")
_EPS = 1e-12


def parse_space(name: str) -> list[str]:
    """``"wordnet+minilm"`` -> ``["wordnet", "minilm"]``; an unknown part is a one-line error."""
    parts = [p.strip() for p in str(name).split("+")]
    bad = [p for p in parts if p not in BASE_SPACES]
    if bad or not parts or len(set(parts)) != len(parts):
        raise ZSLError(
            f"unknown label space {name!r}; valid: {', '.join(SPACES)} (or any A+B of {', '.join(BASE_SPACES)})"
        )
    return parts


def needs_wordnet(name: str) -> bool:
    return any(p in ("minilm-gloss", "wordnet", "wordnet-uniform") for p in parse_space(name))


@dataclass
class LabelVectors:
    """Entry vectors of ``n_labels`` labels in one space.

    blocks: list of (m, k_b) float32 arrays or scipy CSR matrices (rows of the concatenation are
    unit-norm; all-zero rows = no vector); owner: (m,) label of each entry; synsets / how: the wnid an
    entry was resolved to (None if none) and how (``given``, ``exact``, ``head``, ``fallback``,
    ``unknown``, or ``none`` for spaces that do not resolve words).
    """

    space: str
    blocks: list
    owner: np.ndarray
    n_labels: int
    synsets: list = field(default_factory=list)
    how: list = field(default_factory=list)
    #: (m,) for entries placed by the text fallback: the MiniLM cosine to the nearest ImageNet-1k class
    #: name their placement rests on (NaN for the others) and that class's index (-1 for the others)
    fallback_similarity: np.ndarray | None = None
    fallback_class: np.ndarray | None = None

    @property
    def n_entries(self) -> int:
        return len(self.owner)

    def entry_norms(self) -> np.ndarray:
        sq = np.zeros(self.n_entries)
        for B in self.blocks:
            sq += np.asarray(B.multiply(B).sum(1)).ravel() if _is_sparse(B) else (np.asarray(B, np.float64) ** 2).sum(1)
        return np.sqrt(sq)

    def labels_with_vector(self) -> np.ndarray:
        """(n_labels,) True when at least one entry of the label has a vector."""
        ok = np.zeros(self.n_labels, bool)
        ok[self.owner[self.entry_norms() > 0]] = True
        return ok

    def select_entries(
        self, keep: np.ndarray, owner: np.ndarray | None = None, n_labels: int | None = None
    ) -> LabelVectors:
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, np.int64)
        return LabelVectors(
            self.space, [B[idx] for B in self.blocks],
            self.owner[idx] if owner is None else np.asarray(owner, np.int64)[idx],
            self.n_labels if n_labels is None else n_labels, [self.synsets[i] for i in idx] if self.synsets else [],
            [self.how[i] for i in idx] if self.how else [],
            None if self.fallback_similarity is None else self.fallback_similarity[idx],
            None if self.fallback_class is None else self.fallback_class[idx],
        )

    def label_means(self) -> LabelVectors:
        """One unit entry per label: the mean of its entries, renormalised (a seen class's s(y))."""
        import scipy.sparse as sp

        ok = self.entry_norms() > 0
        counts = np.bincount(self.owner[ok], minlength=self.n_labels).astype(np.float64)
        M = sp.csr_matrix((1.0 / counts[self.owner[ok]], (self.owner[ok], np.flatnonzero(ok))),
                          shape=(self.n_labels, self.n_entries))
        blocks = [
            (M @ B).tocsr().astype(np.float32) if _is_sparse(B) else (M @ np.asarray(B, np.float64)).astype(np.float32)
            for B in self.blocks
        ]
        out = LabelVectors(self.space, blocks, np.arange(self.n_labels), self.n_labels)
        return out.normalised()

    def normalised(self) -> LabelVectors:
        """Rows scaled to unit norm over all blocks (zero rows stay zero)."""
        import scipy.sparse as sp

        n = self.entry_norms()
        inv = np.where(n > 0, 1.0 / np.maximum(n, _EPS), 0.0)
        blocks = [
            (sp.diags(inv.astype(np.float32)) @ B).tocsr()
            if _is_sparse(B)
            else (np.asarray(B) * inv[:, None]).astype(np.float32)
            for B in self.blocks
        ]
        return LabelVectors(
            self.space, blocks, self.owner, self.n_labels, self.synsets, self.how, self.fallback_similarity,
            self.fallback_class,
        )

    def columns_used(self) -> list[np.ndarray]:
        """Per block, the columns holding any non-zero value."""
        out = []
        for B in self.blocks:
            if _is_sparse(B):
                out.append(np.unique(B.indices))
            else:
                out.append(np.flatnonzero(np.any(np.asarray(B) != 0, axis=0)))
        return out

    def restrict(self, columns: list[np.ndarray]) -> LabelVectors:
        """Keep only ``columns`` of each block (no renormalisation: cosines with vectors living in
        those columns are unchanged, provided rows were unit-norm before)."""
        blocks = [
            B[:, c] if _is_sparse(B) else np.ascontiguousarray(np.asarray(B)[:, c])
            for B, c in zip(self.blocks, columns)
        ]
        return LabelVectors(
            self.space, blocks, self.owner, self.n_labels, self.synsets, self.how, self.fallback_similarity,
            self.fallback_class,
        )

    def dense(self) -> np.ndarray:
        """(m, sum k_b) float32 concatenation of the blocks (densified)."""
        parts = [B.toarray() if _is_sparse(B) else np.asarray(B) for B in self.blocks]
        return np.hstack(parts).astype(np.float32) if parts else np.zeros((self.n_entries, 0), np.float32)

    def counts(self) -> dict[str, int]:
        """How the entries were resolved to synsets (labels counted once, by their first entry)."""
        first = {}
        for o, h in zip(self.owner.tolist(), self.how):
            first.setdefault(o, h)
        out: dict[str, int] = {}
        for h in first.values():
            out[h] = out.get(h, 0) + 1
        return out


def _is_sparse(B) -> bool:
    import scipy.sparse as sp

    return sp.issparse(B)


def clean_synonym(name: str) -> str:
    return " ".join(_PUNCT.sub(" ", name).split())


# -- building blocks -----------------------------------------------------------------------------------
def _entries(synonyms: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    flat = [clean_synonym(s) for syn in synonyms for s in syn]
    owner = np.repeat(np.arange(len(synonyms)), [len(s) for s in synonyms]).astype(np.int64)
    return flat, owner


def _unit_rows(E: np.ndarray) -> np.ndarray:
    E = np.asarray(E, np.float32)
    n = np.linalg.norm(E, axis=1, keepdims=True)
    return np.where(n > 0, E / np.maximum(n, _EPS), 0.0).astype(np.float32)


def _glove_block(words: list[str]) -> np.ndarray:
    from .glove import glove_vectors

    E, _ = glove_vectors(words)
    return _unit_rows(E)


def _minilm_block(words: list[str], cache_dir, progress) -> np.ndarray:
    from .minilm import minilm_vectors

    uniq = sorted(set(words))
    E = minilm_vectors(uniq, cache_dir=cache_dir, progress=progress)
    pos = {w: i for i, w in enumerate(uniq)}
    return E[[pos[w] for w in words]]


def resolve_entries(words: list[str], owner: np.ndarray, wnids: Sequence[str | None], db) -> tuple[list, list]:
    """Synset of each entry (see the module docstring) and how it was found."""
    from .imagenet import imagenet21k_available, imagenet21k_synsets

    prefer = set(imagenet21k_synsets()[0]) if imagenet21k_available() else None
    synsets, how = [], []
    cache: dict[str, tuple] = {}
    for w, o in zip(words, owner.tolist()):
        given = wnids[o] if wnids is not None else None
        if given and given in db:
            synsets.append(given)
            how.append("given")
            continue
        if w not in cache:
            cache[w] = db.resolve(w, prefer)
        s, h = cache[w]
        synsets.append(s)
        how.append(h)
    return synsets, how


def _gloss_block(words: list[str], synsets: list, db, cache_dir, progress) -> np.ndarray:
    from .minilm import minilm_sentences, phrase

    texts = []
    for w, s in zip(words, synsets):
        if s is None:
            texts.append(phrase(w))
        else:
            r = db.row[s]
            texts.append(f"{', '.join(db.lemmas[r])}: {db.glosses[r]}")
    uniq = sorted(set(texts))
    E = minilm_sentences(uniq, cache_dir=cache_dir, progress=progress)
    pos = {t: i for i, t in enumerate(uniq)}
    return E[[pos[t] for t in texts]]


def information_content(db) -> np.ndarray:
    """(N,) intrinsic IC = log(N / |descendants|) of every noun synset (Seco et al. 2004, unscaled)."""
    return np.log(len(db) / db.descendant_counts())


def hierarchy_rows(db, synsets: Sequence[str | None], weighting: str = "ic"):
    """(m, N) CSR unit rows: sqrt(IC) (or 1) on each synset's ancestors and itself; zero rows for None."""
    import scipy.sparse as sp

    A = db.ancestor_matrix()
    rows = np.array([db.row[s] if s is not None else -1 for s in synsets], np.int64)
    known = rows >= 0
    sub = A[rows[known]] if known.any() else sp.csr_matrix((0, len(db)), dtype=np.float32)
    w = np.sqrt(information_content(db)) if weighting == "ic" else np.ones(len(db))
    sub = (sub @ sp.diags(w.astype(np.float32))).tocsr()
    sub.eliminate_zeros()
    norms = np.sqrt(np.asarray(sub.multiply(sub).sum(1)).ravel())
    sub = (sp.diags((1.0 / np.maximum(norms, _EPS)).astype(np.float32)) @ sub).tocsr()
    P = sp.csr_matrix((np.ones(known.sum(), np.float32), (np.flatnonzero(known), np.arange(known.sum()))),
                      shape=(len(rows), int(known.sum())))
    return (P @ sub).tocsr().astype(np.float32)


def containment(db, synsets: Sequence[str], class_wnids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """How much of each synset's WordNet information a class shares, at best over the classes.

    For a synset c and a class y: sum of IC over the ancestors they share / sum of IC over c's own
    ancestors (c included) -- 1 when y is c or lies under it, less the further y branches off above
    c. Asymmetric on purpose: a general label (``bird``) is fully backed by any class below it
    (``cock``), a fine one (``primrose``) only as far as its nearest class (``daisy``) goes.
    Returns (m,) best fractions and (m,) the index of the best class.
    """
    A = db.ancestor_matrix()
    ic = information_content(db).astype(np.float32)
    rows = np.array([db.row[s] for s in synsets], np.int64)
    cls = np.array([db.row[w] for w in class_wnids if w in db], np.int64)
    cls_index = np.array([i for i, w in enumerate(class_wnids) if w in db], np.int64)
    import scipy.sparse as sp

    L = (A[rows] @ sp.diags(ic)).tocsr()  # (m, N) IC on each label's ancestors
    shared = np.asarray((L @ A[cls].T).todense())  # (m, n_classes) shared IC
    own = np.asarray(L.sum(1)).ravel()
    frac = shared / np.maximum(own, _EPS)[:, None]
    return frac.max(1).astype(np.float32), cls_index[frac.argmax(1)]


def _fallback_rows(words: list[str], db, weighting: str, cache_dir, progress):
    """Hierarchy rows for words WordNet lacks: cosine-weighted mix of their nearest ImageNet-1k classes by MiniLM."""
    import scipy.sparse as sp

    from .imagenet import imagenet1k_classes

    ref_wnids, ref_syn = imagenet1k_classes()
    keep = [i for i, w in enumerate(ref_wnids) if w in db]
    ref_wnids = [ref_wnids[i] for i in keep]
    ref_words, ref_owner = _entries([ref_syn[i] for i in keep])
    R = _minilm_block(ref_words, cache_dir, progress)  # (m_ref, 384) unit
    W = _minilm_block(words, cache_dir, False)  # (u, 384)
    S = W @ R.T
    order = np.argsort(ref_owner, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(ref_owner[order]) != 0])
    per_synset = np.maximum.reduceat(S[:, order], starts, axis=1)  # (u, n_ref)
    k = min(FALLBACK_NEIGHBOURS, per_synset.shape[1])
    top = np.argpartition(-per_synset, k - 1, axis=1)[:, :k]
    weights = np.maximum(np.take_along_axis(per_synset, top, 1), 0.0)
    evidence = np.take_along_axis(per_synset, top, 1).max(1).astype(np.float32)
    nearest = np.asarray(keep, np.int64)[per_synset.argmax(1)]
    weights[weights.sum(1) == 0] = 1.0  # no positive similarity at all: an unweighted mean of the nearest
    H = hierarchy_rows(db, ref_wnids, weighting)
    rows = []
    for t, wt in zip(top, weights):
        rows.append(sp.csr_matrix(wt[None, :].astype(np.float32)) @ H[t])
    out = sp.vstack(rows).tocsr() if rows else sp.csr_matrix((0, len(db)), dtype=np.float32)
    norms = np.sqrt(np.asarray(out.multiply(out).sum(1)).ravel())
    return (sp.diags((1.0 / np.maximum(norms, _EPS)).astype(np.float32)) @ out).tocsr(), evidence, nearest


def embed_labels(space: str, synonyms: Sequence[Sequence[str]], wnids: Sequence[str | None] | None = None, *,
                 weights: Sequence[float] | None = None, cache_dir=None, progress: bool = False,
                 use_cache: bool = True) -> LabelVectors:
    """Entry vectors of labels (each a list of synonyms; ``wnids`` optional, one per label) in ``space``.

    ``weights`` (one per part of ``A+B``, default equal) weigh the blocks' cosines; they sum to 1.
    Cached by content under ``<cache>/labelling/space-<key>.npz`` (see the module docstring).
    """
    parts = parse_space(space)
    synonyms = [[str(s) for s in syn] for syn in synonyms]
    if any(not syn for syn in synonyms):
        raise DataError("every label needs at least one name")
    if wnids is not None and len(wnids) != len(synonyms):
        raise DataError(f"{len(wnids)} wnids for {len(synonyms)} labels")
    if weights is None:
        weights = [1.0 / len(parts)] * len(parts)
    weights = [float(w) for w in weights]
    if len(weights) != len(parts) or any(not np.isfinite(w) or w <= 0 for w in weights):
        raise ZSLError(f"label space {space!r}: need {len(parts)} positive weights, got {weights}")
    total = sum(weights)
    weights = [w / total for w in weights]
    from ..io import cache_root, config_hash

    key = config_hash([VERSION, parts, weights, synonyms, list(wnids) if wnids is not None else None], length=20)

    path = cache_root(cache_dir) / "labelling" / f"space-{key}.npz"
    if use_cache and path.is_file():
        loaded = _load(path, space, len(synonyms))
        if loaded is not None:
            return loaded
    words, owner = _entries(synonyms)
    synsets, how = [None] * len(words), ["none"] * len(words)
    db = None
    if any(p != "glove" and p != "minilm" for p in parts):
        from .wordnet import noun_database

        db = noun_database()
        synsets, how = resolve_entries(words, owner, wnids, db)
    blocks = []
    evidence = fallback_class = None
    for p, w in zip(parts, weights):
        if p == "glove":
            B = _glove_block(words)
        elif p == "minilm":
            B = _minilm_block(words, cache_dir, progress)
        elif p == "minilm-gloss":
            B = _gloss_block(words, synsets, db, cache_dir, progress)
        else:
            B, evidence, fallback_class = _hierarchy_entries(
                words, synsets, db, "ic" if p == "wordnet" else "uniform", cache_dir, progress
            )
        blocks.append(B * np.float32(np.sqrt(w)))
    if any(p.startswith("wordnet") for p in parts):
        how = [("fallback" if s is None else h) for s, h in zip(synsets, how)]
    out = LabelVectors(space, blocks, owner, len(synonyms), synsets, how, evidence, fallback_class)
    if len(parts) > 1:  # a row missing in one block (GloVe) is renormalised over the blocks it has
        out = out.normalised()
    if use_cache:
        _save(path, out)
    return out


def _hierarchy_entries(words, synsets, db, weighting, cache_dir, progress):
    import scipy.sparse as sp

    H = hierarchy_rows(db, synsets, weighting)
    evidence = np.full(len(synsets), np.nan, np.float32)
    nearest = np.full(len(synsets), -1, np.int64)
    unknown = [i for i, s in enumerate(synsets) if s is None]
    if not unknown:
        return H, evidence, nearest
    F, evidence[unknown], nearest[unknown] = _fallback_rows(
        [words[i] for i in unknown], db, weighting, cache_dir, progress
    )
    # replace the zero rows of the unknown entries by their fallback rows
    P = sp.csr_matrix(
        (np.ones(len(unknown), np.float32), (unknown, np.arange(len(unknown)))), shape=(len(synsets), len(unknown))
    )
    return (H + P @ F).tocsr(), evidence, nearest


# -- cache files: arrays only (no pickle) --------------------------------------------------------------
def _save(path, lv: LabelVectors) -> None:
    from ..io import atomic_save_npz

    arrays = {"owner": lv.owner, "n_labels": np.array(lv.n_labels), "n_blocks": np.array(len(lv.blocks)),
              "synsets": np.array([s or "" for s in lv.synsets], dtype=str), "how": np.array(lv.how, dtype=str)}
    if lv.fallback_similarity is not None:
        arrays["fallback_similarity"] = lv.fallback_similarity
        arrays["fallback_class"] = lv.fallback_class
    for b, B in enumerate(lv.blocks):
        if _is_sparse(B):
            B = B.tocsr()
            arrays.update({f"b{b}_data": B.data, f"b{b}_indices": B.indices, f"b{b}_indptr": B.indptr,
                           f"b{b}_shape": np.array(B.shape)})
        else:
            arrays[f"b{b}"] = np.asarray(B, np.float32)
    atomic_save_npz(path, **arrays)


def _load(path, space: str, n_labels: int) -> LabelVectors | None:
    import scipy.sparse as sp

    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["n_labels"]) != n_labels:
                return None
            blocks = []
            for b in range(int(z["n_blocks"])):
                if f"b{b}" in z.files:
                    blocks.append(z[f"b{b}"])
                else:
                    blocks.append(sp.csr_matrix((z[f"b{b}_data"], z[f"b{b}_indices"], z[f"b{b}_indptr"]),
                                                shape=tuple(z[f"b{b}_shape"])))
            synsets = [s or None for s in z["synsets"].tolist()]
            evidence = z["fallback_similarity"] if "fallback_similarity" in z.files else None
            nearest = z["fallback_class"] if "fallback_class" in z.files else None
            return LabelVectors(
                space, blocks, z["owner"].astype(np.int64), n_labels, synsets, z["how"].tolist(), evidence, nearest
            )
    except Exception:  # noqa: BLE001 - a corrupt cache entry is recomputed, not trusted
        return None


def class_embeddings(names: Sequence[str], space: str, *, cache_dir=None) -> tuple[np.ndarray, list[str]]:
    """(C, k) float32 class embeddings of class names in a label space (``a, b`` in a name are synonyms,
    averaged), and the names with no vector. Hierarchy blocks keep only the columns the classes use."""
    synonyms = []
    for n in names:
        text = re.sub(r"^\d+\.", "", str(n).strip()).replace("+", " ").replace("_", " ")
        synonyms.append([s.strip() for s in text.split(",") if s.strip()] or [str(n)])
    lv = embed_labels(space, synonyms, cache_dir=cache_dir).label_means()
    lv = lv.restrict(lv.columns_used())
    missing = [str(n) for n, ok in zip(names, lv.labels_with_vector()) if not ok]
    return lv.dense(), missing
