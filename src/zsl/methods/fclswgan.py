"""f-CLSWGAN -- Feature generating networks for zero-shot learning (Xian, Lorenz, Schiele, Akata, CVPR 2018).

A conditional WGAN-GP learns to generate visual features of a class from its description; a
softmax classifier is then trained on generated features of the unseen classes.

Equations implemented (paper section 3):

    critic    L_D = E[D(x~, a)] - E[D(x, a)] + lambda E[(||grad_x^ D(x^, a)||_2 - 1)^2]      (eq. 2)
              x~ = G(z, a), z ~ N(0, I), x^ = t x + (1 - t) x~, t ~ U(0, 1)
    generator L_G = -E[D(x~, a)] - beta E[log P(y | x~; theta)]                               (eq. 4)
              P(y | x; theta): a softmax classifier trained on real seen features, then frozen.
    ZSL       softmax classifier on ``n_synth`` generated features per unseen class.
    GZSL      softmax classifier on real seen features + ``n_synth`` generated per unseen class.

Networks as the authors' code: G = FC(a ++ z -> hidden) LeakyReLU(0.2) FC(hidden -> d) ReLU;
D = FC(x ++ a -> hidden) LeakyReLU(0.2) FC(hidden -> 1); weights N(0, 0.02); Adam(lr, beta1 0.5);
``critic_iters`` critic steps on fresh real batches per generator step; |z| = |a|. Training length
is counted in generator steps (``gan_steps``); the paper's FLO run is 80-97 epochs of batch 64
(~7,000-8,500 steps of 4096-unit networks, hours on a CPU).

Input space (``rbf_anchors``, ``pca_dim``, ``feature_scale``): the paper feeds the non-negative
CNN features min-max scaled to [0, 1] per dimension (its code's preprocessing) and ends G in a
ReLU: the default. Histogram features (AwA1) need a whitened PCA instead (preset ``awa1``), where
G ends linearly (``output_activation="auto"`` picks ReLU only for non-negative inputs).

Conditioning (``embedding_norm``, ``condition_seen_span``): unit-L2 class embeddings as the paper;
``condition_seen_span`` expresses them in the seen classes' span (see
:class:`~zsl.methods._generative.ConditionSpace`), which for FLO's 1024-d text embeddings gives
81-d conditions and noise -- the same function class for a linear first layer, several times
cheaper. Departures from the paper's sizes (hidden units, steps, learning rate) are the dataset
presets' values, each chosen on validation classes; the measurements are in
``benchmarks/results/generative.md``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .._registry import register_method
from ..base import ZSLMethod, check_features
from ..io import content_digest
from ..nn import (
    Checkpointer,
    ResumableLoop,
    code_digest,
    deterministic_torch,
    init_normal_,
    torch_generator,
    train_softmax,
)
from ..params import Interval, Options
from ..preprocessing import SCALES, FeaturePreprocessor
from ._generative import ConditionSpace, GeneratedFeatureClassifier, synthesize


# -- component ----------------------------------------------------------------------------------
class ConditionalGenerator(nn.Module):
    """G(a, z) -> x: (n, attr_dim), (n, noise_dim) -> (n, out_dim)."""

    def __init__(self, attr_dim: int, noise_dim: int, hidden: int, out_dim: int, output_activation: str = "relu"):
        super().__init__()
        if output_activation not in ("relu", "none"):
            raise ValueError(f"output_activation must be 'relu' or 'none', got {output_activation!r}")
        self.attr_dim, self.noise_dim, self.out_dim = attr_dim, noise_dim, out_dim
        self.output_activation = output_activation
        self.hidden = nn.Linear(attr_dim + noise_dim, hidden)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.out(nn.functional.leaky_relu(self.hidden(torch.cat([a, z], dim=1)), 0.2))
        return torch.relu(x) if self.output_activation == "relu" else x


class Critic(nn.Module):
    """D(x, a) -> (n,) unbounded Wasserstein critic score."""

    def __init__(self, feat_dim: int, attr_dim: int, hidden: int):
        super().__init__()
        self.hidden = nn.Linear(feat_dim + attr_dim, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.out(nn.functional.leaky_relu(self.hidden(torch.cat([x, a], dim=1)), 0.2)).squeeze(1)


def gradient_penalty(
    critic: Critic, real: torch.Tensor, fake: torch.Tensor, a: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """E[(||grad_x^ D(x^, a)||_2 - 1)^2] on random interpolates x^ (eq. 2)."""
    t = torch.rand(real.shape[0], 1, generator=gen)
    inter = (t * real + (1 - t) * fake).requires_grad_(True)
    grad = torch.autograd.grad(critic(inter, a).sum(), inter, create_graph=True)[0]
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


def train_conditional_wgan(
    X: np.ndarray,
    y: np.ndarray,
    A: np.ndarray,
    seen_classes: np.ndarray,
    *,
    noise_dim: int | None = None,
    hidden: int = 4096,
    critic_hidden: int | None = None,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-4,
    critic_iters: int = 5,
    gp_lambda: float = 10.0,
    cls_weight: float = 0.1,
    classifier_epochs: int = 25,
    output_activation: str = "auto",
    random_state: int = 0,
    checkpoint: Checkpointer | None = None,
    progress: bool = False,
) -> ConditionalGenerator:
    """Train G and D of f-CLSWGAN on seen-class features; return the generator (eval mode).

    X (n, d) float32 features of seen classes, y (n,) class ids (rows of A), A (C, k) condition
    vectors used as given, seen_classes (s,) ids. ``noise_dim=None`` uses k (the paper's |z| = |a|);
    ``critic_hidden=None`` gives D the generator's width. ``cls_weight`` is beta of eq. 4 (0 turns
    the classification loss off); its classifier is trained first for ``classifier_epochs`` epochs
    on the real features and frozen. ``steps`` generator steps, each after ``critic_iters`` critic
    steps. ``checkpoint`` saves and resumes the whole training state (see :class:`~zsl.nn.ResumableLoop`).
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    A = np.ascontiguousarray(A, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    seen = np.unique(np.asarray(seen_classes, dtype=np.int64))
    noise_dim = A.shape[1] if noise_dim is None else int(noise_dim)
    if output_activation == "auto":
        output_activation = "relu" if float(X.min()) >= 0 else "none"
    gen = torch_generator(random_state)
    Xt, At, yt = torch.as_tensor(X), torch.as_tensor(A), torch.as_tensor(y)
    y_local = torch.as_tensor(np.searchsorted(seen, y))  # classifier index among the seen classes
    G = init_normal_(ConditionalGenerator(A.shape[1], noise_dim, hidden, X.shape[1], output_activation), gen)
    D = init_normal_(Critic(X.shape[1], A.shape[1], critic_hidden or hidden), gen)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    objects: dict[str, Any] = {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d}
    classifier = None
    if cls_weight > 0:
        # P(y | x; theta) of eq. 4: trained once on the real seen features (the first stage of the
        # checkpointed state), then frozen while the GAN trains
        stage = (checkpoint or Checkpointer(None)).sub("classifier")
        classifier_seed = int(
            torch.randint(2**31 - 1, (1,), generator=gen)
        )  # drawn whether or not the stage is resumed
        classifier = nn.Linear(X.shape[1], len(seen))
        saved = stage.load()
        if saved is not None and "classifier" in saved:
            classifier.load_state_dict(saved["classifier"])
        else:
            classifier = train_softmax(X, y_local.numpy(), len(seen), epochs=classifier_epochs, batch_size=batch_size,
                                       gen=torch_generator(classifier_seed),
                                       progress=progress, desc="f-CLSWGAN seen classifier")
            stage.save({"classifier": classifier.state_dict()})
        classifier.requires_grad_(False).eval()

    n = len(Xt)
    loop = ResumableLoop(checkpoint, objects, gen, steps, every=max(1, n // batch_size), desc="f-CLSWGAN",
                         progress=progress)
    for _ in loop:
        D.requires_grad_(True)
        for _ in range(critic_iters):
            idx = torch.randint(n, (batch_size,), generator=gen)
            real, a = Xt[idx], At[yt[idx]]
            fake = G(a, torch.randn(batch_size, noise_dim, generator=gen)).detach()
            loss_d = D(fake, a).mean() - D(real, a).mean() + gp_lambda * gradient_penalty(D, real, fake, a, gen)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)
        idx = torch.randint(n, (batch_size,), generator=gen)
        a = At[yt[idx]]
        fake = G(a, torch.randn(batch_size, noise_dim, generator=gen))
        loss_g = -D(fake, a).mean()
        if classifier is not None:
            loss_g = loss_g + cls_weight * nn.functional.cross_entropy(classifier(fake), y_local[idx])
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        loop.postfix(loss_d=loss_d.item(), loss_g=loss_g.item())
    return G.eval()


# -- method ------------------------------------------------------------------------------------
@register_method
class FCLSWGAN(ZSLMethod):
    name = "fclswgan"
    tags = {"family": "generative", "supports_gzsl": True, "retrieval": False, "stochastic": True}
    presets = {
        "default": {},
        # the paper's sizes and schedule on FLO (80-97 epochs of batch 64): hours on a CPU, for parity runs
        "paper": {"hidden": 4096, "condition_seen_span": False, "gan_steps": 8500, "batch_size": 64, "lr": 1e-4,
                  "cls_weight": 0.1, "n_synth": 300, "clf_steps": 2500},
        # the benchmark's --quick grid: a quarter of the steps
        "quick": {"gan_steps": 400},
        "tiny": {"hidden": 64, "gan_steps": 150, "batch_size": 64, "lr": 1e-3, "critic_iters": 2, "n_synth": 50,
                 "clf_steps": 200, "classifier_epochs": 5, "n_threads": 1},
    }
    dataset_presets = {
        # CNN features (FLO), chosen on FLO's validation classes (benchmarks/results/generative.md): 1024
        # hidden units and 600 generator steps at lr 5e-4 (the paper's 4096 units and ~8,500 steps take
        # hours on a CPU), full unit-norm text embeddings as conditions, 1,200 features per unseen class
        "flo": {"hidden": 1024, "condition_seen_span": False, "gan_steps": 600, "lr": 5e-4, "cls_weight": 0.1,
                "n_synth": 1200},
        # the AwA1 histogram features: kernel-free whitened PCA-150 with sqrt(k)-scaled conditions
        # (chosen on AwA1's validation classes in earlier work; benchmarks/results/generative.md)
        "awa1": {"pca_dim": 150, "feature_scale": "whiten", "embedding_norm": "sqrt_dim", "condition_seen_span": False,
                 "hidden": 512, "gan_steps": 660, "batch_size": 256, "lr": 1e-3, "cls_weight": 0.1, "n_synth": 500,
                 "clf_steps": 2000, "clf_batch_size": 256},
    }
    # every grid point costs a whole WGAN training: the generator's settings are dataset presets chosen
    # on validation classes, not a per-run grid
    param_grid = {}
    search_space = {
        "cls_weight": ("float", 1e-3, 1.0, True),
        "lr": ("float", 1e-5, 1e-3, True),
        "n_synth": ("int", 50, 1000),
        "gan_steps": ("int", 200, 4000),
    }
    parameter_constraints = {
        "rbf_anchors": [None, Interval(int, 1, None)],
        "pca_dim": [None, Interval(int, 1, None)],
        "feature_scale": [Options(*SCALES)],
        "embedding_norm": [Options("sqrt_dim"), Interval(float, 0, None, closed="neither")],
        "condition_seen_span": [bool],
        "hidden": [Interval(int, 1, None)],
        "critic_hidden": [None, Interval(int, 1, None)],
        "noise_dim": [None, Interval(int, 1, None)],
        "gan_steps": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "critic_iters": [Interval(int, 1, None)],
        "gp_lambda": [Interval(float, 0, None)],
        "cls_weight": [Interval(float, 0, None)],
        "classifier_epochs": [Interval(int, 1, None)],
        "n_synth": [Interval(int, 1, None)],
        "clf_steps": [Interval(int, 1, None)],
        "clf_lr": [Interval(float, 0, None, closed="neither")],
        "clf_batch_size": [Interval(int, 1, None)],
        "random_state": [None, Interval(int, 0, None)],
        "checkpoint_dir": [None, str],
        "progress": [bool],
        "n_threads": [None, Interval(int, 1, None)],
    }
    runtime_params = ("checkpoint_dir", "progress", "n_threads")
    gzsl_objective = "H_uncalibrated"

    def __init__(
        self, *, rbf_anchors: int | None = None, pca_dim: int | None = None, feature_scale: str = "minmax",
        embedding_norm: float | str = 1.0, condition_seen_span: bool = True, hidden: int = 4096,
        critic_hidden: int | None = None, noise_dim: int | None = None, gan_steps: int = 1500, batch_size: int = 64,
        lr: float = 1e-4, critic_iters: int = 5, gp_lambda: float = 10.0, cls_weight: float = 0.1,
        classifier_epochs: int = 25, n_synth: int = 300, clf_steps: int = 2500, clf_lr: float = 1e-3,
        clf_batch_size: int = 64, random_state: int = 0, checkpoint_dir: str | None = None, progress: bool = False,
        n_threads: int | None = None,
    ):
        self.rbf_anchors = rbf_anchors
        self.pca_dim = pca_dim
        self.feature_scale = feature_scale
        self.embedding_norm = embedding_norm
        self.condition_seen_span = condition_seen_span
        self.hidden = hidden
        self.critic_hidden = critic_hidden
        self.noise_dim = noise_dim
        self.gan_steps = gan_steps
        self.batch_size = batch_size
        self.lr = lr
        self.critic_iters = critic_iters
        self.gp_lambda = gp_lambda
        self.cls_weight = cls_weight
        self.classifier_epochs = classifier_epochs
        self.n_synth = n_synth
        self.clf_steps = clf_steps
        self.clf_lr = clf_lr
        self.clf_batch_size = clf_batch_size
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.n_threads = n_threads

    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        with deterministic_torch(self.n_threads):
            return self._fit(X, y, S, seen)

    def _fit(self, X, y, S, seen):
        seed = int(self.random_state or 0)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        self.seen_classes_ = seen
        self.unseen_classes_ = np.setdiff1d(np.arange(len(S)), seen)
        self.conditions_ = ConditionSpace(norm=self.embedding_norm, seen_span=self.condition_seen_span).fit_transform(
            S, seen
        )
        self.preprocessor_ = FeaturePreprocessor(self.pca_dim, scale=self.feature_scale, random_state=seed,
                                                 rbf_anchors=self.rbf_anchors)
        Z = self.preprocessor_.fit_transform(X)
        params = {k: v for k, v in self.get_params().items() if k not in self.runtime_params}
        ckpt = Checkpointer.for_fit(self.checkpoint_dir, self.name, params, content_digest(X, y, S, seen),
                                    code_digest(train_conditional_wgan, ConditionalGenerator, Critic))
        self.generator_ = train_conditional_wgan(
            Z,
            y,
            self.conditions_,
            seen,
            noise_dim=self.noise_dim,
            hidden=self.hidden,
            critic_hidden=self.critic_hidden,
            steps=self.gan_steps,
            batch_size=self.batch_size,
            lr=self.lr,
            critic_iters=self.critic_iters,
            gp_lambda=self.gp_lambda,
            cls_weight=self.cls_weight,
            classifier_epochs=self.classifier_epochs,
            random_state=seed,
            checkpoint=ckpt,
            progress=self.progress,
        )
        Z_syn, y_syn = synthesize(
            self.generator_, self.conditions_, self.unseen_classes_, self.n_synth, random_state=seed + 7
        )
        self.classifier_ = GeneratedFeatureClassifier(
            steps=self.clf_steps, batch_size=self.clf_batch_size, lr=self.clf_lr, random_state=seed + 11,
            progress=self.progress,
        )
        self.classifier_.fit(Z, y, Z_syn, y_syn, self.unseen_classes_, self.n_classes_)
        return self

    def transform(self, X) -> np.ndarray:
        """Features in the generator's space (n, d'): the space the final softmax classifies."""
        self._check_is_fitted()
        return self.preprocessor_.transform(check_features(X))

    def synthesize(self, classes, n_per_class: int, *, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``n_per_class`` features per class id from G(a, z ~ N(0, I)) in the generator's space."""
        self._check_is_fitted()
        with deterministic_torch(self.n_threads):
            return synthesize(self.generator_, self.conditions_, classes, n_per_class, random_state=random_state)

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        with deterministic_torch(self.n_threads):
            return self.classifier_.decision_function(self.preprocessor_.transform(X), candidates)
