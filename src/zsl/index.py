"""A binary-code search index: a fitted hashing method + a faiss binary index + a manifest.

An index folder holds arrays and JSON only -- nothing in it is unpickled or executed, and the faiss
index is rebuilt from arrays on load (faiss's own serialised format is not parsed: it is not
designed to be read from untrusted files). Layout (every file written atomically; ``manifest.json``
last, so a folder with a manifest is complete)::

    DIR/manifest.json   method spec and name, n_bits, index kind and parameters, feature extractor
                        (name, resolution, dimensionality), dataset name / split / fingerprint,
                        database size, SHA-256 of every other file, zsl version
    DIR/model.npz       the fitted hash model (``method.save``: arrays + JSON, :mod:`zsl.persist`),
                        which encodes queries
    DIR/database.npz    per database item: packed code, dataset row label and (when known) source
                        path; class names
    DIR/structure.npz   what the approximate kinds add to the codes: the HNSW graph (levels,
                        offsets, neighbours, entry point) or the IVF centroids and list members

The checksums catch a mixed-up or damaged folder; they are no defence against a tamperer (who can
rewrite the manifest too) and need not be: every file is data, and data that does not fit is refused.
On load every structural array is checked before faiss sees it (graph neighbours and list members
in range, levels consistent), so a crafted folder cannot make faiss read out of bounds.

Index kinds:
    flat  ``IndexBinaryFlat``: exact Hamming k-NN (SIMD popcount scan of every code)
    hnsw  ``IndexBinaryHNSW(n_bits, M)``: approximate graph search, ``ef_search`` at query time
    ivf   ``IndexBinaryIVF`` over an ``IndexBinaryFlat`` coarse quantiser with ``nlist`` lists
          (trained on the database codes), ``nprobe`` lists visited at query time

Searching with an :class:`IndexMismatchError` refuses queries whose features do not come from the
extractor the index was built with (different dimensionality, backbone or resolution).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, ZSLError, require_extra
from .io import file_digest, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
FILES = ("model.npz", "database.npz", "structure.npz")
INDEX_KINDS = ("flat", "hnsw", "ivf")


class IndexMismatchError(DataError):
    """Queries (features, extractor, code length) do not match what the index was built with."""


def _faiss():
    return require_extra("faiss", "hashing")


def make_binary_index(
    codes: np.ndarray, n_bits: int, kind: str = "flat", *, hnsw_m: int = 32, ef_construction: int = 64,
    ef_search: int = 64, nlist: int | None = None, nprobe: int = 8,
):
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
                f"(resolution {want.get('resolution')}); got {X.shape[1]}-d "
                "query features. Extract the queries with the same extractor."
            )
        if extractor is not None:
            for key in ("name", "resolution"):
                if (
                    extractor.get(key) is not None
                    and want.get(key) is not None
                    and str(extractor[key]) != str(want[key])
                ):
                    raise IndexMismatchError(
                        f"{self.path}: query features come from {key}={extractor[key]!r} but the index was built with "
                        f"{key}={want[key]!r}; re-extract the queries with {want['name']!r} at resolution "
                        f"{want.get('resolution')}"
                    )
        return X

    def encode(self, X: np.ndarray, extractor: dict | None = None) -> np.ndarray:
        return self.method.encode(self.check_features(X, extractor))

    def search_codes(self, codes: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] * 8 != self.n_bits:
            raise IndexMismatchError(
                f"{self.path}: the index holds {self.n_bits}-bit codes; got codes of shape {codes.shape}"
            )
        k = int(min(k, self.index.ntotal))
        D, I = self.index.search(codes, k)
        return D, I

    def search(self, X: np.ndarray, k: int = 10, extractor: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) query features -> (n, k) Hamming distances and (n, k) database positions (-1: none)."""
        return self.search_codes(self.encode(X, extractor), k)


