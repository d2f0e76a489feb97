"""A seeded, realistic synthetic zero-shot dataset (the default when no data root exists).

Generative story: each class c has an attribute vector a_c in [0, 1]^k (sparse-ish, as human
attributes are); its visual prototype is a fixed random two-layer network of the attributes,
mu_c = W2 tanh(W1 a_c); an image feature is mu_c plus anisotropic Gaussian noise, passed through
a ReLU so features are non-negative like CNN activations. Because the map attributes -> features
is shared by all classes, seen classes teach it and unseen classes can be recognised from their
attributes alone -- the premise of zero-shot learning.
"""
from __future__ import annotations

import numpy as np

from .dataset import ZSLDataset, split_by_classes


def make_synthetic(
    *,
    n_classes: int = 20,
    n_unseen: int = 5,
    n_val: int = 4,
    n_per_class: int = 60,
    n_attributes: int = 24,
    n_features: int = 64,
    noise: float = 0.6,
    seed: int = 0,
) -> ZSLDataset:
    """Return a :class:`ZSLDataset` named ``synthetic`` with ``attributes`` embeddings.

    Shapes: X (n_classes * n_per_class, n_features), attributes (n_classes, n_attributes).
    """
    rng = np.random.default_rng(seed)
    A = (rng.random((n_classes, n_attributes)) < 0.35).astype(np.float32)
    A = np.clip(A * rng.uniform(0.6, 1.0, A.shape) + rng.normal(0, 0.05, A.shape), 0, 1).astype(np.float32)
    A[A.sum(1) == 0, 0] = 1.0  # every class needs a non-empty description
    W1 = rng.normal(0, 1.0 / np.sqrt(n_attributes), (n_attributes, 2 * n_features))
    W2 = rng.normal(0, 1.0 / np.sqrt(2 * n_features), (2 * n_features, n_features))
    mu = np.tanh(A @ W1 * 3.0) @ W2 * 3.0
    scales = rng.uniform(0.5, 1.5, n_features)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = mu[y] + rng.normal(0, noise, (len(y), n_features)) * scales
    X = np.maximum(X + 0.5, 0).astype(np.float32)

    perm = rng.permutation(n_classes)
    unseen = np.sort(perm[:n_unseen])
    seen = np.sort(perm[n_unseen:])
    val = np.sort(rng.choice(seen, n_val, replace=False))
    splits = split_by_classes(y, seen, unseen, val, seed=seed)
    return ZSLDataset(
        name="synthetic",
        X=X,
        y=y,
        class_names=[f"class{c:02d}" for c in range(n_classes)],
        embeddings={"attributes": A},
        splits=splits,
        seen_classes=seen,
        unseen_classes=unseen,
        train_classes=np.setdiff1d(seen, val),
        val_classes=val,
        split="default",
        default_semantics="attributes",
        meta={"source": f"synthetic(seed={seed})", "seed": seed},
    )
