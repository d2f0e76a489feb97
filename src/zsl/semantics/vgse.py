"""VGSE: visually-grounded semantic embeddings learnt from image patches of the seen classes.

Reference: W. Xu, Y. Xian, J. Wang, B. Schiele, Z. Akata, "VGSE: Visually-Grounded Semantic
Embeddings for Zero-Shot Learning", CVPR 2022 (``/work/shared/papers/vgse-...txt``).

Output: a class-embedding matrix ``Phi`` (C, D_v) that any method consumes like attributes or word
vectors (``--semantics vgse``), stored in the cache for one (dataset, split).

1. Patch clustering module (seen classes only)
   * every training image x_n of a seen class is cropped into N_t patches x_nt (``patch_boxes``):
     a ``grid x grid`` lattice of square crops of side ``patch_fraction`` of the image, evenly
     spaced so they cover it (default 3 x 3 crops of half the side: for 32 px CIFAR-10 images,
     nine 16 x 16 patches with stride 8 -- four quadrants, four edge centres and the centre; the
     paper crops larger photos the same way; overlapping crops give every object part a patch
     that is not cut by the quadrant boundaries). Each patch is resized to ``resolution`` px
     (default 64: a 16 px patch is upsampled 4x so the ImageNet filters see object-part scale)
     and encoded by EfficientNet-Lite0 (penultimate 1280-d, ``zsl.features``): theta(x_nt).
   * clustering layer H: a_nt = softmax(H theta(x_nt)) in the D_v-simplex (H linear on
     standardised features);
   * cluster-to-class layer Q: L_cls = CE(softmax(Q a_nt), y_n) (the paper writes Q o theta;
     Q maps the cluster probabilities, D_v -> |Y_s|, as its definition says);
   * cluster-to-semantic layer S: L_sem = ||S a_nt - phi_w(y_n)||_2 (not squared, as written);
   * loss L_cls + lambda_sem L_sem, Adam over minibatches of patches;
   * image embedding a_n = mean_t a_nt; class embedding phi(y) = mean of a_n over its images.
2. Class relation module (``zsl.semantics.relation``): for unseen class u,
   r = argmin ||w_u - r^T W_s|| s.t. alpha <= r <= 1, sum r = 1 (exact QP), phi(u) = r^T Phi_s.
   The least-squares and cosine weightings are stored beside it (sources ``vgse-lstsq``,
   ``vgse-cosine``) for the comparison the paper makes.

Caches (``<cache root>/vgse/``):
   patches/<backbone>-r<R>-g<grid>-p<frac>-<hash of one class's image list>/
       shard-NNNNN.npz (resumable chunks, atomic) -> patches.npy (n, N_t, 1280) float16
       One entry per class and image list, so the five CIFAR-10 rotations share every class's
       patches: extracting once for all ten classes serves all splits.
   fit/<dataset>-<split>/embeddings.npz   class_names, seen_classes, vgse (QP), vgse-lstsq,
       vgse-cosine (C, D_v); meta.json (config, timings); model.pt (H, Q, S and standardisation).

Protocol note: the validation classes (seen classes held out while tuning) get their VGSE
embeddings from their own images like every seen class, as in the paper; only the test-unseen
classes go through the relation module. Unseen-class images are never used for the fit; they are
read only for the figure's "patches from unseen classes" panel.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError, ZSLError
from ..features.cache import file_list_hash
from ..io import atomic_save_npz, atomic_write, cache_root, write_json
from .relation import RELATIONS, class_relation

SOURCES = {"qp": "vgse", "lstsq": "vgse-lstsq", "cosine": "vgse-cosine"}
FEATURE_DIM = 1280
BACKBONE = "efficientnet-lite0"


# ------------------------------------------------------------------------------------------------
# patches and their features
def patch_boxes(width: int, height: int, grid: int = 3, patch_fraction: float = 0.5) -> list[tuple[int, int, int, int]]:
    """``grid * grid`` square-ish crops (left, top, right, bottom) covering the image, row-major."""
    if grid < 1 or not 0 < patch_fraction <= 1:
        raise ZSLError(f"patch grid must be >= 1 and patch_fraction in (0, 1]; got {grid}, {patch_fraction}")
    pw, ph = max(1, round(width * patch_fraction)), max(1, round(height * patch_fraction))
    xs = [0] if grid == 1 else [round(i * (width - pw) / (grid - 1)) for i in range(grid)]
    ys = [0] if grid == 1 else [round(i * (height - ph) / (grid - 1)) for i in range(grid)]
    return [(x, y, x + pw, y + ph) for y in ys for x in xs]


def image_patches(path: str, grid: int = 3, patch_fraction: float = 0.5) -> list[np.ndarray]:
    """The N_t = grid^2 patches of one image file as uint8 HxWx3 arrays; raises DataError if undecodable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            return [np.asarray(img.crop(box), dtype=np.uint8) for box in patch_boxes(*img.size, grid, patch_fraction)]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image for VGSE patches ({type(exc).__name__}); remove or replace the file") from None


