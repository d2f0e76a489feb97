"""Shared torch helpers for the generative methods (f-CLSWGAN, clusterable CVAE, CPL).

* :func:`torch_generator` -- a private ``torch.Generator`` seeded from ``random_state``: every
  random draw of a training loop (init, shuffling, noise) goes through it, so its state is the
  whole RNG state of a run and a checkpoint can restore it exactly.
* :class:`Checkpointer` -- atomic per-epoch checkpoints under
  ``cache_root()/checkpoints/<method>-<config hash>-<data hash>/``; a rerun with the same config
  and data resumes from the last one and ends with the same numbers as an uninterrupted run.
* :func:`data_hash` -- short content hash of the arrays a fit sees (the ``<data hash>`` above).
* :class:`FeaturePreprocessor` -- optional PCA + scaling fitted on training features.
* :func:`train_softmax_classifier` / :class:`SoftmaxClassifier` -- the linear softmax classifier
  generative ZSL methods train on (synthesized) features.

Determinism: on CPU, torch kernels are deterministic for a fixed number of threads; the fits
here use only the private generator for randomness, so the same seed gives the same numbers.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..io import atomic_write, cache_root, config_hash


@contextlib.contextmanager
def torch_threads(n: int | None = 1):
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count after.

    The generative fits run small MLPs with batches of a few hundred rows, where intra-op threads
    only add synchronisation (measured 17x slower with 2 threads on a loaded 2-core machine) and
    where a fixed thread count also keeps float reductions -- hence results -- identical across
    machines. ``n=None`` leaves torch's setting alone.
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def torch_generator(random_state: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(0 if random_state is None else int(random_state))
    return g


def init_linear_(module: nn.Module, gen: torch.Generator, std: float = 0.02) -> nn.Module:
    """Initialise every Linear layer from ``gen`` (N(0, std) weights, zero bias, as f-CLSWGAN)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                m.bias.zero_()
    return module


