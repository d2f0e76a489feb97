"""Zero-shot labelling as a benchmark task (``zsl benchmark --task labelling``).

A cell is one (label space, T, dataset, split): the ``zsl label`` labeller
(:class:`zsl.labelling.ZeroShotLabeller`: ConSE over the ImageNet-1k EfficientNet-Lite0 classifier)
ranks the split's test images against the dataset's class names, and the cell records how often
the true name comes first. This is the measurement of ``benchmarks/conse_tables.py``'s ``label``
part ("FLO test_unseen photos against the 102 flower names", "CIFAR-10 test images against the 10
names") made a grid cell, so every dataset -- image folders too -- gets the same table.

* images: every test image of the split (``test_seen`` and ``test_unseen``; grid ``images =
  "test"``) or the unseen-class ones only (``images = "test_unseen"``). The classifier was never
  trained on any class of the dataset, so for the labeller every image is zero-shot; seen/unseen is
  only the dataset's split, and the training images are not used at all.
* vocabulary: every class name of the dataset (its ``class_names``, as in the ConSE tables).
* classifier logits: the ImageNet-1k head of EfficientNet-Lite0 applied to the dataset's features
  (:func:`zsl.features.logits_from_features`), which are that network's penultimate activations for
  image folders and CIFAR-10 (extracted at the dataset's resolution: 128 px unless the grid loads
  it with ``resolution = 224``, which ``zsl label`` uses) and for FLO's ``lite0.mat`` (224 px).
  A dataset with other features (AwA1's, ResNet-101 xlsa17 files) cannot be labelled: one-line
  error naming the datasets that can.
* metrics: ``hit@1``, ``hit@2``, ``hit@5`` (:func:`zsl.labelling.names_hit_at_k`) and ``far``, the
  share of images the labeller flags as far from what its classifier knows (``far_reasons``).
Deterministic (no seed): the store holds seed 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError

KS = (1, 2, 5)


def has_lite0_features(dataset) -> bool:
    """Whether ``dataset.X`` holds EfficientNet-Lite0 penultimate features (1280-d), the classifier's input."""
    meta = getattr(dataset, "meta", None) or {}
    lite0 = meta.get("backbone") == "efficientnet-lite0" or meta.get("features_file") == "lite0.mat"
    return bool(lite0) and dataset.X.shape[1] == 1280


class LabellingContext:
    """What the labelling cells of one loaded dataset split share: the classifier's logits per image part."""

    def __init__(self, dataset, cache_dir=None):
        self.dataset = dataset
        self.cache_dir = cache_dir  # where the label-space embeddings are cached
        self._logits: dict[str, np.ndarray] = {}

    def rows(self, images: str) -> np.ndarray:
        splits = self.dataset.splits
        if images == "test_unseen":
            return np.asarray(splits["test_unseen"])
        return np.sort(np.concatenate([splits["test_seen"], splits["test_unseen"]]))

    def logits(self, images: str) -> np.ndarray:
        if images not in self._logits:
            from ..features import logits_from_features

            ds = self.dataset
            if not has_lite0_features(ds):
                raise DataError(f"dataset {ds.name!r}: its features are not EfficientNet-Lite0's, so the ImageNet-1k "
                                "classifier behind `zsl label` cannot score its images; labelling cells run on image "
                                "folders, cifar10 and flo (lite0.mat)")
            self._logits[images] = logits_from_features(ds.X[self.rows(images)])
        return self._logits[images]


def label_dataset(ctx: LabellingContext, *, space: str, T: int | None, images: str = "test") -> dict[str, Any]:
    """Rank ``images`` of ``ctx.dataset`` against its class names in ``space`` with ConSE(T):
    ``{"metrics": {hit@1, hit@2, hit@5, far}, "config": {...}}`` (module docstring)."""
    from ..labelling import ZeroShotLabeller, names_hit_at_k

    dataset = ctx.dataset
    logits = ctx.logits(images)  # first: a dataset the classifier cannot read is refused before any embedding
    names = [str(n) for n in dataset.class_names]
    labeller = ZeroShotLabeller(names, space=space, T=T, cache_dir=ctx.cache_dir)
    ranking = labeller.rank(logits, max(KS))
    y = dataset.y[ctx.rows(images)]
    hits = names_hit_at_k(ranking, labeller.vocabulary, names, y, KS)
    far = float(np.mean([bool(r) for r in labeller.far_reasons(ranking)]))
    metrics = {**{f"hit@{k}": v for k, v in hits.items()}, "far": far}
    config = {"space": space, "T": T, "images": images, "n_images": int(len(y)), "n_names": len(names),
              "missing_names": list(labeller.missing),
              "resolution": (getattr(dataset, "meta", None) or {}).get("resolution")}
    return {"metrics": metrics, "config": config}


def run_labelling_cell(cell, dataset, ctx: LabellingContext) -> dict[str, Any]:
    """One ``zsl benchmark --task labelling`` cell (:mod:`zsl.bench.runner`): :func:`label_dataset` with
    the cell's label space, T and images."""
    p = cell.params
    return {**label_dataset(ctx, space=p["space"], T=p["T"], images=p["images"]), "semantics": p["space"]}
