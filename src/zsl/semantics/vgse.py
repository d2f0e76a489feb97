"""VGSE: visually-grounded semantic embeddings learnt from image patches of the seen classes.

Reference: W. Xu, Y. Xian, J. Wang, B. Schiele, Z. Akata, "VGSE: Visually-Grounded Semantic
Embeddings for Zero-Shot Learning", CVPR 2022 (``/work/shared/papers/vgse-...txt``).

Output: a class-embedding matrix ``Phi`` (C, D_v) that any method consumes like attributes or word
vectors (``--semantics vgse``), stored in the cache for one (dataset, split), together with its
*validation-stage* twin (see 3.).

1. Patches and frozen features theta(x_nt): :mod:`zsl.semantics.vgse_patches` (a 3 x 3 lattice of
   square crops per photo, EfficientNet-Lite0 penultimate features, cached by content). Only the
   ``trainval`` photos of the classes being modelled are read: never an unseen-class photo, never a
   ``test_seen`` photo (those are scored as S).
2. Patch clustering module (:class:`PatchClustering`), trained end to end on the patches:
   * projection head g (trainable, Linear 1280 -> ``hidden`` + ReLU) on the standardised frozen
     features: the paper "simultaneously learns image patch representations and clustering"; with
     a frozen backbone (no GPU here) the representation that is learnt is this head;
   * clustering layer H: a_nt = softmax(H g(theta(x_nt))) in the D_v-simplex;
   * cluster-to-class layer Q: L_cls = CE(Q a_nt, y_n) (the paper writes Q o theta; Q maps the
     cluster probabilities, D_v -> |Y_s|, as its definition says);
   * cluster-to-semantic layer S: L_sem = ||S a_nt - phi_w(y_n)||_2 (not squared, as written),
     phi_w the class-name vector (GloVe or MiniLM), L2-normalised so that lambda_sem means the same
     for both sources;
   * cluster balance: L_bal = KL(mean_batch a || uniform) = sum_k abar_k log(D_v abar_k), which
     keeps every cluster in use (without it the softmax collapses onto a few clusters that are
     enough for L_cls, and the embedding loses dimensions);
   * L = L_cls + lambda_sem L_sem + lambda_bal L_bal, Adam over minibatches of patches;
   * image embedding a_n = mean_t a_nt; class embedding phi(y) = mean of a_n over its images.
3. Class relation module (:mod:`zsl.semantics.relation`): for a class u without images,
   r = argmin ||w_u - r^T W_s|| s.t. alpha <= r <= 1, sum r = 1 (exact QP), phi(u) = r^T Phi_s.
   alpha may be negative (an unseen class may lie outside the seen classes' hull); it is chosen on
   the validation classes (below). The least-squares and cosine weightings are stored beside it
   (sources ``vgse-lstsq``, ``vgse-cosine``) for the comparison the paper makes.

Honest validation (two fits). Tuning a downstream method treats the validation classes as
unseen, so the matrix it tunes with must treat them as the test treats unseen classes:
   * the *selection model* is fitted on the train classes' photos only; train classes get their
     embeddings from their images, validation classes (and test classes) through the relation step
     from the train classes -> ``validation_embeddings[source]``;
   * the *final model* is fitted on all seen classes' photos; seen classes (train + validation) from
     their images, unseen classes through the relation step from all seen classes ->
     ``embeddings[source]``.
alpha, D_v and the loss weights are chosen with the selection model's matrices scored on the
validation classes (``zsl vgse fit`` chooses alpha itself; D_v and the loss weights come from the
validation study in ``benchmarks/results/vgse.md``). Test classes are never looked at.

Stored (``<cache root>/vgse/fit/<dataset>-<split>/``): ``embeddings.npz`` (class names and class
sets; ``<source>@test`` and ``<source>@val`` matrices for the three sources; the relation weights),
``model-train.npz`` / ``model-seen.npz`` (the two clustering modules as plain arrays, loaded with
``allow_pickle=False``), ``meta.json`` (config, chosen alpha and its validation scores, timings).
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, ZSLError
from ..io import atomic_save_npz, atomic_write, cache_root, write_json
from ..params import Interval, validate_params
from .relation import RELATIONS, class_relation
from .vgse_patches import (  # noqa: F401 - re-exported: the VGSE API
    dataset_image_paths,
    extract_patch_features,
    image_patches,
    patch_boxes,
)

SOURCES = {"qp": "vgse", "lstsq": "vgse-lstsq", "cosine": "vgse-cosine"}
FORMAT_VERSION = 2


# ------------------------------------------------------------------------------------------------
# patch clustering module
def _build_module(d_in: int, hidden: int, n_clusters: int, n_classes: int, d_sem: int):
    import torch.nn as nn

    class PatchClusteringNet(nn.Module):
        """g (D_f -> hidden, ReLU; identity if hidden=0), H (-> D_v, softmax), Q (D_v -> |Y_s|), S (D_v -> D_w)."""

        def __init__(self):
            super().__init__()
            self.g = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU()) if hidden else nn.Identity()
            self.H = nn.Linear(hidden or d_in, n_clusters)
            self.Q = nn.Linear(n_clusters, n_classes)
            self.S = nn.Linear(n_clusters, d_sem)

        def assign(self, x):
            return self.H(self.g(x)).softmax(-1)  # a_nt: cluster probabilities

        def forward(self, x):
            a = self.assign(x)
            return a, self.Q(a), self.S(a)

    return PatchClusteringNet()


def _init_from(module, gen) -> None:
    """PyTorch's default Linear init (U(+-1/sqrt(fan_in))), drawn from ``gen`` (no global RNG)."""
    import math

    import torch
    import torch.nn as nn

    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * bound)


