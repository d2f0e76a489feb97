"""Pieces shared by the generative methods (f-CLSWGAN, the clusterable CVAE, CPL).

* :class:`ConditionSpace` -- class embeddings as a generator is conditioned on them.
* :func:`synthesize` -- the one sampling API: any generator module ``G(a, z) -> x`` with a
  ``noise_dim`` attribute (f-CLSWGAN's G, the CVAE's decoder, CPL's G) draws ``n`` features per class.
* :class:`GeneratedFeatureClassifier` -- the final softmax classifiers trained on synthesised
  features: ZSL (generated unseen only) and GZSL (real seen + generated unseen).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..nn import predict_log_proba, torch_generator, train_softmax


class ConditionSpace:
    """Class embeddings (C, k) -> the (C, k') condition vectors of a generator.

    Rows are L2-normalised (as every paper here does). With ``seen_span=True`` they are then
    expressed in the principal axes of the *seen* classes' embeddings (centred on their mean, at
    most |S| - 1 axes, then normalised again). Reason: a network's first layer only ever receives
    gradients along directions the training conditions span, so the components of an unseen
    class's embedding outside the seen span meet untrained (random-init) weights and add noise;
    dropping them loses nothing a linear first layer could use and shrinks FLO's 1024-d text
    embeddings to 81 dims, which makes the generator and critic several times cheaper. Rows are
    finally multiplied by ``norm`` (1 = unit rows; "sqrt_dim" = entries of RMS 1, the scale of
    N(0, I) noise next to which they are concatenated).
    """

    def __init__(self, *, norm: float | str = 1.0, seen_span: bool = False):
        self.norm = norm
        self.seen_span = seen_span

    def fit_transform(self, S: np.ndarray, seen: np.ndarray) -> np.ndarray:
        A = _unit_rows(np.asarray(S, dtype=np.float64))
        self.mean_, self.axes_ = None, None
        if self.seen_span:
            self.mean_ = A[seen].mean(0)
            _, sv, vt = np.linalg.svd(A[seen] - self.mean_, full_matrices=False)
            keep = sv > 1e-8 * max(float(sv.max()), 1e-12)
            self.axes_ = vt[keep]  # (k', k)
            A = _unit_rows((A - self.mean_) @ self.axes_.T)
        return (A * self._norm(A.shape[1])).astype(np.float32)

    def _norm(self, dim: int) -> float:
        if self.norm == "sqrt_dim":
            return float(np.sqrt(dim))
        if isinstance(self.norm, str) or not float(self.norm) > 0:
            raise ValueError(f"embedding norm must be a positive number or 'sqrt_dim', got {self.norm!r}")
        return float(self.norm)


def _unit_rows(A: np.ndarray) -> np.ndarray:
    return A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)


@torch.no_grad()
def synthesize(generator: nn.Module, A: np.ndarray, classes, n_per_class: int, *,
               random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` features for each class id in ``classes`` from ``generator(a, z)``, z ~ N(0, I).

    A (C, k') condition vectors (rows indexed by class id). Returns X_syn (len(classes) *
    n_per_class, d) float32 and y_syn int64 class ids, grouped by class in the order of ``classes``.
    """
    gen = torch_generator(random_state)
    classes = np.asarray(classes, dtype=np.int64)
    At = torch.as_tensor(np.asarray(A, dtype=np.float32))
    was_training = generator.training
    generator.eval()
    out = []
    for c in classes:
        a = At[int(c)].expand(n_per_class, -1)
        z = torch.randn(n_per_class, generator.noise_dim, generator=gen)
        out.append(generator(a, z))
    generator.train(was_training)
    X_syn = torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, generator.out_dim), np.float32)
    return X_syn, np.repeat(classes, n_per_class)


class GeneratedFeatureClassifier:
    """Linear softmax classifiers on generated features (the last step of every generative method).

    ``fit`` trains a ZSL classifier over the unseen classes on their generated features, and a GZSL
    classifier over all classes on real seen + generated unseen features. Each classifier first
    centres its inputs per dimension and divides by one global RMS scale, both from its own
    training set (a per-dimension scale would blow up dimensions where generated features have
    almost no variance). ``decision_function(Z, candidates)`` returns log-probabilities of the ZSL
    classifier when every candidate is unseen, else of the GZSL classifier, restricted to the
    candidate columns. Training length is a fixed number of minibatch ``steps`` for each classifier,
    so a split with two unseen classes (a few hundred generated features) is trained as long as one
    with twenty, instead of a few epochs over a tiny set.
    """

    def __init__(self, *, steps: int = 2000, batch_size: int = 64, lr: float = 1e-3, random_state: int = 0,
                 progress: bool = False):
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.progress = progress

    def fit(self, Z_seen, y_seen, Z_syn, y_syn, unseen, n_classes: int) -> GeneratedFeatureClassifier:
        gen = torch_generator(self.random_state)
        self.unseen_ = np.asarray(unseen, dtype=np.int64)
        self.n_classes_ = int(n_classes)
        self.zsl_clf_ = None
        if len(self.unseen_) and len(Z_syn):
            self.zsl_center_, self.zsl_scale_ = _centre_scale(Z_syn)
            self.zsl_clf_ = train_softmax(
                (Z_syn - self.zsl_center_) / self.zsl_scale_, np.searchsorted(self.unseen_, y_syn), len(self.unseen_),
                steps=self.steps, batch_size=self.batch_size, lr=self.lr, gen=gen, progress=self.progress,
                desc="ZSL classifier",
            )
        Z_all = np.concatenate([Z_seen, Z_syn]) if len(Z_syn) else np.asarray(Z_seen)
        y_all = np.concatenate([y_seen, y_syn]) if len(y_syn) else np.asarray(y_seen)
        self.gzsl_center_, self.gzsl_scale_ = _centre_scale(Z_all)
        self.gzsl_clf_ = train_softmax((Z_all - self.gzsl_center_) / self.gzsl_scale_, y_all, self.n_classes_,
                                       steps=self.steps, batch_size=self.batch_size, lr=self.lr, gen=gen,
                                       progress=self.progress, desc="GZSL classifier")
        return self

    def decision_function(self, Z: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if self.zsl_clf_ is not None and np.isin(candidates, self.unseen_).all():
            logp = predict_log_proba(self.zsl_clf_, (Z - self.zsl_center_) / self.zsl_scale_)
            return logp[:, np.searchsorted(self.unseen_, candidates)]
        logp = predict_log_proba(self.gzsl_clf_, (Z - self.gzsl_center_) / self.gzsl_scale_)
        return logp[:, candidates]


def _centre_scale(Z: np.ndarray) -> tuple[np.ndarray, np.float32]:
    centre = Z.mean(0).astype(np.float32)
    scale = np.float32(np.sqrt(np.mean((Z - centre) ** 2)) + 1e-6)
    return centre, scale


__all__ = ["ConditionSpace", "GeneratedFeatureClassifier", "synthesize"]