def index_structure(index, kind: str) -> dict[str, np.ndarray]:
    """The arrays that rebuild ``index`` exactly from its codes (see :func:`rebuild_index`)."""
    faiss = _faiss()
    if kind == "flat":
        return {}
    if kind == "hnsw":
        h = index.hnsw
        return {"levels": faiss.vector_to_array(h.levels).astype(np.int32),
                "offsets": faiss.vector_to_array(h.offsets).astype(np.int64),
                "neighbors": faiss.vector_to_array(h.neighbors).astype(np.int32),
                "entry_point": np.int64(h.entry_point), "max_level": np.int64(h.max_level)}
    if kind == "ivf":
        invlists = index.invlists
        quantizer = faiss.downcast_IndexBinary(index.quantizer)
        centroids = faiss.vector_to_array(quantizer.xb).reshape(index.nlist, index.code_size)
        sizes = np.asarray([invlists.list_size(i) for i in range(index.nlist)], np.int64)
        ids = [faiss.rev_swig_ptr(invlists.get_ids(i), int(n)).copy() if n else np.zeros(0, np.int64)
               for i, n in enumerate(sizes)]
        return {"centroids": centroids, "list_sizes": sizes, "list_ids": np.concatenate(ids).astype(np.int64)}
    raise ZSLError(f"unknown index kind {kind!r}; valid kinds: {', '.join(INDEX_KINDS)}")


def _int_param(manifest_index: dict, key: str, lo: int, hi: int, where: Path) -> int:
    v = manifest_index.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ZSLError(
            f"{where}: manifest index parameter {key}={v!r} is not an integer in [{lo}, {hi}]; rebuild the index"
        )
    return v


def rebuild_index(
    codes: np.ndarray, n_bits: int, kind: str, params: dict, structure: dict[str, np.ndarray], where: Path
):
    """A faiss index over ``codes`` from the arrays of :func:`index_structure`, each checked first.

    Nothing here trusts the arrays: every id and graph link must be in range and every node's
    adjacency block must match its level, or the folder is refused -- faiss does no bounds checks.
    """
    faiss = _faiss()
    n = len(codes)

    def refuse(what: str):
        return ZSLError(f"{where}: {what}; the index folder is damaged or was tampered with -- rebuild it")

    def arr(key, dtype, ndim):
        a = structure.get(key)
        if a is None or a.dtype != dtype or a.ndim != ndim:
            raise refuse(f"structure.npz has no {ndim}-d {np.dtype(dtype).name} array {key!r}")
        return a

    if kind == "flat":
        index = faiss.IndexBinaryFlat(n_bits)
        index.add(codes)
        return index
    if kind == "hnsw":
        M = _int_param(params, "hnsw_m", 2, 1024, where)
        index = faiss.IndexBinaryHNSW(n_bits, M)
        h = index.hnsw
        cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
        levels, offsets, neighbors = (
            arr("levels", np.int32, 1), arr("offsets", np.int64, 1), arr("neighbors", np.int32, 1),
        )
        entry, max_level = int(arr("entry_point", np.int64, 0)), int(arr("max_level", np.int64, 0))
        if len(levels) != n or len(offsets) != n + 1:
            raise refuse(f"the HNSW graph has {len(levels)} nodes for {n} codes")
        if n and (levels.min() < 1 or levels.max() >= len(cum)):
            raise refuse(f"HNSW levels outside [1, {len(cum) - 1}]")
        if (
            offsets[0] != 0
            or offsets[-1] != len(neighbors)
            or (n and not np.array_equal(np.diff(offsets), cum[levels]))
        ):
            raise refuse("HNSW adjacency offsets do not match the node levels")
        if len(neighbors) and (neighbors.min() < -1 or neighbors.max() >= n):
            raise refuse(f"HNSW links outside [0, {n})")
        if n and (not 0 <= entry < n or max_level != int(levels.max()) - 1 or levels[entry] - 1 != max_level):
            raise refuse("the HNSW entry point is not a node of the top level")
        # a link at level l must point to a node that has level l (faiss reads its level-l block)
        for level in range(1, int(levels.max()) if n else 0):
            nodes = np.where(levels > level)[0]
            slots = offsets[nodes][:, None] + np.arange(cum[level], cum[level + 1])[None, :]
            linked = neighbors[slots]
            linked = linked[linked >= 0]
            if len(linked) and levels[linked].min() <= level:
                raise refuse(f"HNSW links at level {level} point to nodes below it")
        faiss.copy_array_to_vector(levels, h.levels)
        faiss.copy_array_to_vector(offsets.astype(np.uint64), h.offsets)
        faiss.copy_array_to_vector(neighbors, h.neighbors)
        h.entry_point, h.max_level = entry, max_level
        h.efConstruction = (
            _int_param(params, "ef_construction", 1, 1 << 20, where) if "ef_construction" in params else 64
        )
        h.efSearch = _int_param(params, "ef_search", 1, 1 << 20, where)
        index.storage.add(codes)
        index.ntotal = n
        return index
    if kind == "ivf":
        centroids, sizes, ids = (
            arr("centroids", np.uint8, 2), arr("list_sizes", np.int64, 1), arr("list_ids", np.int64, 1),
        )
        nlist = len(centroids)
        if nlist < 1 or centroids.shape[1] * 8 != n_bits or len(sizes) != nlist:
            raise refuse(
                f"IVF centroids of shape {centroids.shape} / {len(sizes)} list sizes do not fit {n_bits}-bit codes"
            )
        if (sizes < 0).any() or sizes.sum() != n or len(ids) != n or \
                (n and not np.array_equal(np.bincount(np.clip(ids, 0, n - 1), minlength=n), np.ones(n, np.int64))) or \
                (n and (ids.min() < 0 or ids.max() >= n)):
            raise refuse("IVF list members are not each database item exactly once")
        quantizer = faiss.IndexBinaryFlat(n_bits)
        quantizer.add(np.ascontiguousarray(centroids))
        index = faiss.IndexBinaryIVF(quantizer, n_bits, nlist)
        index.own_fields = True
        quantizer.this.disown()
        index.is_trained = True
        start = 0
        for lst, size in enumerate(sizes.tolist()):
            if size:
                members = np.ascontiguousarray(ids[start:start + size])
                block = np.ascontiguousarray(codes[members])
                index.invlists.add_entries(lst, size, faiss.swig_ptr(members), faiss.swig_ptr(block))
            start += size
        index.ntotal = n
        index.nprobe = _int_param(params, "nprobe", 1, 1 << 20, where) if "nprobe" in params else 8
        return index
    raise ZSLError(f"{where}: unknown index kind {kind!r} in the manifest; valid kinds: {', '.join(INDEX_KINDS)}")


