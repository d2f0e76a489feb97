"""ConSE -- Zero-shot learning by convex combination of semantic embeddings (Norouzi et al., ICLR 2014).

No training beyond an ordinary classifier of the seen classes. For an image x with seen-class
probabilities p(y|x) (any n-way classifier), keep the T most probable seen labels and embed the image
as their probability-weighted convex combination (eq. 1 and 2 of the paper):

    f(x) = (1 / Z) * sum_{t=1..T} p(y_t | x) s(y_t),      Z = sum_{t=1..T} p(y_t | x)

where y_t is the t-th most probable seen label and s(y) its semantic embedding (word vector; for a
synset, the average of its synonyms' vectors). Candidate labels c (unseen for ZSL, all for GZSL)
are ranked by cosine similarity to f(x). A candidate with several synonyms is ranked by the best
cosine over its synonyms' *individual* vectors, as in the paper (section 5: ranking by the individual
word vectors is why its ConSE(1) scores 55.1 against the softmax's 55.6 on the 1,000 seen classes):

    score(x, c) = max_{w in synonyms(c)} cos(f(x), s(w))                      (:func:`best_over_synonyms`)

(the estimator's class embeddings have one vector per class, so there the max is over one vector;
the labeller of :mod:`zsl.labelling` ranks vocabularies with synonyms). The L2 norm ||f(x)|| is the model's confidence:
it is high when the top labels agree (one dominant label, or semantically close labels) and low
when probability is spread over semantically distant labels (section 4 of the paper).

Shapes: X (n, d) features; class_embeddings (C, k); probabilities (n, S) over the S seen classes;
f(x) (n, k); scores (n, m) over m candidates.

Choices where the paper leaves room (documented because they change numbers):
* Seen model: by default a multinomial logistic regression (softmax classifier) on standardised
  features, trained here on the seen classes (``C`` is its inverse L2 strength). Any fitted model
  with ``predict_proba`` and ``classes_`` (dataset class ids), or a callable ``X -> (n, S)
  probabilities`` with ``seen_model_classes``, can be passed as ``seen_model`` instead; then ``fit``
  trains nothing. (``sklearn.clone`` re-creates estimator parameters unfitted, so pass a callable
  when a pretrained model must survive cloning.)
* Class embeddings are L2-normalised per class before the combination (the paper's word2vec
  vectors are compared by cosine anyway); with unit vectors 0 <= ||f(x)|| <= 1, so the confidence
  is on the same scale for every vocabulary. ``center=True`` additionally subtracts the mean
  embedding of the seen classes first (helps non-negative attribute vectors, whose cosines are all
  close to 1; off by default, as in the paper, and chosen on validation classes by the protocol's
  grid).
* ``T=None`` (or T >= S) uses every seen label ("ConSE(all)").
* Synonyms: :func:`average_synonyms` averages the vectors of a label's synonyms (zero rows = words
  without a vector are left out of the average; a label with no vector at all stays zero and is
  reported by the caller).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import register_method
from ..base import ZSLMethod, check_features
from ..errors import DataError
from ..params import Interval

_EPS = 1e-12


# -- the two equations, usable without the estimator (the labeller calls these) ------------------
def top_t_weights(probs: np.ndarray, T: int | None) -> np.ndarray:
    """(n, S) weights: p(y|x) on each row's T largest entries renormalised to sum 1, zero elsewhere."""
    probs = np.asarray(probs, dtype=np.float64)
    n, S = probs.shape
    if T is None or T >= S:
        W = probs.copy()
    else:
        if T < 1:
            raise ValueError(f"T must be >= 1 or None, got {T}")
        idx = np.argpartition(-probs, T - 1, axis=1)[:, :T]
        W = np.zeros_like(probs)
        rows = np.arange(n)[:, None]
        W[rows, idx] = probs[rows, idx]
    Z = W.sum(1, keepdims=True)
    Z[Z <= 0] = 1.0
    return W / Z


def convex_combination(probs: np.ndarray, seen_embeddings: np.ndarray, T: int | None) -> np.ndarray:
    """f(x) = (1/Z) sum_t p(y_t|x) s(y_t) over the top T labels; (n, S) x (S, k) -> (n, k)."""
    seen_embeddings = np.asarray(seen_embeddings)
    if probs.shape[1] != seen_embeddings.shape[0]:
        raise DataError(f"{probs.shape[1]} class probabilities but {seen_embeddings.shape[0]} seen-label embeddings")
    return (top_t_weights(probs, T) @ seen_embeddings.astype(np.float64)).astype(np.float32)


def cosine_scores(F: np.ndarray, candidate_embeddings: np.ndarray) -> np.ndarray:
    """cos(f(x), s(c)): (n, k) x (m, k) -> (n, m). Zero rows score 0 against everything."""
    Fn = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), _EPS)
    C = np.asarray(candidate_embeddings, dtype=np.float32)
    Cn = C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), _EPS)
    return Fn.astype(np.float32) @ Cn.T


def best_over_synonyms(entry_scores: np.ndarray, owner: np.ndarray, n_labels: int) -> np.ndarray:
    """score(x, c) = max over the entries (synonym vectors) of label c: (n, m) x (m,) -> (n, n_labels).

    ``owner[j]`` is the label of entry j; a label without entries scores -inf.
    """
    entry_scores = np.asarray(entry_scores)
    owner = np.asarray(owner, dtype=np.int64)
    out = np.full((entry_scores.shape[0], n_labels), -np.inf, dtype=entry_scores.dtype)
    if owner.size == 0:
        return out
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    out[:, sorted_owner[starts]] = np.maximum.reduceat(entry_scores[:, order], starts, axis=1)
    return out


