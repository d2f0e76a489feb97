"""Small I/O helpers: atomic writes, the data and cache roots, run folders."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ZSLError

#: file suffixes zsl reads as images (every one decodes with Pillow): image folders, ``zsl label``
#: inputs and ``zsl index search`` queries all accept exactly these (compared lower-cased)
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """Write to a temporary file beside ``path`` and rename it into place on success.

    A crash mid-write leaves the previous file (or nothing) at ``path``, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save_npz(path: str | os.PathLike, **arrays) -> Path:
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        import numpy as np

        np.savez(fh, **arrays)
    return path


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-root`` flag, else ``$ZSL_DATA``, else ``~/.cache/zsl/data``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ZSL_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/zsl/data").expanduser()


def cache_root(explicit: str | os.PathLike | None = None) -> Path:
    """``--cache-dir`` flag, else ``$ZSL_CACHE``, else ``~/.cache/zsl``: created, and checked writable.

    Everything zsl derives (features, runs, results, checkpoints) is written here, so a cache that
    cannot be written is a one-line error naming the folder and the fix -- raised when the cache is
    first asked for, before any long computation whose result would otherwise be lost.
    """
    if explicit:
        root, source = Path(explicit).expanduser(), "--cache-dir"
    else:
        env = os.environ.get("ZSL_CACHE")
        root, source = (
            (Path(env).expanduser(), "ZSL_CACHE") if env else (Path("~/.cache/zsl").expanduser(), "the default cache")
        )
    fix = "set ZSL_CACHE or pass --cache-dir to a writable folder"
    blocker = file_in_the_way(root)
    if blocker is not None:
        raise ZSLError(f"cache folder {root} ({source}): {blocker} is a file, not a folder; {fix}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZSLError(f"cannot create the cache folder {root} ({source}): {exc.strerror or exc}; {fix}") from None
    problem = _write_problem(root)
    if problem:
        raise ZSLError(f"cache folder {root} ({source}) is not writable ({problem}); {fix}")
    return root


def _exists(p: Path) -> bool:
    try:
        p.stat()
        return True
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except OSError:  # there, but not ours to look at (EACCES on a parent): the write probe says why
        return True


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return True  # unreadable: treated as a folder, and the write probe reports the permission problem


def file_in_the_way(path: Path) -> Path | None:
    """The first existing non-folder among ``path`` and its ancestors (None when there is none)."""
    for p in (path, *path.parents):
        if _exists(p):
            return None if _is_dir(p) else p
    return None


def _write_problem(folder: Path) -> str | None:
    """Why a new file cannot be created in ``folder`` (None when it can): a real probe, so ACLs,
    read-only mounts and full disks all count, whoever runs it."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".zsl-write-check-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def check_writable(path: str | os.PathLike, *, what: str, kind: str = "any") -> Path:
    """Raise a one-line :class:`ZSLError` unless ``path`` can be written; call it before long work.

    ``kind``: ``"file"`` (``path`` must not be a folder), ``"folder"`` (must not be a file) or
    ``"any"``. Folders that do not exist yet are fine when the nearest existing ancestor is a
    writable folder (they will be created); nothing is created here.
    """
    path = Path(path).expanduser()
    is_dir = _exists(path) and _is_dir(path)
    if kind == "file" and is_dir:
        raise ZSLError(f"{what} {path}: is a folder; give a file name")
    if kind == "folder" and _exists(path) and not is_dir:
        raise ZSLError(f"{what} {path}: is a file; give a folder")
    start = path if is_dir else path.parent
    blocker = file_in_the_way(start)
    if blocker is not None:
        raise ZSLError(f"{what} {path}: {blocker} is a file, not a folder; choose another place")
    existing = next(p for p in (start, *start.parents) if _exists(p))
    problem = _write_problem(existing)
    if problem:
        raise ZSLError(f"{what} {path}: cannot write in {existing} ({problem}); choose a writable place")
    return path


def content_digest(*parts, length: int = 32) -> str:
    """Hex digest of arrays (dtype, shape and every byte) and strings: the one content hash of zsl.

    Used for cache keys, dataset fingerprints and checkpoint identities; blake2b runs at about
    1 GB/s, so hashing a whole feature matrix costs well under a second.
    """
    import numpy as np

    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        if isinstance(part, str):
            h.update(b"s")
            h.update(part.encode("utf-8", "surrogateescape"))  # file names need not be valid UTF-8
            continue
        a = np.ascontiguousarray(part)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()[:length]


def file_digest(path: str | os.PathLike, length: int = 64) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks: the digest of data that lives on disk.

    :func:`content_digest` hashes what is in memory; this hashes a file without loading it. sha256
    (not blake2b) because its full value is what ``sha256sum`` prints, so a user can check an index
    manifest by hand, and because extracted-archive folders in the shared cache are named by it.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def config_hash(config: Any, length: int = 16) -> str:
    """Stable short hash (sha256 hex) of a JSON-serialisable value: keys sorted, other objects as str().

    The key of stored benchmark cells, run folders and the label-space caches; kept sha256 because
    those keys are already on disk and in results stores (a new hash would orphan them all).
    """
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
    return path
