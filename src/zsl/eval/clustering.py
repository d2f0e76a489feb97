"""Clusterability of a feature space (Xu, Shu, Samaras, Table 4): K-Means, then mutual information with the labels.

``clusterability_score(X, y)`` runs K-Means with K = number of distinct labels on X (n, d) and
compares its assignment with the ground truth:

    mi   mutual information I(labels; clusters) in nats (sklearn ``mutual_info_score``)
    nmi  normalised MI in [0, 1] (arithmetic-mean normalisation) -- the scale of the paper's
         Table 4 values (0.56..0.85); the "MI" column of ``zsl ablation`` is this one
    ami  adjusted MI (0 for a random assignment), reported for completeness

K-Means uses scikit-learn (k-means++ init, ``n_init`` restarts, fixed ``random_state``), so the
score is deterministic for a given seed.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError


def clusterability_score(X, y, *, n_clusters: int | None = None, random_state: int = 0, n_init: int = 4,
                         max_iter: int = 300) -> dict[str, float]:
    """K-Means on X (n, d) with K = n_clusters (default: #distinct y); MI/NMI/AMI against y (n,)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score, mutual_info_score, normalized_mutual_info_score

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise DataError(f"clusterability_score needs X (n, d) and y (n,); got {X.shape} and {y.shape}")
    k = int(n_clusters or len(np.unique(y)))
    if k < 2 or k > len(X):
        raise DataError(f"clusterability_score needs 2 <= n_clusters <= n_samples; got {k} for {len(X)} samples")
    assign = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=random_state).fit_predict(X)
    return {
        "mi": float(mutual_info_score(y, assign)),
        "nmi": float(normalized_mutual_info_score(y, assign)),
        "ami": float(adjusted_mutual_info_score(y, assign)),
        "n_clusters": k,
    }