def build_index(
    method, database_codes: np.ndarray, out: str | os.PathLike, *, method_spec: str, feature_extractor: dict,
    dataset_info: dict, database: dict, kind: str = "flat", **index_params,
) -> Path:
    """Write an index folder for a fitted hashing ``method`` and its database codes (see module docstring)."""
    from . import __version__
    from .persist import save_npz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()  # the folder is incomplete until the new manifest lands
    for stale in ("model.pkl", "codes.faiss"):  # what a format-1 index held
        (out / stale).unlink(missing_ok=True)
    n_bits = int(method.get_params()["n_bits"])
    codes = np.ascontiguousarray(database_codes, dtype=np.uint8)
    t0 = time.perf_counter()
    index = make_binary_index(codes, n_bits, kind, **index_params)
    build_seconds = time.perf_counter() - t0
    # the manifest records the effective parameters (defaults included): load rebuilds from them
    if kind == "ivf":
        index_params = {**index_params, "nlist": int(index.nlist), "nprobe": int(index.nprobe)}
    if kind == "hnsw":
        index_params = {
            **index_params, "hnsw_m": int(index.hnsw.nb_neighbors(1)),
            "ef_construction": int(index.hnsw.efConstruction), "ef_search": int(index.hnsw.efSearch),
        }
    method.save(out / "model.npz")
    save_npz(out / "database.npz", codes=codes, **{k: np.asarray(v) for k, v in database.items()})
    save_npz(out / "structure.npz", **index_structure(index, kind))
    files = {name: file_digest(out / name) for name in FILES}
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