class PatchClustering:
    """The patch clustering module of VGSE (see the module docstring, step 2).

    ``fit(patch_features (n, N_t, D_f), labels (n,) in 0..K-1, word_vectors (K, D_w))``; fitted
    attributes: ``class_embeddings_`` (K, D_v), ``mean_``/``std_`` (feature standardisation),
    ``module_`` (torch), ``history_`` (per-epoch losses, patch accuracy of Q, cluster usage).
    ``assign(P)`` -> (..., D_v) cluster probabilities; ``image_embeddings(P)`` -> (n, D_v).
    """

    parameter_constraints = {
        "n_clusters": [Interval(int, 2, None)],
        "hidden": [Interval(int, 0, None)],
        "lambda_sem": [Interval(float, 0, None)],
        "lambda_bal": [Interval(float, 0, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "weight_decay": [Interval(float, 0, None)],
        "n_threads": [None, Interval(int, 1, None)],
        "random_state": [Interval(int, 0, None)],
        "progress": [bool],
    }

    def __init__(self, *, n_clusters: int = 64, hidden: int = 512, lambda_sem: float = 1.0, lambda_bal: float = 1.0,
                 epochs: int = 15, batch_size: int = 512, lr: float = 1e-3, weight_decay: float = 1e-5,
                 n_threads: int | None = 1, random_state: int = 0, progress: bool = False):
        self.n_clusters = n_clusters
        self.hidden = hidden
        self.lambda_sem = lambda_sem
        self.lambda_bal = lambda_bal
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_threads = n_threads
        self.random_state = random_state
        self.progress = progress

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in self.parameter_constraints}

    def fit(self, patch_features, labels, word_vectors) -> PatchClustering:
        import torch
        import torch.nn.functional as F
        from tqdm.auto import tqdm

        from ..nn import deterministic_torch

        validate_params("vgse clustering", self.get_params(), self.parameter_constraints)
        P = np.asarray(patch_features)
        labels = np.asarray(labels, np.int64)
        W = np.asarray(word_vectors, np.float32)
        if P.ndim != 3 or len(P) != len(labels):
            raise ZSLError(
                f"patch features must be (n_images, N_t, D_f) with one label per image; got {P.shape}, {labels.shape}"
            )
        K = len(W)
        if len(labels) == 0 or labels.min() < 0 or labels.max() >= K or len(np.unique(labels)) != K:
            raise ZSLError(
                f"labels must cover 0..{K - 1} (one word vector per class); got {np.unique(labels).tolist()[:10]}"
            )
        if not (np.isfinite(W).all() and np.isfinite(P).all()):
            raise ZSLError("VGSE clustering: patch features or word vectors contain NaN/inf")
        t0 = time.perf_counter()
        with deterministic_torch(self.n_threads):
            n, nt, d = P.shape
            flat = P.reshape(n * nt, d).astype(np.float32)
            self.mean_ = flat.mean(0)
            self.std_ = flat.std(0) + 1e-3
            X = torch.from_numpy((flat - self.mean_) / self.std_)
            y = torch.from_numpy(np.repeat(labels, nt))
            Wn = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
            Wt = torch.from_numpy(Wn)
            gen = torch.Generator().manual_seed(self.random_state)
            module = _build_module(d, self.hidden, self.n_clusters, K, W.shape[1])
            _init_from(module, gen)
            opt = torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            log_dv = float(np.log(self.n_clusters))
            self.history_ = []
            for epoch in tqdm(
                range(self.epochs), disable=not self.progress, file=sys.stderr, desc="VGSE clustering", unit="epoch"
            ):
                module.train()
                perm = torch.randperm(len(X), generator=gen)
                tot = {"cls": 0.0, "sem": 0.0, "bal": 0.0, "acc": 0.0}
                for s in range(0, len(X), self.batch_size):
                    idx = perm[s:s + self.batch_size]
                    a, logits, sem = module(X[idx])
                    l_cls = F.cross_entropy(logits, y[idx])
                    l_sem = (sem - Wt[y[idx]]).norm(dim=1).mean()
                    abar = a.mean(0)
                    l_bal = (abar * (abar.clamp_min(1e-12).log())).sum() + log_dv  # KL(abar || uniform)
                    loss = l_cls + self.lambda_sem * l_sem + self.lambda_bal * l_bal
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    k = len(idx)
                    tot["cls"] += l_cls.item() * k
                    tot["sem"] += l_sem.item() * k
                    tot["bal"] += l_bal.item() * k
                    tot["acc"] += (logits.argmax(1) == y[idx]).float().sum().item()
                if not np.isfinite(tot["cls"]):
                    raise ZSLError(f"VGSE clustering diverged at epoch {epoch} (loss NaN); lower lr={self.lr}")
                self.history_.append({"epoch": epoch, **{k: v / len(X) for k, v in tot.items()}})
            module.eval()
            self.module_ = module
            self.n_classes_ = K
            self.d_sem_ = W.shape[1]
            A = self.assign(P)  # (n, N_t, D_v)
            img = A.mean(1)
            self.class_embeddings_ = np.stack([img[labels == k].mean(0) for k in range(K)]).astype(np.float32)
            # effective number of clusters used (exp of the entropy of the overall assignment mass)
            mass = A.reshape(-1, self.n_clusters).mean(0)
            self.clusters_used_ = float(np.exp(-(mass * np.log(np.maximum(mass, 1e-12))).sum()))
            self.fit_seconds_ = time.perf_counter() - t0
        return self

    def assign(self, patch_features: np.ndarray, batch: int = 8192) -> np.ndarray:
        """(..., D_f) patch features -> (..., D_v) cluster probabilities a_nt."""
        import torch

        if not hasattr(self, "module_"):
            raise ZSLError("PatchClustering is not fitted; call fit() or load a stored model first")
        P = np.asarray(patch_features)
        flat = P.reshape(-1, P.shape[-1])
        out = []
        with torch.inference_mode():
            for s in range(0, len(flat), batch):
                x = torch.from_numpy(
                    ((flat[s : s + batch].astype(np.float32) - self.mean_) / self.std_).astype(np.float32)
                )
                out.append(self.module_.assign(x).numpy())
        return np.concatenate(out).reshape(*P.shape[:-1], -1)

    def image_embeddings(self, patch_features: np.ndarray) -> np.ndarray:
        """(n, N_t, D_f) -> (n, D_v): a_n, the mean of the image's patch assignments."""
        return self.assign(patch_features).mean(1)

    # plain-array storage: no pickle, no code in the file
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"state/{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        arrays.update(
            mean=self.mean_, std=self.std_, class_embeddings=self.class_embeddings_,
            params=np.asarray(json.dumps(self.get_params())), shape=np.asarray([self.n_classes_, self.d_sem_]),
        )
        return arrays

    @classmethod
    def from_arrays(cls, arrays, where: str = "model") -> PatchClustering:
        import torch

        try:
            params = json.loads(str(arrays["params"]))
            obj = cls(**params)
            n_classes, d_sem = (int(v) for v in arrays["shape"])
            obj.mean_, obj.std_ = np.asarray(arrays["mean"], np.float32), np.asarray(arrays["std"], np.float32)
            obj.class_embeddings_ = np.asarray(arrays["class_embeddings"], np.float32)
            obj.n_classes_, obj.d_sem_ = n_classes, d_sem
            module = _build_module(len(obj.mean_), obj.hidden, obj.n_clusters, n_classes, d_sem)
            state = {
                k[len("state/") :]: torch.from_numpy(np.asarray(arrays[k]))
                for k in arrays.keys()
                if k.startswith("state/")
            }
            module.load_state_dict(state, strict=True)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise DataError(f"{where}: not a VGSE clustering model of this version ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:100]}); refit with `zsl vgse fit`") from None
        module.eval()
        obj.module_ = module
        return obj


