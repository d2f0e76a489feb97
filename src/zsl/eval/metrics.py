"""Pure metric functions of the zero-shot protocol (Xian et al., TPAMI 2018; Chao et al., ECCV 2016).

All take NumPy arrays and return floats in [0, 1]; none reads global state.
    scores      (n, m) decision scores over ``candidates`` (m,) class ids, larger = more likely
    y_true      (n,) true class ids
"""
from __future__ import annotations

import numpy as np


def per_class_accuracy(y_true, y_pred, classes=None) -> float:
    """Mean over classes of the top-1 accuracy within each class (== balanced accuracy).

    ``classes`` restricts the mean to those classes (default: the classes present in y_true).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    classes = np.unique(y_true) if classes is None else np.asarray(classes)
    accs = [np.mean(y_pred[y_true == c] == c) for c in classes if np.any(y_true == c)]
    return float(np.mean(accs)) if accs else float("nan")


def harmonic_mean(u: float, s: float) -> float:
    """H = 2US / (U + S), 0 when both are 0."""
    return float(2 * u * s / (u + s)) if (u + s) > 0 else 0.0


def calibrated_stacking(scores, candidates, seen_classes, gamma: float) -> np.ndarray:
    """Subtract ``gamma`` from the scores of seen candidates (Chao et al. 2016, eq. 6)."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    seen_mask = np.isin(np.asarray(candidates), np.asarray(seen_classes))
    scores[:, seen_mask] -= gamma
    return scores


def gzsl_accuracies(scores, y_true, candidates, seen_classes, unseen_classes, gamma: float = 0.0) -> dict[str, float]:
    """U, S (per-class accuracy on unseen / seen test images, all classes as candidates) and H."""
    candidates = np.asarray(candidates)
    y_true = np.asarray(y_true)
    pred = candidates[np.argmax(calibrated_stacking(scores, candidates, seen_classes, gamma), axis=1)]
    is_unseen = np.isin(y_true, unseen_classes)
    u = per_class_accuracy(y_true[is_unseen], pred[is_unseen])
    s = per_class_accuracy(y_true[~is_unseen], pred[~is_unseen])
    u = 0.0 if np.isnan(u) else u
    s = 0.0 if np.isnan(s) else s
    return {"U": u, "S": s, "H": harmonic_mean(u, s)}


def _gamma_breakpoints(scores, candidates, seen_classes) -> np.ndarray:
    """Per-sample gamma at which the best seen and best unseen candidate swap."""
    seen_mask = np.isin(np.asarray(candidates), np.asarray(seen_classes))
    if seen_mask.all() or not seen_mask.any():
        return np.zeros(1)
    scores = np.asarray(scores, dtype=np.float64)
    return scores[:, seen_mask].max(1) - scores[:, ~seen_mask].max(1)


def gamma_grid(scores, candidates, seen_classes, n: int = 101) -> np.ndarray:
    """Candidate calibration values: quantiles of the per-sample seen-minus-unseen margin, plus 0."""
    d = _gamma_breakpoints(scores, candidates, seen_classes)
    qs = np.quantile(d, np.linspace(0, 1, n))
    eps = 1e-6 * (np.abs(d).max() + 1.0)
    return np.unique(np.concatenate([[0.0], qs + eps, qs - eps]))


def select_gamma(scores, y_true, candidates, seen_classes, unseen_classes, n: int = 101) -> tuple[float, float]:
    """Gamma maximising H on *validation* scores; returns (gamma, H at gamma)."""
    best = (0.0, -1.0)
    for g in gamma_grid(scores, candidates, seen_classes, n):
        h = gzsl_accuracies(scores, y_true, candidates, seen_classes, unseen_classes, g)["H"]
        if h > best[1] + 1e-12 or (abs(h - best[1]) <= 1e-12 and abs(g) < abs(best[0])):
            best = (float(g), h)
    return best


def ausuc(scores, y_true, candidates, seen_classes, unseen_classes, n: int = 201) -> float:
    """Area under the seen-unseen accuracy curve (Chao et al. 2016), sweeping gamma.

    The curve goes from gamma -> -inf (everything predicted seen: U=0) to +inf (S=0); the area is
    integrated with the trapezoid rule over U.
    """
    d = _gamma_breakpoints(scores, candidates, seen_classes)
    span = np.abs(d).max() + 1.0
    gammas = np.concatenate([[-span * 2], np.quantile(d, np.linspace(0, 1, n)), [span * 2]])
    pts = [gzsl_accuracies(scores, y_true, candidates, seen_classes, unseen_classes, g) for g in np.sort(gammas)]
    u = np.array([p["U"] for p in pts])
    s = np.array([p["S"] for p in pts])
    order = np.argsort(u, kind="stable")
    u, s = u[order], s[order]
    # anchor the curve at (0, max S) and (max U, 0) so the area is well defined
    u = np.concatenate([[0.0], u, [u.max()]])
    s = np.concatenate([[s.max()], s, [0.0]])
    return float(np.trapezoid(s, u))


def hit_at_k(scores, y_true, candidates, k: int) -> float:
    """Fraction of samples whose true class is among the top-k candidates by score (flat hit@k)."""
    scores = np.asarray(scores)
    candidates = np.asarray(candidates)
    k = min(k, scores.shape[1])
    top = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < scores.shape[1]
        else np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    )
    return ranked_hit_at_k(candidates[top], y_true, k)


def ranked_hit_at_k(ranked, y_true, k: int) -> float:
    """flat hit@k of rankings already made: the share of rows whose true id is among their first k.

    ``ranked`` (n, >= k) ids best first (e.g. :class:`zsl.labelling.Ranking` ``top``), ``y_true``
    (n,) ids (-1 or any id absent from the rows never hits); NaN for no rows.
    """
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean((np.asarray(ranked)[:, :k] == y_true[:, None]).any(1)))


def average_precision(relevant_sorted) -> float:
    """AP of one ranked list given as a 0/1 relevance vector in ranked order (0 if nothing relevant)."""
    rel = np.asarray(relevant_sorted, dtype=np.float64)
    n_rel = rel.sum()
    if n_rel == 0:
        return 0.0
    precision_at_hits = np.cumsum(rel)[rel > 0] / (np.flatnonzero(rel) + 1)
    return float(precision_at_hits.sum() / n_rel)
