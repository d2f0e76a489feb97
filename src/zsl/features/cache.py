"""On-disk feature cache: resumable shards, merged atomically at the end.

Layout (``<cache root>/features/<backbone>-r<resolution>-<list hash>/``)::

    shard-00000.npz ... shard-NNNNN.npz   completed chunks (features, valid), each written atomically
    features.npz                          the merged result: features (n, d) float32 (zero rows for
                                          images that failed to decode), valid (n,) bool, paths (n,),
                                          and for failed images why (reasons) and their content key
                                          (failure_keys; see zsl.features.failure_key)
    meta.json                             backbone, resolution, n, chunk size (written first)

The key hashes the backbone, resolution and the file list (absolute path, size and mtime of every
file), so editing, adding or touching an image gives a new entry. An interrupted run (even SIGKILL)
leaves only complete shards (temp files are renamed into place) and the next run computes only the
missing chunks. Once ``features.npz`` exists the shards are removed.

The size/mtime key cannot see a file made readable (``chmod``) or repaired in place with its
timestamp kept, so failures carry their own content key and are retried when it changes (done by
:mod:`zsl.features`; entries written before failures carried keys are retried once).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from ..io import atomic_write, cache_root

SHARD_RE = re.compile(r"^shard-(\d{5})\.npz$")
#: what reading a truncated, corrupt or tampered cache file raises (never unpickled: allow_pickle=False)
DAMAGE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
FORMAT_VERSION = 1


def file_list_hash(paths: list[str]) -> str:
    """sha256 over (absolute path, size, mtime_ns) of every file, in order; missing files hash as such."""
    h = hashlib.sha256()
    for p in paths:
        ap = os.path.abspath(p)
        name = os.fsencode(ap)  # the bytes of the name: also for names that are not valid UTF-8
        try:
            st = os.stat(ap)
            h.update(name + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(name + b"\0missing\n")
    return h.hexdigest()[:20]


def entry_dir(paths: list[str], backbone: str, resolution: int, cache_dir=None) -> Path:
    return cache_root(cache_dir) / "features" / f"{backbone}-r{resolution}-v{FORMAT_VERSION}-{file_list_hash(paths)}"


class FeatureCache:
    """One cache entry: which chunks are done, write a chunk, merge, load."""

    def __init__(self, folder: Path, n: int, chunk_size: int, meta: dict):
        self.folder = Path(folder)
        self.n = n
        self.chunk_size = chunk_size
        self.meta = {**meta, "n": n, "chunk_size": chunk_size, "format": FORMAT_VERSION}

    @property
    def merged_path(self) -> Path:
        return self.folder / "features.npz"

    def is_complete(self) -> bool:
        return self.merged_path.is_file()

    def n_chunks(self) -> int:
        return (self.n + self.chunk_size - 1) // self.chunk_size

    def chunk_rows(self, i: int) -> range:
        return range(i * self.chunk_size, min(self.n, (i + 1) * self.chunk_size))

    def shard_path(self, i: int) -> Path:
        return self.folder / f"shard-{i:05d}.npz"

    def prepare(self) -> None:
        """Create the folder; a chunk size differing from an earlier run's invalidates its shards."""
        self.folder.mkdir(parents=True, exist_ok=True)
        meta_path = self.folder / "meta.json"
        if meta_path.is_file():
            try:
                old = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError):
                old = {}
            if old.get("chunk_size") != self.chunk_size or old.get("n") != self.n:
                for f in self.folder.glob("shard-*.npz"):
                    f.unlink(missing_ok=True)
        with atomic_write(meta_path) as fh:
            json.dump(self.meta, fh, indent=2, sort_keys=True)

    def done_chunks(self) -> set[int]:
        """Chunks with a readable shard of the right shape; a damaged shard is removed (and recomputed)."""
        done = set()
        if not self.folder.is_dir():
            return done
        for f in self.folder.iterdir():
            m = SHARD_RE.match(f.name)
            if m and int(m.group(1)) < self.n_chunks():
                i = int(m.group(1))
                try:
                    feats, valid, _, _ = self.read_chunk(i)
                    ok = feats.ndim == 2 and len(feats) == len(valid) == len(self.chunk_rows(i))
                except DAMAGE_ERRORS:
                    ok = False
                if ok:
                    done.add(i)
                else:
                    f.unlink(missing_ok=True)
        return done

    def write_chunk(self, i: int, features: np.ndarray, valid: np.ndarray, reasons: list[str] | None = None,
                    failure_keys: list[str] | None = None) -> None:
        rows = self.chunk_rows(i)
        assert features.shape[0] == len(rows) == valid.shape[0], (features.shape, len(rows))
        with atomic_write(self.shard_path(i), "wb") as fh:
            np.savez(fh, features=features.astype(np.float32, copy=False), valid=valid.astype(bool),
                     **_failure_arrays(len(rows), reasons, failure_keys))

    def read_chunk(self, i: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        """(features, valid, reasons, failure keys) of a completed chunk."""
        with np.load(self.shard_path(i), allow_pickle=False) as z:
            return z["features"], z["valid"], *_failure_lists(z, len(z["valid"]))

    def merge(self, paths: list[str], features: np.ndarray, valid: np.ndarray, reasons: list[str] | None = None,
              failure_keys: list[str] | None = None) -> None:
        """Write the whole entry (features (n, d), valid (n,), why and what failed) atomically, then drop the shards."""
        with atomic_write(self.merged_path, "wb") as fh:
            np.savez(fh, features=features, valid=valid, paths=np.asarray([os.path.abspath(p) for p in paths]),
                     **_failure_arrays(len(valid), reasons, failure_keys))
        for i in range(self.n_chunks()):
            self.shard_path(i).unlink(missing_ok=True)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.merged_path, allow_pickle=False) as z:
            return z["features"], z["valid"]

    def load_record(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str]] | None:
        """(features, valid, reasons, failure keys), or None when the entry is damaged (it is then
        removed, to be recomputed). Entries from before failures had keys get empty keys, which
        never match a file's key, so their failures are retried once."""
        try:
            with np.load(self.merged_path, allow_pickle=False) as z:
                feats, valid = z["features"], z["valid"]
                reasons, keys = _failure_lists(z, len(valid))
            if feats.ndim != 2 or len(feats) != self.n or valid.shape != (self.n,) or len(reasons) != self.n:
                raise ValueError(f"arrays of {len(feats)} rows for {self.n} images")
        except DAMAGE_ERRORS as exc:
            import warnings

            warnings.warn(f"feature cache entry {self.merged_path} is damaged ({type(exc).__name__}: {str(exc)[:80]}); "
                          "recomputing it", UserWarning, stacklevel=3)
            self.merged_path.unlink(missing_ok=True)
            return None
        return feats, valid, reasons, keys


def _failure_arrays(n: int, reasons, keys) -> dict[str, np.ndarray]:
    reasons = list(reasons) if reasons is not None else [""] * n
    keys = list(keys) if keys is not None else [""] * n
    # unicode arrays (not object arrays): np.load never needs pickle to read them
    return {"reasons": np.asarray(reasons, dtype=str) if n else np.zeros(0, "<U1"),
            "failure_keys": np.asarray(keys, dtype=str) if n else np.zeros(0, "<U1")}


def _failure_lists(z, n: int) -> tuple[list[str], list[str]]:
    reasons = z["reasons"].tolist() if "reasons" in z.files else [""] * n
    keys = z["failure_keys"].tolist() if "failure_keys" in z.files else [""] * n
    return reasons, keys