def patch_cache_dir(paths: Sequence[str], *, grid: int, patch_fraction: float, resolution: int, cache_dir=None) -> Path:
    return (cache_root(cache_dir) / "vgse" / "patches"
            / f"{BACKBONE}-r{resolution}-g{grid}-p{patch_fraction:g}-{file_list_hash(list(paths))}")


def extract_patch_features(
    paths: Sequence[str],
    *,
    grid: int = 3,
    patch_fraction: float = 0.5,
    resolution: int = 64,
    chunk_size: int = 128,
    cache_dir=None,
    progress: bool = True,
    desc: str = "VGSE patches",
) -> np.ndarray:
    """(n, N_t, 1280) float16 patch features of the images ``paths``, cached in resumable chunks.

    Each chunk of ``chunk_size`` images is written atomically as it completes; an interrupted
    run recomputes only missing chunks; when all are done they are merged into ``patches.npy``.
    """
    from tqdm.auto import tqdm

    from ..features import extract_features

    paths = [str(p) for p in paths]
    folder = patch_cache_dir(paths, grid=grid, patch_fraction=patch_fraction, resolution=resolution, cache_dir=cache_dir)
    merged = folder / "patches.npy"
    if merged.is_file():
        return np.load(merged)
    folder.mkdir(parents=True, exist_ok=True)
    n, nt = len(paths), grid * grid
    n_chunks = (n + chunk_size - 1) // chunk_size
    todo = [i for i in range(n_chunks) if not (folder / f"shard-{i:05d}.npy").is_file()]
    done_images = sum(min(chunk_size, n - i * chunk_size) for i in range(n_chunks) if i not in todo)
    bar = tqdm(total=n * nt, initial=done_images * nt, disable=not progress, file=sys.stderr, unit="patch", desc=desc, dynamic_ncols=True, mininterval=2.0)
    for i in todo:
        chunk = paths[i * chunk_size:(i + 1) * chunk_size]
        patches = [p for path in chunk for p in image_patches(path, grid, patch_fraction)]
        feats = extract_features(patches, resolution=resolution, batch_size=144, progress=False)
        if len(feats) != len(patches):
            raise DataError(f"{folder}: backbone returned {len(feats)} rows for {len(patches)} patches")
        with atomic_write(folder / f"shard-{i:05d}.npy", "wb") as fh:
            np.save(fh, feats.reshape(len(chunk), nt, -1).astype(np.float16))
        bar.update(len(patches))
    bar.close()
    out = np.concatenate([np.load(folder / f"shard-{i:05d}.npy") for i in range(n_chunks)], axis=0)
    with atomic_write(merged, "wb") as fh:
        np.save(fh, out)
    for i in range(n_chunks):
        (folder / f"shard-{i:05d}.npy").unlink(missing_ok=True)
    return out


# ------------------------------------------------------------------------------------------------
# patch clustering module
@dataclass
class ClusteringConfig:
    n_clusters: int = 64  # D_v
    lambda_sem: float = 1.0
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0


