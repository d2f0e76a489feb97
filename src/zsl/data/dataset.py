"""``ZSLDataset``: features, labels, class descriptions and the split index sets of one benchmark.

Index sets (row indices into ``X``):
    trainval     images of the seen classes used for the final fit
    test_seen    held-out images of the seen classes (GZSL "S")
    test_unseen  images of the unseen classes (ZSL, GZSL "U")
    train        images of the *train* classes (seen minus validation classes) used while tuning
    val_seen     held-out images of the train classes (GZSL calibration while tuning)
    val_unseen   images of the validation classes (seen classes treated as unseen while tuning)

Class-id sets: ``seen_classes`` (= classes of trainval), ``unseen_classes``, ``train_classes``,
``val_classes``. Validation classes are always a subset of the seen classes, so nothing about
the unseen test classes is used for model selection.

Class embeddings: ``embeddings[source]`` (C, k) serve the final fit and the test. A source learnt
from seen-class images (VGSE) also has ``validation_embeddings[source]``: the same construction
with the validation classes in the role of the unseen classes (learnt on the train classes only,
validation classes through the same transfer step as the test classes), used while tuning so that
selection measures what the test measures. Sources without one use ``embeddings`` at both stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

SPLIT_KEYS = ("trainval", "test_seen", "test_unseen", "train", "val_seen", "val_unseen")


@dataclass
class ZSLDataset:
    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    embeddings: dict[str, np.ndarray]
    splits: dict[str, np.ndarray]
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    train_classes: np.ndarray
    val_classes: np.ndarray
    split: str = "default"
    default_semantics: str = "attributes"
    meta: dict[str, Any] = field(default_factory=dict)
    validation_embeddings: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.int64)
        for key in ("seen_classes", "unseen_classes", "train_classes", "val_classes"):
            setattr(self, key, np.asarray(sorted(set(np.asarray(getattr(self, key)).tolist())), dtype=np.int64))
        self.splits = {k: np.asarray(v, dtype=np.int64) for k, v in self.splits.items()}
        self.embeddings = {k: np.asarray(v, dtype=np.float32) for k, v in self.embeddings.items()}
        self.validation_embeddings = {k: np.asarray(v, dtype=np.float32) for k, v in self.validation_embeddings.items()}
        self.validate()

    # ------------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_embeddings(self, source: str | None = None, stage: str = "test") -> np.ndarray:
        """(C, k) description matrix from ``source`` (``attributes``, ``glove``, ``minilm``, ``vgse``).

        ``stage="val"``: the matrix to tune with (``validation_embeddings[source]`` when the source
        has one, else the same as ``stage="test"``).
        """
        source = source or self.default_semantics
        if stage == "val" and source in self.validation_embeddings:
            return self.validation_embeddings[source]
        if source not in self.embeddings:
            raise DataError(
                f"dataset {self.name!r} has no {source!r} class embeddings; available: "
                f"{', '.join(sorted(self.embeddings))}"
                + (
                    f"; run `zsl vgse fit --dataset {self.name} --split {self.split}` first"
                    if source.startswith("vgse")
                    else ""
                )
            )
        return self.embeddings[source]

    def subset(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        idx = self.splits[key]
        return self.X[idx], self.y[idx]

    def fingerprint(self) -> str:
        """Content hash of every feature, label, split index and class name (not the embeddings).

        Together with :meth:`embedding_digest` of the source a run uses, it identifies exactly what
        the run saw; embeddings are left out so that adding a source (a VGSE fit) changes no other
        run's identity. Computed once per dataset object (the arrays are not modified after load).
        """
        cached = self.meta.get("_fingerprint")
        if cached is None:
            from ..io import content_digest

            cached = content_digest(self.X, self.y, *[self.splits[k] for k in sorted(self.splits)],
                                    "\n".join([self.name, self.split, *sorted(self.splits), *self.class_names]))
            self.meta["_fingerprint"] = cached
        return cached

    def embedding_digest(self, source: str | None = None) -> str:
        """Content hash of the class-embedding matrix ``source``."""
        from ..io import content_digest

        return content_digest(self.class_embeddings(source))

    def summary(self) -> str:
        d = self.X.shape[1]
        sizes = ", ".join(f"{k}={len(self.splits[k])}" for k in SPLIT_KEYS)
        return (
            f"{self.name} [{self.split}]: {len(self.X)} images x {d} features, {self.n_classes} classes "
            f"({len(self.seen_classes)} seen / {len(self.unseen_classes)} unseen, "
            f"{len(self.val_classes)} validation); {sizes}; semantics: {', '.join(sorted(self.embeddings))}"
        )

    # ------------------------------------------------------------------------------------
    def validate(self) -> None:
        n, C = len(self.X), len(self.class_names)
        where = self.meta.get("source", self.name)
        if self.X.ndim != 2:
            raise DataError(f"{where}: features must be 2-d, got shape {self.X.shape}")
        if len(self.y) != n:
            raise DataError(f"{where}: {n} feature rows but {len(self.y)} labels; features and labels must match")
        if not np.isfinite(self.X).all():
            rows = np.where(~np.isfinite(self.X).all(1))[0]
            raise DataError(f"{where}: features contain NaN/inf in {len(rows)} rows (first {rows[:5].tolist()})")
        if n and (self.y.min() < 0 or self.y.max() >= C):
            raise DataError(f"{where}: labels must be in [0, {C}); got [{self.y.min()}, {self.y.max()}]")
        for key in SPLIT_KEYS:
            if key not in self.splits:
                raise DataError(f"{where}: split {key!r} is missing")
            idx = self.splits[key]
            if len(idx) and (idx.min() < 0 or idx.max() >= n):
                raise DataError(f"{where}: split {key!r} has index out of range [0, {n}) (max {idx.max()})")
        for src, E in [
            *self.embeddings.items(), *((f"{k} (validation)", v) for k, v in self.validation_embeddings.items()),
        ]:
            if E.ndim != 2 or E.shape[0] != C:
                raise DataError(f"{where}: {src} embeddings have shape {E.shape}; expected ({C}, k), one row per class")
            bad = np.where(~np.isfinite(E).all(1) | ~np.any(E != 0, axis=1))[0]
            if len(bad):
                names = [self.class_names[i] for i in bad[:5]]
                raise DataError(
                    f"{where}: classes {names} have no {src} description (all zero or NaN); every class needs one"
                )
        if self.default_semantics not in self.embeddings:
            raise DataError(
                f"{where}: default semantics {self.default_semantics!r} not among {sorted(self.embeddings)}"
            )
        if len(np.intersect1d(self.seen_classes, self.unseen_classes)):
            raise DataError(f"{where}: seen and unseen classes overlap")
        if len(np.setdiff1d(self.val_classes, self.seen_classes)):
            raise DataError(f"{where}: validation classes must be seen classes")


def split_by_classes(
    y: np.ndarray,
    seen_classes,
    unseen_classes,
    val_classes,
    *,
    test_seen_fraction: float = 0.2,
    seed: int = 0,
    trainval: np.ndarray | None = None,
    test_seen: np.ndarray | None = None,
    test_unseen: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Build the six index sets from class lists.

    Where ``trainval``/``test_seen`` are not given, ``test_seen_fraction`` of every seen class's
    images (chosen with ``seed``) become test_seen. Within trainval, the same fraction of every
    train class's images become val_seen (for GZSL calibration while tuning); images of the
    validation classes are val_unseen.
    """
    y = np.asarray(y)
    seen = np.asarray(seen_classes)
    val = np.asarray(val_classes)
    train_cls = np.setdiff1d(seen, val)

    def holdout(idx: np.ndarray, classes: np.ndarray, stream: int) -> tuple[np.ndarray, np.ndarray]:
        # one RNG stream per hold-out, so val_seen does not depend on whether test_seen was given
        rng = np.random.default_rng([seed, stream])
        keep, held = [], []
        for c in classes:
            rows = idx[y[idx] == c]
            rows = rows[rng.permutation(len(rows))]
            k = int(round(test_seen_fraction * len(rows)))
            if len(rows) >= 2:
                k = min(max(k, 1), len(rows) - 1)
            else:
                k = 0
            held.append(rows[:k])
            keep.append(rows[k:])
        cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        return cat(keep), cat(held)

    all_idx = np.arange(len(y))
    if trainval is None or test_seen is None:
        trainval, test_seen = holdout(all_idx[np.isin(y, seen)], seen, 0)
    if test_unseen is None:
        test_unseen = all_idx[np.isin(y, unseen_classes)]
    train, val_seen = holdout(trainval[np.isin(y[trainval], train_cls)], train_cls, 1)
    val_unseen = trainval[np.isin(y[trainval], val)]
    return {
        "trainval": np.asarray(trainval, np.int64),
        "test_seen": np.asarray(test_seen, np.int64),
        "test_unseen": np.asarray(test_unseen, np.int64),
        "train": train,
        "val_seen": val_seen,
        "val_unseen": np.asarray(val_unseen, np.int64),
    }
