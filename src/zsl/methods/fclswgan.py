"""f-CLSWGAN -- Feature generating networks for zero-shot learning (Xian, Lorenz, Schiele, Akata, CVPR 2018).

A conditional WGAN-GP learns to generate visual features of a class from its description, then a
plain softmax classifier is trained on generated features of the unseen classes.

Equations implemented (paper section 3):

    critic    L_D = E[D(x~, a)] - E[D(x, a)] + lambda E[(||grad_x^ D(x^, a)||_2 - 1)^2]      (eq. 2)
              x~ = G(z, a), z ~ N(0, I), x^ = t x + (1 - t) x~, t ~ U(0, 1)
    generator L_G = -E[D(x~, a)] - beta E[log P(y | x~; theta)]                               (eq. 4)
              P(y | x; theta) is a softmax classifier pre-trained on real seen features and frozen.

    ZSL       softmax classifier trained on N synthesized features per unseen class.
    GZSL      softmax classifier trained on real seen features + N synthesized per unseen class.

Networks (as the authors' code): G = FC(a ++ z -> hidden) LeakyReLU(0.2) FC(hidden -> d) + output
activation; D = FC(x ++ a -> hidden) LeakyReLU(0.2) FC(hidden -> 1). Weights N(0, 0.02), Adam
(beta1 = 0.5), ``critic_iters`` critic steps per generator step.

Component API (reused by CPL, ``zsl.methods.cpl``):

    ConditionalGenerator(attr_dim, noise_dim, hidden, out_dim, output_activation)   (a, z) -> x
    Critic(feat_dim, attr_dim, hidden)                                              (x, a) -> (n,)
    train_conditional_wgan(X, y, S, seen_classes, *, noise_dim, hidden, critic_hidden, epochs, batch_size, lr,
                           critic_iters, gp_lambda, cls_weight, random_state, progress) -> ConditionalGenerator
    synthesize(generator, S, classes, n_per_class, *, random_state) -> (X_syn (m*n, d) float32, y_syn (m*n,) int64)

``X`` (n, d) and ``S`` (C, k) are numpy arrays; ``y`` holds class ids into the rows of ``S``. The
component uses ``S`` and ``X`` as given (no normalisation): the method below L2-normalises class
embeddings (as the paper) and optionally reduces features by PCA first.

Choices where the paper is silent or that differ for CPU budgets (all documented params):
* Features are reduced to ``pca_dim`` dims by PCA fitted on the training features. ``pca_scale``
  then either whitens (``"whiten"``: every component divided by its own std) or applies one
  global scale (``"std"``: unit *average* variance, the spectrum kept). ``pca_dim=None`` trains on
  raw features (the AwA1 features here are 6252-d histograms; a 4096-unit GAN on them is too slow
  on 2 CPU cores).
* ``embedding_scale``: class embeddings are L2-normalised (as the paper) and multiplied by this
  (``"sqrt_dim"`` = sqrt(k), entries of RMS 1 like the noise z and whitened features).
* ``output_activation="auto"``: ReLU when all training features are >= 0 (the paper's ResNet
  features), identity otherwise (PCA outputs are signed).
* An "epoch" is ceil(n / batch_size) generator steps, each after ``critic_iters`` critic steps on
  freshly sampled real batches (the authors' loop).
* ``decision_function`` returns log-probabilities from the ZSL classifier when every candidate is an
  unseen class, else from the GZSL classifier (both trained in ``fit``), restricted to the
  candidate columns.

Default (= ``awa1``) values, chosen on AwA1's *validation* classes (fit on the 32 train classes,
ZSL top-1 over the 8 validation classes; one seed, so differences under ~0.02 are noise). Most
come from a diagnostic loop over the component above (same networks; probe = this module's
softmax on 500 synthetic features per class for 50 epochs); "method" marks fits of the class.
The method with these defaults: validation 0.319; test ZSL 0.305 / 0.301 / 0.316 (seeds 0 / 1 / 2),
GZSL H 0.206 (seed 0); fit ~100 s on AwA1 trainval (1 thread, loaded 2-core machine). With 10
epochs: validation 0.300, test 0.306 / 0.289 / 0.308.
* ``pca_dim=150, pca_scale="whiten"``: the old default (100 dims, one global scale) left the
  generated features near chance (test top-1 0.127 with 5 epochs). A linear probe of how well
  class attributes predict class means (ridge regression to seen-class means, nearest predicted
  mean on validation classes) scores 0.28 in the 100-d globally scaled space, 0.38 whitened and
  0.40 with 150 whitened dims (0.36 with 50, 0.39 with 250): the class information of histogram
  features sits largely in low-variance directions that a GAN on an unwhitened space ignores.
* ``rbf_anchors=None``: ESZSL's RBF kernel map before the PCA (the clusterable CVAE's ``awa1``
  preset) does not help the GAN: method validation 0.302 with 3000 anchors and PCA-300 against
  0.319 without (seed 0).
* ``embedding_scale="sqrt_dim"``: with unit-norm 85-d attributes next to N(0, I) noise of the
  same size, G's input is ~90% noise by norm and D's condition is tiny next to 150 unit-variance
  feature dims; the scaled condition gets the generator class-dependent after 5 epochs
  (nearest-synthetic-mean accuracy 0.29 vs 0.19 at the same step).
* ``hidden=512`` (G and D; paper 4096): validation 0.32 at 10 epochs vs 0.27 with 256 and 0.31
  with 1024 (1024 costs 2x the time); a 1024-unit G with a 256-unit D collapsed (0.22).
* ``epochs=7`` (~530 generator steps on AwA1 trainval, 5 critic steps each), ``lr=1e-3``:
  with lr 1e-4..2e-4 (the paper preset's 1e-5 with its 4096-unit nets) 5 epochs barely move G
  (the old default's failure). More steps do not help past a few hundred: method 0.319 / 0.300 /
  0.303 at 7 / 10 / 14 epochs; diagnostic 0.32 at 10, 0.28 at 20 with 512 units (256 units: 0.27 /
  0.26 / 0.27 at 10 / 20 / 40) -- G fits the 32 training attribute vectors better with more
  steps, not the unseen ones; 7 is the cheapest of the equals. lr 5e-4 gave the same as 1e-3 at
  10 epochs (0.304 vs 0.300, method), lr 2e-3 less (0.280, method).
* ``cls_weight=0.1`` (beta): 0.30 vs 0.29 with 0.01 and 0.28 with 1.0 (20 epochs, 256 units,
  unit-norm embeddings).
* ``n_synth=500, clf_epochs=50``: the final softmax on 10 x 200 synthetic features for 20
  epochs (160 Adam steps) is under-trained; 500 x 50 epochs gained 0.01-0.04 on validation in
  most runs (lost 0.004 in two).
* Kept: ``noise_dim=None`` (|z| = |a| = 85; 16 gave 0.254, method), ``critic_iters=5`` (2 with 256
  units: 0.19-0.20, method, below 5 critic steps in the same time).
* ``quick`` preset (hidden 256, 4 epochs, lr 2e-3, 300 x 30): 0.245 on validation in 28 s, method
  (lr 1e-3: 0.207; batch 128 for 3 epochs: 0.237 in 36 s; 3 epochs: 0.224, only 3 s faster --
  PCA (~9 s on a loaded machine), the seen-class classifier and the final classifiers are a fixed
  ~15 s). The GAN needs steps; there is no cheap version that is also good.
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
    data_hash,
    init_linear_,
    l2_normalize_rows,
    predict_log_proba,
    progress_bar,
    torch_generator,
    torch_threads,
    train_softmax_classifier,
)

CHECKPOINT_VERSION = 1  # bump when the training loop changes, so stale checkpoints are not resumed


# -- component ----------------------------------------------------------------------------------
class ConditionalGenerator(nn.Module):
    """G(a, z) -> x: (n, attr_dim), (n, noise_dim) -> (n, out_dim)."""

    def __init__(self, attr_dim: int, noise_dim: int, hidden: int, out_dim: int, output_activation: str = "relu"):
        super().__init__()
        if output_activation not in ("relu", "none"):
            raise ValueError(f"output_activation must be 'relu' or 'none', got {output_activation!r}")
        self.attr_dim, self.noise_dim, self.out_dim = attr_dim, noise_dim, out_dim
        self.output_activation = output_activation
        self.net = nn.Sequential(nn.Linear(attr_dim + noise_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_dim))

    def forward(self, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.net(torch.cat([a, z], dim=1))
        return torch.relu(x) if self.output_activation == "relu" else x


class Critic(nn.Module):
    """D(x, a) -> (n,) unbounded Wasserstein critic score."""

    def __init__(self, feat_dim: int, attr_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feat_dim + attr_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, a], dim=1)).squeeze(1)


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, a: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """E[(||grad_x^ D(x^, a)||_2 - 1)^2] on random interpolates x^ (eq. 2)."""
    t = torch.rand(real.shape[0], 1, generator=gen)
    inter = (t * real + (1 - t) * fake).requires_grad_(True)
    grad = torch.autograd.grad(critic(inter, a).sum(), inter, create_graph=True)[0]
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


def train_conditional_wgan(
    X: np.ndarray,
    y: np.ndarray,
    S: np.ndarray,
    seen_classes: np.ndarray,
    *,
    noise_dim: int | None = None,
    hidden: int = 1024,
    critic_hidden: int | None = None,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-4,
    critic_iters: int = 5,
    gp_lambda: float = 10.0,
    cls_weight: float = 0.01,
    random_state: int = 0,
    progress: bool = False,
    output_activation: str = "auto",
    classifier_epochs: int = 20,
    checkpoint: Checkpointer | None = None,
) -> ConditionalGenerator:
    """Train G and D of f-CLSWGAN on seen-class features; return the generator (eval mode).

    X (n, d) float32 features of seen classes, y (n,) class ids (rows of S), S (C, k) class
    embeddings used as given, seen_classes (s,) ids. ``noise_dim=None`` uses k (the paper sets
    |z| = |a|). ``critic_hidden=None`` gives D the generator's width ``hidden``. ``cls_weight`` is beta of eq. 4 (0 disables the classification loss).
    ``checkpoint``: a :class:`~zsl.methods._torch_utils.Checkpointer`; training saves its state
    (networks, optimisers, RNG) each epoch and resumes from the last saved epoch.
    """
    X = np.asarray(X, dtype=np.float32)
    S = np.asarray(S, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    seen = np.unique(np.asarray(seen_classes, dtype=np.int64))
    noise_dim = S.shape[1] if noise_dim is None else int(noise_dim)
    if output_activation == "auto":
        output_activation = "relu" if float(X.min()) >= 0 else "none"
    checkpoint = checkpoint or Checkpointer(None)
    gen = torch_generator(random_state)

    Xt, St = torch.as_tensor(X), torch.as_tensor(S)
    y_local = torch.as_tensor(np.searchsorted(seen, y))  # classifier index among seen classes
    yt = torch.as_tensor(y)
    G = init_linear_(ConditionalGenerator(S.shape[1], noise_dim, hidden, X.shape[1], output_activation), gen)
    D = init_linear_(Critic(X.shape[1], S.shape[1], critic_hidden or hidden), gen)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))

    state = checkpoint.load()
    if state is not None:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        gen.set_state(state["rng"])
        pre_clf = state["classifier"]
        start = state["epoch"]
    else:
        pre_clf = None
        start = 0
    if cls_weight > 0 and pre_clf is None:
        # P(y | x; theta): softmax on real seen features, frozen during GAN training (eq. 4)
        pre_clf = train_softmax_classifier(X, y_local.numpy(), len(seen), epochs=classifier_epochs, batch_size=batch_size,
                                           lr=1e-3, random_state=int(torch.randint(2**31 - 1, (1,), generator=gen)),
                                           progress=progress, desc="f-CLSWGAN seen classifier")
    if pre_clf is not None:
        for p in pre_clf.parameters():
            p.requires_grad_(False)
        pre_clf.eval()

    n = len(Xt)
    steps = max(1, math.ceil(n / batch_size))
    bar = progress_bar(epochs, "f-CLSWGAN", progress)
    bar.update(start)
    for epoch in range(start, epochs):
        G.train()
        D.train()
        for _ in range(steps):
            for p in D.parameters():
                p.requires_grad_(True)
            for _ in range(critic_iters):
                idx = torch.randint(n, (batch_size,), generator=gen)
                real, a = Xt[idx], St[yt[idx]]
                z = torch.randn(len(idx), noise_dim, generator=gen)
                fake = G(a, z).detach()
                loss_d = D(fake, a).mean() - D(real, a).mean() + gp_lambda * gradient_penalty(D, real, fake, a, gen)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            for p in D.parameters():
                p.requires_grad_(False)
            idx = torch.randint(n, (batch_size,), generator=gen)
            a = St[yt[idx]]
            z = torch.randn(len(idx), noise_dim, generator=gen)
            fake = G(a, z)
            loss_g = -D(fake, a).mean()
            if pre_clf is not None:
                loss_g = loss_g + cls_weight * nn.functional.nll_loss(pre_clf(fake), y_local[idx])
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        checkpoint.save({"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                         "rng": gen.get_state(), "classifier": pre_clf, "epoch": epoch + 1})
        bar.update(1)
        bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
    bar.close()
    return G.eval()


@torch.no_grad()
def synthesize(generator: ConditionalGenerator, S: np.ndarray, classes, n_per_class: int, *,
               random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n_per_class`` features for each class id in ``classes`` (rows of S, used as given).

    Returns X_syn (len(classes) * n_per_class, d) float32 and y_syn (same length,) int64 class ids,
    grouped by class in the order of ``classes``.
    """
    gen = torch_generator(random_state)
    classes = np.asarray(classes, dtype=np.int64)
    St = torch.as_tensor(np.asarray(S, dtype=np.float32))
    generator.eval()
    out = []
    for c in classes:
        a = St[int(c)].expand(n_per_class, -1)
        z = torch.randn(n_per_class, generator.noise_dim, generator=gen)
        out.append(generator(a, z))
    X_syn = torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, generator.out_dim), np.float32)
    return X_syn, np.repeat(classes, n_per_class)


