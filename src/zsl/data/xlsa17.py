"""Reader (and writer) for the xlsa17 benchmark format of Xian et al. (TPAMI 2018).

A dataset folder holds two MATLAB files:
    res101.mat      ``features`` (2048, n) -- transposed --, ``labels`` (n, 1) 1-based class ids
                    (``features_file`` names another file in this layout, e.g. FLO's ``lite0.mat``)
    att_splits.mat  ``att`` (k, C) class embeddings, one *column* per class (unit-L2 columns),
                    ``allclasses_names`` (C, 1) cell (absent for FLO), 1-based row indices into
                    res101 ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc`` and, for some
                    datasets, ``train_loc``/``val_loc``.

Validation classes: the classes of ``val_loc`` when they are a proper subset of the seen classes
(AWA1, AWA2, SUN, FLO), else the classes listed in ``valclasses1.txt`` beside the file (Xian's first
tuning fold), else a seeded 20% of the seen classes. Only the classes are taken from ``val_loc``:
the SUN and FLO files' ``train_loc``/``val_loc`` also hold the ``test_seen_loc`` images (an xlsa17
quirk), so tuning uses the trainval images of those classes only (the strict protocol: nothing
measured as S is used for selection, and ``test_unseen_loc`` never is). Held-out train-class
images for GZSL calibration while tuning are 20% of each train class's trainval images (seed 0).

Class names: ``allclasses_names`` when the file has it, else ``classes.txt`` beside it (``index
name`` lines, ``+`` for spaces, as Oxford-102 and AwA ship them), else ``class000``...
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import ZSLDataset, split_by_classes

LOC_KEYS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")


def _loadmat(path: Path) -> dict:
    import scipy.io as sio

    if not path.is_file():
        raise DataError(f"{path}: file not found (an xlsa17 folder needs res101.mat and att_splits.mat)")
    try:
        return sio.loadmat(str(path))
    except NotImplementedError:
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save it with -v7") from None
    except Exception as exc:  # noqa: BLE001 - whatever scipy raises on a damaged file: one line naming it
        raise DataError(
            f"{path}: not a readable MATLAB .mat file ({type(exc).__name__}: "
            f"{str(exc)[:120]}); re-download or re-create it"
        ) from None


def _require(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        have = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: key {key!r} is missing (found {have})")
    return mat[key]


def _class_names(att_mat: dict, n_classes: int, folder: Path | None = None) -> list[str]:
    if "allclasses_names" in att_mat:
        names = [
            str(np.asarray(c).ravel()[0]) if np.asarray(c).size else "" for c in att_mat["allclasses_names"].ravel()
        ]
        return [n.strip() for n in names]
    listing = folder / "classes.txt" if folder is not None else None
    if listing is not None and listing.is_file():
        names = read_class_list(listing)
        if len(names) != n_classes:
            raise DataError(f"{listing}: lists {len(names)} classes but att_splits.mat describes {n_classes}")
        return names
    return [f"class{c:03d}" for c in range(n_classes)]


def read_class_list(path: Path) -> list[str]:
    """Names from ``index name`` lines (1-based, in order); ``+`` and ``_`` become spaces."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}: expected 'index name' lines, got {line[:60]!r}")
        rows.append((int(parts[0]), parts[1].strip().replace("+", " ").replace("_", " ")))
    if [i for i, _ in rows] != list(range(1, len(rows) + 1)):
        raise DataError(f"{path}: indices must run 1..{len(rows)} in order")
    return [n for _, n in rows]


def read_att_splits(path: str | Path) -> dict:
    """Read just ``att_splits.mat``: embeddings (C, k), class names, 0-based index arrays."""
    path = Path(path)
    mat = _loadmat(path)
    att = np.asarray(_require(mat, "att", path), dtype=np.float32).T
    out = {"attributes": att, "class_names": _class_names(mat, att.shape[0], path.parent)}
    for key in LOC_KEYS + ("train_loc", "val_loc"):
        if key in mat:
            out[key] = np.asarray(mat[key], dtype=np.int64).ravel() - 1
        elif key in LOC_KEYS:
            _require(mat, key, path)
    if "original_att" in mat:
        out["original_attributes"] = np.asarray(mat["original_att"], dtype=np.float32).T
    return out


