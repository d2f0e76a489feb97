"""Retrieval evaluation of hashing methods: pure metrics over Hamming ranking, and the zero-shot
retrieval protocol that trains hash functions on seen classes and queries with unseen ones.

Metrics (all pure; codes are packed uint8 as produced by ``encode``; relevance = same class).
A Hamming ranking has ties: every database item at the same distance from the query. Breaking
them by an arbitrary rule (database index, sort order) makes AP depend on how the database is
stored -- a method whose codes collapse onto a few class codes has huge tie groups and can score
anywhere from far below chance to far above it. So the metrics here are *tie-exact*: the
expectation over all orders of the tied items (every order equally likely), in closed form
(McSherry & Najork, "Computing information retrieval performance measures efficiently in the
presence of tied scores", ECIR 2008). They depend only on the per-distance counts of retrieved
and relevant items, ``distance_histograms``.

For one query, let tie group g (all items at one Hamming distance, in increasing distance) hold
t_g items of which r_g are relevant, with N_g items and R_g relevant ones in closer groups, and
R = sum_g r_g. In a uniformly random order of the group, position p (1..t_g) is relevant with
probability r_g / t_g and, given that, is preceded within the group by (p - 1)(r_g - 1)/(t_g - 1)
relevant items on average, so (precision is linear in that count)

    E[AP] = (1/R) sum_g (r_g / t_g) sum_{p=1..t_g} (R_g + 1 + (p-1)(r_g-1)/(t_g-1)) / (N_g + p)
          = (1/R) sum_g (r_g / t_g) [ (R_g + 1) h_g + (r_g-1)/(t_g-1) (t_g - (N_g + 1) h_g) ],
    h_g = H(N_g + t_g) - H(N_g)      (H = harmonic numbers; the second term is 0 when t_g = 1)

    average_precisions(qc, qy, dc, dy, top_k=None)        per query E[AP] (0 with no relevant item)
        ``top_k``: E[AP@k] with the hashing literature's AP@k = sum_{i<=k} P@i rel_i / (number of
        relevant items in the top k), 0 when there are none. When the k-th position cuts a tie
        group, the number X of its relevant items inside the top k is hypergeometric, and given X
        the order inside the cut is uniform, so E[AP@k] = sum_x P(X=x) (A + B(x)) / (R' + x),
        with A the closer groups' sum above, R' their relevant count and B(x) the group formula
        on the m = k - N' cut positions holding x relevant items. Exact, not sampled.
    mean_average_precision(...)                          mean of the above
    precision_at_n(total, relevant, n) / recall_at_n     E[precision / recall of the top n]: the
        cut group contributes m r_g / t_g relevant items in expectation (linear, hence exact)
    ranking_precision_recall(total, relevant)            the precision-recall curve over ranking
        depth n (log-spaced), mean over queries of the expected precision and recall at n
    precision_within_radius(qc, qy, dc, dy, radius=2)    per query: relevant / retrieved among the
        items within the radius (no tie question: the ball holds whole tie groups); an empty ball
        scores 0 (SDH / ZSH evaluation convention). Mean over queries.
    precision_recall_curve(qc, qy, dc, dy)               precision (mean over queries that retrieve
        something) and recall (mean over all queries) of the Hamming ball at every radius 0..n_bits

    authors_average_precisions(qc, qy, dc, dy, top_n=10000)   the ZSH authors' definition, named as
        theirs (``mAP_authors``): their MATLAB ``cat_apcal`` over ``sort(hammTrainTest)``, i.e. the
        ranking with ties in *database order* (MATLAB's sort is stable), cut at min(N, 10,000),
        AP = sum_{j<=n} rel_j P@j / (relevant items in the top n), 0 when none. It depends on the
        order in which the database is stored (``RetrievalData`` documents ours); reported beside
        the tie-exact mAP so that numbers can be set next to the paper's.

Protocol (``retrieval_data`` / ``evaluate_hashing``): see ``retrieval_data``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import gammaln

from ..codes import hamming_distances
from ..errors import DataError

AUTHORS_TOP_N = 10000  # cat_apcal.m: num_return_NN = min(numtrain, 10000)


def _check(qc, qy, dc, dy):
    qc, dc = np.asarray(qc, np.uint8), np.asarray(dc, np.uint8)
    qy, dy = np.asarray(qy), np.asarray(dy)
    if qc.ndim != 2 or dc.ndim != 2 or qc.shape[1] != dc.shape[1]:
        raise DataError(f"query and database codes must be (n, bytes) with equal widths; got {qc.shape} and {dc.shape}")
    if len(qc) != len(qy) or len(dc) != len(dy):
        raise DataError("one label per code is needed for queries and database")
    return qc, qy, dc, dy


# -- per-distance counts ---------------------------------------------------------------------------
def _histogram_block(D: np.ndarray, rel: np.ndarray, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, N) distances and relevance -> (b, n_bits+1) counts of all and of relevant items per distance."""
    # offset each row's distances so one bincount counts every query of the block
    flat = (D + (n_bits + 1) * np.arange(len(D))[:, None]).ravel()
    size = len(D) * (n_bits + 1)
    total = np.bincount(flat, minlength=size).reshape(len(D), -1)
    relevant = np.bincount(flat[rel.ravel()], minlength=size).reshape(len(D), -1)
    return total, relevant


