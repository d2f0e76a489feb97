"""CPL -- semantic-visual composite projection learning for zero-shot recognition.

Reference: the CPL slides in ``papers/cpl-composite-projection-learning.txt`` (composite
projection network + generative model + similarity network with inter-class soft labels).

Notation: x (d,) visual feature, a_c (k,) semantics of class c, S seen classes, U unseen classes.

1. Generator G(a, z) -> x~: the f-CLSWGAN conditional WGAN-GP (critic + gradient penalty +
   classification loss), trained on the seen classes -- the component of
   :mod:`zsl.methods.fclswgan`, with its own ``gan_*`` settings; it synthesises
   ``n_synth`` features for every unseen class.
2. Encoder E: a -> visual space (Linear, LeakyReLU, Linear, LeakyReLU; the slides' two LeakyReLUs).
   The visual space is the embedding ("latent") space. Projection loss (slides 2.3)::

       L_proj = mean_i ||E(a_{y_i}) - x_i||^2  +  beta * mean_j ||E(a_{u_j}) - x~_j||^2

   (Term 1 over real seen samples, Term 2 over generated unseen samples.)
3. Decoder D -> a (Linear, ReLU, Linear, Sigmoid), ``L_rec`` a mean squared error, so the latent
   space keeps semantic detail. The slides: "Decoder输入seen、unseen隐空间特征" -- its input is
   the latent (visual-space) features of seen and unseen classes. ``decoder_input="features"``
   reads that as the visual features themselves: real seen x_i -> a_{y_i} and generated unseen
   x~_j -> a_{u_j}; ``decoder_input="prototypes"`` decodes the encoded prototypes E(a_c) -> a_c of
   every class. Both are kept; the validation comparison is in ``benchmarks/results/cpl.md``.
4. Similarity network R([x ; E(a_k)]) -> s_ik in (0, 1) (Linear, LeakyReLU, Linear, Sigmoid).
   Seen classification loss ``L_cls = mean_{i, k in S} (s_ik - 1[y_i = k])^2``. Inter-class loss
   ``L_inter = mean_{i, k in U} (s_ik - r[y_i, k])^2`` with soft labels r (S, U) from least squares
   ``min_R ||A_U - R^T A_S||^2 + ridge ||R||^2`` -> ``R = (A_S A_S^T + ridge I)^-1 A_S A_U^T``
   (row i relates seen class i to every unseen class; the slides' closed form), or
   ``relation="cosine"``: r = cos(a_s, a_u).
5. Objective ``L = L_proj + l1 L_rec + l2 L_cls + l3 L_inter`` (``lambda_rec``, ``lambda_cls``,
   ``lambda_inter``), Adam. Prediction: ``argmax_k s(x, E(a_k))`` over the candidates.

Choices where the slides are silent:
- Input features: min-max scaled per dimension (the generator's space, :mod:`zsl.preprocessing`),
  so E's final LeakyReLU suits the non-negative CNN features; optional PCA / RBF map for
  histogram features (preset ``awa1``).
- Semantics: every class-embedding column is min-max scaled to [0, 1] over all classes: the
  input of E and the target of D's sigmoid. G is conditioned like f-CLSWGAN's
  (:class:`~zsl.methods._generative.ConditionSpace`).
- Soft labels are the least-squares coefficients themselves, clipped to [0, 1] (the range of
  s_ik; a negative coefficient -- an anti-related seen class -- asks for similarity 0) and
  multiplied by ``soft_label_scale``. Rows are not stretched to [0, 1]: with two unseen classes
  that would turn every row into {0, scale}, whatever the relation. Cosine relations are clipped
  at 0 likewise.
- All squared errors are means over elements. The first layer of R acts on [x ; e] as
  W_x x + W_e e (+ interaction terms, see :class:`RelationNet`), computed once per sample and
  once per class and broadcast, the same function without (n_samples x n_classes) concatenations.
- Every training step draws one minibatch of real seen features and one of the same size from
  the generated unseen pool (Term 2 and the feature decoder).
- Loss weights default to values of the slides' grids; ``zsl cpl search`` runs the slides'
  class-wise cross-validation over them, and ``zsl run cpl --params-from-study NAME`` applies a
  study's best trial (never implicitly).
- Ablations switch terms off: ``use_generated=False`` (no G, no Term 2), ``use_inter_class=False``
  (no L_inter), ``use_decoder=False`` (no D, no L_rec).

Shapes: X (n, d) -> features (n, d') after the input map; class embeddings (C, k); E(A) (C, d');
scores (n, m).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._registry import register_method
from ..base import ZSLMethod, check_features
from ..io import content_digest
from ..nn import (
    Checkpointer,
    LossHistory,
    ResumableLoop,
    code_digest,
    deterministic_torch,
    init_default_,
    torch_generator,
)
from ..params import Interval, Options
from ..preprocessing import SCALES, FeaturePreprocessor
from ._generative import ConditionSpace, synthesize
from .fclswgan import ConditionalGenerator, Critic, train_conditional_wgan

RELATIONS = ("lstsq", "cosine")
DECODER_INPUTS = ("features", "prototypes")


def scale_semantics(S: np.ndarray) -> np.ndarray:
    """Min-max scale every column of S (C, k) to [0, 1] over all classes (constant columns -> 0.5)."""
    S = np.asarray(S, dtype=np.float64)
    lo, hi = S.min(0), S.max(0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    out = (S - lo) / span
    out[:, hi - lo <= 1e-12] = 0.5
    return out.astype(np.float32)


def soft_labels(S: np.ndarray, seen: np.ndarray, unseen: np.ndarray, *, relation: str = "lstsq",
                ridge: float = 1e-1, scale: float = 1.0) -> np.ndarray:
    """Inter-class soft labels r (len(seen), len(unseen)): row i relates seen class i to every unseen class.

    ``lstsq``: R = argmin ||A_U - R^T A_S||^2 + ridge ||R||^2 = (A_S A_S^T + ridge I)^-1 A_S A_U^T,
    with A_S (|S|, k), A_U (|U|, k). ``cosine``: r_ij = cos(a_i, a_j). Values are clipped to
    [0, 1] and multiplied by ``scale``.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    A = np.asarray(S, dtype=np.float64)
    As, Au = A[seen], A[unseen]
    if relation == "lstsq":
        r = np.linalg.solve(As @ As.T + ridge * np.eye(len(As)), As @ Au.T)
    else:
        n_s = As / np.maximum(np.linalg.norm(As, axis=1, keepdims=True), 1e-12)
        n_u = Au / np.maximum(np.linalg.norm(Au, axis=1, keepdims=True), 1e-12)
        r = n_s @ n_u.T
    return (scale * np.clip(r, 0.0, 1.0)).astype(np.float32)


