"""Torch building blocks shared by the trained methods, evaluation and the semantics sources.

* :func:`deterministic_torch` -- run a block with a fixed number of torch threads.
* :func:`torch_generator` and the ``init_*_`` functions -- every random draw of a fit (weights,
  shuffling, noise) comes from one private ``torch.Generator`` seeded from ``random_state``; the
  global torch, NumPy and Python RNGs are never touched.
* :func:`batches` -- shuffled minibatch indices from such a generator.
* :class:`Checkpointer` and :class:`ResumableLoop` -- optional training checkpoints: state dicts,
  optimiser states and the generator state in one file written atomically, loaded with
  ``torch.load(weights_only=True)`` (no code runs from a checkpoint); the folder name is a digest
  of the method's parameters, the training data and the code, so a changed training loop never
  resumes an old model.
* :func:`train_softmax` / :func:`predict_log_proba` -- the linear softmax classifier the
  generative methods train on (synthesised) features.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .io import atomic_write, content_digest


@contextlib.contextmanager
def deterministic_torch(n: int | None):
    """Run the block with torch's deterministic algorithms and ``n`` threads; restore both after.

    Deterministic algorithms: with more than one thread, the backward pass of indexing with repeated
    indices (``E[c]`` for a minibatch's labels, an ``index_put_`` that accumulates) adds the rows
    in whatever order the threads finish. Those last-bit differences grow through training: CPL on
    FLO at 2 threads scored 50.5 to 57.4 % ZSL for one seed. The deterministic kernels sort
    instead (``warn_only``: an op without one warns rather than failing a fit).

    ``n``: ``torch.set_num_threads(n)``; ``None`` leaves torch's thread count alone. A fixed count
    also fixes the order of float reductions, so the same seed gives the same numbers on one
    machine and thread count.
    """
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    old = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def torch_generator(random_state: int | None) -> torch.Generator:
    """A private generator seeded from ``random_state`` (None -> 0)."""
    g = torch.Generator()
    g.manual_seed(0 if random_state is None else int(random_state))
    return g


def init_normal_(module: nn.Module, gen: torch.Generator, std: float = 0.02) -> nn.Module:
    """N(0, std) weights and zero biases for every Linear layer (f-CLSWGAN's init), drawn from ``gen``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                if m.bias is not None:
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


def init_xavier_(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """Xavier-uniform weights and zero biases for every Linear layer, drawn from ``gen``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = math.sqrt(6.0 / (m.in_features + m.out_features))
            with torch.no_grad():
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.zero_()
    return module


def batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Index tensors of one shuffled pass over range(n), drawn from ``gen``."""
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield perm[i : i + batch_size]


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True)


# -- checkpoints ------------------------------------------------------------------------------------
def code_digest(*objects) -> str:
    """Digest of the package version and the source of the given modules/classes/functions."""
    from . import __version__

    parts = [__version__]
    for obj in objects:
        try:
            parts.append(inspect.getsource(obj))
        except (OSError, TypeError):  # source not available (frozen install): the version must do
            parts.append(getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj))))
    return content_digest(*parts, length=16)


class Checkpointer:
    """Training state in one folder (``state.pt``), or nothing when the folder is None.

    ``Checkpointer.for_fit(root, method, params, data, code)`` names the folder
    ``<root>/<method>-<digest of params, data digest, code digest and torch's thread count>``:
    parameters that change the result, the exact training arrays, the source of the training code
    and the thread count (the order of float reductions) all key it, so a resumed fit is the same
    fit. States hold only tensors, numbers, strings and containers of them (state dicts, generator
    states) and are loaded with ``weights_only=True``; an unreadable or foreign file is reported on
    stderr and training starts afresh.
    """

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder is not None else None

    @classmethod
    def for_fit(cls, root: str | os.PathLike | None, method: str, params: dict[str, Any], data_digest: str,
                code: str) -> Checkpointer:
        if root is None:
            return cls(None)
        # the thread count fixes the order of float reductions, so it is part of what the fit computes;
        # "deterministic" keeps states trained before deterministic_torch (thread-order sums) from resuming
        key = content_digest(json.dumps(params, sort_keys=True, default=repr), data_digest, code,
                             f"threads={torch.get_num_threads()};deterministic", length=20)
        return cls(Path(root) / f"{method}-{key}")

    def sub(self, name: str) -> Checkpointer:
        """The checkpointer of one stage of a multi-stage fit (a subfolder)."""
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
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - corrupt, foreign or unsafe: never used, training restarts
            print(
                f"zsl: ignoring checkpoint {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                file=sys.stderr,
            )
            return None

    def save(self, state: dict[str, Any]) -> None:
        if self.folder is None:
            return
        buf = io.BytesIO()
        torch.save(state, buf)
        with atomic_write(self.folder / "state.pt", "wb") as fh:
            fh.write(buf.getvalue())