# -- method ------------------------------------------------------------------------------------
def embedding_norm(embedding_scale: float | str, dim: int) -> np.float32:
    """Row norm of the class embeddings a network is conditioned on: a number, or "sqrt_dim".

    "sqrt_dim" gives unit-L2 rows times sqrt(k), i.e. entries of RMS 1 -- the scale of the N(0, I)
    noise z and of whitened features they are concatenated with. With unit-norm rows (the paper)
    an 85-d attribute vector has entries ~0.1 next to noise entries ~1, and the networks (weights
    N(0, 0.02)) need many steps before the condition moves their outputs.
    """
    if embedding_scale == "sqrt_dim":
        return np.float32(math.sqrt(dim))
    if isinstance(embedding_scale, str) or not float(embedding_scale) > 0:
        raise ValueError(f"embedding_scale must be a positive number or 'sqrt_dim', got {embedding_scale!r}")
    return np.float32(embedding_scale)


class _GenerativeClassifierMixin:
    """ZSL / GZSL softmax classifiers on synthesized features and candidate-restricted scores.

    Each classifier centres its inputs per dimension and divides by one global RMS scale, both from
    its own training set (synthesized unseen, or real seen + synthesized unseen): features in a
    Sigmoid space vary by a few hundredths, and an unscaled linear softmax needs far more steps.
    Requires ``unseen_`` and ``n_classes_``; sets ``zsl_clf_``, ``gzsl_clf_`` and their scalers.
    """

    @staticmethod
    def _scaler(Z):
        # per-dimension centring, one global scale: a per-dimension std would blow up dimensions
        # where the generator has (almost) no variance (e.g. dead ReLU outputs) on real test data
        mean = Z.mean(0)
        scale = float(np.sqrt(np.mean((Z - mean) ** 2))) + 1e-6
        return mean.astype(np.float32), np.float32(scale)

    def _fit_final_classifiers(self, Z_seen, y_seen, Z_syn, y_syn, *, epochs, lr, batch_size, seed, progress):
        unseen = self.unseen_
        self.zsl_clf_ = None
        if len(unseen):
            self.zsl_scaler_ = self._scaler(Z_syn)
            Zz = (Z_syn - self.zsl_scaler_[0]) / self.zsl_scaler_[1]
            self.zsl_clf_ = train_softmax_classifier(Zz, np.searchsorted(unseen, y_syn), len(unseen), epochs=epochs, lr=lr,
                                                     batch_size=batch_size, random_state=seed, progress=progress,
                                                     desc="ZSL classifier")
        Z_all = np.concatenate([Z_seen, Z_syn]) if len(Z_syn) else Z_seen
        y_all = np.concatenate([y_seen, y_syn]) if len(y_syn) else y_seen
        self.gzsl_scaler_ = self._scaler(Z_all)
        Za = (Z_all - self.gzsl_scaler_[0]) / self.gzsl_scaler_[1]
        self.gzsl_clf_ = train_softmax_classifier(Za, y_all, self.n_classes_, epochs=epochs, lr=lr, batch_size=batch_size,
                                                  random_state=seed + 1, progress=progress, desc="GZSL classifier")

    def _scores(self, Z, candidates):
        if self.zsl_clf_ is not None and np.isin(candidates, self.unseen_).all():
            logp = predict_log_proba(self.zsl_clf_, (Z - self.zsl_scaler_[0]) / self.zsl_scaler_[1])
            return logp[:, np.searchsorted(self.unseen_, candidates)]
        logp = predict_log_proba(self.gzsl_clf_, (Z - self.gzsl_scaler_[0]) / self.gzsl_scaler_[1])
        return logp[:, candidates]


