"""CPL -- semantic-visual composite projection learning for zero-shot recognition.

Reference: the CPL slides in ``papers/cpl-composite-projection-learning.txt`` (composite
projection network + generative model + similarity network with inter-class soft labels).

Notation: x (d,) visual feature, a_c (k,) semantics of class c, S seen classes, U unseen classes.

1. Generator G(a, z) -> x~: the f-CLSWGAN conditional WGAN-GP (critic + gradient penalty +
   classification loss), trained on the seen classes, reused from :mod:`zsl.methods.fclswgan`;
   it synthesises ``n_synth_per_class`` features for every unseen class.
2. Encoder E: a -> visual space (Linear, LeakyReLU, Linear). Projection loss (slides 2.3)::

       L_proj = mean_i ||E(a_{y_i}) - x_i||^2  +  beta * mean_j ||E(a_{u_j}) - x~_j||^2

   (Term 1 over real seen samples, Term 2 over generated unseen samples.)
3. Decoder D: E(a) -> a (Linear, ReLU, Linear, Sigmoid); ``L_rec = mean_c ||D(E(a_c)) - a_c||^2``
   over every class, seen and unseen, so the embedding keeps semantic detail.
4. Similarity network R([x ; E(a_k)]) -> s_ik in (0, 1) (Linear, LeakyReLU, Linear, Sigmoid).
   Seen classification loss ``L_cls = mean_{i, k in S} (s_ik - 1[y_i = k])^2``. Inter-class loss
   ``L_inter = mean_{i, k in U} (s_ik - r[y_i, k])^2`` with soft labels r (S, U) from
   least squares ``min_R ||A_U - R^T A_S||^2 + ridge ||R||^2`` -> ``R = (A_S A_S^T + ridge I)^-1 A_S A_U^T``
   (row i relates seen class i to every unseen class), or ``relation="cosine"``: r = cos(a_s, a_u).
5. Objective ``L = L_proj + l1 L_rec + l2 L_cls + l3 L_inter`` (``lambda_rec``, ``lambda_cls``,
   ``lambda_inter``), Adam. Prediction: ``argmax_k s(x, E(a_k))`` over the candidates.

Choices where the slides are silent (measured on AwA1, see benchmarks/results/cpl.md):
- Input features: PCA to ``n_components`` dims fitted on (at most ``pca_max_samples`` random rows
  of) the training features (6252-d AwA1 histograms make CPU training slow otherwise), then divided by one global scale so the mean
  per-dimension variance is 1. Because PCA features are signed, E ends in a linear layer rather
  than the slides' second LeakyReLU. ``n_components=None`` keeps the raw features.
- Semantics: every class-embedding column is min-max scaled to [0, 1] over all classes; this is
  the input of E and G and the target of D's sigmoid (GloVe vectors are signed otherwise).
- Soft labels: each row of r is min-max rescaled to [0, 1] and multiplied by
  ``soft_label_scale`` (< 1 so the most related unseen class never scores as high as a sample's
  own class).
- All squared errors are means over elements. The first layer of R acts on the concatenation
  [x ; e] as W_x x + W_e e, computed once per sample and once per class and broadcast, which is
  the same function and avoids materialising (n_samples x n_classes) concatenations.
- Every training step draws one minibatch of real seen features and one of the same size from
  the generated unseen pool (Term 2).
- Sizes (default preset, chosen for the CPU budget of < 10 min per AwA1 setting on 2 cores):
  PCA 256 dims; E and D hidden 1024; R hidden 128 with a 64-d fusion projection (see
  :class:`RelationNet`); 5 epochs of batch 64, Adam lr 2e-3; 300 generated features per unseen
  class from a generator trained 4 epochs (hidden 512, batch 512, 5 critic steps). The generator
  is cheap on purpose: its samples only enter the beta-weighted Term 2 (beta <= 0.1), so they
  steer E(a_u) rather than train a classifier. Batch 64 rather than 512: R is learnt from
  scratch and needs steps, not epochs -- with batch 512 (47 steps an epoch on AwA1) R stayed at
  its constant (training accuracy 0.06 on 32 classes) after 5 epochs; with batch 64 it reaches
  0.47. More epochs overfit R to the seen classes (10 epochs: 0.50 training, 0.30 validation
  accuracy against 0.34 at 5). Measured on AwA1's validation classes (train on 32 seen classes,
  test on the 8 validation classes), no generator, one seed: plain concatenation 0.30, with the
  fusion terms 0.34, and l3 = 0.1 instead of 0.01: 0.36 (l3 = 0.3 / 1.0: 0.36 / 0.35).
  PCA whitening (the generative methods' space) helps the nearest-prototype rule but not R (0.32).
  ``rbf_anchors`` (off by default) puts ESZSL's RBF kernel map before the PCA, as the CVAE does;
  for CPL it does not help: validation 0.331 / 0.342 with PCA 256 / 500 of the kernel features
  (with the generator, seed 0), against 0.363 for the default space (measured without the generator).
- Loss weights default to beta=1e-2, l1=1e-2, l2=1e-1, l3=1e-1 (values from the slides' grid);
  ``zsl cpl search`` runs the slides' class-wise cross-validation over that grid; ``zsl run cpl
  --params-from-study NAME`` applies a study's best trial (never implicitly).
- Torch runs with ``n_threads=1`` by default: the networks are small MLPs on minibatches, where
  intra-op threads only add synchronisation (on a busy 2-core machine the generator's seen-class
  classifier ran 4.6 s per epoch with 2 threads); ``None`` leaves torch's setting alone.
- Ablations switch terms off: ``use_generated=False`` (no G, no Term 2), ``use_inter_class=False``
  (no L_inter), ``use_decoder=False`` (no D, no L_rec).

Shapes: X (n, d) -> features (n, d') after PCA; class embeddings (C, k); E(A) (C, d'); scores (n, m).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..params import Interval, Options
from .._registry import register_method
from ..base import ZSLMethod

RELATIONS = ("lstsq", "cosine")

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
    with A_S (|S|, k), A_U (|U|, k). ``cosine``: r_ij = cos(a_i, a_j). Each row is then rescaled
    to [0, 1] (min-max; a constant row becomes 0) and multiplied by ``scale``.
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
    lo, hi = r.min(1, keepdims=True), r.max(1, keepdims=True)
    r = np.where(hi - lo > 1e-12, (r - lo) / np.where(hi - lo > 1e-12, hi - lo, 1.0), 0.0)
    return (scale * r).astype(np.float32)


class RelationNet(nn.Module):
    """Similarity network R: s(x, e) = sigmoid(w . leaky(fusion(x, e)) + b) for every (sample, class) pair.

    The slides fuse x and e ("feature fusion", then an MLP) without saying how. Here the fusion is
    the concatenation [x ; e] plus, with ``fusion_dim`` r > 0, the interactions of a shared
    r-dimensional projection P: [x ; e ; |Px - Pe| ; Px * Pe]. A concatenation alone feeds R a sum
    W_x x + W_e e, which must learn "is x near e" from one leaky unit at a time; with the
    interaction terms a learnable distance is one layer away, and R trains in a few epochs instead
    of staying near its constant (AwA1, 32 training classes, 5 epochs of batch 64: training
    accuracy 0.20 -> 0.47; see benchmarks/results/cpl.md). The first layer is applied term by term (W_x x + W_e e +
    W_d |Px - Pe| + W_p (Px * Pe)), so only (n, m, r) pair tensors are materialised.
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