def distance_histograms(
    query_codes, query_labels, db_codes, db_labels, block: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(nq, n_bits+1) int64 counts of database items, and of relevant ones, at each Hamming distance."""
    qc, qy, dc, dy = _check(query_codes, query_labels, db_codes, db_labels)
    n_bits = qc.shape[1] * 8
    total = np.zeros((len(qc), n_bits + 1), np.int64)
    relevant = np.zeros_like(total)
    for i in range(0, len(qc), block):
        D = hamming_distances(qc[i : i + block], dc)
        total[i : i + block], relevant[i : i + block] = _histogram_block(
            D, dy[None, :] == qy[i : i + block, None], n_bits
        )
    return total, relevant


def _harmonic(n: int) -> np.ndarray:
    """H(0..n), H(0) = 0, float64."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64))])


# -- tie-exact AP ------------------------------------------------------------------------------------
def _group_sums(t, r, N, R, H):
    """sum_{p=1..t} (r/t)(R + 1 + (p-1)(r-1)/(t-1)) / (N + p), elementwise (0 where t = 0)."""
    t = np.asarray(t, np.float64)
    h = H[(N + t).astype(np.int64)] - H[np.asarray(N, np.int64)]
    frac = np.where(t > 1, (r - 1.0) / np.maximum(t - 1.0, 1.0), 0.0)
    inner = (R + 1.0) * h + frac * (t - (N + 1.0) * h)
    return np.where(t > 0, r / np.maximum(t, 1.0) * inner, 0.0)


def _log_comb(n, k):
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def expected_average_precisions(total: np.ndarray, relevant: np.ndarray, top_k: int | None = None) -> np.ndarray:
    """(nq,) tie-exact E[AP] (or E[AP@top_k]) from per-distance histograms (see module docstring)."""
    total = np.asarray(total, np.int64)
    relevant = np.asarray(relevant, np.int64)
    n_db = int(total[0].sum()) if len(total) else 0
    H = _harmonic(n_db)
    N = np.cumsum(total, 1) - total  # items strictly closer than each group
    Rb = np.cumsum(relevant, 1) - relevant
    C = _group_sums(total, relevant, N, Rb, H)
    R = relevant.sum(1)
    if top_k is None or top_k >= n_db:
        return np.where(R > 0, C.sum(1) / np.maximum(R, 1), 0.0)
    if top_k < 1:
        raise ValueError(f"top_k must be a positive number of items; got {top_k}")
    out = np.zeros(len(total))
    for q in range(len(total)):
        g = int(np.searchsorted(N[q] + total[q], top_k, side="left"))  # group holding position top_k
        A, Rp, Np = C[q, :g].sum(), float(Rb[q, g]), int(N[q, g])
        t, r, m = int(total[q, g]), int(relevant[q, g]), top_k - int(N[q, g])
        x = np.arange(max(0, m - (t - r)), min(r, m) + 1, dtype=np.float64)  # relevant items among the m cut positions
        pmf = np.exp(_log_comb(r, x) + _log_comb(t - r, m - x) - _log_comb(t, m))
        Bx = _group_sums(np.full_like(x, m), x, Np, Rp, H)
        denom = Rp + x
        out[q] = float(np.sum(pmf * np.where(denom > 0, (A + Bx) / np.maximum(denom, 1.0), 0.0)))
    return out


def _expected_hits_at(total: np.ndarray, relevant: np.ndarray, n: int) -> np.ndarray:
    """(nq,) expected number of relevant items among the first n of the ranking."""
    cum = np.cumsum(total, 1)
    g = np.minimum((cum < n).sum(1), total.shape[1] - 1)  # group holding position n
    rows = np.arange(len(total))
    before = cum[rows, g] - total[rows, g]
    rel_before = (np.cumsum(relevant, 1) - relevant)[rows, g]
    m = np.clip(n - before, 0, total[rows, g])
    return rel_before + m * relevant[rows, g] / np.maximum(total[rows, g], 1)


def precision_at_n(total: np.ndarray, relevant: np.ndarray, n: int) -> np.ndarray:
    """(nq,) tie-exact expected precision of the top ``n`` items."""
    n = min(int(n), int(np.asarray(total)[0].sum()))
    return _expected_hits_at(np.asarray(total), np.asarray(relevant), n) / max(n, 1)


def recall_at_n(total: np.ndarray, relevant: np.ndarray, n: int) -> np.ndarray:
    """(nq,) tie-exact expected recall of the top ``n`` items (0 for a query with no relevant item)."""
    R = np.asarray(relevant).sum(1)
    return np.where(R > 0, _expected_hits_at(np.asarray(total), np.asarray(relevant), int(n)) / np.maximum(R, 1), 0.0)


def ranking_precision_recall(total: np.ndarray, relevant: np.ndarray, n_points: int = 40) -> dict[str, list]:
    """Tie-exact precision and recall at ``n_points`` log-spaced ranking depths n (mean over queries)."""
    n_db = int(np.asarray(total)[0].sum())
    ns = np.unique(np.round(np.geomspace(1, n_db, n_points)).astype(int))
    return {"n": ns.tolist(), "precision": [float(precision_at_n(total, relevant, n).mean()) for n in ns],
            "recall": [float(recall_at_n(total, relevant, n).mean()) for n in ns]}


def average_precisions(query_codes, query_labels, db_codes, db_labels, top_k: int | None = None) -> np.ndarray:
    """(nq,) tie-exact AP (or AP@top_k) of each query over the Hamming ranking (module docstring)."""
    return expected_average_precisions(*distance_histograms(query_codes, query_labels, db_codes, db_labels), top_k)


def mean_average_precision(query_codes, query_labels, db_codes, db_labels, top_k: int | None = None) -> float:
    """Tie-exact mAP over Hamming ranking (all of the database, or the top ``top_k``)."""
    return float(np.mean(average_precisions(query_codes, query_labels, db_codes, db_labels, top_k)))


# -- the authors' definition -------------------------------------------------------------------------
def _authors_ap_block(D: np.ndarray, rel_all: np.ndarray, top_n: int) -> np.ndarray:
    """cat_apcal.m on a block: stable sort (ties in database order), cut at min(N, top_n)."""
    # distances fit in uint8/uint16, for which NumPy's stable sort is a linear-time radix sort
    order = np.argsort(D.astype(np.uint8 if D.max(initial=0) < 256 else np.uint16), axis=1, kind="stable")
    n = min(top_n, D.shape[1])
    rel = np.take_along_axis(rel_all, order[:, :n], axis=1)
    hits = np.cumsum(rel, axis=1, dtype=np.int64)
    num = np.where(rel, hits / np.arange(1, n + 1), 0.0).sum(1)
    return np.where(hits[:, -1] > 0, num / np.maximum(hits[:, -1], 1), 0.0)


def authors_average_precisions(query_codes, query_labels, db_codes, db_labels, top_n: int = AUTHORS_TOP_N,
                               block: int = 256) -> np.ndarray:
    """(nq,) AP by the ZSH authors' ``cat_apcal`` (ties in database order, top min(N, top_n)); see module docstring."""
    qc, qy, dc, dy = _check(query_codes, query_labels, db_codes, db_labels)
    out = np.zeros(len(qc))
    for i in range(0, len(qc), block):
        D = hamming_distances(qc[i : i + block], dc)
        out[i : i + block] = _authors_ap_block(D, dy[None, :] == qy[i : i + block, None], top_n)
    return out


# -- Hamming-ball metrics ----------------------------------------------------------------------------
def precision_within_radius(query_codes, query_labels, db_codes, db_labels, radius: int = 2) -> float:
    """Mean over queries of the precision of the Hamming ball of ``radius`` (0 when it is empty)."""
    total, relevant = distance_histograms(query_codes, query_labels, db_codes, db_labels)
    return _ball_precision(total, relevant, radius)


def _ball_precision(total, relevant, radius: int) -> float:
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
    return _pr_from_counts(*distance_histograms(query_codes, query_labels, db_codes, db_labels))


def retrieval_metrics(query_codes, query_labels, db_codes, db_labels, *, top_k: int = 1000, radius: int = 2,
                      block: int = 256) -> dict:
    """Every retrieval metric from one pass of distances.

    ``mAP`` and ``mAP@top_k`` tie-exact, ``mAP_authors`` (the authors' cat_apcal), ``P@r<radius>``,
    ``pr_curve`` (Hamming ball per radius) and ``pr_ranking`` (tie-exact, per ranking depth).
    """
    qc, qy, dc, dy = _check(query_codes, query_labels, db_codes, db_labels)
    n_bits = qc.shape[1] * 8
    total = np.zeros((len(qc), n_bits + 1), np.int64)
    relevant = np.zeros_like(total)
    ap_authors = np.zeros(len(qc))
    for i in range(0, len(qc), block):
        D = hamming_distances(qc[i : i + block], dc)
        rel = dy[None, :] == qy[i : i + block, None]
        total[i : i + block], relevant[i : i + block] = _histogram_block(D, rel, n_bits)
        ap_authors[i : i + block] = _authors_ap_block(D, rel, AUTHORS_TOP_N)
    pr = _pr_from_counts(total, relevant)
    return {
        "mAP": float(expected_average_precisions(total, relevant).mean()),
        f"mAP@{top_k}": float(expected_average_precisions(total, relevant, top_k).mean()),
        "mAP_authors": float(ap_authors.mean()),
        f"P@r{radius}": _ball_precision(total, relevant, radius),
        "pr_curve": {k: [None if np.isnan(x) else float(x) for x in v] for k, v in pr.items()},
        "pr_ranking": ranking_precision_recall(total, relevant),
    }


# -- protocol -------------------------------------------------------------------------------------
ROLES = ("test", "validation")


@dataclass
class RetrievalData:
    """Features and labels of the three roles: who trains the hash functions, who is indexed, who queries.

    Database rows are in dataset row order (image-folder datasets: the seen classes' rows, then
    the unseen classes' train-folder images); only ``mAP_authors`` depends on that order.
    """

    X_train: np.ndarray  # training-class samples only (hash functions see nothing else)
    y_train: np.ndarray
    X_database: np.ndarray  # codes only; training and held-out classes
    y_database: np.ndarray
    X_query: np.ndarray  # held-out-class samples, not in the database
    y_query: np.ndarray
    train_classes: np.ndarray  # classes whose images (and embeddings) the fit may use
    database_paths: list[str] | None = None  # source image of each database row, when known
    query_rule: str = ""  # how the queries were chosen (for the record)


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
        keep = np.sort(
            np.concatenate([rng.permutation(np.flatnonzero(y == c))[: meta["max_per_class"]] for c in np.unique(y)])
        )
        X, y, paths = X[keep], y[keep], [paths[k] for k in keep]
    return X, y, paths


def oxford_flowers_test_rows(dataset) -> np.ndarray | None:
    """(n,) bool: rows of an Oxford Flowers-102 dataset (``flo``) that are in Oxford's own test
    split (``setid.mat`` ``tstid``), matched by image number through the features file's
    ``image_files``; None for any other dataset. Errors name the missing or malformed file."""
    meta = getattr(dataset, "meta", None) or {}
    if dataset.name != "flo" or not meta.get("source") or not meta.get("features_file"):
        return None
    from pathlib import Path

    import scipy.io

    folder = Path(meta["source"])
    setid, feats = folder / "setid.mat", folder / meta["features_file"]
    try:
        tst = np.asarray(scipy.io.loadmat(setid, variable_names=["tstid"])["tstid"]).ravel().astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{setid}: cannot read Oxford's test split 'tstid' ({exc}); the FLO retrieval protocol needs "
                        "setid.mat from the Oxford Flowers-102 release next to the features") from None
    try:
        files = scipy.io.loadmat(feats, variable_names=["image_files"])["image_files"]
        numbers = np.array([int(str(np.asarray(f).ravel()[0]).rsplit("_", 1)[-1].split(".")[0]) for f in files.ravel()])
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise DataError(f"{feats}: cannot read 'image_files' (jpg/image_NNNNN.jpg per row) to match Oxford's test "
                        f"split ({exc})") from None
    if len(numbers) != len(dataset.y):
        raise DataError(f"{feats}: {len(numbers)} image_files for {len(dataset.y)} feature rows")
    return np.isin(numbers, tst)