class ResumableLoop:
    """``for step in ResumableLoop(...)``: a training loop that checkpoints and resumes.

    ``objects`` maps names to anything with ``state_dict``/``load_state_dict`` (modules,
    optimisers); with ``gen`` (the fit's private generator) they are the whole state of the
    training. Iteration yields the step numbers still to run (0-based, up to ``total``), restoring
    the last saved state first; every ``every`` steps and at the end the state is saved. An
    interrupted fit that is rerun with the same checkpointer therefore ends with exactly the
    numbers of an uninterrupted one. ``postfix(**values)`` shows running losses on the progress bar.
    """

    def __init__(self, checkpoint: Checkpointer | None, objects: dict[str, Any], gen: torch.Generator, total: int, *,
                 every: int, desc: str, progress: bool):
        self.checkpoint = checkpoint or Checkpointer(None)
        self.objects, self.gen, self.total = objects, gen, int(total)
        self.every = max(1, int(every))
        self.desc, self.progress = desc, progress
        self._bar = None

    def _state(self, step: int) -> dict[str, Any]:
        return {"step": step, "rng": self.gen.get_state(), **{k: v.state_dict() for k, v in self.objects.items()}}

    def __iter__(self) -> Iterator[int]:
        start = 0
        state = self.checkpoint.load()
        if state is not None and set(self.objects) <= set(state):
            for k, v in self.objects.items():
                v.load_state_dict(state[k])
            self.gen.set_state(state["rng"])
            start = int(state["step"])
        self._bar = progress_bar(self.total, self.desc, self.progress)
        self._bar.update(start)
        for step in range(start, self.total):
            yield step
            done = step + 1
            if self.checkpoint.enabled and (done % self.every == 0 or done == self.total):
                self.checkpoint.save(self._state(done))
            self._bar.update(1)
        self._bar.close()

    def postfix(self, **values: float) -> None:
        if self._bar is not None and self.progress:
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)


class LossHistory:
    """Per-epoch mean losses of a training loop, checkpointed with it (``state_dict``/``load_state_dict``).

    ``add(step, **losses)`` accumulates; a new entry starts every ``steps_per_epoch`` steps. The
    fitted methods expose ``epochs`` as ``history_`` (a list of {loss name: mean}).
    """

    def __init__(self, steps_per_epoch: int):
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.epochs: list[dict[str, float]] = []
        self._sums: dict[str, float] = {}
        self._count = 0

    def add(self, step: int, **losses: float) -> None:
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
        self._count += 1
        if (step + 1) % self.steps_per_epoch == 0:
            self.epochs.append({k: v / self._count for k, v in self._sums.items()})
            self._sums, self._count = {}, 0

    def state_dict(self) -> dict[str, Any]:
        names = sorted({k for e in self.epochs for k in e})
        return {"names": names, "values": torch.tensor([[e.get(k, 0.0) for k in names] for e in self.epochs],
                                                       dtype=torch.float64).reshape(len(self.epochs), len(names))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = list(state["names"])
        self.epochs = [dict(zip(names, row)) for row in state["values"].tolist()]
        self._sums, self._count = {}, 0


# -- softmax classifier ---------------------------------------------------------------------------
def train_softmax(X: np.ndarray, y: np.ndarray, n_classes: int, *, steps: int | None = None, epochs: int | None = None,
                  batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0, gen: torch.Generator,
                  progress: bool = False, desc: str = "softmax") -> nn.Linear:
    """A linear layer trained with Adam(beta1=0.5) and cross-entropy: (n, d) -> (n, n_classes) logits.

    X (n, d) float32, y (n,) int in [0, n_classes). Length: ``steps`` minibatch updates (shuffled
    passes repeated as needed; independent of how many samples there are), or ``epochs`` passes.
    """
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps or epochs")
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    model = init_default_(nn.Linear(Xt.shape[1], n_classes), gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
    total = int(steps) if steps is not None else int(epochs) * -(-len(Xt) // batch_size)
    bar = progress_bar(total, desc, progress)
    done = 0
    while done < total:
        for idx in batches(len(Xt), batch_size, gen):
            loss = nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            bar.update(1)
            if done == total:
                break
    bar.close()
    return model.eval()


@torch.no_grad()
def predict_log_proba(model: nn.Module, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """(n, C) log-softmax of ``model``'s logits."""
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    out = [torch.log_softmax(model(Xt[i : i + batch_size]), dim=1) for i in range(0, len(Xt), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def l2_normalize_rows(S: np.ndarray) -> np.ndarray:
    S = np.asarray(S, dtype=np.float32)
    norms = np.linalg.norm(S, axis=1, keepdims=True)
    return (S / np.maximum(norms, 1e-12)).astype(np.float32)


__all__ = [
    "Checkpointer",
    "LossHistory",
    "ResumableLoop",
    "batches",
    "code_digest",
    "init_default_",
    "init_normal_",
    "init_xavier_",
    "l2_normalize_rows",
    "predict_log_proba",
    "progress_bar",
    "torch_generator",
    "deterministic_torch",
    "train_softmax",
]
