"""A binary-code search index: a fitted hashing method + a faiss binary index + a manifest.

Folder layout (every file written atomically; ``manifest.json`` last, so a folder with a manifest
is complete, and the manifest holds the SHA-256 of every other file so a mixed-up folder is
refused on load):

    DIR/manifest.json   method spec and name, n_bits, index kind and parameters, feature extractor
                        (name, resolution, dimensionality), dataset name / split / fingerprint,
                        database size, file checksums, zsl version
    DIR/model.pkl       the fitted hash model (``method.save``), which encodes queries
    DIR/codes.faiss     the faiss binary index over the database codes
    DIR/database.npz    per database item: dataset row, label, and (when known) source path;
                        class names

Index kinds:
    flat  ``IndexBinaryFlat``: exact Hamming k-NN (SIMD popcount scan of every code)
    hnsw  ``IndexBinaryHNSW(n_bits, M)``: approximate graph search, ``ef_search`` at query time
    ivf   ``IndexBinaryIVF`` over an ``IndexBinaryFlat`` coarse quantiser with ``nlist`` lists
          (trained on the database codes), ``nprobe`` lists visited at query time

Searching with an :class:`IndexMismatchError` refuses queries whose features do not come from the
extractor the index was built with (different dimensionality, backbone or resolution).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, ZSLError, require_extra
from .io import atomic_write, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
INDEX_KINDS = ("flat", "hnsw", "ivf")


class IndexMismatchError(DataError):
    """Queries (features, extractor, code length) do not match what the index was built with."""


def _faiss():
    return require_extra("faiss", "hashing")


def make_binary_index(codes: np.ndarray, n_bits: int, kind: str = "flat", *, hnsw_m: int = 32, ef_construction: int = 64,
                      ef_search: int = 64, nlist: int | None = None, nprobe: int = 8):
    """Build a faiss binary index of ``kind`` over (n, n_bits // 8) uint8 codes and add them."""
    faiss = _faiss()
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if codes.ndim != 2 or codes.shape[1] * 8 != n_bits:
        raise DataError(f"codes of shape {codes.shape} are not packed {n_bits}-bit codes")
    if kind == "flat":
        index = faiss.IndexBinaryFlat(n_bits)
    elif kind == "hnsw":
        index = faiss.IndexBinaryHNSW(n_bits, hnsw_m)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        nlist = nlist or max(1, int(4 * np.sqrt(len(codes))))
        quantizer = faiss.IndexBinaryFlat(n_bits)
        index = faiss.IndexBinaryIVF(quantizer, n_bits, nlist)
        index.own_fields = True
        quantizer.this.disown()  # the IVF index owns (and frees) its quantiser
        index.train(codes[np.random.default_rng(0).permutation(len(codes))[: max(nlist * 40, 10000)]])
        index.nprobe = nprobe
    else:
        raise ZSLError(f"unknown index kind {kind!r}; valid kinds: {', '.join(INDEX_KINDS)}")
    index.add(codes)
    return index


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def feature_extractor_of(dataset) -> dict[str, Any]:
    """What produced a dataset's features: {name, resolution, dim} from its metadata.

    Image-folder datasets (CIFAR-10, a user's photos) record their backbone and resolution;
    datasets shipped with features (AwA1, xlsa17) are named by their feature files.
    """
    meta = dict(getattr(dataset, "meta", {}) or {})
    name = meta.get("backbone") or meta.get("extractor") or meta.get("feature_extractor")
    if isinstance(name, dict):
        info = dict(name)
        info.setdefault("dim", int(dataset.X.shape[1]))
        return info
    if not name:
        feats = meta.get("features")
        fmap = meta.get("feature_map")
        name = f"{dataset.name}:" + ("+".join(feats) if isinstance(feats, (list, tuple)) else str(feats or "provided"))
        if fmap:
            name += f"|{fmap}"
    return {"name": str(name), "resolution": meta.get("resolution"), "dim": int(dataset.X.shape[1])}


@dataclass
class HashIndex:
    """A loaded index folder: ``search(features, k)`` encodes and looks up."""

    path: Path
    manifest: dict
    method: Any
    index: Any
    database: dict

    @property
    def n_bits(self) -> int:
        return int(self.manifest["n_bits"])

    def check_features(self, X: np.ndarray, extractor: dict | None = None) -> np.ndarray:
        """Refuse query features that cannot be encoded by this index's hash model."""
        from .base import check_features

        X = check_features(X)
        want = self.manifest["feature_extractor"]
        if X.shape[1] != want["dim"]:
            raise IndexMismatchError(
                f"{self.path}: the index was built on {want['dim']}-d features from {want['name']!r} "
                f"(resolution {want.get('resolution')}); got {X.shape[1]}-d query features. Extract the queries with the same extractor.")
        if extractor is not None:
            for key in ("name", "resolution"):
                if extractor.get(key) is not None and want.get(key) is not None and str(extractor[key]) != str(want[key]):
                    raise IndexMismatchError(
                        f"{self.path}: query features come from {key}={extractor[key]!r} but the index was built with "
                        f"{key}={want[key]!r}; re-extract the queries with {want['name']!r} at resolution {want.get('resolution')}")
        return X

    def encode(self, X: np.ndarray, extractor: dict | None = None) -> np.ndarray:
        return self.method.encode(self.check_features(X, extractor))

    def search_codes(self, codes: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] * 8 != self.n_bits:
            raise IndexMismatchError(f"{self.path}: the index holds {self.n_bits}-bit codes; got codes of shape {codes.shape}")
        k = int(min(k, self.index.ntotal))
        D, I = self.index.search(codes, k)
        return D, I

    def search(self, X: np.ndarray, k: int = 10, extractor: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) query features -> (n, k) Hamming distances and (n, k) database positions (-1: none)."""
        return self.search_codes(self.encode(X, extractor), k)


def build_index(method, database_codes: np.ndarray, out: str | os.PathLike, *, method_spec: str, feature_extractor: dict,
                dataset_info: dict, database: dict, kind: str = "flat", **index_params) -> Path:
    """Write an index folder for a fitted hashing ``method`` and its database codes (see module docstring)."""
    faiss = _faiss()
    from . import __version__

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()  # the folder is incomplete until the new manifest lands
    n_bits = int(method.get_params()["n_bits"])
    t0 = time.perf_counter()
    index = make_binary_index(database_codes, n_bits, kind, **index_params)
    build_seconds = time.perf_counter() - t0
    with atomic_write(out / "codes.faiss", "wb") as fh:
        fh.write(faiss.serialize_index_binary(index).tobytes())
    method.save(out / "model.pkl")
    with atomic_write(out / "database.npz", "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in database.items()})
    files = {name: _sha256(out / name) for name in ("codes.faiss", "model.pkl", "database.npz")}
    manifest = {
        "format_version": FORMAT_VERSION,
        "zsl_version": __version__,
        "method": method.name,
        "method_spec": method_spec,
        "method_params": {k: v for k, v in method.get_params().items()},
        "n_bits": n_bits,
        "bit_order": "np.packbits(bits, axis=1, bitorder='big'): bit j -> byte j//8, MSB first",
        "index": {"kind": kind, "faiss_class": type(index).__name__, "ntotal": int(index.ntotal), **index_params,
                  "build_seconds": build_seconds},
        "feature_extractor": feature_extractor,
        "dataset": dataset_info,
        "files": files,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(out / MANIFEST, manifest)
    return out


def load_index(path: str | os.PathLike, *, verify: bool = True) -> HashIndex:
    """Load an index folder, refusing incomplete, corrupt or mixed-up folders with a clear error."""
    faiss = _faiss()
    from .base import ZSLMethod

    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ZSLError(f"{path}: not a zsl index folder (no {MANIFEST}); build one with `zsl index build`")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise ZSLError(f"{mpath}: corrupt manifest ({exc}); rebuild the index") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ZSLError(f"{mpath}: index format {manifest.get('format_version')} is not {FORMAT_VERSION}; rebuild the index")
    for name, digest in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise ZSLError(f"{path}: {name} is missing; rebuild the index")
        if verify and _sha256(f) != digest:
            raise ZSLError(f"{f}: checksum differs from the manifest (file replaced or corrupt); rebuild the index")
    method = ZSLMethod.load(path / "model.pkl")
    if method.name != manifest["method"] or int(method.get_params()["n_bits"]) != int(manifest["n_bits"]):
        raise IndexMismatchError(f"{path}: model.pkl is a {method.name} {method.get_params().get('n_bits')}-bit model but the "
                                 f"manifest says {manifest['method']} {manifest['n_bits']}-bit; rebuild the index")
    blob = np.fromfile(path / "codes.faiss", dtype=np.uint8)
    index = faiss.deserialize_index_binary(blob)
    if index.d != int(manifest["n_bits"]):
        raise IndexMismatchError(f"{path}: codes.faiss holds {index.d}-bit codes but the manifest says {manifest['n_bits']}")
    kind = manifest["index"]["kind"]
    if kind == "hnsw" and "ef_search" in manifest["index"]:
        index.hnsw.efSearch = int(manifest["index"]["ef_search"])
    if kind == "ivf" and "nprobe" in manifest["index"]:
        index.nprobe = int(manifest["index"]["nprobe"])
    with np.load(path / "database.npz", allow_pickle=False) as z:
        database = {k: z[k] for k in z.files}
    return HashIndex(path=path, manifest=manifest, method=method, index=index, database=database)