def _held_out_half(y: np.ndarray, rows: np.ndarray, seed: int, max_total: int) -> np.ndarray:
    """Half of each class's ``rows`` (rounded down, so at least as many stay in the database), at
    most ``max_total / number of classes`` per class (CIFAR-10 has 2,500 per class), seeded."""
    rng = np.random.default_rng([seed, 17])
    classes = np.unique(y[rows])
    cap = max(1, -(-max_total // max(len(classes), 1)))
    picks = []
    for c in classes:
        r = rows[y[rows] == c]
        picks.append(rng.permutation(r)[: min(len(r) // 2, cap)])
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)


def retrieval_data(dataset, *, role: str = "test", n_queries: int = 1000, seed: int = 0) -> RetrievalData:
    """The zero-shot retrieval split of a ``ZSLDataset``. Relevant = same class, always.

    ``role="test"`` (the reported numbers): hash functions train on the ``trainval`` images of the
    seen classes only; queries are unseen-class images, never in the database:
      * image-folder datasets with train/ and test/ folders (CIFAR-10): queries = the unseen
        classes' test-folder images (``test_unseen``); database = every train-folder image of
        every class (the seen classes' ``trainval`` rows plus the unseen classes' train images);
      * FLO (Oxford Flowers-102): queries = the unseen-class images in Oxford's own test split
        (``setid.mat`` ``tstid``: 755 images of the 20 unseen classes); database = every other
        image (the 7,434 seen- and unseen-class images; 20 relevant ones per query);
      * other datasets (AwA1, synthetic): queries = ``n_queries`` unseen-class images drawn with
        ``seed`` (at most half of them); database = every other image.
    ``role="validation"`` (model selection; nothing of the unseen classes, nor of ``test_seen``):
    hash functions train on the ``train`` rows (the seen classes minus the validation classes);
    queries = half of each validation class's images, at most ``n_queries`` in all (seeded);
    database = every other ``trainval`` image (train and validation classes).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    X, y = dataset.X, dataset.y
    meta_paths = (getattr(dataset, "meta", None) or {}).get("paths")
    trainval = dataset.splits["trainval"]
    if role == "validation":
        if len(dataset.val_classes) == 0:
            raise DataError(f"dataset {dataset.name!r} split {dataset.split!r} has no validation classes to select on")
        train = dataset.splits["train"]
        val_rows = trainval[np.isin(y[trainval], dataset.val_classes)]
        query = _held_out_half(y, val_rows, seed, n_queries)
        database = np.setdiff1d(trainval, query)
        out = RetrievalData(X[train], y[train], X[database], y[database], X[query], y[query], dataset.train_classes,
                            [meta_paths[i] for i in database] if meta_paths else None,
                            f"validation: half of each validation class's images, at most {n_queries} (seed {seed})")
        leaked = (
            np.isin(out.y_train, dataset.val_classes).any() or np.isin(out.y_database, dataset.unseen_classes).any()
        )
        if leaked:
            raise DataError(
                f"dataset {dataset.name!r}: validation split mixes held-out "
                "classes into training or unseen classes into the database"
            )
    else:
        extra = _unseen_train_images(dataset)
        oxford_test = oxford_flowers_test_rows(dataset) if extra is None else None
        if extra is not None:
            query = dataset.splits["test_unseen"]
            X_db = np.concatenate([X[trainval], extra[0]])
            y_db = np.concatenate([y[trainval], extra[1]])
            db_paths = [meta_paths[i] for i in trainval] + extra[2] if meta_paths else None
            out = RetrievalData(
                X[trainval], y[trainval], X_db, y_db, X[query], y[query], dataset.seen_classes, db_paths,
                "unseen classes' test-folder images; database = every train-folder image",
            )
        else:
            unseen_rows = np.flatnonzero(np.isin(y, dataset.unseen_classes))
            if oxford_test is not None:
                query = unseen_rows[oxford_test[unseen_rows]]
                rule = "unseen-class images of Oxford's test split (setid.mat tstid); database = every other image"
            else:
                rng = np.random.default_rng(seed)
                query = np.sort(rng.choice(unseen_rows, min(n_queries, len(unseen_rows) // 2), replace=False))
                rule = f"{len(query)} unseen-class images drawn with seed {seed}; database = every other image"
            database = np.setdiff1d(np.arange(len(y)), query)
            train = trainval[np.isin(y[trainval], dataset.seen_classes)]
            db_paths = [meta_paths[i] for i in database] if meta_paths else None
            out = RetrievalData(X[train], y[train], X[database], y[database], X[query], y[query], dataset.seen_classes,
                                db_paths, rule)
        if np.isin(out.y_train, dataset.unseen_classes).any():
            raise DataError(f"dataset {dataset.name!r}: unseen-class images in the hash functions' training set")
    if len(out.y_query) == 0 or len(out.y_train) == 0:
        raise DataError(
            f"dataset {dataset.name!r}: the {role} retrieval split has {len(out.y_train)} training and "
            f"{len(out.y_query)} query images"
        )
    if not np.isin(out.y_query, out.y_database).all():
        raise DataError(f"dataset {dataset.name!r}: some {role} query classes have no image in the database")
    return out


@dataclass
class HashingResult:
    method: str
    dataset: str
    split: str
    role: str
    n_bits: int
    seed: int
    semantics: str | None
    metrics: dict
    fit_seconds: float
    n_train: int
    n_database: int
    n_query: int
    params: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def evaluate_hashing(
    spec: str, dataset, *, n_bits: int, seed: int = 0, semantics: str | None = None, role: str = "test",
    n_queries: int = 1000, top_k: int = 1000, overrides: dict | None = None, data: RetrievalData | None = None,
) -> HashingResult:
    """Fit ``spec`` (e.g. ``"zsh"``) on the training-class images of the ``role`` split of
    ``dataset`` and evaluate retrieval of its held-out-class queries against the whole database
    (codes only). ``data`` reuses a split already built by ``retrieval_data`` (same role)."""
    from .._registry import create_method

    method = create_method(spec, **{"n_bits": n_bits, **(overrides or {})})
    if "random_state" in method.get_params():
        method.set_params(random_state=seed)
    data = data if data is not None else retrieval_data(dataset, role=role, n_queries=n_queries, seed=seed)
    S = dataset.class_embeddings(semantics)
    t0 = time.perf_counter()
    method.fit(data.X_train, data.y_train, S, data.train_classes)
    fit_seconds = time.perf_counter() - t0
    db_codes = method.encode(data.X_database)
    q_codes = method.encode(data.X_query)
    metrics = retrieval_metrics(q_codes, data.y_query, db_codes, data.y_database, top_k=top_k)
    return HashingResult(method=spec, dataset=dataset.name, split=str(getattr(dataset, "split", "")), role=role,
                         n_bits=n_bits, seed=seed, semantics=semantics or getattr(dataset, "default_semantics", None),
                         metrics=metrics, fit_seconds=fit_seconds, n_train=len(data.y_train),
                         n_database=len(data.y_database), n_query=len(data.y_query),
                         params={k: v for k, v in method.get_params().items()})


def uses_class_embeddings(spec: str) -> bool:
    """Whether the hashing method ``spec`` reads the class embeddings (ZSH's embedded labels)."""
    from .._registry import create_method

    return getattr(create_method(spec), "label_embedding", None) == "embedding"


def select_hashing_params(spec: str, dataset, *, n_bits: int, seed: int = 0, grid: dict | None = None,
                          semantics_options: list[str | None] | None = None, top_k: int = 1000,
                          data: RetrievalData | None = None, on_trial=None,
                          fixed_overrides: dict | None = None) -> dict:
    """Choose ``spec``'s hyperparameters on the *validation* retrieval split (``role="validation"``:
    held-out seen classes as queries; nothing of the unseen classes is touched).

    Every combination of ``grid`` (default: the method's ``param_grid``) and of
    ``semantics_options`` (class-embedding sources; [None] = the dataset's default) is fitted with
    ``seed`` on the train classes and scored by tie-exact mAP; the first best in grid order wins.
    ``fixed_overrides`` are set in every trial (and returned in ``overrides``).
    Returns ``{"overrides", "semantics", "val_mAP", "trials": [...]}``; ``on_trial()`` is called
    after each fit (progress).
    """
    from itertools import product

    from .._registry import get_method_class

    grid = get_method_class(spec).param_grid if grid is None else grid
    data = data if data is not None else retrieval_data(dataset, role="validation", seed=seed)
    if not grid and not semantics_options:
        raise ValueError(f"{spec}: nothing to select (empty grid and no class-embedding sources)")
    keys = sorted(grid)
    trials = []
    for sem in semantics_options or [None]:
        for values in product(*[grid[k] for k in keys]):
            overrides = {**(fixed_overrides or {}), **dict(zip(keys, values))}
            r = evaluate_hashing(spec, dataset, n_bits=n_bits, seed=seed, semantics=sem, role="validation",
                                 overrides=overrides, top_k=top_k, data=data)
            trials.append({"overrides": overrides, "semantics": sem, "mAP": r.metrics["mAP"],
                           f"mAP@{top_k}": r.metrics[f"mAP@{top_k}"], "mAP_authors": r.metrics["mAP_authors"],
                           "fit_seconds": r.fit_seconds})
            if on_trial:
                on_trial()
    best = max(trials, key=lambda t: t["mAP"])  # max keeps the first of equal scores: grid order decides ties
    return {"overrides": best["overrides"], "semantics": best["semantics"], "val_mAP": best["mAP"], "trials": trials}
