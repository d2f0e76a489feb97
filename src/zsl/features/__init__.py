"""Backbone feature extraction (EfficientNet-Lite0, ImageNet-1k) with a resumable on-disk cache.

API::

    load_efficientnet_lite0(with_classifier=False) -> torch.nn.Module   # eval, channels_last
    extract_features(images, *, resolution=DEFAULT_RESOLUTION, batch_size=64, num_workers=None,
                     cache_dir=None, progress=True, with_logits=False, cache=True)
        -> features (n_valid, 1280) float32, or (features, logits (n_valid, 1000)) with with_logits
    extract(images, ...) -> Extraction(features, logits, valid, skipped, paths)   # the full record
    extract(paths, ..., ray_address=ADDR)   # the same, computed on a Ray cluster (zsl.features.ray_extract)

``images`` is a list of file paths (decoded in DataLoader worker processes; results cached under
``<cache root>/features/``, see :mod:`zsl.features.cache`) or a list of PIL images / uint8 HxWx3
arrays (decoded in-process, never cached).

Images that fail to decode are skipped: one ``UserWarning`` names them and says why (the decoder's
or the file system's error; first 10 and the count), and the returned arrays hold rows for the
*decodable images only*, in input order. A failure is remembered in the cache with the file's
*content* key (a hash of its bytes, or the reason it could not be read): when that key changes --
the file was repaired, replaced, or made readable (``chmod`` changes neither size nor mtime, so the
entry's own key cannot see it) -- the image is tried again on the next run. When nothing
was skipped (the usual case) row i is image i. Callers that must align rows with their own lists
use :func:`extract`, whose ``valid`` mask (n_images,) says which inputs the rows belong to and
whose ``skipped`` lists the failed paths (``read_image_folder`` drops those images).

Preprocessing: RGB, shorter side resized to R (bicubic), centre crop R x R, ``(x/255 - 0.5)/0.5``.
Features are the globally average-pooled output of the last conv block (1280-d, after ReLU6 so
non-negative); logits are the ImageNet head applied to them (dropout is inactive in eval mode).

Resolution: measured with ``benchmarks/bench_features.py`` (numbers in ``benchmarks/results/features.md``)
on CIFAR-10 (32x32 JPEGs, upsampled). The development machine (2 cores) was shared with a load
average of 30-43, so wall-clock img/s are ~30x below an idle machine's (the data README measured
~90 img/s at 128 px and 21 img/s at 224 px idle, 2 threads, channels_last); CPU time per image is
the steadier cost measure::

    resolution  CPU ms/img (model only, loaded)  ESZSL ZSL top-1, mean rot0..4  linear probe, 8 seen
    128         68                               86.5                           67.4
    160         89                               83.0                           69.0
    224         156                              83.5                           69.5

(accuracy: ``max_per_class=20`` per class and folder, i.e. 160 train / 160 test_seen / 40 test_unseen
images per split, ESZSL with validation-selected hyperparameters on GloVe class names, 2 unseen
classes per split; the probe is a logistic regression on standardised features.) At this sample size
the differences are within noise (one test image moves a split's score by 2.5 points; the per-split
scores range 70-98), while 160 px costs ~1.3x and 224 px ~2.3x the compute of 128 px. Default: 128 px;
pass ``resolution=`` to change it (every resolution is its own cache entry).
"""
from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .efficientnet import (
    BACKBONE,
    FEATURE_DIM,
    decode_file,
    load_efficientnet_lite0,
    logits_from_features,
    normalise_batch,
    penultimate,
    preprocess_pil,
)

DEFAULT_RESOLUTION = 128
CHUNK_SIZE = 1024  # images per resumable cache shard (~5 MB of features)