def _read_manifest(path: Path) -> dict:
    mpath = path / MANIFEST
    if not path.is_dir():
        raise ZSLError(f"{path}: not a folder; pass the folder written by `zsl index build`")
    if not mpath.is_file():
        raise ZSLError(f"{path}: not a zsl index folder (no {MANIFEST}); build one with `zsl index build`")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ZSLError(f"{mpath}: corrupt manifest ({str(exc)[:100]}); rebuild the index") from None
    except OSError as exc:
        raise ZSLError(f"{mpath}: cannot read it ({exc.strerror or exc})") from None
    if not isinstance(manifest, dict):
        raise ZSLError(f"{mpath}: corrupt manifest (not a JSON object); rebuild the index")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        old = " (format 1 held a pickled model, which zsl no longer loads)" if version == 1 else ""
        raise ZSLError(
            f"{mpath}: index format {version!r} is not {FORMAT_VERSION}{old}; rebuild the index with `zsl index build`"
        )
    problems = []
    if not isinstance(manifest.get("files"), dict) or set(manifest["files"]) != set(FILES):
        problems.append(f"files must list exactly {', '.join(FILES)}")
    if not isinstance(manifest.get("n_bits"), int) or isinstance(manifest.get("n_bits"), bool) or \
            manifest["n_bits"] <= 0 or manifest["n_bits"] % 8:
        problems.append(f"n_bits={manifest.get('n_bits')!r} is not a positive multiple of 8")
    if not isinstance(manifest.get("index"), dict) or manifest["index"].get("kind") not in INDEX_KINDS:
        problems.append(f"index kind must be one of {', '.join(INDEX_KINDS)}")
    fx = manifest.get("feature_extractor")
    if not isinstance(fx, dict) or not isinstance(fx.get("dim"), int) or not isinstance(fx.get("name"), str):
        problems.append("feature_extractor needs a name and an integer dim")
    elif fx.get("resolution") is not None and (
        not isinstance(fx["resolution"], int) or not 32 <= fx["resolution"] <= 1024
    ):
        problems.append(f"feature_extractor resolution {fx['resolution']!r} is not an integer in [32, 1024]")
    if not isinstance(manifest.get("method"), str):
        problems.append("method must be a name")
    if problems:
        raise ZSLError(f"{mpath}: malformed manifest ({'; '.join(problems)}); rebuild the index")
    return manifest


def load_index(path: str | os.PathLike, *, verify: bool = True) -> HashIndex:
    """Load an index folder, refusing incomplete, corrupt, mixed-up or tampered folders with a clear error.

    Nothing is unpickled or executed: the model is rebuilt by :meth:`zsl.base.ZSLMethod.load`
    (arrays + JSON, allow-listed classes only), the faiss index from checked arrays.
    """
    from .base import ZSLMethod
    from .persist import load_npz

    path = Path(path)
    manifest = _read_manifest(path)
    for name, digest in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise ZSLError(f"{path}: {name} is missing; rebuild the index")
        if verify and file_digest(f) != digest:
            raise ZSLError(f"{f}: checksum differs from the manifest (file replaced or corrupt); rebuild the index")
    n_bits = int(manifest["n_bits"])
    method = ZSLMethod.load(path / "model.npz")
    if not method.tags.get("retrieval") or method.name != manifest["method"] or \
            int(method.get_params().get("n_bits", -1)) != n_bits:
        raise IndexMismatchError(
            f"{path}: model.npz is a {method.name} {method.get_params().get('n_bits')}-bit model but the "
            f"manifest says {manifest['method']} {n_bits}-bit; rebuild the index"
        )
    database = load_npz(path / "database.npz", required=("codes", "label", "class_names"))
    codes = database.pop("codes")
    labels, names = database["label"], database["class_names"]
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] * 8 != n_bits:
        raise IndexMismatchError(
            f"{path}: database.npz holds codes of {codes.dtype} "
            f"{codes.shape}, not {n_bits}-bit packed codes; rebuild the index"
        )
    if labels.shape != (len(codes),) or labels.dtype.kind not in "iu" or names.ndim != 1 or \
            (len(labels) and (labels.min() < 0 or labels.max() >= len(names))):
        raise ZSLError(f"{path}: database.npz labels do not match its {len(names)} class names; rebuild the index")
    if "path" in database and database["path"].shape != (len(codes),):
        raise ZSLError(
            f"{path}: database.npz has {len(database['path'])} paths for {len(codes)} codes; rebuild the index"
        )
    structure = load_npz(path / "structure.npz")
    index = rebuild_index(
        np.ascontiguousarray(codes), n_bits, manifest["index"]["kind"], manifest["index"], structure, path
    )
    return HashIndex(path=path, manifest=manifest, method=method, index=index, database=database)