class Encoder(nn.Module):
    """E: (m, k) semantics -> (m, d) visual space (Linear, LeakyReLU, Linear, LeakyReLU)."""

    def __init__(self, k: int, hidden: int, d: int):
        super().__init__()
        self.hidden = nn.Linear(k, hidden)
        self.out = nn.Linear(hidden, d)

    def forward(self, a):
        return nn.functional.leaky_relu(self.out(nn.functional.leaky_relu(self.hidden(a), 0.2)), 0.2)


class SemanticDecoder(nn.Module):
    """D: (m, d) visual-space features -> (m, k) semantics in (0, 1) (Linear, ReLU, Linear, Sigmoid)."""

    def __init__(self, d: int, hidden: int, k: int):
        super().__init__()
        self.hidden = nn.Linear(d, hidden)
        self.out = nn.Linear(hidden, k)

    def forward(self, x):
        return torch.sigmoid(self.out(torch.relu(self.hidden(x))))


class RelationNet(nn.Module):
    """Similarity network R: s(x, e) = sigmoid(w . leaky(fusion(x, e)) + b) for every (sample, class) pair.

    The slides fuse x and e ("feature fusion", then an MLP) without saying how. Here the fusion is
    the concatenation [x ; e] plus, with ``fusion_dim`` r > 0, the interactions of a shared
    r-dimensional projection P: [x ; e ; |Px - Pe| ; Px * Pe]. A concatenation alone feeds R a sum
    W_x x + W_e e, which must learn "is x near e" from one leaky unit at a time; with the
    interaction terms a learnable distance is one layer away. The first layer is applied term by
    term (W_x x + W_e e + W_d |Px - Pe| + W_p (Px * Pe)), so only (n, m, r) pair tensors are
    materialised.
    """

    def __init__(self, d: int, hidden: int, fusion_dim: int = 64):
        super().__init__()
        self.fx = nn.Linear(d, hidden)
        self.fe = nn.Linear(d, hidden, bias=False)
        self.fusion_dim = fusion_dim
        if fusion_dim:
            self.proj = nn.Linear(d, fusion_dim, bias=False)
            self.fd = nn.Linear(fusion_dim, hidden, bias=False)
            self.fp = nn.Linear(fusion_dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x, e):  # x (n, d), e (m, d) -> (n, m)
        h = self.fx(x)[:, None, :] + self.fe(e)[None, :, :]
        if self.fusion_dim:
            px, pe = self.proj(x)[:, None, :], self.proj(e)[None, :, :]
            h = h + self.fd((px - pe).abs()) + self.fp(px * pe)
        return torch.sigmoid(self.out(nn.functional.leaky_relu(h, 0.2))).squeeze(-1)


