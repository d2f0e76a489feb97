"""Small I/O helpers: atomic writes, the data and cache roots, run folders."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


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
    """``--cache-dir`` flag, else ``$ZSL_CACHE``, else ``~/.cache/zsl``."""
    if explicit:
        root = Path(explicit).expanduser()
    else:
        env = os.environ.get("ZSL_CACHE")
        root = Path(env).expanduser() if env else Path("~/.cache/zsl").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


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
            h.update(part.encode())
            continue
        a = np.ascontiguousarray(part)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()[:length]


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
    return path