def _build_module(d_in: int, n_clusters: int, n_seen: int, d_sem: int):
    import torch.nn as nn

    class PatchClustering(nn.Module):
        """H (D_f -> D_v, softmax), Q (D_v -> |Y_s|), S (D_v -> D_w)."""

        def __init__(self):
            super().__init__()
            self.H = nn.Linear(d_in, n_clusters)
            self.Q = nn.Linear(n_clusters, n_seen)
            self.S = nn.Linear(n_clusters, d_sem)

        def assign(self, x):
            return self.H(x).softmax(-1)  # a_nt: cluster probabilities

        def forward(self, x):
            a = self.assign(x)
            return a, self.Q(a), self.S(a)

    return PatchClustering()


@dataclass
class PatchClusteringResult:
    module: object  # the torch module (H, Q, S)
    mean: np.ndarray  # (D_f,) standardisation of theta
    std: np.ndarray
    class_embeddings: np.ndarray  # (S, D_v) phi^VGSE of the seen classes (order of seen labels 0..S-1)
    image_embeddings: np.ndarray  # (n, D_v) a_n
    history: list[dict]
    seconds: float

    def assign(self, patch_features: np.ndarray, batch: int = 8192) -> np.ndarray:
        """(..., D_f) patch features -> (..., D_v) cluster probabilities a_nt."""
        import torch

        flat = np.asarray(patch_features, np.float32).reshape(-1, patch_features.shape[-1])
        out = []
        with torch.inference_mode():
            for s in range(0, len(flat), batch):
                x = torch.from_numpy((flat[s:s + batch] - self.mean) / self.std)
                out.append(self.module.assign(x).numpy())
        return np.concatenate(out).reshape(*patch_features.shape[:-1], -1)


def fit_patch_clustering(
    patch_features: np.ndarray,
    labels: np.ndarray,
    word_vectors: np.ndarray,
    config: ClusteringConfig | None = None,
    *,
    progress: bool = True,
) -> PatchClusteringResult:
    """Train H, Q, S on (n, N_t, D_f) patch features of images with seen labels 0..S-1.

    word_vectors: (S, D_w) phi_w of the seen classes (row s for label s). Returns the seen-class
    embeddings (S, D_v) = mean over each class's images of the mean over their patches of a_nt.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from ..nn import init_default_

    cfg = config or ClusteringConfig()
    P = np.asarray(patch_features)
    labels = np.asarray(labels, np.int64)
    W = np.asarray(word_vectors, np.float32)
    if P.ndim != 3 or len(P) != len(labels):
        raise ZSLError(f"patch features must be (n_images, N_t, D_f) with one label per image; got {P.shape}, {labels.shape}")
    n_seen = len(W)
    if labels.min() < 0 or labels.max() >= n_seen or len(np.unique(labels)) != n_seen:
        raise ZSLError(f"labels must cover 0..{n_seen - 1} (one word vector per seen class); got {np.unique(labels).tolist()}")
    t0 = time.perf_counter()
    n, nt, d = P.shape
    flat = P.reshape(n * nt, d).astype(np.float32)
    mean = flat.mean(0)
    std = flat.std(0) + 1e-3
    X = torch.from_numpy((flat - mean) / std)
    y = torch.from_numpy(np.repeat(labels, nt))
    Wt = torch.from_numpy(W)
    gen = torch.Generator().manual_seed(cfg.seed)
    module = init_default_(_build_module(d, cfg.n_clusters, n_seen, W.shape[1]), gen)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = []
    for epoch in tqdm(range(cfg.epochs), disable=not progress, file=sys.stderr, desc="VGSE clustering", unit="epoch"):
        perm = torch.randperm(len(X), generator=gen)
        tot = {"cls": 0.0, "sem": 0.0, "acc": 0.0}
        for s in range(0, len(X), cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            a, logits, sem = module(X[idx])
            l_cls = F.cross_entropy(logits, y[idx])
            l_sem = (sem - Wt[y[idx]]).norm(dim=1).mean()
            loss = l_cls + cfg.lambda_sem * l_sem
            opt.zero_grad()
            loss.backward()
            opt.step()
            k = len(idx)
            tot["cls"] += l_cls.item() * k
            tot["sem"] += l_sem.item() * k
            tot["acc"] += (logits.argmax(1) == y[idx]).float().sum().item()
        history.append({"epoch": epoch, **{k: v / len(X) for k, v in tot.items()}})
    module.eval()
    res = PatchClusteringResult(module, mean, std, np.zeros(0), np.zeros(0), history, 0.0)
    A = res.assign(P)  # (n, N_t, D_v)
    img = A.mean(1)
    cls = np.stack([img[labels == s].mean(0) for s in range(n_seen)])
    res.image_embeddings, res.class_embeddings = img.astype(np.float32), cls.astype(np.float32)
    res.seconds = time.perf_counter() - t0
    return res


def transfer_to_unseen(seen_embeddings: np.ndarray, W_seen: np.ndarray, W_unseen: np.ndarray,
                       relation: str = "qp", *, alpha: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Class relation module: (U, D_v) unseen embeddings r^T Phi_s and the weights R (U, S)."""
    kw = {"alpha": alpha} if relation == "qp" else {}
    R = class_relation(W_seen, W_unseen, relation, **kw)
    return (R @ seen_embeddings).astype(np.float32), R


