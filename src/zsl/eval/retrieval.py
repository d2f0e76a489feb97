"""Retrieval evaluation of hashing methods: pure metrics over Hamming ranking, and the zero-shot
retrieval protocol that trains hash functions on seen classes and queries with unseen ones.

Metrics (all pure; codes are packed uint8 as produced by ``encode``; relevance = same class):
    mean_average_precision(qc, qy, dc, dy, top_k=None)
        Database ranked by Hamming distance to the query, ties broken by database index (stable
        sort), so the ranking -- and the AP -- is deterministic. AP = (1/R) sum_i P@i rel_i over
        the whole ranking, R = number of relevant items; equals ``sklearn.metrics.
        average_precision_score(rel, -(dist + index * eps))`` (tests check it). With ``top_k``:
        AP@k = sum_{i<=k} P@i rel_i / (number of relevant items in the top k), 0 when there are
        none -- the convention of the hashing literature's ``mAP@k`` code.
    precision_within_radius(qc, qy, dc, dy, radius=2)
        Per query: relevant / retrieved among items with Hamming distance <= radius; a query that
        retrieves nothing scores 0 (SDH / ZSH evaluation convention). Mean over queries.
    precision_recall_curve(qc, qy, dc, dy)
        For every radius 0..n_bits: precision (mean over queries that retrieve something at that
        radius) and recall (mean over all queries) of the Hamming ball.

Protocol (``evaluate_hashing``): hash functions are fitted on seen-class training samples only;
the database holds codes only; queries are unseen-class images. See ``retrieval_split``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import DataError


def _hamming(qc, dc):
    from ..methods._hashing import hamming_distances

    return hamming_distances(qc, dc)


def _check(qc, qy, dc, dy):
    qc, dc = np.asarray(qc, np.uint8), np.asarray(dc, np.uint8)
    qy, dy = np.asarray(qy), np.asarray(dy)
    if qc.ndim != 2 or dc.ndim != 2 or qc.shape[1] != dc.shape[1]:
        raise DataError(f"query and database codes must be (n, bytes) with equal widths; got {qc.shape} and {dc.shape}")
    if len(qc) != len(qy) or len(dc) != len(dy):
        raise DataError("one label per code is needed for queries and database")
    return qc, qy, dc, dy


def _ap_block(D: np.ndarray, rel_all: np.ndarray, top_ks: tuple) -> list[np.ndarray]:
    """APs of a block of queries from their (b, N) distances and relevance, for each k in ``top_ks``
    (None = the whole ranking). Ties: lower database index first (stable sort)."""
    # distances fit in uint8/uint16, for which NumPy's stable sort is a linear-time radix sort
    order = np.argsort(D.astype(np.uint8 if D.max(initial=0) < 256 else np.uint16), axis=1, kind="stable")
    rel = np.take_along_axis(rel_all, order, axis=1)
    hits = np.cumsum(rel, axis=1, dtype=np.int32)
    prec_at_rel = np.where(rel, hits / np.arange(1, rel.shape[1] + 1), 0.0)
    out = []
    for k in top_ks:
        if k is None:
            denom, num = hits[:, -1], prec_at_rel.sum(1)
        else:
            denom, num = hits[:, min(k, rel.shape[1]) - 1], prec_at_rel[:, :k].sum(1)
        out.append(np.where(denom > 0, num / np.maximum(denom, 1), 0.0))
    return out


def average_precisions(query_codes, query_labels, db_codes, db_labels, top_k: int | None = None,
                       block: int = 256) -> np.ndarray:
    """(nq,) AP of each query over the Hamming ranking (deterministic ties; see module docstring)."""
    qc, qy, dc, dy = _check(query_codes, query_labels, db_codes, db_labels)
    out = np.zeros(len(qc))
    for i in range(0, len(qc), block):
        D = _hamming(qc[i : i + block], dc)
        out[i : i + block] = _ap_block(D, dy[None, :] == qy[i : i + block, None], (top_k,))[0]
    return out


def mean_average_precision(query_codes, query_labels, db_codes, db_labels, top_k: int | None = None) -> float:
    """mAP over Hamming ranking (all of the database, or the top ``top_k``)."""
    return float(np.mean(average_precisions(query_codes, query_labels, db_codes, db_labels, top_k)))


def _radius_counts(qc, qy, dc, dy, block: int = 256):
    """(nq, n_bits+1) counts of retrieved and of relevant items at each Hamming distance."""
    qc, qy, dc, dy = _check(qc, qy, dc, dy)
    n_bits = qc.shape[1] * 8
    total = np.zeros((len(qc), n_bits + 1), np.int64)
    relevant = np.zeros_like(total)
    for i in range(0, len(qc), block):
        D = _hamming(qc[i : i + block], dc)
        rel = dy[None, :] == qy[i : i + block, None]
        for j in range(len(D)):
            total[i + j] = np.bincount(D[j], minlength=n_bits + 1)
            relevant[i + j] = np.bincount(D[j][rel[j]], minlength=n_bits + 1)
    return total, relevant


def precision_within_radius(query_codes, query_labels, db_codes, db_labels, radius: int = 2) -> float:
    """Mean over queries of the precision of the Hamming ball of ``radius`` (0 when it is empty)."""
    total, relevant = _radius_counts(query_codes, query_labels, db_codes, db_labels)
    t = total[:, : radius + 1].sum(1)
    r = relevant[:, : radius + 1].sum(1)
    return float(np.mean(np.where(t > 0, r / np.maximum(t, 1), 0.0)))


def _pr_from_counts(total, relevant) -> dict[str, np.ndarray]:
    t, r = np.cumsum(total, 1), np.cumsum(relevant, 1)
    n_rel = relevant.sum(1, keepdims=True)
    prec = np.where(t > 0, r / np.maximum(t, 1), np.nan)
    rec = np.where(n_rel > 0, r / np.maximum(n_rel, 1), 0.0)
    reached = np.sum(t > 0, 0)  # radii no query's ball reaches have no precision (NaN)
    mean_prec = np.where(reached > 0, np.nansum(prec, 0) / np.maximum(reached, 1), np.nan)
    return {"radius": np.arange(total.shape[1]), "precision": mean_prec, "recall": rec.mean(0)}


def precision_recall_curve(query_codes, query_labels, db_codes, db_labels) -> dict[str, np.ndarray]:
    """Precision and recall of the Hamming ball at every radius 0..n_bits (see module docstring)."""
    return _pr_from_counts(*_radius_counts(query_codes, query_labels, db_codes, db_labels))


def retrieval_metrics(query_codes, query_labels, db_codes, db_labels, *, top_k: int = 1000, radius: int = 2,
                      block: int = 256) -> dict:
    """mAP (all), mAP@top_k, precision within ``radius`` and the PR curve, from one pass of distances."""
    qc, qy, dc, dy = _check(query_codes, query_labels, db_codes, db_labels)
    n_bits = qc.shape[1] * 8
    ap_all, ap_k = np.zeros(len(qc)), np.zeros(len(qc))
    total = np.zeros((len(qc), n_bits + 1), np.int64)
    relevant = np.zeros_like(total)
    for i in range(0, len(qc), block):
        D = _hamming(qc[i : i + block], dc)
        rel = dy[None, :] == qy[i : i + block, None]
        ap_all[i : i + block], ap_k[i : i + block] = _ap_block(D, rel, (None, top_k))
        # per-distance counts for all queries of the block at once: offset each row's distances
        flat = (D + (n_bits + 1) * np.arange(len(D))[:, None]).ravel()
        size = len(D) * (n_bits + 1)
        total[i : i + block] = np.bincount(flat, minlength=size).reshape(len(D), -1)
        relevant[i : i + block] = np.bincount(flat[rel.ravel()], minlength=size).reshape(len(D), -1)
    t = total[:, : radius + 1].sum(1)
    r = relevant[:, : radius + 1].sum(1)
    pr = _pr_from_counts(total, relevant)
    return {
        "mAP": float(ap_all.mean()),
        f"mAP@{top_k}": float(ap_k.mean()),
        f"P@r{radius}": float(np.mean(np.where(t > 0, r / np.maximum(t, 1), 0.0))),
        "pr_curve": {k: [None if np.isnan(x) else float(x) for x in v] for k, v in pr.items()},
    }


# -- protocol -------------------------------------------------------------------------------------
@dataclass
class RetrievalData:
    """Features and labels of the three roles: who trains the hash functions, who is indexed, who queries."""

    X_train: np.ndarray  # seen-class samples only (hash functions see nothing else)
    y_train: np.ndarray
    X_database: np.ndarray  # codes only; seen and unseen classes
    y_database: np.ndarray
    X_query: np.ndarray  # unseen-class samples, not in the database
    y_query: np.ndarray
    database_paths: list[str] | None = None  # source image of each database row, when known


def _unseen_train_images(dataset) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """Features of the unseen classes' *train-folder* images of an image-folder dataset (CIFAR-10).

    The zero-shot reader leaves them out (no method may train on them); the retrieval database
    needs them. They come from the same feature cache as the rest of the folder (one cache entry
    per folder file list, so no re-extraction), subsampled like the dataset when it was.
    """
    meta = getattr(dataset, "meta", None) or {}
    if not meta.get("root") or not meta.get("backbone"):
        return None
    from pathlib import Path

    from ..data.image_folder import scan_image_folder
    from ..features import extract

    names, parts = scan_image_folder(Path(meta["root"]))
    if "train" not in parts:
        return None
    all_rows = [(part, i) for part in parts for i in range(len(parts[part]))]
    ext = extract([parts[p][i][0] for p, i in all_rows], resolution=meta["resolution"], progress=True)
    valid_rows = [r for r, v in zip(all_rows, ext.valid) if v]
    unseen = set(dataset.unseen_classes.tolist())
    pick = [k for k, (p, i) in enumerate(valid_rows) if p == "train" and parts[p][i][1] in unseen]
    y = np.asarray([parts[valid_rows[k][0]][valid_rows[k][1]][1] for k in pick], np.int64)
    X = ext.features[pick]
    paths = [parts[valid_rows[k][0]][valid_rows[k][1]][0] for k in pick]
    if meta.get("max_per_class"):
        rng = np.random.default_rng([int(meta.get("seed", 0)), 23])
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[: meta["max_per_class"]] for c in np.unique(y)]))
        X, y, paths = X[keep], y[keep], [paths[k] for k in keep]
    return X, y, paths


def retrieval_data(dataset, *, n_queries: int = 1000, seed: int = 0) -> RetrievalData:
    """The zero-shot retrieval split of a ``ZSLDataset``.

    Image-folder datasets with train/ and test/ folders (CIFAR-10): database = every train-folder
    image of every class (the seen classes' ``trainval`` rows plus the unseen classes' train
    images, see ``_unseen_train_images``); queries = the unseen classes' test images
    (``test_unseen``); hash functions train on ``trainval``.
    Other datasets (AwA1, xlsa17, synthetic): queries = ``n_queries`` unseen-class images drawn
    with ``seed`` (at most half of them); database = every other image; hash functions train on
    the ``trainval`` rows (seen classes).
    """
    X, y = dataset.X, dataset.y
    trainval = dataset.splits["trainval"]
    extra = _unseen_train_images(dataset)
    if extra is not None:
        query = dataset.splits["test_unseen"]
        X_db = np.concatenate([X[trainval], extra[0]])
        y_db = np.concatenate([y[trainval], extra[1]])
        meta_paths = (getattr(dataset, "meta", None) or {}).get("paths")
        db_paths = [meta_paths[i] for i in trainval] + extra[2] if meta_paths else None
        out = RetrievalData(X[trainval], y[trainval], X_db, y_db, X[query], y[query], db_paths)
    else:
        unseen_rows = np.flatnonzero(np.isin(y, dataset.unseen_classes))
        rng = np.random.default_rng(seed)
        query = np.sort(rng.choice(unseen_rows, min(n_queries, len(unseen_rows) // 2), replace=False))
        database = np.setdiff1d(np.arange(len(y)), query)
        train = trainval[np.isin(y[trainval], dataset.seen_classes)]
        meta_paths = (getattr(dataset, "meta", None) or {}).get("paths")
        db_paths = [meta_paths[i] for i in database] if meta_paths else None
        out = RetrievalData(X[train], y[train], X[database], y[database], X[query], y[query], db_paths)
    if len(out.y_query) == 0 or len(out.y_train) == 0:
        raise DataError(f"dataset {dataset.name!r}: the retrieval split has {len(out.y_train)} training and {len(out.y_query)} query images")
    if np.isin(out.y_train, dataset.unseen_classes).any():
        raise DataError(f"dataset {dataset.name!r}: unseen-class images in the hash functions' training set")
    return out


@dataclass
class HashingResult:
    method: str
    dataset: str
    split: str
    n_bits: int
    seed: int
    metrics: dict
    fit_seconds: float
    n_train: int
    n_database: int
    n_query: int
    params: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def evaluate_hashing(spec: str, dataset, *, n_bits: int, seed: int = 0, semantics: str | None = None,
                     n_queries: int = 1000, top_k: int = 1000, overrides: dict | None = None) -> HashingResult:
    """Fit ``spec`` (e.g. ``"zsh"``) on the seen-class training images of ``dataset`` and evaluate
    zero-shot retrieval of its unseen-class queries against the whole database (codes only)."""
    from .._registry import create_method

    method = create_method(spec, **{"n_bits": n_bits, **(overrides or {})})
    if "random_state" in method.get_params():
        method.set_params(random_state=seed)
    data = retrieval_data(dataset, n_queries=n_queries, seed=seed)
    S = dataset.class_embeddings(semantics)
    t0 = time.perf_counter()
    method.fit(data.X_train, data.y_train, S, dataset.seen_classes)
    fit_seconds = time.perf_counter() - t0
    db_codes = method.encode(data.X_database)
    q_codes = method.encode(data.X_query)
    metrics = retrieval_metrics(q_codes, data.y_query, db_codes, data.y_database, top_k=top_k)
    return HashingResult(method=spec, dataset=dataset.name, split=str(getattr(dataset, "split", "")), n_bits=n_bits,
                         seed=seed, metrics=metrics, fit_seconds=fit_seconds, n_train=len(data.y_train),
                         n_database=len(data.y_database), n_query=len(data.y_query),
                         params={k: v for k, v in method.get_params().items()})