@dataclass
class Extraction:
    """Features of the decodable images, plus which inputs they are.

    features: (n_valid, 1280) float32; logits: (n_valid, 1000) float32 or None;
    valid: (n_images,) bool, True where the input decoded; skipped: paths (or ``"#i"`` indices
    for in-memory images) that failed; paths: the input paths (empty for in-memory images).
    """

    features: np.ndarray
    logits: np.ndarray | None
    valid: np.ndarray
    skipped: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    cache_folder: Path | None = None
    skip_reasons: list[str] = field(default_factory=list)  # why each skipped input failed (aligned with skipped)


def default_num_workers() -> int:
    """One decoding worker per spare core (the main process runs the network), at least 1, at most 4."""
    n = os.cpu_count() or 1
    return max(1, min(4, n - 1))


def failure_reason(exc: BaseException, path: str | None = None) -> str:
    """One short line saying why an image failed: the error type and message, without the path."""
    msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if path:
        msg = msg.replace(repr(path), "").replace(path, "").replace("''", "").strip(" :")
    msg = " ".join(msg.split())
    return f"{type(exc).__name__}: {msg[:100]}" if msg else type(exc).__name__


FAILURE_KEY_HEAD = 8 << 20  # bytes of a failed file hashed from its start (and 1 MiB from its end)


def failure_key(path: str) -> str:
    """What a failed file *is*: ``sha256:<hash of its size and bytes>``, or ``unreadable:<errno name>``.

    Stored with a failure, and compared on later runs: a different key means the file changed
    (repaired, replaced, made readable) and is worth another try. Files past 9 MiB are hashed by
    their size, first 8 MiB and last 1 MiB, so a huge non-image file costs little to re-check.
    """
    import errno
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            h.update(str(size).encode())
            h.update(fh.read(FAILURE_KEY_HEAD))
            if size > FAILURE_KEY_HEAD + (1 << 20):
                fh.seek(size - (1 << 20))
            h.update(fh.read(1 << 20))
    except OSError as exc:
        return f"unreadable:{errno.errorcode.get(exc.errno, exc.errno)}"
    return f"sha256:{h.hexdigest()}"


class _FileDataset:
    """Map-style dataset: index -> (index, (3, R, R) uint8 array, ok, reason, failure key).

    Decoding errors give ok=False, the reason (one line) and the file's :func:`failure_key`.
    """

    def __init__(self, paths: Sequence[str], resolution: int):
        self.paths = list(paths)
        self.resolution = resolution

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return i, decode_file(self.paths[i], self.resolution), True, "", ""
        except Exception as exc:  # noqa: BLE001 - any decoder failure (truncated, not an image, unreadable) is a skip
            arr = np.zeros((3, self.resolution, self.resolution), np.uint8)
            return i, arr, False, failure_reason(exc, self.paths[i]), failure_key(self.paths[i])


def _collate(items):
    import torch

    idx = np.asarray([it[0] for it in items], np.int64)
    batch = torch.from_numpy(np.stack([it[1] for it in items]))
    ok = np.asarray([it[2] for it in items], bool)
    return idx, batch, ok, [it[3] for it in items], [it[4] for it in items]


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def _forward(model, batch_uint8) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return penultimate(model, normalise_batch(batch_uint8)).numpy().astype(np.float32, copy=False)


def _warn_skipped(skipped: list[str], reasons: list[str], n: int) -> None:
    if skipped:
        items = [f"{p} ({r})" if r else p for p, r in zip(skipped, reasons)]
        shown = ", ".join(items[:10]) + (f", ... ({len(items) - 10} more)" if len(items) > 10 else "")
        warnings.warn(
            f"skipped {len(skipped)} of {n} images that could not be decoded: {shown}", UserWarning, stacklevel=3
        )


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stderr, unit="img", desc=desc,
                dynamic_ncols=True, mininterval=1.0)