def _build_modules(k: int, d: int, hidden: int, relation_hidden: int, use_decoder: bool, fusion_dim: int):
    encoder = nn.Sequential(nn.Linear(k, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, d))
    decoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, k), nn.Sigmoid()) if use_decoder else None
    return encoder, decoder, RelationNet(d, relation_hidden, fusion_dim)


@register_method
class CPL(ZSLMethod):
    """Composite projection learning; see the module docstring for the model and every choice."""

    name = "cpl"
    tags = {"family": "generative", "supports_gzsl": True, "retrieval": False, "stochastic": True}
    presets = {
        "default": {},
        "awa1": {},  # the default preset is the one measured on AwA1
        # small image-folder datasets (CIFAR-10 subsample: ~100 images per class): more epochs and
        # smaller generator batches so the networks get a few hundred steps, PCA 128 of the 1280-d features
        "small": {"n_components": 128, "epochs": 30, "gan_batch_size": 64, "gan_epochs": 10,
                  "n_synth_per_class": 100},
        "tiny": {"n_components": None, "hidden": 64, "relation_hidden": 32, "epochs": 15, "batch_size": 64, "lr": 3e-3,
                 "n_synth_per_class": 40, "gan_epochs": 3, "gan_hidden": 64, "gan_noise_dim": 8, "gan_critic_iters": 2},
        # `zsl benchmark --quick`: half-size networks and two epochs, so one fit stays well under a minute on AwA1
        "quick": {"n_components": 128, "hidden": 512, "epochs": 2, "gan_epochs": 2,
                  "gan_hidden": 256, "n_synth_per_class": 200},
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
        "relation": [Options("lstsq", "cosine")],
        "ridge": [Interval(float, 0, None)],
        "soft_label_scale": [Interval(float, 0, None)],
        "rbf_anchors": [None, Interval(int, 1, None)],
        "n_components": [None, Interval(int, 1, None)],
        "feature_scale": [Options("std", "whiten", "none")],
        "pca_max_samples": [Interval(int, 1, None)],
        "hidden": [Interval(int, 1, None)],
        "relation_hidden": [Interval(int, 1, None)],
        "fusion_dim": [Interval(int, 0, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None)],
        "weight_decay": [Interval(float, 0, None)],
        "n_synth_per_class": [Interval(int, 1, None)],
        "gan_epochs": [Interval(int, 1, None)],
        "gan_hidden": [Interval(int, 1, None)],
        "gan_noise_dim": [Interval(int, 1, None)],
        "gan_critic_iters": [Interval(int, 1, None)],
        "gan_lr": [Interval(float, 0, None)],
        "gan_batch_size": [Interval(int, 1, None)],
        "gan_gp_lambda": [Interval(float, 0, None)],
        "gan_cls_weight": [Interval(float, 0, None)],
        "random_state": [None, Interval(int, 0, None)],
        "progress": [bool],
        "n_threads": [None, Interval(int, 1, None)],
    }
    runtime_params = ("progress", "n_threads")

    def __init__(self, *, beta: float = 1e-2, lambda_rec: float = 1e-2, lambda_cls: float = 1e-1,
                 lambda_inter: float = 1e-1, use_generated: bool = True, use_inter_class: bool = True,
                 use_decoder: bool = True, relation: str = "lstsq", ridge: float = 1e-1,
                 soft_label_scale: float = 0.5, rbf_anchors: int | None = None, n_components: int | None = 256, feature_scale: str = "std", pca_max_samples: int = 4000, hidden: int = 1024,
                 relation_hidden: int = 128, fusion_dim: int = 64, epochs: int = 5, batch_size: int = 64, lr: float = 2e-3,
                 weight_decay: float = 1e-5, n_synth_per_class: int = 300, gan_epochs: int = 4,
                 gan_hidden: int = 512, gan_noise_dim: int = 64, gan_critic_iters: int = 5, gan_lr: float = 1e-4,
                 gan_batch_size: int = 512, gan_gp_lambda: float = 10.0, gan_cls_weight: float = 0.01,
                 random_state: int = 0, progress: bool = False, n_threads: int | None = 1):
        self.beta = beta
        self.lambda_rec = lambda_rec
        self.lambda_cls = lambda_cls
        self.lambda_inter = lambda_inter
        self.use_generated = use_generated
        self.use_inter_class = use_inter_class
        self.use_decoder = use_decoder
        self.relation = relation
        self.ridge = ridge
        self.soft_label_scale = soft_label_scale
        self.rbf_anchors = rbf_anchors
        self.n_components = n_components
        self.feature_scale = feature_scale
        self.pca_max_samples = pca_max_samples
        self.hidden = hidden
        self.relation_hidden = relation_hidden
        self.fusion_dim = fusion_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_synth_per_class = n_synth_per_class
        self.gan_epochs = gan_epochs
        self.gan_hidden = gan_hidden
        self.gan_noise_dim = gan_noise_dim
        self.gan_critic_iters = gan_critic_iters
        self.gan_lr = gan_lr
        self.gan_batch_size = gan_batch_size
        self.gan_gp_lambda = gan_gp_lambda
        self.gan_cls_weight = gan_cls_weight
        self.random_state = random_state
        self.progress = progress
        self.n_threads = n_threads

    # -- preprocessing --------------------------------------------------------------------
    def _features(self, X: np.ndarray) -> np.ndarray:
        """Raw features (n, d) -> CPL's visual space (n, d'): optional PCA, then ``feature_scale``."""
        return self.preprocessor_.transform(X)

    # -- training -------------------------------------------------------------------------
    def fit(self, X, y, class_embeddings, seen_classes):
        X, y, S, seen = self._validate_fit(X, y, class_embeddings, seen_classes)
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS}, got {self.relation!r}")
        from ._torch_utils import torch_threads

        with torch_threads(self.n_threads):
            return self._fit(X, y, S, seen)

    def _fit(self, X, y, S, seen):
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(S)
        unseen = np.setdiff1d(np.arange(len(S)), seen)
        self.seen_classes_ = seen

        # visual space: PCA fitted on (a row subsample of) the training features, then scaled
        from ._torch_utils import FeaturePreprocessor, init_default_

        self.preprocessor_ = FeaturePreprocessor(self.n_components, scale=self.feature_scale, random_state=self.random_state,
                                                 max_samples=self.pca_max_samples, rbf_anchors=self.rbf_anchors).fit(X)
        Z = self.preprocessor_.transform(X)
        A = scale_semantics(S)
        self.semantics_ = A

        # 1. generated unseen features (f-CLSWGAN generator trained on the seen classes)
        use_gen = self.use_generated and len(unseen) > 0
        if use_gen:
            from .fclswgan import synthesize, train_conditional_wgan

            gan = dict(noise_dim=self.gan_noise_dim, hidden=self.gan_hidden, epochs=self.gan_epochs,
                       batch_size=self.gan_batch_size, lr=self.gan_lr, critic_iters=self.gan_critic_iters,
                       gp_lambda=self.gan_gp_lambda, cls_weight=self.gan_cls_weight, random_state=self.random_state)
            generator = train_conditional_wgan(Z, y, A, seen, progress=self.progress, **gan)
            Xg, yg = synthesize(generator, A, unseen, self.n_synth_per_class, random_state=self.random_state)
            Xg = torch.as_tensor(np.asarray(Xg, dtype=np.float32))
            yg = torch.as_tensor(np.asarray(yg, dtype=np.int64))
            self.generator_ = generator
        else:
            self.generator_ = None

        # soft labels (|S|, |U|) for the inter-class loss
        use_inter = self.use_inter_class and len(unseen) > 0
        self.soft_labels_ = soft_labels(S, seen, unseen, relation=self.relation, ridge=self.ridge,
                                        scale=self.soft_label_scale) if len(unseen) else np.zeros((len(seen), 0), np.float32)

        d, k = Z.shape[1], A.shape[1]
        encoder, decoder, relation_net = _build_modules(k, d, self.hidden, self.relation_hidden, self.use_decoder,
                                                        self.fusion_dim)
        # the networks start from the same state with or without G: their own generator, seeded here
        init_gen = torch.Generator().manual_seed(int(self.random_state or 0))
        for module in (encoder, decoder, relation_net):
            if module is not None:
                init_default_(module, init_gen)
        params = list(encoder.parameters()) + list(relation_net.parameters()) + (list(decoder.parameters()) if decoder else [])
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        mse = nn.functional.mse_loss

        A_t = torch.as_tensor(A)
        Z_t = torch.as_tensor(Z)
        col = torch.as_tensor(np.searchsorted(seen, y))  # label -> column among seen classes
        onehot = nn.functional.one_hot(col, len(seen)).float()
        soft_t = torch.as_tensor(self.soft_labels_)
        seen_t, unseen_t = torch.as_tensor(seen), torch.as_tensor(unseen)
        n = len(Z)
        bs = min(self.batch_size, n)
        steps = max(1, n // bs)
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        history = []
        from tqdm.auto import tqdm

        for _epoch in tqdm(range(self.epochs), desc="cpl", disable=not self.progress, file=None):
            perm = torch.randperm(n, generator=gen)
            totals = np.zeros(5)
            for step in range(steps):
                idx = perm[step * bs:(step + 1) * bs]
                x, c = Z_t[idx], col[idx]
                E_all = encoder(A_t)  # (C, d')
                E_seen = E_all[seen_t]
                loss_proj = mse(E_seen[c], x)
                if use_gen:
                    gidx = torch.randint(len(Xg), (len(idx),), generator=gen)
                    loss_proj = loss_proj + self.beta * mse(E_all[yg[gidx]], Xg[gidx])
                loss_rec = mse(decoder(E_all), A_t) if decoder is not None else torch.zeros(())
                loss_cls = mse(relation_net(x, E_seen), onehot[idx])
                loss_inter = mse(relation_net(x, E_all[unseen_t]), soft_t[c]) if use_inter else torch.zeros(())
                loss = loss_proj + self.lambda_rec * loss_rec + self.lambda_cls * loss_cls + self.lambda_inter * loss_inter
                opt.zero_grad()
                loss.backward()
                opt.step()
                totals += [float(v.detach()) for v in (loss, loss_proj, loss_rec, loss_cls, loss_inter)]
            history.append(dict(zip(("loss", "proj", "rec", "cls", "inter"), (totals / steps).tolist())))
        encoder.eval()
        relation_net.eval()
        self.encoder_, self.decoder_, self.relation_net_ = encoder, decoder, relation_net
        self.history_ = history
        with torch.no_grad():
            self.class_prototypes_ = encoder(A_t).numpy()  # E(a_c) for every class, (C, d')
        return self

    # -- prediction -----------------------------------------------------------------------
    def embed(self, X) -> np.ndarray:
        """Features in CPL's visual space (n, d') -- used by the analyses (t-SNE)."""
        self._check_is_fitted()
        from ..base import check_features

        return self._features(check_features(X))

    def decision_function(self, X, candidates):
        X, candidates = self._validate_predict(X, candidates)
        from ._torch_utils import torch_threads

        with torch_threads(self.n_threads):
            return self._scores(X, candidates)

    def _scores(self, X, candidates):
        Z = torch.as_tensor(self._features(X))
        E = torch.as_tensor(self.class_prototypes_[candidates])
        out = np.empty((len(Z), len(candidates)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(Z), 1024):
                out[start:start + 1024] = self.relation_net_(Z[start:start + 1024], E).numpy()
        return out