def l2_normalise(E: np.ndarray) -> np.ndarray:
    E = np.asarray(E, dtype=np.float32)
    return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), _EPS)


def average_synonyms(vectors: np.ndarray, owner: np.ndarray, n_labels: int) -> np.ndarray:
    """Average synonym vectors per label: vectors (w, k) of w words, owner (w,) label id of each word.

    All-zero rows (words without a vector) are excluded from the mean; a label none of whose
    synonyms has a vector gets a zero row. Returns (n_labels, k) float32.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    owner = np.asarray(owner, dtype=np.int64)
    has = np.any(vectors != 0, axis=1).astype(np.float64)
    sums = np.zeros((n_labels, vectors.shape[1]))
    np.add.at(sums, owner, vectors * has[:, None])
    counts = np.bincount(owner, weights=has, minlength=n_labels)
    out = np.zeros_like(sums)
    ok = counts > 0
    out[ok] = sums[ok] / counts[ok, None]
    return out.astype(np.float32)


# -- the method on the contract -------------------------------------------------------------------
@register_method
class ConSE(ZSLMethod):
    name = "conse"
    tags = {"family": "embedding", "supports_gzsl": True, "retrieval": False, "stochastic": False}
    presets = {
        "default": {},
        "tiny": {"T": 5, "C": 1.0, "max_iter": 100},
        "t1": {"T": 1, "C": 1.0, "max_iter": 300},
        "all": {"T": None, "C": 1.0, "max_iter": 300},
        "quick": {"T": 10, "C": 0.1, "max_iter": 50, "center": True},
    }
    dataset_presets = {
        "awa1": {"T": 10, "C": 0.1, "max_iter": 100, "center": True},
    }
    # centering is part of the grid: validation decides it per dataset and description (on FLO it
    # helps attribute vectors, not MiniLM names; benchmarks/results/conse.md)
    param_grid = {"C": [0.01, 0.1, 1.0], "center": [False, True]}
    search_space = {"C": ("float", 1e-3, 1e2, True), "T": ("int", 1, 40)}

    parameter_constraints = {
        "T": [None, Interval(int, 1, None)],
        "C": [Interval(float, 0, None, closed="neither")],
        "max_iter": [Interval(int, 1, None)],
        "center": [bool],
        # a fitted seen-class classifier object (or None: one is trained on the seen classes)
        "seen_model": [None, object],
        "seen_model_classes": [None, object],
        "random_state": [None, Interval(int, 0, None)],
    }

    def __init__(self, *, T: int | None = 10, C: float = 1.0, max_iter: int = 300, center: bool = False,
                 seen_model: Any = None, seen_model_classes: Any = None, random_state: int = 0):
        self.T = T
        self.C = C
        self.max_iter = max_iter
        self.center = center
        self.seen_model = seen_model
        self.seen_model_classes = seen_model_classes
        self.random_state = random_state

    # seen-class probabilities ----------------------------------------------------------------
    def _train_softmax(self, X: np.ndarray, y: np.ndarray):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        clf = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter, tol=1e-4,
                                                                 random_state=self.random_state))
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # a capped max_iter is a deliberate budget (tiny preset), not an error
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        return clf

    def seen_proba(self, X) -> np.ndarray:
        """(n, S) probabilities over ``self.seen_classes_`` (rows sum to 1)."""
        self._check_is_fitted()
        X = check_features(X)
        if self.model_ is None:  # a callable passed as seen_model
            P = np.asarray(self.seen_model(X), dtype=np.float64)
        else:
            P = np.asarray(self.model_.predict_proba(X), dtype=np.float64)
        if P.shape != (len(X), len(self.seen_classes_)):
            raise DataError(
                f"seen model returned probabilities of shape {P.shape}; expected ({len(X)}, {len(self.seen_classes_)})"
            )
        return P

    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        if self.seen_model is None:
            self.model_ = self._train_softmax(X, y)
            self.seen_classes_ = np.asarray(self.model_.classes_, dtype=np.int64)
        elif callable(self.seen_model) and not hasattr(self.seen_model, "predict_proba"):
            if self.seen_model_classes is None:
                raise DataError(
                    "a callable seen_model needs seen_model_classes: the class id of each probability column"
                )
            self.model_ = None
            self.seen_classes_ = np.asarray(self.seen_model_classes, dtype=np.int64)
        else:
            if not hasattr(self.seen_model, "classes_"):
                raise DataError("seen_model must be a fitted classifier with predict_proba and classes_ (class ids)")
            self.model_ = self.seen_model
            self.seen_classes_ = np.asarray(self.seen_model.classes_, dtype=np.int64)
        if self.seen_classes_.min() < 0 or self.seen_classes_.max() >= len(S):
            raise DataError(f"seen model classes must be class ids in [0, {len(S)})")
        E = np.asarray(S, dtype=np.float32)
        self.offset_ = E[self.seen_classes_].mean(0) if self.center else np.zeros(E.shape[1], np.float32)
        self.class_embeddings_ = l2_normalise(E - self.offset_)
        return self

    def embed(self, X) -> np.ndarray:
        """f(x): (n, k) convex combination of the top-T seen-label embeddings (eq. 1-2)."""
        P = self.seen_proba(X)
        return convex_combination(P, self.class_embeddings_[self.seen_classes_], self.T)

    def confidence(self, X) -> np.ndarray:
        """||f(x)||_2 (n,): in [0, 1]; high when the top labels agree semantically."""
        return np.linalg.norm(self.embed(X), axis=1)

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        return cosine_scores(self.embed(X), self.class_embeddings_[candidates])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, S) logits, computed stably in float64."""
    L = np.asarray(logits, dtype=np.float64)
    L = L - L.max(1, keepdims=True)
    P = np.exp(L)
    return P / P.sum(1, keepdims=True)
