"""Reader for the original Animals with Attributes release (Lampert, Nickisch, Harmeling, CVPR 2009).

Folder layout (``$ZSL_DATA/awa1-lampert``): ``labels.npz`` (``y``), one ``.npz`` per feature type
(``X`` rows in label order), ``classes.txt``, ``predicates.txt``, ``predicate-matrix-continuous.txt``,
``trainclasses.txt``/``testclasses.txt``.

Choices (documented because they change the numbers):
* Features: every available histogram type of ``FEATURE_TYPES`` (lss, sift, rgsift: 2000-d bags of
  visual words; phog: 252-d), each mapped with the Hellinger map ``sqrt(h / sum(h))`` -- the explicit
  feature map of the Bhattacharyya kernel, which makes a linear model on histograms behave like a
  chi-square-like kernel -- and concatenated (6252-d, each block unit-L2).
* Class embeddings: the continuous 85-attribute matrix (0..100) divided by 100; the one unknown
  entry (-1) is replaced by that attribute's mean over the classes where it is known. The binary
  matrix is kept as ``attributes_binary``.
* Splits: ``standard`` = the paper's 40 seen / 10 unseen classes; ``ps`` = Xian et al.'s proposed
  split (``xlsa17-splits/AWA1/trainvalclasses.txt`` / ``testclasses.txt``). GZSL test_seen = 20% of
  each seen class's images chosen with ``seed`` (default 0); the rest are trainval.
* Validation classes (tuning only, always seen classes): for ``ps`` Xian's ``valclasses1.txt``;
  for ``standard`` the 8 of the 40 seen classes drawn with ``seed``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import ZSLDataset, split_by_classes

FEATURE_TYPES = ("lss", "sift", "rgsift", "phog")
SPLITS = ("standard", "ps")


def _read_names(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return [line.split()[-1] for line in path.read_text().splitlines() if line.strip()]


def _load_npz(path: Path, key: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path) as z:
            if key not in z.files:
                raise DataError(f"{path}: array {key!r} missing (found {z.files})")
            return z[key]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever numpy raises on a damaged file: one line naming it
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {str(exc)[:100]})") from None


def hellinger(H: np.ndarray) -> np.ndarray:
    """Hellinger map of histograms (n, b): sqrt of the L1-normalised rows (float32)."""
    H = np.asarray(H, dtype=np.float32)
    s = H.sum(1, keepdims=True)
    s[s == 0] = 1.0
    return np.sqrt(np.maximum(H, 0) / s)


def read_awa1(
    folder: str | Path,
    *,
    split: str = "standard",
    features: tuple[str, ...] = FEATURE_TYPES,
    splits_folder: str | Path | None = None,
    seed: int = 0,
) -> ZSLDataset:
    folder = Path(folder)
    if split not in SPLITS:
        raise DataError(f"unknown AwA1 split {split!r}; valid: {', '.join(SPLITS)}")
    if not folder.is_dir():
        raise DataError(
            f"{folder}: AwA1 folder not found; point --data-root (or ZSL_DATA) at the folder holding awa1-lampert/"
        )
    y = _load_npz(folder / "labels.npz", "y").astype(np.int64)
    blocks = []
    for ft in features:
        X = _load_npz(folder / f"{ft}.npz", "X")
        if len(X) != len(y):
            raise DataError(f"{folder / f'{ft}.npz'}: {len(X)} rows but labels.npz has {len(y)}; they must match")
        blocks.append(hellinger(X))
    X = np.concatenate(blocks, axis=1)

    class_names = _read_names(folder / "classes.txt")
    cont_path = folder / "predicate-matrix-continuous.txt"
    try:
        A = np.loadtxt(cont_path, dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"{cont_path}: cannot read the attribute matrix ({exc})") from None
    if A.shape[0] != len(class_names):
        raise DataError(f"{cont_path}: {A.shape[0]} rows but classes.txt lists {len(class_names)} classes")
    unknown = A < 0
    if unknown.any():
        known_mean = np.where(unknown, np.nan, A)
        col_mean = np.nanmean(known_mean, axis=0)
        A = np.where(unknown, col_mean[None, :], A)
    A = A / 100.0
    embeddings = {"attributes": A.astype(np.float32)}
    bin_path = folder / "predicate-matrix-binary.txt"
    if bin_path.is_file():
        embeddings["attributes_binary"] = np.loadtxt(bin_path, dtype=np.float32)

    index = {n: i for i, n in enumerate(class_names)}

    def ids(names: list[str], where: Path) -> np.ndarray:
        missing = [n for n in names if n not in index]
        if missing:
            raise DataError(f"{where}: classes {missing[:5]} are not in classes.txt")
        return np.array(sorted(index[n] for n in names), dtype=np.int64)

    rng = np.random.default_rng(seed)
    if split == "standard":
        seen = ids(_read_names(folder / "trainclasses.txt"), folder / "trainclasses.txt")
        unseen = ids(_read_names(folder / "testclasses.txt"), folder / "testclasses.txt")
        val = np.sort(rng.choice(seen, 8, replace=False))
    else:
        sf = Path(splits_folder) if splits_folder else folder.parent / "xlsa17-splits" / "AWA1"
        seen = ids(_read_names(sf / "trainvalclasses.txt"), sf / "trainvalclasses.txt")
        unseen = ids(_read_names(sf / "testclasses.txt"), sf / "testclasses.txt")
        val = ids(_read_names(sf / "valclasses1.txt"), sf / "valclasses1.txt")
    splits = split_by_classes(y, seen, unseen, val, test_seen_fraction=0.2, seed=seed)
    return ZSLDataset(
        name="awa1",
        X=X,
        y=y,
        class_names=[n.replace("+", " ") for n in class_names],
        embeddings=embeddings,
        splits=splits,
        seen_classes=seen,
        unseen_classes=unseen,
        train_classes=np.setdiff1d(seen, val),
        val_classes=val,
        split=split,
        default_semantics="attributes",
        meta={"source": str(folder), "features": list(features), "feature_map": "hellinger", "seed": seed},
    )
