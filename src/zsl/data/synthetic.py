"""A seeded, realistic synthetic zero-shot dataset (the default when no data root exists).

Generative story: each class c has an attribute vector a_c in [0, 1]^k (sparse-ish, as human
attributes are); its visual prototype is a fixed random two-layer network of the attributes,
mu_c = W2 tanh(W1 a_c); an image feature is mu_c plus anisotropic Gaussian noise, passed through
a ReLU so features are non-negative like CNN activations. Because the map attributes -> features
is shared by all classes, seen classes teach it and unseen classes can be recognised from their
attributes alone -- the premise of zero-shot learning.
"""
from __future__ import annotations

from pathlib import Path

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


def synthetic_res101_for(att_splits: str | Path, folder: str | Path, *, n_unseen: int | None = None,
                         n_features: int = 64, noise: float = 0.6, seed: int = 0) -> Path:
    """Write ``folder/res101.mat`` (+ a copy of ``att_splits``) with features generated from the real
    class embeddings, labelled consistently with the file's ``*_loc`` index sets.

    Rows in ``test_unseen_loc`` get the unseen classes (from ``testclasses.txt`` beside the file,
    else the last ``n_unseen`` classes), every other row a seen class, cycling. This is how the
    xlsa17 reader is tested on the real split files without the (unavailable) ResNet features.
    """
    import shutil

    import scipy.io as sio

    from ..io import atomic_write
    from .xlsa17 import read_att_splits

    att_splits, folder = Path(att_splits), Path(folder)
    info = read_att_splits(att_splits)
    S = info["attributes"]
    C = len(S)
    listing = att_splits.parent / "testclasses.txt"
    if listing.is_file():
        lookup = {n: i for i, n in enumerate(info["class_names"])}
        unseen = np.array(sorted(lookup[n.split()[-1]] for n in listing.read_text().split() if n.split()[-1] in lookup))
    else:
        unseen = np.arange(C - (n_unseen or max(1, C // 5)), C)
    seen = np.setdiff1d(np.arange(C), unseen)
    locs = [
        info[k]
        for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc")
        + tuple(k for k in ("train_loc", "val_loc") if k in info)
    ]
    n = int(max(loc.max() for loc in locs)) + 1
    y = seen[np.arange(n) % len(seen)]
    tu = info["test_unseen_loc"]
    y[tu] = unseen[np.arange(len(tu)) % len(unseen)]
    rng = np.random.default_rng(seed)
    W1 = rng.normal(0, 1.0 / np.sqrt(S.shape[1]), (S.shape[1], 2 * n_features))
    W2 = rng.normal(0, 1.0 / np.sqrt(2 * n_features), (2 * n_features, n_features))
    mu = np.tanh(S @ W1 * 3.0) @ W2 * 3.0
    X = np.maximum(mu[y] + rng.normal(0, noise, (n, n_features)) + 0.5, 0).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "res101.mat", "wb") as fh:
        sio.savemat(fh, {"features": X.T, "labels": (y + 1).reshape(-1, 1).astype(np.float64)})
    shutil.copyfile(att_splits, folder / "att_splits.mat")
    for extra in ("testclasses.txt", "valclasses1.txt", "trainvalclasses.txt"):
        if (att_splits.parent / extra).is_file():
            shutil.copyfile(att_splits.parent / extra, folder / extra)
    return folder