def _extract_in_memory(images, resolution, batch_size, progress) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import torch
    from PIL import Image

    model = load_efficientnet_lite0()
    n = len(images)
    feats = np.zeros((n, FEATURE_DIM), np.float32)
    valid = np.zeros(n, bool)
    reasons = [""] * n
    bar = _progress(n, 0, progress, f"features {BACKBONE} r{resolution}")
    for start in range(0, n, batch_size):
        part = images[start:start + batch_size]
        arrs, oks = [], []
        for img in part:
            try:
                if isinstance(img, np.ndarray):
                    if (
                        img.dtype != np.uint8
                        or img.ndim not in (2, 3)
                        or (img.ndim == 3 and img.shape[2] not in (1, 3, 4))
                    ):
                        raise ValueError(f"expected uint8 HxW or HxWx3 array, got {img.dtype} {img.shape}")
                    img = Image.fromarray(img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img)
                arrs.append(preprocess_pil(img, resolution))
                oks.append(True)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is a skip, reported per image
                arrs.append(np.zeros((3, resolution, resolution), np.uint8))
                oks.append(False)
                reasons[start + len(oks) - 1] = failure_reason(exc)
        feats[start:start + len(part)] = _forward(model, torch.from_numpy(np.stack(arrs)))
        valid[start:start + len(part)] = oks
        bar.update(len(part))
    bar.close()
    return feats, valid, reasons


def cached_extraction_exists(paths: Sequence[str], *, resolution: int = DEFAULT_RESOLUTION, cache_dir=None) -> bool:
    """True when a complete cache entry exists for exactly this file list (no computation)."""
    from .cache import FeatureCache, entry_dir

    paths = [os.fspath(p) for p in paths]
    folder = entry_dir(paths, BACKBONE, resolution, cache_dir)
    return FeatureCache(folder, len(paths), CHUNK_SIZE, {}).is_complete()


@dataclass
class _FileRecord:
    """Per input file: features (zero rows where invalid), valid, failure reason and failure key."""

    features: np.ndarray
    valid: np.ndarray
    reasons: list[str]
    keys: list[str]


def local_batches(paths: Sequence[str], batches: list[list[int]], resolution: int, num_workers: int | None = None):
    """Compute ``batches`` (lists of row indices into ``paths``) in this machine's processes.

    Yields ``(rows, features, ok, reasons, failure keys)`` per batch: DataLoader worker processes
    decode, this process runs the network. :mod:`zsl.features.ray_extract` yields the same tuples
    from a Ray cluster; :func:`extract` writes either into the same cache.
    """
    from torch.utils.data import DataLoader

    model = load_efficientnet_lite0()
    workers = default_num_workers() if num_workers is None else int(num_workers)
    loader = DataLoader(_FileDataset(paths, resolution), batch_sampler=batches, num_workers=workers,
                        collate_fn=_collate, prefetch_factor=4 if workers > 0 else None,
                        persistent_workers=False)
    for idx, batch, ok, reasons, keys in loader:
        yield idx, _forward(model, batch), ok, reasons, keys


