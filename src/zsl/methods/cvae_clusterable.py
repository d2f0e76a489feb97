"""Clusterable visual features for generative ZSL (Xu, Shu, Samaras, "Learning clusterable visual features for zero-shot recognition").

A CVAE synthesises features of unseen classes; instead of reconstructing raw visual features it
reconstructs features projected to a clusterable space, and the final softmax classifier is
trained on synthesized unseen (ZSL) or synthesized unseen + real seen (GZSL) features in that
space. Every component is a switch, for the paper's ablation (Fig. 4, Table 4):

    use_gaussian  F: fine-tuning map trained first with the Gaussian similarity loss (eq. 7-9)
                     s(h, w_k) = -gamma ||h - w_k||^2,  L_GAU = sum_i -s(h_i, w_yi) + log sum_k exp s(h_i, w_k)
                     h = F(x) (FC + Sigmoid), W' (K seen classes x dim) learnt with F.
    use_mapping   M: FC + Sigmoid projecting (F(x) or x) to x', supervised by classifier C:
                     L_cls = -log p_C(y | x')        (eq. 2, weight ``cls_weight`` = 1)
                     L_cls' = -log p_C(y | x^')      (eq. 3, on reconstructions, ``cls_recon_weight`` = 0.1)
    noise_alpha   reconstruction target x~' = x' + alpha * eps, eps ~ N(0, I)    (eq. 10-11)
    CVAE          E(x~', a) -> (mu, log var) of z;  G(z, a) -> x^';
                  L_CVAE = ||x^' - x~'||^2 + kl_weight * KL(N(mu, var) || N(0, I))   (eq. 1, 11)
    objective     min_{E, G, M, C}  L_CVAE + cls_weight L_cls + cls_recon_weight L_cls'   (eq. 4)

All switches off = the CVAE baseline ("NA"): the CVAE reconstructs the (preprocessed) features.
Test samples go through the same map(s) (F, then M) before the final classifier.

Shapes: x (n, d) -> PCA (n, p) -> F (n, gaussian_dim) -> M (n, map_dim) = x'; a (k,) class
embedding (L2-normalised); z (latent_dim,) with latent_dim = k by default (as the paper).

Choices where the paper is silent or ambiguous (documented params):
* Features are first reduced by PCA to ``pca_dim`` (fitted on training features; AwA1's 6252-d
  histograms would make the 4096-unit networks slow on CPU), then whitened (``pca_scale=
  "whiten"``, every component to unit variance) or globally scaled (``"std"``), as f-CLSWGAN.
* ``embedding_scale``: L2-normalised class embeddings times this (``"sqrt_dim"``: entries of
  RMS 1, the scale of z ~ N(0, I) next to which the encoder and decoder see them), as f-CLSWGAN.
* F and M are composed (x -> F -> M): the paper fine-tunes "the original visual features" with F
  and then feeds F(x) to the CVAE; M projects what the CVAE sees.
* The encoder is conditioned on a as well, as in the CVAE of Mishra et al. that the paper builds
  on (without it, z can carry the class and the decoder learns to ignore a).
* The encoder sees the *perturbed* target x~' (eq. 11 leaves it open): if it saw the clean x',
  the decoder could not predict the noise and alpha would only add a constant to the loss; encoding
  the perturbation puts it into z, so features sampled from the prior spread like the noise.
* ``recon_trains_mapping=False`` (default): the CVAE loss does not back-propagate into M (x' is
  detached as a reconstruction target); M is trained by L_cls and C by L_cls + L_cls'. With the
  gradient (eq. 4 read literally, ``True``) the reconstruction term pulls x' towards whatever is
  easy to reconstruct, which on the synthetic benchmark cut ZSL top-1 from 0.69 to 0.44.
* Decoder output: Sigmoid when reconstructing M's (0, 1) outputs without noise, identity
  otherwise (PCA features and noisy targets are not bounded).
* Hidden layers are ``hidden`` units (paper: 4096), Adam lr 1e-3 (beta 0.9, 0.999) as the paper.
* The final classifier and ``decision_function`` follow f-CLSWGAN's (ZSL classifier on unseen
  synthesized features when all candidates are unseen, GZSL classifier otherwise; log-probs).

Default values, chosen on AwA1's *validation* classes (fit on the 32 train classes, ZSL top-1
over the 8 validation classes, one seed: differences under ~0.02 are noise). With them: validation
0.360, test ZSL 0.366 / 0.366 / 0.369, GZSL H 0.214 / 0.218 / 0.221 (seeds 0 / 1 / 2).
* The ``awa1`` preset adds an input map for histogram features: ``rbf_anchors=3000, pca_dim=500``
  maps x to its RBF similarities to 3000 training anchors (ESZSL's kernel map,
  :class:`~zsl.methods._kernels.RBFAnchors`) before a whitened PCA-500. On AwA1's validation
  classes: 0.406 / 0.390 / 0.397 (seeds 0 / 1 / 2, mean 0.397) against 0.360 / 0.354 / 0.383
  (mean 0.366) without it -- the same lift the map gives ESZSL (linear 0.275, kernel 0.403);
  PCA 300 / 1000 of the kernel features 0.399 / 0.386; in that space ``n_synth=500`` 0.402,
  ``hidden=512`` 0.386, ``map_dim=gaussian_dim=256`` 0.387, ``epochs=25`` 0.400 (seed 0), so
  the rest is kept. A fit costs ~2.5x (the kernel map and the wider input). It is not the default
  because on CNN features it hurts: CIFAR-10 (EfficientNet-Lite0, GloVe), seed 0, rot0..rot4 test
  ZSL 0.696 / 0.511 / 0.885 / 0.534 / 0.571 (mean 0.639) with the map against 0.656 / 0.854 /
  0.769 / 0.811 / 0.556 (mean 0.729) without; GZSL H 0.461 vs 0.451.
* ``pca_dim=150, pca_scale="whiten"``: 0.343 vs 0.301 for the old 100-d globally scaled space
  (see f-CLSWGAN's docstring for why whitening helps on these histogram features).
* ``embedding_scale="sqrt_dim"``: 0.356 vs 0.343 with unit-norm embeddings.
* ``epochs=15``: 0.360 vs 0.356 with 6 (the ``quick`` preset), within noise but cheap (~25 s).
* Kept: ``noise_alpha=1.0`` (0.5: 0.340, 2.0: 0.316), ``hidden=256`` (512: 0.338),
  ``map_dim=gaussian_dim=128`` (256: 0.325), ``finetune_epochs=3`` (8: 0.340),
  ``n_synth=200, clf_epochs=20`` (500 / 50: 0.342; 500 / 20: 0.353, GZSL H 0.221 vs 0.224;
  200 / 40: 0.364), ``kl_weight=1`` (0.3: 0.335, 2.0: 0.350), ``latent_dim=None`` = k (16: 0.344).
* Component check in this space: all switches off (NA) 0.273, +Cls+noise without the Gaussian map
  0.359, all on 0.356 -- the mapping M and the noise carry the gain over the plain CVAE; the
  Gaussian fine-tuning F adds nothing measurable on AwA1 here (0.357 without it at 15 epochs).
* ``quick`` preset (6 epochs): 0.356 on validation, fit ~21 s on AwA1 trainval (1 thread).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..params import Interval, Options
from .._registry import register_method
from ..base import ZSLMethod
from ._torch_utils import (
    Checkpointer,
    FeaturePreprocessor,
    batches,
    data_hash,
    l2_normalize_rows,
    progress_bar,
    torch_generator,
    torch_threads,
)
from .fclswgan import _GenerativeClassifierMixin, embedding_norm

CHECKPOINT_VERSION = 1


class SigmoidMap(nn.Module):
    """FC + Sigmoid: (n, in_dim) -> (n, out_dim) in (0, 1) (the paper's M and F)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


class GaussianSimilarityHead(nn.Module):
    """Class centres W' (K, dim); forward(h) -> (n, K) similarities s = -gamma ||h - w_k||^2 (eq. 7)."""

    def __init__(self, dim: int, n_classes: int, gamma: float):
        super().__init__()
        self.centres = nn.Parameter(torch.zeros(n_classes, dim))
        self.gamma = gamma

    def forward(self, h):
        return -self.gamma * torch.cdist(h, self.centres).pow(2)


def gaussian_similarity_loss(similarities: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 8 (mean over the batch): cross-entropy with Gaussian similarities as logits."""
    return nn.functional.cross_entropy(similarities, y)


class Encoder(nn.Module):
    """E(x', a) -> (mu, log var), each (n, latent_dim) (conditioned on a, as Mishra et al.'s CVAE)."""

    def __init__(self, in_dim: int, attr_dim: int, hidden: int, latent_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim + attr_dim, hidden), nn.LeakyReLU(0.2))
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x, a):
        h = self.body(torch.cat([x, a], dim=1))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """G(z, a) -> x^' : (n, latent_dim), (n, k) -> (n, out_dim)."""

    def __init__(self, latent_dim: int, attr_dim: int, hidden: int, out_dim: int, output: str):
        super().__init__()
        self.latent_dim, self.out_dim, self.output = latent_dim, out_dim, output
        self.net = nn.Sequential(nn.Linear(latent_dim + attr_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_dim))

    def forward(self, z, a):
        x = self.net(torch.cat([z, a], dim=1))
        return torch.sigmoid(x) if self.output == "sigmoid" else x


def train_gaussian_map(X, y_local, n_classes, *, dim, gamma, epochs, batch_size, lr, gen, checkpoint, progress,
                       desc="Gaussian fine-tuning F"):
    """Train F (FC + Sigmoid) and centres W' with the Gaussian similarity loss (eq. 9); return F (eval mode).

    X (n, p) float32, y_local (n,) in [0, n_classes). Used by the method and by few-shot evaluation.
    """
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y_local, dtype=np.int64))
    F = SigmoidMap(Xt.shape[1], dim)
    head = GaussianSimilarityHead(dim, n_classes, gamma)
    _init(F, gen)
    with torch.no_grad():  # centres start at the class means of the initial map, so the loss starts finite and small
        h0 = F(Xt)
        for k in range(n_classes):
            head.centres[k] = h0[yt == k].mean(0) if (yt == k).any() else 0.5
    opt = torch.optim.Adam(list(F.parameters()) + list(head.parameters()), lr=lr)
    start = 0
    state = checkpoint.load()
    if state is not None:
        F.load_state_dict(state["F"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["rng"])
        start = state["epoch"]
    bar = progress_bar(epochs, desc, progress)
    bar.update(start)
    for epoch in range(start, epochs):
        for idx in batches(len(Xt), batch_size, gen):
            loss = gaussian_similarity_loss(head(F(Xt[idx])), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        checkpoint.save({"F": F.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(), "rng": gen.get_state(),
                         "epoch": epoch + 1})
        bar.update(1)
    bar.close()
    return F.eval()


def _init(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """Xavier-uniform weights drawn from ``gen`` (deterministic, checkpoint-restorable), zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = math.sqrt(6.0 / (m.in_features + m.out_features))
            with torch.no_grad():
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                m.bias.zero_()
    return module


@register_method
class ClusterableCVAE(_GenerativeClassifierMixin, ZSLMethod):
    name = "cvae_clusterable"
    tags = {"family": "generative", "supports_gzsl": True, "retrieval": False, "stochastic": True}
    presets = {
        "default": {},
        # histogram features: ESZSL's RBF kernel map before a wider PCA (module docstring)
        "awa1": {"rbf_anchors": 3000, "pca_dim": 500},
        # the paper's ablation rows (Fig. 4 / Table 4)
        "na": {"use_mapping": False, "use_gaussian": False, "noise_alpha": 0.0},
        "cls": {"use_mapping": True, "use_gaussian": False, "noise_alpha": 0.0},
        "cls_gaussian": {"use_mapping": True, "use_gaussian": True, "noise_alpha": 0.0},
        # the benchmark's --quick grid: fewer epochs of the default networks
        "quick": {"epochs": 6, "finetune_epochs": 3},
        "tiny": {"rbf_anchors": None, "pca_dim": None, "pca_scale": "std", "embedding_scale": 1.0, "hidden": 128, "map_dim": 64,
                 "gaussian_dim": 64, "epochs": 10, "finetune_epochs": 5, "batch_size": 64, "n_synth": 50, "clf_epochs": 10, "noise_alpha": 0.05, "progress": False, "checkpoint": False},
    }
    param_grid = {"noise_alpha": [0.2, 1.0]}
    search_space = {
        "noise_alpha": ("float", 0.0, 2.0, False),
        "gamma": ("float", 0.05, 10.0, True),
        "map_dim": ("categorical", [128, 256, 512, 1024]),
        "epochs": ("int", 5, 60),
        "n_synth": ("int", 50, 1000),
    }

    parameter_constraints = {
        "rbf_anchors": [None, Interval(int, 1, None)],
        "pca_dim": [None, Interval(int, 1, None)],
        "pca_scale": [Options("std", "whiten", "none")],
        "embedding_scale": [Options("sqrt_dim"), Interval(float, 0, None, closed="neither")],
        "use_mapping": [bool],
        "use_gaussian": [bool],
        "noise_alpha": [Interval(float, 0, None)],
        "gamma": [Interval(float, 0, None)],
        "map_dim": [Interval(int, 1, None)],
        "gaussian_dim": [Interval(int, 1, None)],
        "latent_dim": [None, Interval(int, 1, None)],
        "hidden": [Interval(int, 1, None)],
        "epochs": [Interval(int, 1, None)],
        "finetune_epochs": [Interval(int, 0, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None)],
        "kl_weight": [Interval(float, 0, None)],
        "cls_weight": [Interval(float, 0, None)],
        "cls_recon_weight": [Interval(float, 0, None)],
        "n_synth": [Interval(int, 1, None)],
        "clf_epochs": [Interval(int, 1, None)],
        "clf_lr": [Interval(float, 0, None)],
        "recon_trains_mapping": [bool],
        "random_state": [None, Interval(int, 0, None)],
        "checkpoint": [bool],
        "progress": [bool],
        "n_threads": [None, Interval(int, 1, None)],
    }
    runtime_params = ("progress", "n_threads", "checkpoint")

    def __init__(self, *, rbf_anchors: int | None = None, pca_dim: int | None = 150, pca_scale: str = "whiten",
                 embedding_scale: float | str = "sqrt_dim",
                 use_mapping: bool = True, use_gaussian: bool = True,
                 noise_alpha: float = 1.0, gamma: float = 1.0, map_dim: int = 128, gaussian_dim: int = 128,
                 latent_dim: int | None = None, hidden: int = 256, epochs: int = 15, finetune_epochs: int = 3,
                 batch_size: int = 128, lr: float = 1e-3, kl_weight: float = 1.0, cls_weight: float = 1.0,
                 cls_recon_weight: float = 0.1, n_synth: int = 200, clf_epochs: int = 20, clf_lr: float = 1e-3,
                 recon_trains_mapping: bool = False, random_state: int = 0, checkpoint: bool = True, progress: bool = True,
                 n_threads: int | None = 1):
        self.rbf_anchors = rbf_anchors
        self.pca_dim = pca_dim
        self.pca_scale = pca_scale
        self.embedding_scale = embedding_scale
        self.use_mapping = use_mapping
        self.use_gaussian = use_gaussian
        self.noise_alpha = noise_alpha
        self.gamma = gamma
        self.map_dim = map_dim
        self.gaussian_dim = gaussian_dim
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.epochs = epochs
        self.finetune_epochs = finetune_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.kl_weight = kl_weight
        self.cls_weight = cls_weight
        self.cls_recon_weight = cls_recon_weight
        self.n_synth = n_synth
        self.clf_epochs = clf_epochs
        self.clf_lr = clf_lr
        self.recon_trains_mapping = recon_trains_mapping
        self.random_state = random_state
        self.checkpoint = checkpoint
        self.progress = progress
        self.n_threads = n_threads

    # -- feature spaces ---------------------------------------------------------------------
    @torch.no_grad()
    def _finetuned(self, Z: np.ndarray) -> np.ndarray:
        """x -> F(x) when the Gaussian fine-tuning is on (else unchanged)."""
        if self.finetune_ is None:
            return Z
        return self.finetune_(torch.as_tensor(Z)).numpy()

    @torch.no_grad()
    def _embed(self, X: np.ndarray) -> np.ndarray:
        """Raw features -> the space the CVAE reconstructs and the final classifier sees (PCA, F, M)."""
        H = self._finetuned(self.preprocessor_.transform(X))
        if self.mapping_ is None:
            return H
        return self.mapping_(torch.as_tensor(H)).numpy()

    def transform(self, X) -> np.ndarray:
        """Public: project features to the clusterable space (n, map_dim) -- used by the ablation/MI score."""
        self._check_is_fitted()
        from ..base import check_features

        with torch_threads(self.n_threads):
            return self._embed(check_features(X))

    def _config(self) -> dict[str, Any]:
        keys = ("rbf_anchors", "pca_dim", "pca_scale", "embedding_scale", "use_mapping", "use_gaussian", "noise_alpha", "gamma", "map_dim", "gaussian_dim", "latent_dim",
                "hidden", "epochs", "finetune_epochs", "batch_size", "lr", "kl_weight", "cls_weight", "cls_recon_weight",
                "recon_trains_mapping", "random_state")
        return {"version": CHECKPOINT_VERSION, **{k: getattr(self, k) for k in keys}}

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        with torch_threads(self.n_threads):
            return self._fit(X, y, S, seen)

    def _fit(self, X, y, S, seen):
        seed = int(self.random_state or 0)
        gen = torch_generator(seed)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        self.seen_ = seen
        self.unseen_ = np.setdiff1d(np.arange(len(S)), seen)
        self.class_embeddings_ = l2_normalize_rows(S) * embedding_norm(self.embedding_scale, S.shape[1])
        ckpt = Checkpointer.for_run(self.name, self._config(), data_hash(X, y, S, seen), enabled=bool(self.checkpoint))

        self.preprocessor_ = FeaturePreprocessor(self.pca_dim, scale=self.pca_scale, random_state=seed,
                                                 rbf_anchors=self.rbf_anchors).fit(X)
        Z = self.preprocessor_.transform(X)
        y_local = np.searchsorted(seen, y)
        self.finetune_ = None
        if self.use_gaussian:
            self.finetune_ = train_gaussian_map(Z, y_local, len(seen), dim=self.gaussian_dim, gamma=self.gamma,
                                                epochs=self.finetune_epochs, batch_size=self.batch_size, lr=self.lr, gen=gen,
                                                checkpoint=ckpt.sub("finetune"), progress=self.progress)
            for p in self.finetune_.parameters():
                p.requires_grad_(False)
        H = self._finetuned(Z)
        self._train_cvae(H, y, y_local, len(seen), gen, ckpt.sub("cvae"))

        Zs = self._embed(X)
        Z_syn, y_syn = self.synthesize(self.unseen_, self.n_synth, random_state=seed + 7)
        self._fit_final_classifiers(Zs, y, Z_syn, y_syn, epochs=self.clf_epochs, lr=self.clf_lr, batch_size=256, seed=seed,
                                    progress=self.progress)
        return self

    def _train_cvae(self, H, y, y_local, n_seen, gen, checkpoint):
        Ht = torch.as_tensor(np.ascontiguousarray(H, dtype=np.float32))
        yt, ylt = torch.as_tensor(y), torch.as_tensor(y_local)
        At = torch.as_tensor(self.class_embeddings_)
        k = At.shape[1]
        latent = self.latent_dim or k
        out_dim = self.map_dim if self.use_mapping else Ht.shape[1]
        output = "sigmoid" if self.use_mapping and self.noise_alpha == 0 else "none"
        self.mapping_ = _init(SigmoidMap(Ht.shape[1], self.map_dim), gen) if self.use_mapping else None
        classifier = _init(nn.Linear(self.map_dim, n_seen), gen) if self.use_mapping else None
        self.encoder_ = _init(Encoder(out_dim, k, self.hidden, latent), gen)
        self.decoder_ = _init(Decoder(latent, k, self.hidden, out_dim, output), gen)
        modules = [m for m in (self.mapping_, classifier, self.encoder_, self.decoder_) if m is not None]
        params = [p for m in modules for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=self.lr, betas=(0.9, 0.999))
        start = 0
        state = checkpoint.load()
        if state is not None:
            for m, sd in zip(modules, state["modules"]):
                m.load_state_dict(sd)
            opt.load_state_dict(state["opt"])
            gen.set_state(state["rng"])
            start = state["epoch"]
        bar = progress_bar(self.epochs, "clusterable CVAE", self.progress)
        bar.update(start)
        for epoch in range(start, self.epochs):
            for m in modules:
                m.train()
            for idx in batches(len(Ht), self.batch_size, gen):
                h, a, yl = Ht[idx], At[yt[idx]], ylt[idx]
                x_proj = self.mapping_(h) if self.mapping_ is not None else h
                target = x_proj if self.recon_trains_mapping else x_proj.detach()
                if self.noise_alpha > 0:  # eq. 10: reconstruct a perturbed copy
                    target = target + self.noise_alpha * torch.randn(x_proj.shape, generator=gen)
                mu, logvar = self.encoder_(target, a)
                z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
                recon = self.decoder_(z, a)
                # eq. 1 / 11: Gaussian likelihood (squared error summed over dims) + KL, per sample
                loss_rec = (recon - target).pow(2).sum(1).mean()
                loss_kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
                loss = loss_rec + self.kl_weight * loss_kl
                if classifier is not None:
                    loss = loss + self.cls_weight * nn.functional.cross_entropy(classifier(x_proj), yl)  # eq. 2
                    loss = loss + self.cls_recon_weight * nn.functional.cross_entropy(classifier(recon), yl)  # eq. 3
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            checkpoint.save({"modules": [m.state_dict() for m in modules], "opt": opt.state_dict(), "rng": gen.get_state(),
                             "epoch": epoch + 1})
            bar.update(1)
            bar.set_postfix(rec=f"{loss_rec.item():.3f}", kl=f"{loss_kl.item():.3f}")
        bar.close()
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def synthesize(self, classes, n_per_class: int, *, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``n_per_class`` features per class id from G(z ~ N(0, I), a): ((m*n, dim), (m*n,))."""
        gen = torch_generator(random_state)
        classes = np.asarray(classes, dtype=np.int64)
        At = torch.as_tensor(self.class_embeddings_)
        out = []
        for c in classes:
            z = torch.randn(n_per_class, self.decoder_.latent_dim, generator=gen)
            out.append(self.decoder_(z, At[int(c)].expand(n_per_class, -1)))
        X_syn = torch.cat(out).numpy() if out else np.zeros((0, self.decoder_.out_dim), np.float32)
        return X_syn.astype(np.float32), np.repeat(classes, n_per_class)

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        with torch_threads(self.n_threads):
            return self._scores(self._embed(X), candidates)
