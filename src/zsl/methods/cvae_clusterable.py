"""Clusterable visual features for generative ZSL.

Xu, Shu, Samaras, "Learning clusterable visual features for zero-shot recognition".

A CVAE synthesises features of unseen classes; instead of reconstructing raw visual features it
reconstructs features projected to a clusterable space, and the final softmax classifier is
trained on synthesised unseen (ZSL) or synthesised unseen + real seen (GZSL) features in that
space. Every component is a switch, for the paper's ablation (Fig. 4, Table 4):

    use_gaussian  F: fine-tuning map trained first with the Gaussian similarity loss (eq. 7-9)
                     s(h, w_k) = -gamma ||h - w_k||^2,  L_GAU = sum_i -s(h_i, w_yi) + log sum_k exp s(h_i, w_k)
                     h = F(x) (FC + Sigmoid), W' (K seen classes x dim) learnt with F.
    use_mapping   M: FC + Sigmoid projecting (F(x) or x) to x', supervised by classifier C:
                     L_cls = -log p_C(y | x')        (eq. 2, weight ``cls_weight`` = 1)
                     L_cls' = -log p_C(y | x^')      (eq. 3, on reconstructions, ``cls_recon_weight`` = 0.1)
    noise_alpha   reconstruction target x~' = x' + alpha * s * eps, eps ~ N(0, I)    (eq. 10-11)
    CVAE          E(x~', a) -> (mu, log var) of z;  G(z, a) -> x^';
                  L_CVAE = ||x^' - x~'||^2 + kl_weight * KL(N(mu, var) || N(0, I))   (eq. 1, 11)
    objective     min_{E, G, M, C}  L_CVAE + cls_weight L_cls + cls_recon_weight L_cls'   (eq. 4)

All switches off = the CVAE baseline ("NA"): the CVAE reconstructs the (preprocessed) features.
Test samples go through the same map(s) (F, then M) before the final classifier.

Networks as the paper's implementation details: E and G are MLPs with one ``hidden``-unit layer
(paper: 4096), LeakyReLU in the hidden layer and ReLU at G's output; M is FC + Sigmoid to
``map_dim`` (paper: 512 for the fine-grained CUB and SUN, 2048 for AWA2); the latent dimension
equals the class-embedding dimension; Adam lr 1e-3 (0.9, 0.999); lambda_cls = 1, lambda_cls' = 0.1.

Shapes: x (n, d) -> input space (n, p) -> F (n, gaussian_dim) -> M (n, map_dim) = x'; a (k',)
condition vector; z (latent_dim,) with latent_dim = k' by default.

Choices where the paper is silent or ambiguous:
* Input space: min-max scaled CNN features by default (as f-CLSWGAN; see
  :mod:`zsl.preprocessing`); optional RBF map and PCA for histogram features (preset ``awa1``).
* Conditions: unit-L2 class embeddings, expressed in the seen classes' span when
  ``condition_seen_span`` (:class:`~zsl.methods._generative.ConditionSpace`).
* ``noise_alpha`` is relative to the feature space: the noise's standard deviation is alpha times
  the RMS per-dimension standard deviation of the projected features x' (measured on the batch,
  without gradient), so one alpha means the same widening whatever the scale of x'. The paper's
  0.2 (fine-grained) / 1 (coarse) are absolute values on its own features; here alpha is chosen on
  validation classes with 0 in the grid.
* F and M are composed (x -> F -> M): the paper fine-tunes "the original visual features" with F
  and then feeds F(x) to the CVAE; M projects what the CVAE sees.
* The encoder is conditioned on a as well, as in the CVAE of Mishra et al. that the paper builds
  on (without it, z can carry the class and the decoder learns to ignore a).
* The encoder sees the *perturbed* target x~' (eq. 11 leaves it open): encoding the perturbation
  puts it into z, so features sampled from the prior spread like the noise.
* ``recon_trains_mapping=False`` (default): the CVAE loss does not back-propagate into M (x' is
  detached as a reconstruction target); M is trained by L_cls and C by L_cls + L_cls'. With the
  gradient (eq. 4 read literally, ``True``) the reconstruction term pulls x' towards whatever is
  easy to reconstruct (a collapse of x').
* G's output: ReLU as the paper when its target is non-negative (M's Sigmoid outputs without
  noise, or non-negative inputs), identity otherwise (noisy or signed targets).
* The final classifier and ``decision_function`` are the shared
  :class:`~zsl.methods._generative.GeneratedFeatureClassifier` (ZSL classifier on generated unseen
  features when all candidates are unseen, GZSL classifier otherwise; log-probabilities), trained
  for a fixed number of steps.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._registry import register_method
from ..base import ZSLMethod, check_features
from ..io import content_digest
from ..nn import Checkpointer, ResumableLoop, batches, code_digest, deterministic_torch, init_xavier_, torch_generator
from ..params import Interval, Options
from ..preprocessing import SCALES, FeaturePreprocessor
from ._generative import ConditionSpace, GeneratedFeatureClassifier, synthesize


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
        self.body = nn.Linear(in_dim + attr_dim, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x, a):
        h = nn.functional.leaky_relu(self.body(torch.cat([x, a], dim=1)), 0.2)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """G(a, z) -> x^' : (n, k'), (n, latent_dim) -> (n, out_dim); ``noise_dim`` = latent_dim (the synthesize API)."""

    def __init__(self, latent_dim: int, attr_dim: int, hidden: int, out_dim: int, output: str):
        super().__init__()
        self.noise_dim, self.out_dim, self.output = latent_dim, out_dim, output
        self.hidden = nn.Linear(latent_dim + attr_dim, hidden)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, a, z):
        x = self.out(nn.functional.leaky_relu(self.hidden(torch.cat([z, a], dim=1)), 0.2))
        return torch.relu(x) if self.output == "relu" else x


def train_gaussian_map(
    X, y_local, n_classes, *, dim, gamma, epochs, batch_size, lr, gen, checkpoint=None, progress=False,
    desc="Gaussian fine-tuning F",
):
    """Train F (FC + Sigmoid) and centres W' with the Gaussian similarity loss (eq. 9); return F (eval mode).

    X (n, p) float32, y_local (n,) in [0, n_classes). Used by the method and by few-shot evaluation.
    """
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y_local, dtype=np.int64))
    F = init_xavier_(SigmoidMap(Xt.shape[1], dim), gen)
    head = GaussianSimilarityHead(dim, n_classes, gamma)
    with torch.no_grad():  # centres start at the class means of the initial map, so the loss starts finite and small
        h0 = F(Xt)
        for k in range(n_classes):
            head.centres[k] = h0[yt == k].mean(0) if (yt == k).any() else 0.5
    opt = torch.optim.Adam(list(F.parameters()) + list(head.parameters()), lr=lr)
    steps_per_epoch = -(-len(Xt) // batch_size)
    loop = ResumableLoop(checkpoint, {"F": F, "head": head, "opt": opt}, gen, epochs * steps_per_epoch,
                         every=steps_per_epoch, desc=desc, progress=progress)
    order = iter(())
    for _ in loop:
        idx = next(order, None)
        if idx is None:
            order = batches(len(Xt), batch_size, gen)
            idx = next(order)
        loss = gaussian_similarity_loss(head(F(Xt[idx])), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return F.eval()


@register_method
class ClusterableCVAE(ZSLMethod):
    name = "cvae_clusterable"
    tags = {"family": "generative", "supports_gzsl": True, "retrieval": False, "stochastic": True}
    presets = {
        "default": {},
        # the benchmark's --quick grid: fewer epochs of the default networks
        "quick": {"epochs": 8, "finetune_epochs": 2},
        "tiny": {"hidden": 128, "map_dim": 64, "gaussian_dim": 64, "epochs": 10, "finetune_epochs": 5, "batch_size": 64,
                 "n_synth": 50, "clf_steps": 300, "noise_alpha": 0.2, "n_threads": 1},
    }
    ablations = {
        # the paper's ablation rows (Fig. 4 / Table 4)
        "na": {"use_mapping": False, "use_gaussian": False, "noise_alpha": 0.0},
        "cls": {"use_mapping": True, "use_gaussian": False, "noise_alpha": 0.0},
        "cls_gaussian": {"use_mapping": True, "use_gaussian": True, "noise_alpha": 0.0},
    }
    dataset_presets = {
        # CNN features (FLO), chosen on FLO's validation classes (benchmarks/results/generative.md): the
        # Gaussian-similarity fine-tuning F off (it lowers both ZSL and H there) and 1,200 generated
        # features per unseen class (raises the unseen share of the GZSL classifier)
        "flo": {"use_gaussian": False, "n_synth": 1200},
        # histogram features (AwA1): ESZSL's RBF kernel map before a whitened PCA-500, the widths chosen
        # on AwA1's validation classes in earlier work (benchmarks/results/generative.md)
        "awa1": {"rbf_anchors": 3000, "pca_dim": 500, "feature_scale": "whiten", "embedding_norm": "sqrt_dim",
                 "condition_seen_span": False, "hidden": 256, "map_dim": 128, "gaussian_dim": 128, "epochs": 15,
                 "batch_size": 128, "noise_alpha": 1.0, "n_synth": 200, "clf_steps": 2000},
    }
    param_grid = {"noise_alpha": [0.0, 0.5, 1.0]}
    search_space = {
        "noise_alpha": ("float", 0.0, 2.0, False),
        "gamma": ("float", 0.05, 10.0, True),
        "map_dim": ("categorical", [128, 256, 512, 1024, 2048]),
        "epochs": ("int", 5, 60),
        "n_synth": ("int", 50, 1000),
    }
    parameter_constraints = {
        "rbf_anchors": [None, Interval(int, 1, None)],
        "pca_dim": [None, Interval(int, 1, None)],
        "feature_scale": [Options(*SCALES)],
        "embedding_norm": [Options("sqrt_dim"), Interval(float, 0, None, closed="neither")],
        "condition_seen_span": [bool],
        "use_mapping": [bool],
        "use_gaussian": [bool],
        "noise_alpha": [Interval(float, 0, None)],
        "gamma": [Interval(float, 0, None, closed="neither")],
        "map_dim": [Interval(int, 1, None)],
        "gaussian_dim": [Interval(int, 1, None)],
        "latent_dim": [None, Interval(int, 1, None)],
        "hidden": [Interval(int, 1, None)],
        "epochs": [Interval(int, 1, None)],
        "finetune_epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "kl_weight": [Interval(float, 0, None)],
        "cls_weight": [Interval(float, 0, None)],
        "cls_recon_weight": [Interval(float, 0, None)],
        "n_synth": [Interval(int, 1, None)],
        "clf_steps": [Interval(int, 1, None)],
        "clf_lr": [Interval(float, 0, None, closed="neither")],
        "recon_trains_mapping": [bool],
        "random_state": [None, Interval(int, 0, None)],
        "checkpoint_dir": [None, str],
        "progress": [bool],
        "n_threads": [None, Interval(int, 1, None)],
    }
    runtime_params = ("checkpoint_dir", "progress", "n_threads")
    gzsl_objective = "H_uncalibrated"

    def __init__(
        self, *, rbf_anchors: int | None = None, pca_dim: int | None = None, feature_scale: str = "minmax",
        embedding_norm: float | str = 1.0, condition_seen_span: bool = True, use_mapping: bool = True,
        use_gaussian: bool = True, noise_alpha: float = 0.5, gamma: float = 1.0, map_dim: int = 512,
        gaussian_dim: int = 512, latent_dim: int | None = None, hidden: int = 4096, epochs: int = 20,
        finetune_epochs: int = 3, batch_size: int = 64, lr: float = 1e-3, kl_weight: float = 1.0,
        cls_weight: float = 1.0, cls_recon_weight: float = 0.1, n_synth: int = 300, clf_steps: int = 2500,
        clf_lr: float = 1e-3, recon_trains_mapping: bool = False, random_state: int = 0,
        checkpoint_dir: str | None = None, progress: bool = False, n_threads: int | None = None,
    ):
        self.rbf_anchors = rbf_anchors
        self.pca_dim = pca_dim
        self.feature_scale = feature_scale
        self.embedding_norm = embedding_norm
        self.condition_seen_span = condition_seen_span
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
        self.clf_steps = clf_steps
        self.clf_lr = clf_lr
        self.recon_trains_mapping = recon_trains_mapping
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.n_threads = n_threads

    # -- feature spaces ---------------------------------------------------------------------
    @torch.no_grad()
    def _embed(self, X: np.ndarray) -> np.ndarray:
        """Raw features -> the space the CVAE reconstructs and the final classifier sees (input map, F, M)."""
        H = torch.as_tensor(self.preprocessor_.transform(X))
        if self.finetune_ is not None:
            H = self.finetune_(H)
        if self.mapping_ is not None:
            H = self.mapping_(H)
        return H.numpy()

    def transform(self, X) -> np.ndarray:
        """Project features to the clusterable space (n, map_dim) -- used by the ablation's MI score."""
        self._check_is_fitted()
        with deterministic_torch(self.n_threads):
            return self._embed(check_features(X))

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        with deterministic_torch(self.n_threads):
            return self._fit(X, y, S, seen)

    def _fit(self, X, y, S, seen):
        seed = int(self.random_state or 0)
        gen = torch_generator(seed)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        self.seen_classes_ = seen
        self.unseen_classes_ = np.setdiff1d(np.arange(len(S)), seen)
        self.conditions_ = ConditionSpace(norm=self.embedding_norm, seen_span=self.condition_seen_span).fit_transform(
            S, seen
        )
        params = {k: v for k, v in self.get_params().items() if k not in self.runtime_params}
        ckpt = Checkpointer.for_fit(self.checkpoint_dir, self.name, params, content_digest(X, y, S, seen),
                                    code_digest(type(self), train_gaussian_map, Encoder, Decoder, SigmoidMap))
        self.preprocessor_ = FeaturePreprocessor(self.pca_dim, scale=self.feature_scale, random_state=seed,
                                                 rbf_anchors=self.rbf_anchors)
        Z = self.preprocessor_.fit_transform(X)
        y_local = np.searchsorted(seen, y)
        self.finetune_ = None
        if self.use_gaussian:
            self.finetune_ = train_gaussian_map(
                Z, y_local, len(seen), dim=self.gaussian_dim, gamma=self.gamma, epochs=self.finetune_epochs,
                batch_size=self.batch_size, lr=self.lr, gen=gen, checkpoint=ckpt.sub("finetune"),
                progress=self.progress,
            )
            self.finetune_.requires_grad_(False)
            with torch.no_grad():
                Z = self.finetune_(torch.as_tensor(Z)).numpy()
        self._train_cvae(Z, y, y_local, len(seen), gen, ckpt.sub("cvae"))
        Z_syn, y_syn = synthesize(
            self.decoder_, self.conditions_, self.unseen_classes_, self.n_synth, random_state=seed + 7
        )
        self.classifier_ = GeneratedFeatureClassifier(steps=self.clf_steps, lr=self.clf_lr, random_state=seed + 11,
                                                      progress=self.progress)
        self.classifier_.fit(self._embed(X), y, Z_syn, y_syn, self.unseen_classes_, self.n_classes_)
        return self

    def _train_cvae(self, H, y, y_local, n_seen, gen, checkpoint):
        Ht = torch.as_tensor(np.ascontiguousarray(H, dtype=np.float32))
        yt, ylt = torch.as_tensor(y), torch.as_tensor(y_local)
        At = torch.as_tensor(self.conditions_)
        k = At.shape[1]
        latent = self.latent_dim or k
        out_dim = self.map_dim if self.use_mapping else Ht.shape[1]
        target_nonneg = (self.use_mapping or float(H.min()) >= 0) and self.noise_alpha == 0
        self.mapping_ = init_xavier_(SigmoidMap(Ht.shape[1], self.map_dim), gen) if self.use_mapping else None
        classifier = init_xavier_(nn.Linear(self.map_dim, n_seen), gen) if self.use_mapping else None
        self.encoder_ = init_xavier_(Encoder(out_dim, k, self.hidden, latent), gen)
        self.decoder_ = init_xavier_(Decoder(latent, k, self.hidden, out_dim, "relu" if target_nonneg else "none"), gen)
        modules = {"M": self.mapping_, "C": classifier, "E": self.encoder_, "G": self.decoder_}
        modules = {name: m for name, m in modules.items() if m is not None}
        opt = torch.optim.Adam([p for m in modules.values() for p in m.parameters()], lr=self.lr, betas=(0.9, 0.999))
        steps_per_epoch = -(-len(Ht) // self.batch_size)
        loop = ResumableLoop(checkpoint, {**modules, "opt": opt}, gen, self.epochs * steps_per_epoch,
                             every=steps_per_epoch, desc="clusterable CVAE", progress=self.progress)
        order = iter(())
        for _ in loop:
            idx = next(order, None)
            if idx is None:
                order = batches(len(Ht), self.batch_size, gen)
                idx = next(order)
            h, a, yl = Ht[idx], At[yt[idx]], ylt[idx]
            x_proj = self.mapping_(h) if self.mapping_ is not None else h
            target = x_proj if self.recon_trains_mapping else x_proj.detach()
            if self.noise_alpha > 0:  # eq. 10: reconstruct a perturbed copy, noise relative to the features' spread
                spread = x_proj.detach().std(0).pow(2).mean().sqrt()
                target = target + self.noise_alpha * spread * torch.randn(x_proj.shape, generator=gen)
            mu, logvar = self.encoder_(target, a)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
            recon = self.decoder_(a, z)
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
            loop.postfix(rec=loss_rec.item(), kl=loss_kl.item())
        for m in modules.values():
            m.eval().requires_grad_(False)

    def synthesize(self, classes, n_per_class: int, *, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``n_per_class`` features per class id from G(a, z ~ N(0, I)) in the clusterable space."""
        self._check_is_fitted()
        return synthesize(self.decoder_, self.conditions_, classes, n_per_class, random_state=random_state)

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        with deterministic_torch(self.n_threads):
            return self.classifier_.decision_function(self._embed(X), candidates)