# ------------------------------------------------------------------------------------------------
# dataset-level fit, storage, attachment
def fit_dir(dataset_name: str, split: str, cache_dir=None) -> Path:
    return cache_root(cache_dir) / "vgse" / "fit" / f"{dataset_name}-{split}"


def _class_image_paths(dataset, rows: np.ndarray, per_class: int | None, seed: int) -> dict[int, list[str]]:
    """{class id: image paths} from ``rows``, at most ``per_class`` per class, chosen independently of
    the split (seeded by class name), so every rotation picks the same images of a class."""
    paths = dataset.meta.get("paths")
    if paths is None or len(paths) != len(dataset.y):
        raise DataError(f"dataset {dataset.name!r} has no image paths (meta['paths']); VGSE needs an image-folder "
                        "dataset (cifar10 or image-folder:PATH)")
    out = {}
    for c in np.unique(dataset.y[rows]):
        cls_paths = sorted(paths[i] for i in rows[dataset.y[rows] == c])
        if per_class is not None and len(cls_paths) > per_class:
            rng = np.random.default_rng([seed, int(hashlib.sha256(dataset.class_names[c].encode()).hexdigest()[:8], 16)])
            cls_paths = sorted(rng.choice(cls_paths, per_class, replace=False).tolist())
        out[int(c)] = cls_paths
    return out


@dataclass
class VGSEConfig:
    images_per_class: int | None = 500
    grid: int = 3
    patch_fraction: float = 0.5
    resolution: int = 64
    word_vectors: str = "glove"
    alpha: float = 0.0
    clustering: ClusteringConfig = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.clustering is None:
            self.clustering = ClusteringConfig()