def transfer_to_unseen(seen_embeddings: np.ndarray, W_seen: np.ndarray, W_unseen: np.ndarray,
                       relation: str = "qp", *, alpha: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Class relation module: (U, D_v) embeddings r^T Phi_s of classes without images, and R (U, S)."""
    kw = {"alpha": alpha} if relation == "qp" else {}
    R = class_relation(W_seen, W_unseen, relation, **kw)
    return (R @ seen_embeddings).astype(np.float32), R


def embedding_matrix(n_classes: int, modelled: np.ndarray, Phi_modelled: np.ndarray, W: np.ndarray,
                     relation: str = "qp", alpha: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(C, D_v) class embeddings: rows ``modelled`` = their image embeddings, every other row by relation.

    Returns the matrix and the relation weights R (C - |modelled|, |modelled|) of the other classes
    (in increasing class id).
    """
    modelled = np.asarray(modelled)
    others = np.setdiff1d(np.arange(n_classes), modelled)
    Phi = np.zeros((n_classes, Phi_modelled.shape[1]), np.float32)
    Phi[modelled] = Phi_modelled
    Phi[others], R = transfer_to_unseen(Phi_modelled, W[modelled], W[others], relation, alpha=alpha)
    return Phi, R


# ------------------------------------------------------------------------------------------------
# dataset-level fit
@dataclass
class VGSEConfig:
    """Everything a VGSE fit depends on besides the data (recorded in meta.json)."""

    grid: int = 3
    patch_fraction: float = 0.5
    resolution: int = 64
    images_per_class: int | None = None  # None = every trainval photo of the class
    word_vectors: str = "glove"
    n_clusters: int = 32  # D_v: chosen on FLO's validation classes among 16..256 (benchmarks/results/vgse.md)
    hidden: int = 512
    lambda_sem: float = 1.0
    lambda_bal: float = 1.0
    epochs: int = 15
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    alphas: tuple = (0.0, -0.01, -0.03, -0.1)  # candidates; chosen on validation when a scorer is given
    alpha: float | None = None  # fixed alpha (skips the choice)

    def clustering(self, progress: bool = False) -> PatchClustering:
        return PatchClustering(n_clusters=self.n_clusters, hidden=self.hidden, lambda_sem=self.lambda_sem,
                               lambda_bal=self.lambda_bal, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                               random_state=self.seed, progress=progress)


def fit_dir(dataset_name: str, split: str, cache_dir=None) -> Path:
    return cache_root(cache_dir) / "vgse" / "fit" / f"{dataset_name}-{split}"


def class_image_paths(dataset, classes, images_per_class: int | None = None, cache_dir=None,
                      paths: list[str] | None = None) -> dict[int, list[str]]:
    """{class id: sorted trainval photo paths} for ``classes``; at most ``images_per_class`` each
    (the first ones in sorted order, so every fit that uses a class reads the same photos)."""
    paths = paths if paths is not None else dataset_image_paths(dataset, cache_dir)
    tv = dataset.splits["trainval"]
    out = {}
    for c in classes:
        rows = tv[dataset.y[tv] == c]
        if not len(rows):
            raise DataError(
                f"dataset {dataset.name!r}: class {dataset.class_names[c]!r} has no trainval photos for VGSE"
            )
        cls_paths = sorted(paths[i] for i in rows)
        out[int(c)] = cls_paths[:images_per_class] if images_per_class else cls_paths
    return out


@dataclass
class PatchBank:
    """Patch features of the trainval photos of some classes: one (n_c, N_t, D_f) array per class."""

    features: dict[int, np.ndarray]
    paths: dict[int, list[str]]
    extract_seconds: float = 0.0
    extract_cpu_seconds: float = 0.0

    def stack(self, classes) -> tuple[np.ndarray, np.ndarray]:
        """(n, N_t, D_f) features and labels 0..len(classes)-1 (position in ``classes``)."""
        P = np.concatenate([self.features[int(c)] for c in classes])
        y = np.concatenate([np.full(len(self.features[int(c)]), k) for k, c in enumerate(classes)])
        return P, y


def load_patch_bank(dataset, classes, cfg: VGSEConfig, *, cache_dir=None, progress: bool = True) -> PatchBank:
    """Extract (or read from the cache) the patch features of the trainval photos of ``classes``."""
    from ..features.efficientnet import load_efficientnet_lite0

    per_class = class_image_paths(dataset, classes, cfg.images_per_class, cache_dir)
    t0, c0 = time.perf_counter(), time.process_time()
    model = None
    feats = {}
    from tqdm.auto import tqdm

    for c in tqdm(list(per_class), disable=not progress, file=sys.stderr, desc="VGSE patches (classes)", unit="class"):
        folder_ok = False
        if model is None:
            from .vgse_patches import patch_cache_dir

            folder_ok = (patch_cache_dir(per_class[c], grid=cfg.grid, patch_fraction=cfg.patch_fraction,
                                         resolution=cfg.resolution, cache_dir=cache_dir) / "patches.npy").is_file()
            if not folder_ok:
                model = load_efficientnet_lite0()
        feats[c] = extract_patch_features(per_class[c], grid=cfg.grid, patch_fraction=cfg.patch_fraction,
                                          resolution=cfg.resolution, cache_dir=cache_dir, progress=False, model=model)
    return PatchBank(feats, per_class, time.perf_counter() - t0, time.process_time() - c0)


def word_vectors(dataset, source: str) -> np.ndarray:
    if source not in dataset.embeddings or source.startswith("vgse"):
        names = sorted(k for k in dataset.embeddings if not k.startswith("vgse"))
        raise DataError(
            f"dataset {dataset.name!r} has no {source!r} class-name vectors for VGSE; available: {', '.join(names)}"
        )
    return dataset.embeddings[source]


def fit_stage(dataset, bank: PatchBank, classes, cfg: VGSEConfig, *, progress: bool = False) -> PatchClustering:
    """Fit the clustering module on the trainval patches of ``classes`` (labels = position in ``classes``)."""
    P, y = bank.stack(classes)
    W = word_vectors(dataset, cfg.word_vectors)
    return cfg.clustering(progress).fit(P, y, W[np.asarray(classes)])


def stage_matrices(dataset, model: PatchClustering, modelled, cfg: VGSEConfig, alpha: float) -> tuple[dict, dict]:
    """{source: (C, D_v)} for the three relations, and {relation: R}, classes ``modelled`` from images."""
    W = word_vectors(dataset, cfg.word_vectors)
    mats, rels = {}, {}
    for rel in RELATIONS:
        mats[SOURCES[rel]], rels[rel] = embedding_matrix(
            dataset.n_classes, np.asarray(modelled), model.class_embeddings_, W, rel, alpha
        )
    return mats, rels


def choose_alpha(dataset, selection_model: PatchClustering, cfg: VGSEConfig,
                 scorer: Callable[[np.ndarray], float] | None) -> tuple[float, list[dict]]:
    """alpha of the QP relation: ``cfg.alpha`` if fixed, else the candidate whose validation-stage
    matrix scores best on the validation classes (``scorer(S_val) -> score``); ties -> the first."""
    if cfg.alpha is not None or scorer is None:
        return (cfg.alpha if cfg.alpha is not None else cfg.alphas[0]), []
    W = word_vectors(dataset, cfg.word_vectors)
    trials = []
    for a in cfg.alphas:
        S_val, _ = embedding_matrix(
            dataset.n_classes, dataset.train_classes, selection_model.class_embeddings_, W, "qp", a
        )
        trials.append({"alpha": float(a), "score": float(scorer(S_val))})
    best = max(trials, key=lambda t: t["score"])
    return best["alpha"], trials


def fit_vgse(dataset, config: VGSEConfig | None = None, *, scorer: Callable[[np.ndarray], float] | None = None,
             cache_dir=None, progress: bool = True, store: bool = True) -> dict:
    """Fit the selection model (train classes) and the final model (seen classes); store both stages.

    ``scorer(S_val) -> float``: the validation score of a validation-stage matrix (higher is better),
    used to choose alpha among ``config.alphas``; without it alpha = ``config.alpha`` or the first
    candidate. Returns a summary dict (timings, chosen alpha and its trials, training histories).
    """
    cfg = config or VGSEConfig()
    seen = np.asarray(dataset.seen_classes)
    train = np.asarray(dataset.train_classes)
    if not len(dataset.val_classes):
        raise DataError(f"dataset {dataset.name!r} split {dataset.split!r} has no validation classes; VGSE's "
                        "selection model needs them")
    word_vectors(dataset, cfg.word_vectors)  # fail early on a missing source
    bank = load_patch_bank(dataset, seen, cfg, cache_dir=cache_dir, progress=progress)
    c0 = time.process_time()
    selection = fit_stage(dataset, bank, train, cfg, progress=progress)
    alpha, trials = choose_alpha(dataset, selection, cfg, scorer)
    final = fit_stage(dataset, bank, seen, cfg, progress=progress)
    train_cpu = time.process_time() - c0
    val_mats, val_rels = stage_matrices(dataset, selection, train, cfg, alpha)
    test_mats, test_rels = stage_matrices(dataset, final, seen, cfg, alpha)
    summary = {
        "dataset": dataset.name,
        "split": dataset.split,
        "format": FORMAT_VERSION,
        "config": asdict(cfg),
        "alpha": alpha,
        "alpha_trials": trials,
        "n_images": int(sum(len(v) for v in bank.paths.values())),
        "n_patches": int(sum(v.shape[0] * v.shape[1] for v in bank.features.values())),
        "extract_seconds": bank.extract_seconds,
        "extract_cpu_seconds": bank.extract_cpu_seconds,
        "train_seconds": selection.fit_seconds_ + final.fit_seconds_,
        "train_cpu_seconds": train_cpu,
        "selection_model": {
            "classes": len(train), "final_epoch": selection.history_[-1], "clusters_used": selection.clusters_used_,
        },
        "final_model": {"classes": len(seen), "final_epoch": final.history_[-1], "clusters_used": final.clusters_used_},
        "seen_images": {dataset.class_names[c]: bank.paths[int(c)] for c in seen},
    }
    if not store:
        summary.update(val_matrices=val_mats, test_matrices=test_mats, selection=selection, final=final)
        return summary
    out = fit_dir(dataset.name, dataset.split, cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"{k}@test": v for k, v in test_mats.items()}
    arrays.update({f"{k}@val": v for k, v in val_mats.items()})
    arrays.update({f"relation-{k}@test": v for k, v in test_rels.items()})
    arrays.update({f"relation-{k}@val": v for k, v in val_rels.items()})
    atomic_save_npz(out / "embeddings.npz", class_names=np.asarray(dataset.class_names), seen_classes=seen,
                    unseen_classes=dataset.unseen_classes, train_classes=train, val_classes=dataset.val_classes,
                    format=np.asarray(FORMAT_VERSION), **arrays)
    atomic_save_npz(out / "model-train.npz", **selection.to_arrays())
    atomic_save_npz(out / "model-seen.npz", **final.to_arrays())
    summary["path"] = str(out)
    write_json(out / "meta.json", summary)
    return summary


def load_clustering(dataset_name: str, split: str, stage: str = "seen", cache_dir=None) -> PatchClustering:
    """A stored clustering module: ``stage="seen"`` (final model) or ``"train"`` (selection model)."""
    path = fit_dir(dataset_name, split, cache_dir) / f"model-{stage}.npz"
    if not path.is_file():
        raise DataError(f"{path}: no VGSE model; run `zsl vgse fit --dataset {dataset_name} --split {split}`")
    try:
        with np.load(path, allow_pickle=False) as z:
            return PatchClustering.from_arrays({k: z[k] for k in z.files}, where=str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable VGSE model ({type(exc).__name__}); refit with `zsl vgse fit`") from None


def attach_vgse(dataset, cache_dir=None):
    """Add ``vgse``, ``vgse-lstsq`` and ``vgse-cosine`` (test- and validation-stage) when a fit is cached.

    A stored fit whose classes or class sets differ from the dataset, or of an older format, is not
    attached (a warning says to refit). Returns the dataset (modified in place).
    """
    path = fit_dir(dataset.name, dataset.split, cache_dir) / "embeddings.npz"
    if not path.is_file():
        return dataset
    refit = f"refit with `zsl vgse fit --dataset {dataset.name} --split {dataset.split}`"
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z.files or int(z["format"]) != FORMAT_VERSION:
                warnings.warn(
                    f"{path}: stored VGSE embeddings are of an older format; {refit}", UserWarning, stacklevel=2
                )
                return dataset
            same = (z["class_names"].tolist() == list(dataset.class_names)
                    and all(np.array_equal(z[k], getattr(dataset, k))
                            for k in ("seen_classes", "unseen_classes", "train_classes", "val_classes")))
            if not same:
                warnings.warn(f"{path}: stored VGSE embeddings were fitted for other classes or another split; {refit}",
                              UserWarning, stacklevel=2)
                return dataset
            for source in SOURCES.values():
                dataset.embeddings[source] = np.asarray(z[f"{source}@test"], np.float32)
                dataset.validation_embeddings[source] = np.asarray(z[f"{source}@val"], np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: unreadable VGSE embeddings ({type(exc).__name__}); {refit}") from None
    dataset.validate()
    return dataset


# ------------------------------------------------------------------------------------------------
# the paper's qualitative figure
def cluster_figure(dataset, out_path, *, n_clusters_shown: int = 6, per_row: int = 6, unseen_images: int = 10,
                   cache_dir=None, progress: bool = True) -> Path:
    """PNG: for ``n_clusters_shown`` clusters, the patches nearest to each cluster's centre, with their class.

    "Nearest to the centre" = highest assignment probability a_nt^k (the clustering layer is a
    softmax over clusters, so the most confidently assigned patches are the prototypical ones), at
    most one patch per photo. Left panel: seen-class training patches used by the final fit; right
    panel: patches of the first ``unseen_images`` test photos of every unseen class (read only here,
    never by a fit). Clusters shown: the most used ones (largest assignment mass over seen and unseen
    patches) among those whose strongest unseen patch is confidently assigned (>= 0.5), so each row
    shows a visual property found in seen and unseen classes alike.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = fit_dir(dataset.name, dataset.split, cache_dir)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise DataError(
            f"{meta_path}: no VGSE fit; run `zsl vgse fit --dataset {dataset.name} --split {dataset.split}`"
        )
    meta = json.loads(meta_path.read_text())
    cfg = meta["config"]
    model = load_clustering(dataset.name, dataset.split, "seen", cache_dir)
    kw = dict(grid=cfg["grid"], patch_fraction=cfg["patch_fraction"], resolution=cfg["resolution"], cache_dir=cache_dir,
              progress=False)

    def collect(paths_by_class: dict[str, list[str]]):
        paths, names, assign = [], [], []
        for name, paths_c in paths_by_class.items():
            assign.append(model.assign(extract_patch_features(paths_c, **kw)))
            paths += paths_c
            names += [name] * len(paths_c)
        return paths, names, np.concatenate(assign)  # (n, N_t, D_v)

    s_paths, s_names, s_A = collect(meta["seen_images"])
    all_paths = dataset_image_paths(dataset, cache_dir)
    tu = dataset.splits["test_unseen"]
    unseen = {dataset.class_names[c]: sorted(all_paths[i] for i in tu[dataset.y[tu] == c])[:unseen_images]
              for c in dataset.unseen_classes}
    u_paths, u_names, u_A = collect(unseen)
    mass = s_A.sum((0, 1)) + u_A.sum((0, 1))
    u_best = u_A.reshape(-1, u_A.shape[2]).max(0)
    order = np.argsort(-mass)
    confident = [k for k in order if u_best[k] >= 0.5]
    chosen = (confident + [k for k in order if k not in confident])[:n_clusters_shown]

    fig, axes = plt.subplots(len(chosen), 2 * per_row, figsize=(2 * per_row * 1.15, len(chosen) * 1.45))
    axes = np.atleast_2d(axes)
    for row, k in enumerate(chosen):
        for panel, (paths, names, A) in enumerate(((s_paths, s_names, s_A), (u_paths, u_names, u_A))):
            best_t = A[:, :, k].argmax(1)  # one patch per photo: its most typical one
            best = A[np.arange(len(A)), best_t, k]
            top = np.argsort(-best)[:per_row]
            for j in range(per_row):
                ax = axes[row, panel * per_row + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= len(top):
                    ax.axis("off")
                    continue
                img_i = int(top[j])
                patch = image_patches(paths[img_i], cfg["grid"], cfg["patch_fraction"])[int(best_t[img_i])]
                ax.imshow(patch, interpolation="nearest")
                ax.set_title(f"{names[img_i][:16]} {best[img_i]:.2f}", fontsize=5.5)
        axes[row, 0].set_ylabel(f"cluster {k}", fontsize=7)
    fig.suptitle(f"VGSE {dataset.name} {dataset.split}: photos' patches nearest to {len(chosen)} cluster centres "
                 f"(left: seen classes, right: unseen classes); title = class, assignment probability", fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return out_path


__all__ = [
    "PatchBank",
    "PatchClustering",
    "SOURCES",
    "VGSEConfig",
    "attach_vgse",
    "choose_alpha",
    "class_image_paths",
    "cluster_figure",
    "embedding_matrix",
    "fit_dir",
    "fit_stage",
    "fit_vgse",
    "load_clustering",
    "load_patch_bank",
    "stage_matrices",
    "transfer_to_unseen",
    "word_vectors",
]