@register_method
class FCLSWGAN(_GenerativeClassifierMixin, ZSLMethod):
    name = "fclswgan"
    tags = {"family": "generative", "supports_gzsl": True, "retrieval": False, "stochastic": True}
    presets = {
        # the class defaults are the values tuned on AwA1's validation classes (module docstring)
        "default": {},
        "awa1": {},
        # the benchmark's --quick grid: 40% of the GAN steps, half-width networks, doubled lr
        "quick": {"hidden": 256, "epochs": 4, "lr": 2e-3, "n_synth": 300, "clf_epochs": 30},
        # the paper's sizes (4096 hidden units, raw 2048-d inputs, unit-norm attributes, beta = 0.01,
        # 30 epochs): slow on CPU, for parity runs on ResNet features
        "paper": {"pca_dim": None, "pca_scale": "std", "embedding_scale": 1.0, "hidden": 4096, "epochs": 30,
                  "batch_size": 64, "lr": 1e-5, "cls_weight": 0.01, "n_synth": 1800, "clf_epochs": 20},
        "tiny": {"pca_dim": None, "pca_scale": "std", "embedding_scale": 1.0, "hidden": 128, "epochs": 10, "batch_size": 64,
                 "lr": 1e-3, "critic_iters": 2, "cls_weight": 0.01, "n_synth": 50, "clf_epochs": 10, "progress": False,
                 "checkpoint": False},
    }
    param_grid = {"cls_weight": [0.01, 0.1]}
    search_space = {
        "cls_weight": ("float", 1e-3, 1.0, True),
        "lr": ("float", 1e-5, 1e-3, True),
        "n_synth": ("int", 50, 1000),
        "epochs": ("int", 5, 60),
    }

    parameter_constraints = {
        "rbf_anchors": [None, Interval(int, 1, None)],
        "pca_dim": [None, Interval(int, 1, None)],
        "pca_scale": [Options("std", "whiten", "none")],
        "embedding_scale": [Options("sqrt_dim"), Interval(float, 0, None, closed="neither")],
        "hidden": [Interval(int, 1, None)],
        "noise_dim": [None, Interval(int, 1, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None)],
        "critic_iters": [Interval(int, 1, None)],
        "gp_lambda": [Interval(float, 0, None)],
        "cls_weight": [Interval(float, 0, None)],
        "n_synth": [Interval(int, 1, None)],
        "clf_epochs": [Interval(int, 1, None)],
        "clf_lr": [Interval(float, 0, None)],
        "random_state": [None, Interval(int, 0, None)],
        "checkpoint": [bool],
        "progress": [bool],
        "n_threads": [None, Interval(int, 1, None)],
    }
    runtime_params = ("progress", "n_threads", "checkpoint")

    def __init__(self, *, rbf_anchors: int | None = None, pca_dim: int | None = 150, pca_scale: str = "whiten",
                 embedding_scale: float | str = "sqrt_dim",
                 hidden: int = 512, noise_dim: int | None = None, epochs: int = 7, batch_size: int = 256, lr: float = 1e-3,
                 critic_iters: int = 5, gp_lambda: float = 10.0, cls_weight: float = 0.1, n_synth: int = 500,
                 clf_epochs: int = 50, clf_lr: float = 1e-3, random_state: int = 0, checkpoint: bool = True,
                 progress: bool = True, n_threads: int | None = 1):
        self.rbf_anchors = rbf_anchors
        self.pca_dim = pca_dim
        self.pca_scale = pca_scale
        self.embedding_scale = embedding_scale
        self.hidden = hidden
        self.noise_dim = noise_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.critic_iters = critic_iters
        self.gp_lambda = gp_lambda
        self.cls_weight = cls_weight
        self.n_synth = n_synth
        self.clf_epochs = clf_epochs
        self.clf_lr = clf_lr
        self.random_state = random_state
        self.checkpoint = checkpoint
        self.progress = progress
        self.n_threads = n_threads

    def _gan_config(self) -> dict[str, Any]:
        keys = ("rbf_anchors", "pca_dim", "pca_scale", "embedding_scale", "hidden", "noise_dim", "epochs", "batch_size", "lr", "critic_iters", "gp_lambda", "cls_weight",
                "random_state")
        return {"version": CHECKPOINT_VERSION, **{k: getattr(self, k) for k in keys}}

    def _embed(self, X):
        return self.preprocessor_.transform(X)

    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        with torch_threads(self.n_threads):
            return self._fit(X, y, S, seen)

    def _fit(self, X, y, S, seen):
        seed = int(self.random_state or 0)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        self.seen_ = seen
        self.unseen_ = np.setdiff1d(np.arange(len(S)), seen)
        self.class_embeddings_ = l2_normalize_rows(S) * embedding_norm(self.embedding_scale, S.shape[1])
        self.preprocessor_ = FeaturePreprocessor(self.pca_dim, scale=self.pca_scale, random_state=seed,
                                                 rbf_anchors=self.rbf_anchors).fit(X)
        Z = self._embed(X)
        config = self._gan_config()
        ckpt = Checkpointer.for_run(self.name, config, data_hash(X, y, S, seen), enabled=bool(self.checkpoint))
        self.generator_ = train_conditional_wgan(
            Z, y, self.class_embeddings_, seen, noise_dim=self.noise_dim, hidden=self.hidden, epochs=self.epochs,
            batch_size=self.batch_size, lr=self.lr, critic_iters=self.critic_iters, gp_lambda=self.gp_lambda,
            cls_weight=self.cls_weight, random_state=seed, progress=self.progress, checkpoint=ckpt,
        )
        Z_syn, y_syn = synthesize(self.generator_, self.class_embeddings_, self.unseen_, self.n_synth, random_state=seed + 7)
        self._fit_final_classifiers(Z, y, Z_syn, y_syn, epochs=self.clf_epochs, lr=self.clf_lr, batch_size=self.batch_size,
                                    seed=seed, progress=self.progress)
        return self

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        with torch_threads(self.n_threads):
            return self._scores(self._embed(X), candidates)