def read_xlsa17(folder: str | Path, *, name: str | None = None, seed: int = 0, features_file: str = "res101.mat",
                name_semantics: tuple[str, ...] = (), name_fallback: str | None = None, cache_dir=None) -> ZSLDataset:
    """Read an xlsa17 dataset folder (``features_file`` + ``att_splits.mat``) into a ZSLDataset.

    ``name_semantics`` adds class-name embeddings (``glove``, ``minilm``) next to ``attributes``;
    ``name_fallback`` is the word describing a class whose name GloVe does not know at all.
    """
    folder = Path(folder)
    res_path, att_path = folder / features_file, folder / "att_splits.mat"
    res = _loadmat(res_path)
    feats = np.asarray(_require(res, "features", res_path))
    labels = np.asarray(_require(res, "labels", res_path)).ravel()
    if feats.ndim != 2:
        raise DataError(f"{res_path}: 'features' must be 2-d (d, n); got shape {feats.shape}")
    X = feats.T.astype(np.float32)
    if len(labels) != len(X):
        raise DataError(
            f"{res_path}: 'features' has {len(X)} images (columns) but 'labels' has {len(labels)}; they must match"
        )
    y = labels.astype(np.int64) - 1
    att = read_att_splits(att_path)
    S = att["attributes"]
    C = S.shape[0]
    if len(y) and (y.min() < 0 or y.max() >= C):
        raise DataError(
            f"{res_path}: labels must be 1..{C} (att_splits.mat has {C} classes); got {y.min() + 1}..{y.max() + 1}"
        )
    for key in LOC_KEYS + ("train_loc", "val_loc"):
        if key in att and len(att[key]) and (att[key].min() < 0 or att[key].max() >= len(X)):
            raise DataError(
                f"{att_path}: {key} has index {att[key].max() + 1} (or {att[key].min() + 1}) outside 1..{len(X)}; "
                f"it does not belong to this res101.mat"
            )
    trainval, test_seen, test_unseen = (att[k] for k in LOC_KEYS)
    if len(np.intersect1d(trainval, test_seen)) or len(np.intersect1d(trainval, test_unseen)):
        raise DataError(f"{att_path}: trainval_loc shares images with test_seen_loc or test_unseen_loc")
    seen = np.unique(y[trainval])
    unseen = np.unique(y[test_unseen])
    val = _validation_classes(att, y, trainval, seen, folder, seed)
    splits = split_by_classes(
        y, seen, unseen, val, trainval=trainval, test_seen=test_seen, test_unseen=test_unseen, seed=seed
    )
    embeddings = {"attributes": S}
    notes = []
    if name_semantics:
        from .names import name_embeddings

        extra, notes = name_embeddings(att["class_names"], name_semantics, where=str(folder), fallback=name_fallback,
                                       cache_dir=cache_dir)
        embeddings.update(extra)
    return ZSLDataset(
        name=name or folder.name.lower(),
        X=X,
        y=y,
        class_names=att["class_names"],
        embeddings=embeddings,
        splits=splits,
        seen_classes=seen,
        unseen_classes=unseen,
        train_classes=np.setdiff1d(seen, val),
        val_classes=val,
        split="ps",
        default_semantics="attributes",
        meta={"source": str(folder), "format": "xlsa17", "features_file": features_file, "notes": notes},
    )


def _validation_classes(att: dict, y, trainval, seen, folder: Path, seed: int) -> np.ndarray:
    if "val_loc" in att and len(att["val_loc"]):
        val = np.unique(y[att["val_loc"]])
        if 0 < len(val) < len(seen) and np.isin(val, seen).all():
            return val
    listing = folder / "valclasses1.txt"
    if listing.is_file():
        names = _class_names_from_file(listing)
        lookup = {n: i for i, n in enumerate(att["class_names"])}
        val = np.array(sorted(lookup[n] for n in names if n in lookup), dtype=np.int64)
        if len(val) and np.isin(val, seen).all():
            return val
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(seen, max(1, len(seen) // 5), replace=False))


def _class_names_from_file(path: Path) -> list[str]:
    return [line.split()[-1] for line in path.read_text().splitlines() if line.strip()]


def write_xlsa17(dataset: ZSLDataset, folder: str | Path, *, source: str | None = None) -> Path:
    """Write ``dataset`` as ``res101.mat`` + ``att_splits.mat`` (1-based, transposed, as xlsa17 does)."""
    import scipy.io as sio

    from ..io import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = np.empty((dataset.n_classes, 1), dtype=object)
    for i, n in enumerate(dataset.class_names):
        names[i, 0] = np.array([n])
    S = dataset.class_embeddings(source)
    with atomic_write(folder / "res101.mat", "wb") as fh:
        sio.savemat(
            fh,
            {"features": dataset.X.T.astype(np.float32), "labels": (dataset.y + 1).reshape(-1, 1).astype(np.float64)},
        )
    loc = lambda key: (dataset.splits[key] + 1).reshape(-1, 1).astype(np.float64)
    val_rows = dataset.splits["val_unseen"]
    train_rows = np.setdiff1d(dataset.splits["trainval"], val_rows)
    with atomic_write(folder / "att_splits.mat", "wb") as fh:
        sio.savemat(
            fh,
            {
                "att": S.T.astype(np.float64),
                "original_att": S.T.astype(np.float64),
                "allclasses_names": names,
                "trainval_loc": loc("trainval"),
                "test_seen_loc": loc("test_seen"),
                "test_unseen_loc": loc("test_unseen"),
                "train_loc": (train_rows + 1).reshape(-1, 1).astype(np.float64),
                "val_loc": (val_rows + 1).reshape(-1, 1).astype(np.float64),
            },
        )
    return folder
