"""N-way K-shot few-shot evaluation (Xu, Shu, Samaras, Table 5; baseline of Chen et al., ICLR 2019).

Protocol: a mapping is trained on *base* classes only; each episode draws ``n_way`` novel classes,
``k_shot`` support and ``n_query`` query images per class (disjoint), trains a linear softmax
classifier (multinomial logistic regression) on the support features and scores the queries.
Reported: mean accuracy over ``n_episodes`` episodes and the 95% interval half-width
1.96 * std / sqrt(n_episodes).

``fewshot_accuracy(X, y, classes, ...)`` evaluates one feature space; ``gaussian_fewshot_table``
compares raw features against the Gaussian-similarity map F (eq. 7-9 of the paper) trained on the
base classes, with identical episodes for both (same seed -> same support/query draws).
"""
from __future__ import annotations

import sys

import numpy as np

from ..errors import DataError


def sample_episodes(y, classes, *, n_way: int, k_shot: int, n_query: int, n_episodes: int, random_state: int = 0):
    """Yield (support_idx, support_labels, query_idx, query_labels) index arrays into y; labels in [0, n_way)."""
    y = np.asarray(y)
    classes = np.asarray(classes)
    if len(classes) < n_way:
        raise DataError(f"{n_way}-way episodes need at least {n_way} novel classes; got {len(classes)}")
    by_class = {int(c): np.flatnonzero(y == c) for c in classes}
    short = [c for c, idx in by_class.items() if len(idx) < k_shot + n_query]
    if short:
        raise DataError(f"classes {short[:5]} have fewer than k_shot + n_query = {k_shot + n_query} samples")
    rng = np.random.default_rng(random_state)
    for _ in range(n_episodes):
        chosen = rng.choice(classes, n_way, replace=False)
        s_idx, s_lab, q_idx, q_lab = [], [], [], []
        for j, c in enumerate(chosen):
            pick = rng.choice(by_class[int(c)], k_shot + n_query, replace=False)
            s_idx.append(pick[:k_shot])
            q_idx.append(pick[k_shot:])
            s_lab += [j] * k_shot
            q_lab += [j] * n_query
        yield np.concatenate(s_idx), np.asarray(s_lab), np.concatenate(q_idx), np.asarray(q_lab)


def fewshot_accuracy(X, y, classes, *, n_way: int = 5, k_shot: int = 1, n_query: int = 15, n_episodes: int = 600,
                     random_state: int = 0, C: float = 1.0, progress: bool = False) -> dict[str, float]:
    """Mean and 95% interval of N-way K-shot accuracy with a logistic-regression head on X (n, d)."""
    from sklearn.linear_model import LogisticRegression
    from tqdm.auto import tqdm

    X = np.asarray(X, dtype=np.float64)
    accs = []
    episodes = sample_episodes(y, classes, n_way=n_way, k_shot=k_shot, n_query=n_query, n_episodes=n_episodes,
                               random_state=random_state)
    for s_idx, s_lab, q_idx, q_lab in tqdm(episodes, total=n_episodes, disable=not progress, file=sys.stderr,
                                           desc=f"{n_way}-way {k_shot}-shot", leave=False):
        clf = LogisticRegression(C=C, max_iter=200).fit(X[s_idx], s_lab)
        accs.append(float(np.mean(clf.predict(X[q_idx]) == q_lab)))
    accs = np.asarray(accs)
    return {"mean": float(accs.mean()), "ci95": float(1.96 * accs.std() / np.sqrt(len(accs))), "n_episodes": len(accs)}


def gaussian_fewshot_table(dataset, *, semantics: str | None = None, shots=(1, 5), n_way: int = 5, n_query: int = 15,
                           n_episodes: int = 600, seed: int = 0, pca_dim: int | None = 256, dim: int = 512,
                           gamma: float = 1.0, epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
                           progress: bool = True) -> list[dict]:
    """Rows {features, shots, mean, ci95}: raw features vs the Gaussian map F trained on base classes.

    Base classes = ``dataset.seen_classes`` (their trainval images train F, after a PCA fitted on
    them); novel classes = ``dataset.unseen_classes`` (episodes drawn from test_unseen images).
    """
    import torch

    from ..methods.cvae_clusterable import train_gaussian_map
    from ..nn import deterministic_torch, torch_generator
    from ..preprocessing import FeaturePreprocessor

    Xb, yb = dataset.subset("trainval")
    base = dataset.seen_classes
    Xn, yn = dataset.subset("test_unseen")
    novel = dataset.unseen_classes
    with deterministic_torch(1):
        prep = FeaturePreprocessor(pca_dim, random_state=seed).fit(Xb)
        F = train_gaussian_map(
            prep.transform(Xb), np.searchsorted(base, yb), len(base), dim=dim, gamma=gamma, epochs=epochs,
            batch_size=batch_size, lr=lr, gen=torch_generator(seed), progress=progress,
            desc="Gaussian map on base classes",
        )
        with torch.no_grad():
            Hn = F(torch.as_tensor(prep.transform(Xn))).numpy()
    rows = []
    for k in shots:
        for label, feats in (("raw features", Xn), ("Gaussian map F", Hn)):
            res = fewshot_accuracy(feats, yn, novel, n_way=n_way, k_shot=k, n_query=n_query, n_episodes=n_episodes,
                                   random_state=seed, progress=progress)
            rows.append({"features": label, "shots": k, **res})
    return rows