def init_default_(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """PyTorch's default Linear init (U(+-1/sqrt(fan_in)) for weights and biases), drawn from ``gen``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * bound)
    return module


def data_hash(*arrays) -> str:
    """Short content hash of numpy arrays (shape, dtype and bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def batches(n: int, batch_size: int, gen: torch.Generator, *, drop_last: bool = False):
    """Yield index tensors of a random permutation of range(n), drawn from ``gen``."""
    perm = torch.randperm(n, generator=gen)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield perm[i : i + batch_size]


class Checkpointer:
    """Atomic training checkpoints in one folder: ``state.pt`` holds the latest state.

    ``Checkpointer.for_run(method, config, data)`` names the folder
    ``<cache>/checkpoints/<method>-<config hash>-<data hash>``. ``None`` folder = disabled.
    """

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder is not None else None

    @classmethod
    def for_run(cls, method: str, config: dict[str, Any], data_fingerprint: str, *, enabled: bool = True,
                cache_dir: str | os.PathLike | None = None) -> "Checkpointer":
        if not enabled:
            return cls(None)
        return cls(cache_root(cache_dir) / "checkpoints" / f"{method}-{config_hash(config)}-{data_fingerprint}")

    def sub(self, name: str) -> "Checkpointer":
        """A checkpointer for one stage of a multi-stage fit (a subfolder)."""
        return Checkpointer(self.folder / name if self.folder is not None else None)

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def load(self) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        path = self.folder / "state.pt"
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a corrupt checkpoint is reported and ignored: training restarts
            print(f"zsl: ignoring unreadable checkpoint {path} ({type(exc).__name__}: {exc})", file=sys.stderr)
            return None

    def save(self, state: dict[str, Any]) -> None:
        if self.folder is None:
            return
        buf = io.BytesIO()
        torch.save(state, buf)
        with atomic_write(self.folder / "state.pt", "wb") as fh:
            fh.write(buf.getvalue())


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True)


# -- feature preprocessing ----------------------------------------------------------------------
class FeaturePreprocessor:
    """Optional RBF kernel map, optional PCA to ``n_components`` (fitted on training features), then a scale.

    ``rbf_anchors=m`` first maps x to its centred RBF similarities to m training anchors
    (:class:`~zsl.methods._kernels.RBFAnchors`, the map ESZSL uses); PCA then runs on those m-d
    kernel features. On histogram features (AwA1) this is what lifts a linear model: ESZSL on the
    validation classes scores 0.275 linear and 0.403 with the map.

    ``n_components=None`` keeps the input dimension. ``scale="std"`` divides by the RMS norm of
    the centred training features / sqrt(dim) (so an average coordinate has unit variance);
    ``scale="whiten"`` divides every component by its own training standard deviation (PCA
    whitening: each direction gets unit variance, so the low-variance directions that carry much
    of the class information in histogram features are not drowned by the leading ones);
    ``scale="none"`` leaves PCA outputs as they are. PCA uses scikit-learn's randomized solver
    with a fixed ``random_state`` (deterministic), fitted on at most ``max_samples`` rows drawn
    with that seed (a 6252-d AwA1 PCA on all 24k training rows costs minutes on a loaded 2-core
    machine; 4000 rows estimate the leading 128-256 directions well).
    """

    def __init__(self, n_components: int | None = None, scale: str = "std", random_state: int = 0, max_samples: int = 4000,
                 rbf_anchors: int | None = None):
        self.n_components = n_components
        self.scale = scale
        self.random_state = random_state
        self.max_samples = max_samples
        self.rbf_anchors = rbf_anchors

    def fit(self, X: np.ndarray) -> "FeaturePreprocessor":
        X = np.asarray(X, dtype=np.float32)
        self.kernel_map_ = None
        if self.rbf_anchors:
            from ._kernels import RBFAnchors

            self.kernel_map_ = RBFAnchors(self.rbf_anchors, self.random_state)
            X = self.kernel_map_.fit_transform(X)
        self.mean_ = X.mean(0)
        if self.n_components is not None and self.n_components < X.shape[1]:
            from sklearn.decomposition import PCA

            rows = X
            if self.max_samples and len(X) > self.max_samples:
                pick = np.random.default_rng(self.random_state).choice(len(X), self.max_samples, replace=False)
                rows = X[np.sort(pick)]
            k = min(self.n_components, rows.shape[0])
            pca = PCA(n_components=k, svd_solver="randomized", iterated_power=3, random_state=self.random_state).fit(rows)
            self.components_ = pca.components_.astype(np.float32)  # (k, d)
        else:
            self.components_ = None
        if self.scale not in ("std", "whiten", "none"):
            raise ValueError(f"scale must be 'std', 'whiten' or 'none', got {self.scale!r}")
        Z = self._project(X)
        if self.scale == "whiten":
            std = Z.std(0)
            self.scale_ = np.where(std > 1e-6 * max(float(std.max()), 1e-12), std, 1.0).astype(np.float32)
            return self
        self.scale_ = float(np.sqrt(np.mean(Z**2))) if self.scale == "std" else 1.0
        if self.scale_ <= 0:
            self.scale_ = 1.0
        return self

    def _project(self, X: np.ndarray) -> np.ndarray:
        Z = np.asarray(X, dtype=np.float32) - self.mean_
        return Z @ self.components_.T if self.components_ is not None else Z

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.kernel_map_ is not None:
            X = self.kernel_map_.transform(X)
        return np.ascontiguousarray(self._project(X) / self.scale_, dtype=np.float32)


# -- softmax classifier ---------------------------------------------------------------------------
class SoftmaxClassifier(nn.Module):
    """Linear layer + log-softmax over ``n_classes`` outputs: (n, d) -> (n, n_classes) log-probs."""

    def __init__(self, in_dim: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.fc(x), dim=1)


def train_softmax_classifier(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    random_state: int = 0,
    progress: bool = False,
    desc: str = "softmax",
) -> SoftmaxClassifier:
    """Train a :class:`SoftmaxClassifier` with Adam(beta1=0.5) and NLL loss.

    X (n, d) float32, y (n,) int in [0, n_classes). Returns the model in eval mode.
    """
    gen = torch_generator(random_state)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    model = SoftmaxClassifier(Xt.shape[1], n_classes)
    init_linear_(model, gen, std=0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
    bar = progress_bar(epochs, desc, progress)
    for _ in range(epochs):
        for idx in batches(len(Xt), batch_size, gen):
            loss = nn.functional.nll_loss(model(Xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        bar.update(1)
    bar.close()
    return model.eval()


@torch.no_grad()
def predict_log_proba(model: nn.Module, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    out = [model(Xt[i : i + batch_size]) for i in range(0, len(Xt), batch_size)]
    return torch.cat(out).numpy()


def l2_normalize_rows(S: np.ndarray) -> np.ndarray:
    S = np.asarray(S, dtype=np.float32)
    norms = np.linalg.norm(S, axis=1, keepdims=True)
    return (S / np.maximum(norms, 1e-12)).astype(np.float32)
