"""``zsl index build`` / ``zsl index search``: a binary-code search index over a dataset.

    zsl index build --method zsh --dataset cifar10 --split rot0 --bits 64 --kind flat --out DIR
    zsl index search DIR QUERY [--k 10] [--json]

``build`` fits the hashing method on the seen-class training images (the zero-shot retrieval
protocol of ``zsl.eval.retrieval``), encodes the retrieval database (cifar10: every train-folder
image; other datasets: every image but the held-out queries) and writes the index folder of
``zsl.index`` (arrays + JSON: the fitted model, the codes, the faiss structure, a manifest).
``search`` takes a features file (``.npz`` with ``X`` or ``features``, optionally ``extractor`` and
``resolution`` entries, or a ``.npy``) or an image file (features extracted with the backbone and
resolution the index was built with), encodes it and prints the k nearest database items by Hamming distance.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError, ZSLError
from ..io import IMAGE_EXTENSIONS


def register(subparsers) -> None:
    from ..cli import add_dataset_args

    p = subparsers.add_parser("index", help="build or search a binary-code (hashing) index")
    sub = p.add_subparsers(dest="index_command", metavar="ACTION")
    sub.required = True

    b = sub.add_parser("build", help="fit a hashing method and index a dataset's retrieval database")
    b.add_argument("--method", default="zsh", help="hashing method or method.preset (lsh, itq, sdh, zsh)")
    add_dataset_args(b)
    b.add_argument("--bits", type=int, default=64, help="code length (multiple of 8)")
    b.add_argument("--kind", choices=("flat", "hnsw", "ivf"), default="flat",
                   help="faiss index: flat = exact IndexBinaryFlat; hnsw / ivf = approximate")
    b.add_argument("--hnsw-m", type=int, default=32)
    b.add_argument("--ef-search", type=int, default=64)
    b.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4 sqrt(n))")
    b.add_argument("--nprobe", type=int, default=8)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True, help="index folder to write")
    b.set_defaults(func=_cmd_build)

    s = sub.add_parser("search", help="k nearest database items of query features or an image")
    s.add_argument("index_dir", help="folder written by `zsl index build`")
    s.add_argument("query", help="features (.npz with X, or .npy) or an image file")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.set_defaults(func=_cmd_search)


def check_index_out(out: Path) -> None:
    """``--out`` must be a new folder, an empty one or an earlier index (never a user's other files)."""
    from ..index import FILES, MANIFEST
    from ..io import check_writable

    if out.exists() and not out.is_dir():
        raise ZSLError(f"--out {out}: is a file; give a folder for the index")
    # an earlier index, complete or cut short (temp files of atomic writes, format-1 files), is replaced
    ours = {MANIFEST, *FILES, "model.pkl", "codes.faiss"}
    others = (
        sorted(p.name for p in out.iterdir() if p.name not in ours and not p.name.endswith(".tmp"))
        if out.is_dir()
        else []
    )
    if others:
        raise ZSLError(
            f"--out {out}: the folder holds other files ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
            "give a new or empty folder (an earlier index there is replaced)"
        )
    check_writable(out, what="--out", kind="folder")


def _cmd_build(args) -> int:
    from .._registry import create_method, get_method_class
    from ..data import load_dataset
    from ..eval.retrieval import retrieval_data
    from ..index import build_index, feature_extractor_of

    if not get_method_class(args.method).tags.get("retrieval"):
        raise ZSLError(f"method {args.method!r} is not a hashing method; use lsh, itq, sdh or zsh")
    if args.bits <= 0 or args.bits % 8:
        raise ZSLError(f"--bits {args.bits}: the code length must be a positive multiple of 8")
    for flag, value, lo in (
        ("--hnsw-m", args.hnsw_m, 2), ("--ef-search", args.ef_search, 1), ("--nlist", args.nlist, 1),
        ("--nprobe", args.nprobe, 1),
    ):
        if value is not None and value < lo:
            raise ZSLError(f"{flag} must be >= {lo}, got {value}")
    out = Path(args.out).expanduser()
    check_index_out(out)  # before the fit: a fit is never computed and then lost
    create_method(args.method, n_bits=args.bits)  # parameter errors before the data is read
    ds = load_dataset(args.dataset, args.split, data_root=args.data_root, cache_dir=args.cache_dir)
    data = retrieval_data(ds, seed=args.seed)
    method = create_method(args.method, n_bits=args.bits)
    if "random_state" in method.get_params():
        method.set_params(random_state=args.seed)
    method.fit(data.X_train, data.y_train, ds.class_embeddings(args.semantics), ds.seen_classes)
    codes = method.encode(data.X_database)
    database = {"label": data.y_database, "class_names": np.asarray(ds.class_names)}
    if data.database_paths is not None:
        database["path"] = np.asarray(data.database_paths)
    params = {"hnsw_m": args.hnsw_m, "ef_search": args.ef_search} if args.kind == "hnsw" else (
        {"nlist": args.nlist, "nprobe": args.nprobe} if args.kind == "ivf" else {})
    out = build_index(
        method,
        codes,
        out,
        method_spec=args.method,
        feature_extractor=feature_extractor_of(ds),
        dataset_info={
            "name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint(),
            "semantics": args.semantics or ds.default_semantics, "n_train": int(len(data.y_train)),
        },
        database=database,
        kind=args.kind,
        **params,
    )
    print(f"indexed {len(codes)} {args.bits}-bit {args.method} codes of {ds.name}/{ds.split} ({args.kind}) -> {out}")
    return 0


def load_query(path: Path, manifest: dict) -> tuple[np.ndarray, dict | None]:
    """(n, d) query features and the extractor that made them (None when the file does not say)."""
    if not path.is_file():
        raise DataError(f"{path}: query file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                key = "X" if "X" in z.files else ("features" if "features" in z.files else None)
                if key is None:
                    raise DataError(f"{path}: no 'X' or 'features' array (found: {', '.join(z.files)})")
                X = z[key]
                extractor = {k: str(z[k]) for k in ("extractor", "resolution") if k in z.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npz ({exc})") from None
        X = X[None, :] if X.ndim == 1 else X
        return X, (
            {"name": extractor.get("extractor"), "resolution": extractor.get("resolution")} if extractor else None
        )
    if suffix == ".npy":
        try:
            X = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy ({exc})") from None
        return (X[None, :] if X.ndim == 1 else X), None
    if suffix in IMAGE_EXTENSIONS:
        want = manifest["feature_extractor"]
        if want.get("name") != "efficientnet-lite0":
            raise DataError(
                f"the index was built on {want['name']!r} features, which cannot be computed from an image; "
                "pass query features from the same extractor (.npz with X)"
            )
        from ..features import extract_features

        X = extract_features([str(path)], resolution=int(want["resolution"]), progress=False)
        if len(X) == 0:
            raise DataError(f"{path}: the image could not be decoded")
        return X, {"name": want["name"], "resolution": want["resolution"]}
    raise DataError(
        f"{path}: unknown query type {suffix!r}; pass features (.npz/.npy) or an image "
        f"({', '.join(IMAGE_EXTENSIONS)})"
    )


def _cmd_search(args) -> int:
    from ..index import load_index

    if args.k < 1:
        raise ZSLError(f"--k must be >= 1, got {args.k}")
    idx = load_index(args.index_dir)
    X, extractor = load_query(Path(args.query), idx.manifest)
    D, I = idx.search(X, args.k, extractor)
    names = idx.database["class_names"]
    labels = idx.database["label"]
    paths = idx.database.get("path")
    results = []
    for q in range(len(I)):
        hits = []
        for rank, (d, i) in enumerate(zip(D[q], I[q]), 1):
            if i < 0:
                continue
            hit = {"rank": rank, "hamming": int(d), "id": int(i), "label": str(names[labels[i]])}
            if paths is not None:
                hit["path"] = str(paths[i])
            hits.append(hit)
        results.append(hits)
    if args.json:
        print(
            json.dumps(
                {"index": str(idx.path), "method": idx.manifest["method"], "n_bits": idx.n_bits, "results": results}
            )
        )
    else:
        for q, hits in enumerate(results):
            print(f"query {q}: top {len(hits)} of {idx.index.ntotal} ({idx.manifest['method']}, {idx.n_bits} bits, "
                  f"{idx.manifest['index']['kind']})")
            for h in hits:
                print(f"  {h['rank']:3d}  d={h['hamming']:3d}  {h['label']:15s} {h.get('path', '#' + str(h['id']))}")
    return 0