@register_method
class CPL(ZSLMethod):
    """Composite projection learning; see the module docstring for the model and every choice."""

    name = "cpl"
    tags = {"family": "generative", "supports_gzsl": True, "retrieval": False, "stochastic": True}
    presets = {
        "default": {},
        # the benchmark's --quick grid
        "quick": {"epochs": 10, "gan_steps": 400},
        "tiny": {"hidden": 64, "relation_hidden": 32, "fusion_dim": 16, "epochs": 15, "batch_size": 64, "lr": 3e-3,
                 "n_synth": 40, "gan_steps": 60, "gan_hidden": 64, "gan_critic_iters": 2, "gan_lr": 1e-3,
                 "gan_classifier_epochs": 5, "n_threads": 1},
    }
    dataset_presets = {
        # CNN features (FLO), chosen on FLO's validation classes (benchmarks/results/cpl.md): without the
        # generated unseen features (Term 2 and the feature decoder's unseen half), which lower both ZSL
        # and H there at the generator budget a CPU allows; the feature decoder over the prototype one
        "flo": {"use_generated": False},
        # histogram features (AwA1): PCA-256 with one global scale, the sizes of earlier AwA1 work
        "awa1": {"pca_dim": 256, "feature_scale": "std", "hidden": 1024, "epochs": 5, "batch_size": 64, "lr": 2e-3,
                 "gan_hidden": 512, "gan_steps": 200, "gan_batch_size": 512, "gan_lr": 1e-4, "n_synth": 300},
    }
    param_grid = {}
    # the slides' grid (beta; lambda_1..3 = lambda_rec, lambda_cls, lambda_inter), searched by class-wise CV
    search_space = {
        "beta": ("categorical", [1e-3, 1e-2, 1e-1]),
        "lambda_rec": ("categorical", [1e-4, 1e-3, 1e-2, 1e-1]),
        "lambda_cls": ("categorical", [1e-4, 1e-3, 1e-2, 1e-1]),
        "lambda_inter": ("categorical", [1e-4, 1e-3, 1e-2, 1e-1]),
    }
    parameter_constraints = {
        "beta": [Interval(float, 0, None)],
        "lambda_rec": [Interval(float, 0, None)],
        "lambda_cls": [Interval(float, 0, None)],
        "lambda_inter": [Interval(float, 0, None)],
        "use_generated": [bool],
        "use_inter_class": [bool],
        "use_decoder": [bool],
        "decoder_input": [Options(*DECODER_INPUTS)],
        "relation": [Options(*RELATIONS)],
        "ridge": [Interval(float, 0, None)],
        "soft_label_scale": [Interval(float, 0, 1)],
        "rbf_anchors": [None, Interval(int, 1, None)],
        "pca_dim": [None, Interval(int, 1, None)],
        "feature_scale": [Options(*SCALES)],
        "pca_max_samples": [Interval(int, 1, None)],
        "hidden": [Interval(int, 1, None)],
        "relation_hidden": [Interval(int, 1, None)],
        "fusion_dim": [Interval(int, 0, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "weight_decay": [Interval(float, 0, None)],
        "n_synth": [Interval(int, 1, None)],
        "gan_hidden": [Interval(int, 1, None)],
        "gan_steps": [Interval(int, 1, None)],
        "gan_critic_iters": [Interval(int, 1, None)],
        "gan_lr": [Interval(float, 0, None, closed="neither")],
        "gan_batch_size": [Interval(int, 1, None)],
        "gan_gp_lambda": [Interval(float, 0, None)],
        "gan_cls_weight": [Interval(float, 0, None)],
        "gan_classifier_epochs": [Interval(int, 1, None)],
        "random_state": [None, Interval(int, 0, None)],
        "checkpoint_dir": [None, str],
        "progress": [bool],
        "n_threads": [None, Interval(int, 1, None)],
    }
    runtime_params = ("checkpoint_dir", "progress", "n_threads")
    gzsl_objective = "H_uncalibrated"

    def __init__(
        self, *, beta: float = 1e-2, lambda_rec: float = 1e-2, lambda_cls: float = 1e-1, lambda_inter: float = 1e-1,
        use_generated: bool = True, use_inter_class: bool = True, use_decoder: bool = True,
        decoder_input: str = "features", relation: str = "lstsq", ridge: float = 1e-1, soft_label_scale: float = 0.5,
        rbf_anchors: int | None = None, pca_dim: int | None = None, feature_scale: str = "minmax",
        pca_max_samples: int = 4000, hidden: int = 1024, relation_hidden: int = 128, fusion_dim: int = 64,
        epochs: int = 20, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-5, n_synth: int = 300,
        gan_hidden: int = 1024, gan_steps: int = 1500, gan_critic_iters: int = 5, gan_lr: float = 1e-4,
        gan_batch_size: int = 64, gan_gp_lambda: float = 10.0, gan_cls_weight: float = 0.1,
        gan_classifier_epochs: int = 25, random_state: int = 0, checkpoint_dir: str | None = None,
        progress: bool = False, n_threads: int | None = None,
    ):
        self.beta = beta
        self.lambda_rec = lambda_rec
        self.lambda_cls = lambda_cls
        self.lambda_inter = lambda_inter
        self.use_generated = use_generated
        self.use_inter_class = use_inter_class
        self.use_decoder = use_decoder
        self.decoder_input = decoder_input
        self.relation = relation
        self.ridge = ridge
        self.soft_label_scale = soft_label_scale
        self.rbf_anchors = rbf_anchors
        self.pca_dim = pca_dim
        self.feature_scale = feature_scale
        self.pca_max_samples = pca_max_samples
        self.hidden = hidden
        self.relation_hidden = relation_hidden
        self.fusion_dim = fusion_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_synth = n_synth
        self.gan_hidden = gan_hidden
        self.gan_steps = gan_steps
        self.gan_critic_iters = gan_critic_iters
        self.gan_lr = gan_lr
        self.gan_batch_size = gan_batch_size
        self.gan_gp_lambda = gan_gp_lambda
        self.gan_cls_weight = gan_cls_weight
        self.gan_classifier_epochs = gan_classifier_epochs
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.n_threads = n_threads

    # -- training -------------------------------------------------------------------------
    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        with deterministic_torch(self.n_threads):
            return self._fit(X, y, S, seen)

    def _fit(self, X, y, S, seen):
        seed = int(self.random_state or 0)
        gen = torch_generator(seed)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        unseen = np.setdiff1d(np.arange(len(S)), seen)
        self.seen_classes_ = seen
        params = {k: v for k, v in self.get_params().items() if k not in self.runtime_params}
        ckpt = Checkpointer.for_fit(
            self.checkpoint_dir,
            self.name,
            params,
            content_digest(X, y, S, seen),
            code_digest(
                type(self), Encoder, SemanticDecoder, RelationNet, train_conditional_wgan, ConditionalGenerator, Critic
            ),
        )
        self.preprocessor_ = FeaturePreprocessor(self.pca_dim, scale=self.feature_scale, random_state=seed,
                                                 max_samples=self.pca_max_samples, rbf_anchors=self.rbf_anchors)
        Z = self.preprocessor_.fit_transform(X)
        A = scale_semantics(S)
        self.semantics_ = A

        # 1. generated unseen features (the f-CLSWGAN generator trained on the seen classes)
        use_gen = self.use_generated and len(unseen) > 0
        self.generator_ = None
        if use_gen:
            self.conditions_ = ConditionSpace(seen_span=True).fit_transform(S, seen)
            self.generator_ = train_conditional_wgan(
                Z,
                y,
                self.conditions_,
                seen,
                hidden=self.gan_hidden,
                steps=self.gan_steps,
                batch_size=self.gan_batch_size,
                lr=self.gan_lr,
                critic_iters=self.gan_critic_iters,
                gp_lambda=self.gan_gp_lambda,
                cls_weight=self.gan_cls_weight,
                classifier_epochs=self.gan_classifier_epochs,
                random_state=seed + 1,
                checkpoint=ckpt.sub("generator"),
                progress=self.progress,
            )
            Xg, yg = synthesize(self.generator_, self.conditions_, unseen, self.n_synth, random_state=seed + 2)
            Xg, yg = torch.as_tensor(Xg), torch.as_tensor(yg)

        # soft labels (|S|, |U|) for the inter-class loss
        use_inter = self.use_inter_class and len(unseen) > 0
        self.soft_labels_ = (
            soft_labels(S, seen, unseen, relation=self.relation, ridge=self.ridge, scale=self.soft_label_scale)
            if len(unseen)
            else np.zeros((len(seen), 0), np.float32)
        )

        d, k = Z.shape[1], A.shape[1]
        encoder = init_default_(Encoder(k, self.hidden, d), gen)
        decoder = init_default_(SemanticDecoder(d, self.hidden, k), gen) if self.use_decoder else None
        relation_net = init_default_(RelationNet(d, self.relation_hidden, self.fusion_dim), gen)
        modules = {"E": encoder, "R": relation_net, **({"D": decoder} if decoder is not None else {})}
        opt = torch.optim.Adam(
            [p for m in modules.values() for p in m.parameters()], lr=self.lr, weight_decay=self.weight_decay
        )
        mse = nn.functional.mse_loss

        A_t, Z_t = torch.as_tensor(A), torch.as_tensor(Z)
        col = torch.as_tensor(np.searchsorted(seen, y))  # label -> column among seen classes
        onehot = nn.functional.one_hot(col, len(seen)).float()
        soft_t = torch.as_tensor(self.soft_labels_)
        y_t, seen_t, unseen_t = torch.as_tensor(y), torch.as_tensor(seen), torch.as_tensor(unseen)
        n = len(Z)
        bs = min(self.batch_size, n)
        steps_per_epoch = max(1, n // bs)
        history = LossHistory(steps_per_epoch)
        loop = ResumableLoop(ckpt.sub("cpl"), {**modules, "opt": opt, "history": history}, gen,
                             self.epochs * steps_per_epoch, every=steps_per_epoch, desc="CPL", progress=self.progress)
        perm = None
        for step in loop:
            if step % steps_per_epoch == 0:
                perm = torch.randperm(n, generator=gen)
            i = step % steps_per_epoch
            idx = perm[i * bs:(i + 1) * bs]
            x, c = Z_t[idx], col[idx]
            E_all = encoder(A_t)  # (C, d')
            E_seen = E_all[seen_t]
            loss_proj = mse(E_seen[c], x)
            if use_gen:
                gidx = torch.randint(len(Xg), (len(idx),), generator=gen)
                xg, cg = Xg[gidx], yg[gidx]
                loss_proj = loss_proj + self.beta * mse(E_all[cg], xg)
            if decoder is None:
                loss_rec = torch.zeros(())
            elif self.decoder_input == "prototypes":
                loss_rec = mse(decoder(E_all), A_t)
            else:  # the slides' "seen and unseen latent features": real seen x and generated unseen x~
                inputs, targets = (torch.cat([x, xg]), torch.cat([y_t[idx], cg])) if use_gen else (x, y_t[idx])
                loss_rec = mse(decoder(inputs), A_t[targets])
            loss_cls = mse(relation_net(x, E_seen), onehot[idx])
            loss_inter = mse(relation_net(x, E_all[unseen_t]), soft_t[c]) if use_inter else torch.zeros(())
            loss = loss_proj + self.lambda_rec * loss_rec + self.lambda_cls * loss_cls + self.lambda_inter * loss_inter
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.add(step, loss=loss.item(), proj=loss_proj.item(), rec=loss_rec.item(), cls=loss_cls.item(),
                        inter=loss_inter.item())
            loop.postfix(proj=loss_proj.item(), cls=loss_cls.item())
        self.history_ = history.epochs
        for m in modules.values():
            m.eval().requires_grad_(False)
        self.encoder_, self.decoder_, self.relation_net_ = encoder, decoder, relation_net
        with torch.no_grad():
            self.class_prototypes_ = encoder(A_t).numpy()  # E(a_c) for every class, (C, d')
        return self

    # -- prediction -----------------------------------------------------------------------
    def embed(self, X) -> np.ndarray:
        """Features in CPL's visual space (n, d') -- used by the analyses (t-SNE)."""
        self._check_is_fitted()
        return self.preprocessor_.transform(check_features(X))

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        with deterministic_torch(self.n_threads):
            Z = torch.as_tensor(self.preprocessor_.transform(X))
            E = torch.as_tensor(self.class_prototypes_[candidates])
            out = np.empty((len(Z), len(candidates)), dtype=np.float32)
            with torch.no_grad():
                for start in range(0, len(Z), 1024):
                    out[start:start + 1024] = self.relation_net_(Z[start:start + 1024], E).numpy()
            return out