def _extract_files(paths, resolution, batch_size, num_workers, cache_dir, progress, use_cache,
                   compute=None) -> tuple[_FileRecord, Path | None]:
    from .cache import FeatureCache, entry_dir

    n = len(paths)
    folder = entry_dir(paths, BACKBONE, resolution, cache_dir) if use_cache else None
    if use_cache:
        store = FeatureCache(folder, n, CHUNK_SIZE, {"backbone": BACKBONE, "resolution": resolution})
        record = store.load_record() if store.is_complete() else None
        if record is not None:
            rec = _FileRecord(*record)
            return _retry_changed_failures(rec, paths, resolution, batch_size, store, progress), folder
        store.prepare()
        done = store.done_chunks()
        chunk_size = CHUNK_SIZE
    else:
        store, done, chunk_size = None, set(), max(n, 1)
    n_chunks = (n + chunk_size - 1) // chunk_size
    todo = [i for i in range(n_chunks) if i not in done]
    # batches never straddle a chunk, so each chunk completes (and is written) as its last batch lands
    batches = []
    for c in todo:
        rows = list(range(c * chunk_size, min(n, (c + 1) * chunk_size)))
        batches += [rows[s:s + batch_size] for s in range(0, len(rows), batch_size)]
    n_done = sum(len(range(c * chunk_size, min(n, (c + 1) * chunk_size))) for c in done)

    rec = _FileRecord(np.zeros((n, FEATURE_DIM), np.float32), np.zeros(n, bool), [""] * n, [""] * n)
    remaining = {c: len(range(c * chunk_size, min(n, (c + 1) * chunk_size))) for c in todo}
    if batches:
        # compute(paths, batches, resolution) yields (rows, features, ok, reasons, keys) in any order and
        # grouping (a Ray cluster returns rows as they finish); a chunk is written once all its rows landed
        source = (
            compute(paths, batches, resolution)
            if compute is not None
            else local_batches(paths, batches, resolution, num_workers)
        )
        bar = _progress(n, n_done, progress, f"features {BACKBONE} r{resolution}")
        try:
            for idx, feats, ok, reasons, keys in source:
                idx = np.asarray(idx, np.int64)
                rec.features[idx] = feats
                rec.valid[idx] = ok
                for i, r, k in zip(idx.tolist(), reasons, keys):
                    rec.reasons[i], rec.keys[i] = r, k
                chunks, counts = np.unique(idx // chunk_size, return_counts=True)
                for c, k in zip(chunks.tolist(), counts.tolist()):
                    remaining[c] -= k
                    if remaining[c] == 0 and store is not None:
                        rows = store.chunk_rows(c)
                        store.write_chunk(c, rec.features[rows.start:rows.stop], rec.valid[rows.start:rows.stop],
                                          rec.reasons[rows.start:rows.stop], rec.keys[rows.start:rows.stop])
                bar.update(len(idx))
        finally:
            bar.close()
        if any(remaining.values()):  # a source that ends early must not leave a chunk silently unwritten
            raise RuntimeError(f"feature computation ended with {sum(remaining.values())} images not computed")
    if store is not None:
        try:
            for c in done:
                rows = store.chunk_rows(c)
                f, v, r, k = store.read_chunk(c)
                rec.features[rows.start:rows.stop], rec.valid[rows.start:rows.stop] = f, v
                rec.reasons[rows.start:rows.stop], rec.keys[rows.start:rows.stop] = r, k
            store.merge(paths, rec.features, rec.valid, rec.reasons, rec.keys)
        except FileNotFoundError:
            # another process extracting the same list merged (and removed the shards) first
            record = store.load_record() if store.is_complete() else None
            if record is None:
                raise
            rec = _FileRecord(*record)
    return rec, folder


def _retry_changed_failures(rec: _FileRecord, paths, resolution, batch_size, store, progress) -> _FileRecord:
    """Images that failed before are tried again when their content key changed (see the module docstring)."""
    failed = np.where(~rec.valid)[0]
    if not len(failed):
        return rec
    changed = [int(i) for i in failed if failure_key(paths[i]) != rec.keys[i]]
    if not changed:
        return rec
    again, _ = _extract_files([paths[i] for i in changed], resolution, batch_size, 0, None, progress, False)
    for j, i in enumerate(changed):
        rec.features[i], rec.valid[i] = again.features[j], again.valid[j]
        rec.reasons[i], rec.keys[i] = again.reasons[j], again.keys[j]
    store.merge(paths, rec.features, rec.valid, rec.reasons, rec.keys)
    return rec


def extract(
    images: Sequence[Any],
    *,
    resolution: int = DEFAULT_RESOLUTION,
    batch_size: int = 64,
    num_workers: int | None = None,
    cache_dir=None,
    progress: bool = True,
    with_logits: bool = False,
    cache: bool = True,
    ray_address: str | None = None,
    ray_workers: int | None = None,
) -> Extraction:
    """Features of a list of image paths or in-memory images, with the record of skipped inputs.

    See the module docstring. ``cache_dir`` overrides the cache root (default ``$ZSL_CACHE``);
    ``cache=False`` computes without reading or writing the cache. ``num_workers`` (default: one
    per spare core) decoding processes feed the network; 0 decodes in the calling process.
    ``ray_address`` computes the missing rows on that Ray cluster instead (``ray_workers`` actors,
    default one per cluster CPU), into the same cache: see :mod:`zsl.features.ray_extract`.
    """
    from ..errors import DataError

    images = list(images)
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not 32 <= resolution <= 1024:
        raise DataError(f"resolution must be an integer in [32, 1024] pixels, got {resolution!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if num_workers is not None and (
        isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0
    ):
        raise DataError(f"num_workers must be an integer >= 0 (0 decodes in this process), got {num_workers!r}")
    compute = None
    if ray_address is not None:
        from ..distributed import check_address, require_ray

        require_ray()  # the missing extra is reported before any work, even when the cache would answer
        check_address(ray_address, flag="ray_address")
        if ray_workers is not None and (
            isinstance(ray_workers, bool) or not isinstance(ray_workers, (int, np.integer)) or ray_workers < 1
        ):
            raise DataError(f"ray_workers must be an integer >= 1, got {ray_workers!r}")
        if images and not all(_is_path(x) for x in images):
            raise DataError(
                "ray_address: the Ray path extracts image files; pass "
                "file paths (in-memory images are computed locally)"
            )
        from .ray_extract import ray_batches

        compute = ray_batches(ray_address, workers=ray_workers, batch_size=int(batch_size),
                              log=None if progress else (lambda msg: None))
    n = len(images)
    if n and all(_is_path(x) for x in images):
        paths = [os.fspath(p) for p in images]
        rec, folder = _extract_files(paths, resolution, batch_size, num_workers, cache_dir, progress, cache, compute)
        feats, valid = rec.features, rec.valid
        skipped = [p for p, v in zip(paths, valid) if not v]
        reasons = [r for r, v in zip(rec.reasons, valid) if not v]
    elif any(_is_path(x) for x in images):
        raise DataError("extract_features: pass either a list of file paths or a list of images, not a mix")
    else:
        paths, folder = [], None
        feats, valid, all_reasons = (_extract_in_memory(images, resolution, batch_size, progress) if n
                                     else (np.zeros((0, FEATURE_DIM), np.float32), np.zeros(0, bool), []))
        skipped = [f"#{i}" for i in np.where(~valid)[0]]
        reasons = [all_reasons[i] for i in np.where(~valid)[0]]
    _warn_skipped(skipped, reasons, n)
    feats = feats[valid] if len(skipped) else feats
    logits = logits_from_features(feats) if with_logits else None
    return Extraction(feats, logits, valid, skipped, paths, folder, reasons)


def extract_features(
    images: Sequence[Any],
    *,
    resolution: int = DEFAULT_RESOLUTION,
    batch_size: int = 64,
    num_workers: int | None = None,
    cache_dir=None,
    progress: bool = True,
    with_logits: bool = False,
    cache: bool = True,
):
    """(n_valid, 1280) float32 features, or ``(features, logits (n_valid, 1000))`` with ``with_logits``.

    Rows are the decodable images in input order (a warning names any skipped); use
    :func:`extract` for the ``valid`` mask and the skipped list.
    """
    out = extract(images, resolution=resolution, batch_size=batch_size, num_workers=num_workers,
                  cache_dir=cache_dir, progress=progress, with_logits=with_logits, cache=cache)
    return (out.features, out.logits) if with_logits else out.features


__all__ = [
    "BACKBONE",
    "failure_key",
    "failure_reason",
    "DEFAULT_RESOLUTION",
    "Extraction",
    "FEATURE_DIM",
    "cached_extraction_exists",
    "extract",
    "extract_features",
    "load_efficientnet_lite0",
    "local_batches",
    "logits_from_features",
    "preprocess_pil",
]