def fit_vgse(dataset, config: VGSEConfig | None = None, *, cache_dir=None, progress: bool = True) -> dict:
    """Fit VGSE on the dataset's seen-class training images and store every relation variant.

    Returns a summary dict (paths, timings, training history, the relation weights).
    """
    import torch

    cfg = config or VGSEConfig()
    seen = np.asarray(dataset.seen_classes)
    unseen = np.asarray(dataset.unseen_classes)
    if cfg.word_vectors not in dataset.embeddings:
        raise DataError(f"dataset {dataset.name!r} has no {cfg.word_vectors!r} vectors for the relation module; "
                        f"available: {', '.join(sorted(dataset.embeddings))}")
    Wfull = dataset.embeddings[cfg.word_vectors]
    trainval = dataset.splits["trainval"]
    per_class = _class_image_paths(dataset, trainval, cfg.images_per_class, cfg.clustering.seed)
    if sorted(per_class) != sorted(seen.tolist()):
        raise DataError(f"dataset {dataset.name!r}: trainval images do not cover every seen class")
    t0, c0 = time.perf_counter(), time.process_time()
    feats, labels = [], []
    for s, c in enumerate(seen):
        P = extract_patch_features(per_class[int(c)], grid=cfg.grid, patch_fraction=cfg.patch_fraction,
                                   resolution=cfg.resolution, cache_dir=cache_dir, progress=progress,
                                   desc=f"VGSE patches {dataset.class_names[c]}")
        feats.append(P)
        labels.append(np.full(len(P), s))
    extract_seconds, extract_cpu = time.perf_counter() - t0, time.process_time() - c0
    P = np.concatenate(feats)
    labels = np.concatenate(labels)
    c0 = time.process_time()
    res = fit_patch_clustering(P, labels, Wfull[seen], cfg.clustering, progress=progress)
    train_cpu = time.process_time() - c0

    mats, relations = {}, {}
    for rel in RELATIONS:
        Phi = np.zeros((dataset.n_classes, cfg.clustering.n_clusters), np.float32)
        Phi[seen] = res.class_embeddings
        Phi[unseen], R = transfer_to_unseen(res.class_embeddings, Wfull[seen], Wfull[unseen], rel, alpha=cfg.alpha)
        mats[SOURCES[rel]] = Phi
        relations[rel] = R
    out = fit_dir(dataset.name, dataset.split, cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(out / "embeddings.npz", class_names=np.asarray(dataset.class_names), seen_classes=seen,
                    unseen_classes=unseen, **{k: v for k, v in mats.items()},
                    **{f"relation-{k}": v for k, v in relations.items()})
    with atomic_write(out / "model.pt", "wb") as fh:
        torch.save({"state": res.module.state_dict(), "mean": res.mean, "std": res.std,
                    "d_in": P.shape[2], "n_seen": len(seen), "d_sem": Wfull.shape[1]}, fh)
    summary = {
        "dataset": dataset.name, "split": dataset.split, "config": {**asdict(cfg)},
        "n_images": int(len(P)), "n_patches": int(P.shape[0] * P.shape[1]),
        "extract_seconds": extract_seconds, "train_seconds": res.seconds,
        # CPU seconds of this process (all threads): a load-independent measure on a shared machine
        "extract_cpu_seconds": extract_cpu, "train_cpu_seconds": train_cpu,
        "final_epoch": res.history[-1] if res.history else {},
        "relations": {k: np.round(v, 4).tolist() for k, v in relations.items()},
        "seen_images": {dataset.class_names[c]: per_class[int(c)] for c in seen},
        "path": str(out),
    }
    write_json(out / "meta.json", summary)
    return summary


def load_clustering(dataset_name: str, split: str, cache_dir=None) -> PatchClusteringResult:
    """The stored H, Q, S of a fit (for assigning new patches, e.g. the figure)."""
    import torch

    path = fit_dir(dataset_name, split, cache_dir) / "model.pt"
    if not path.is_file():
        raise DataError(f"{path}: no VGSE model; run `zsl vgse fit --dataset {dataset_name} --split {split}`")
    blob = torch.load(path, weights_only=False)
    module = _build_module(blob["d_in"], blob["state"]["H.weight"].shape[0], blob["n_seen"], blob["d_sem"])
    module.load_state_dict(blob["state"])
    module.eval()
    return PatchClusteringResult(module, blob["mean"], blob["std"], np.zeros(0), np.zeros(0), [], 0.0)


def attach_vgse(dataset, cache_dir=None):
    """Add ``vgse``, ``vgse-lstsq`` and ``vgse-cosine`` embeddings when a fit for (dataset, split) is cached.

    A stored fit whose classes or seen/unseen split differ from the dataset is not attached (a
    warning says to refit). Returns the dataset (modified in place).
    """
    path = cache_root(cache_dir) / "vgse" / "fit" / f"{dataset.name}-{dataset.split}" / "embeddings.npz"
    if not path.is_file():
        return dataset
    with np.load(path) as z:
        same = (z["class_names"].tolist() == list(dataset.class_names)
                and np.array_equal(z["seen_classes"], dataset.seen_classes)
                and np.array_equal(z["unseen_classes"], dataset.unseen_classes))
        if not same:
            warnings.warn(f"{path}: stored VGSE embeddings were fitted for other classes or another split; "
                          f"refit with `zsl vgse fit --dataset {dataset.name} --split {dataset.split}`", UserWarning,
                          stacklevel=2)
            return dataset
        for source in SOURCES.values():
            dataset.embeddings[source] = np.asarray(z[source], np.float32)
    dataset.validate()
    return dataset


__all__ = [
    "ClusteringConfig",
    "PatchClusteringResult",
    "SOURCES",
    "VGSEConfig",
    "attach_vgse",
    "cluster_figure",
    "extract_patch_features",
    "fit_patch_clustering",
    "fit_vgse",
    "fit_dir",
    "image_patches",
    "load_clustering",
    "patch_boxes",
    "transfer_to_unseen",
]


# ------------------------------------------------------------------------------------------------
# the paper's qualitative figure
def cluster_figure(dataset, out_path, *, n_clusters_shown: int = 6, per_row: int = 6, unseen_images: int = 50,
                   cache_dir=None, progress: bool = True) -> Path:
    """PNG: for ``n_clusters_shown`` clusters, the patches nearest to each cluster's centre.

    "Nearest to the centre" = highest assignment probability a_nt^k (the clustering layer is a
    softmax over clusters, so the most confidently assigned patches are the prototypical ones).
    Left panel: seen-class training patches used by the fit; right panel: patches of
    ``unseen_images`` test images of every unseen class (read only here, never by the fit).
    Clusters shown: the most used ones (largest total assignment over seen and unseen patches)
    among those whose strongest unseen patch is confidently assigned, so each row shows a visual
    property that transfers to unseen classes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = fit_dir(dataset.name, dataset.split, cache_dir)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: no VGSE fit; run `zsl vgse fit --dataset {dataset.name} --split {dataset.split}`")
    meta = json.loads(meta_path.read_text())
    cfg = meta["config"]
    model = load_clustering(dataset.name, dataset.split, cache_dir)
    kw = dict(grid=cfg["grid"], patch_fraction=cfg["patch_fraction"], resolution=cfg["resolution"],
              cache_dir=cache_dir, progress=progress)

    def collect(paths_by_class: dict[str, list[str]]):
        paths, names, assign = [], [], []
        for name, paths_c in paths_by_class.items():
            P = extract_patch_features(paths_c, desc=f"VGSE patches {name}", **kw)
            assign.append(model.assign(P))
            paths += paths_c
            names += [name] * len(paths_c)
        return paths, names, np.concatenate(assign)  # (n, N_t, D_v)

    s_paths, s_names, s_A = collect(meta["seen_images"])
    test_unseen = dataset.splits["test_unseen"]
    unseen = _class_image_paths(dataset, test_unseen, unseen_images, 0)
    u_paths, u_names, u_A = collect({dataset.class_names[c]: p for c, p in unseen.items()})
    nt = s_A.shape[1]
    mass = s_A.sum((0, 1)) + u_A.sum((0, 1))
    u_best = u_A.reshape(-1, u_A.shape[2]).max(0)
    order = np.argsort(-mass)
    confident = [k for k in order if u_best[k] >= 0.5]
    chosen = (confident + [k for k in order if k not in confident])[:n_clusters_shown]

    fig, axes = plt.subplots(len(chosen), 2 * per_row, figsize=(2 * per_row * 1.1, len(chosen) * 1.3))
    axes = np.atleast_2d(axes)
    for row, k in enumerate(chosen):
        for panel, (paths, names, A) in enumerate(((s_paths, s_names, s_A), (u_paths, u_names, u_A))):
            flat = A[:, :, k].ravel()
            top = np.argsort(-flat)[:per_row]
            for j in range(per_row):
                ax = axes[row, panel * per_row + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= len(top):
                    ax.axis("off")
                    continue
                img_i, t = divmod(int(top[j]), nt)
                patch = image_patches(paths[img_i], cfg["grid"], cfg["patch_fraction"])[t]
                ax.imshow(patch, interpolation="nearest")
                ax.set_title(f"{names[img_i]} {flat[top[j]]:.2f}", fontsize=6)
        axes[row, 0].set_ylabel(f"cluster {k}", fontsize=7)
    fig.suptitle(f"VGSE {dataset.name} {dataset.split}: patches nearest to {len(chosen)} cluster centres "
                 f"(left: seen classes, right: unseen {', '.join(dataset.class_names[c] for c in dataset.unseen_classes)})",
                 fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return out_path
