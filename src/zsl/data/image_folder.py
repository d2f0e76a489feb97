"""Image folders (``root/<class>/*.jpg`` or a ``.tar.gz`` of one) as zero-shot datasets, and CIFAR-10.

``read_image_folder(path_or_tar, ...)`` -> :class:`ZSLDataset` whose features are EfficientNet-Lite0
penultimate activations (:mod:`zsl.features`, cached on disk) and whose class descriptions are
GloVe (and/or MiniLM) vectors of the folder names.

Layouts:
* ``root/<class>/<image>``: one pool; ``test_seen_fraction`` (default 0.2) of every seen class's
  images (seeded) are GZSL test_seen, the rest trainval; all images of unseen classes are test_unseen.
* ``root/train/<class>/...`` + ``root/test/<class>/...`` (the CIFAR-10 release): trainval = train
  images of the seen classes, test_seen = test images of the seen classes, test_unseen = test images
  of the unseen classes. Train images of unseen classes are not part of the dataset (never seen).
* A tar archive (``.tar.gz``, ``.tgz``, ``.tar``) of either, possibly wrapped in one top folder, is
  extracted once into ``<cache root>/image-folders/<name>-<hash of the archive's bytes>/`` (extracted
  into a temporary folder, then renamed into place, so an interrupted extraction is never used).
  The key is the content, not the path or mtime: a re-copied or re-mounted data folder reuses the
  extraction, and with it the cached features (keyed on the extracted files).

Images that fail to decode are skipped with one warning and dropped from the dataset
(``meta["skipped"]``, with ``meta["skip_reasons"]``). Class ids follow the sorted folder names.
Unseen classes: given by name, else ``round(0.2 C)`` -- at least 2 from 5 classes on, so ZSL
accuracy is over at least two candidates -- drawn with ``seed``; validation classes (tuning only):
given, else ``round(0.2 * n_seen)`` (at least 2 from 5 seen classes on, else 1) of the seen
classes drawn with ``seed``. Image folders have one split, ``default``. ``max_per_class``
keeps at most that many images per class and part (seeded) for quick runs; when the full folder's
features are cached they are reused, otherwise only the kept images are extracted.

CIFAR-10 (``<data root>/cifar10-jpg.tar.gz``, Krizhevsky 2009; 5,000 train + 1,000 test 32x32 images
per class). Splits ``rot0``..``rot4`` rotate two unseen classes so every class is unseen exactly
once; each pair couples classes from different super-categories where possible (vehicle + animal),
so no split hides both members of a close pair and the seen classes still span both groups:

    rot0: airplane, cat      rot1: automobile, frog      rot2: bird, truck
    rot3: deer, ship         rot4: dog, horse   (only 4 vehicles, so one pair is two animals)

Validation classes: 2 of the 8 seen classes drawn with ``seed`` (default 0; numpy
``default_rng([seed, 7])``), recorded in ``dataset.val_classes``. Class descriptions: GloVe 6B-50d
of the class name (``glove``, the default) and all-MiniLM-L6-v2 (``minilm``) when the ``minilm``
extra is installed.
"""
from __future__ import annotations

import functools
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import IMAGE_EXTENSIONS, cache_root, file_digest
from . import DatasetSpec, register_dataset
from .dataset import ZSLDataset, split_by_classes
from .names import minilm_available, name_embeddings

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_UNSEEN = {
    "rot0": ("airplane", "cat"),
    "rot1": ("automobile", "frog"),
    "rot2": ("bird", "truck"),
    "rot3": ("deer", "ship"),
    "rot4": ("dog", "horse"),
}
CIFAR10_TAR = "cifar10-jpg.tar.gz"


# ----------------------------------------------------------------------------------------------
# locating and extracting the images
def _is_tar(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(TAR_SUFFIXES)


@functools.lru_cache(maxsize=32)
def _archive_digest_of(path: Path, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the memo key only: a changed archive is hashed again
    return file_digest(path, length=16)


def _archive_digest(tar_path: Path) -> str:
    """sha256 of the archive's bytes, 16 hex digits (memoised per process on path, size and mtime)."""
    try:
        st = tar_path.stat()
        return _archive_digest_of(tar_path, st.st_size, st.st_mtime_ns)
    except OSError as exc:
        raise DataError(
            f"{tar_path}: cannot read the archive ({exc.strerror or exc}); check the path and permissions"
        ) from None


def extract_tar_once(tar_path: str | os.PathLike, cache_dir=None) -> Path:
    """Extract an image archive into the cache once (atomic rename); return the extracted folder."""
    tar_path = Path(tar_path).resolve()
    key = _archive_digest(tar_path)
    stem = tar_path.name
    for suf in TAR_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    parent = cache_root(cache_dir) / "image-folders"
    target = parent / f"{stem}-{key}"
    if target.is_dir():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-", suffix=".partial", dir=parent))
    try:
        try:
            with tarfile.open(tar_path) as tf:
                tf.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(
                f"{tar_path}: not a readable tar archive ({type(exc).__name__}: {' '.join(str(exc).split())[:100]}); "
                "pass a folder of class subfolders or a .tar.gz of one"
            ) from None
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # another process finished first: use theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def _is_wrapper(path: Path) -> bool:
    """One visible subfolder that itself holds folders and no images (``archive/animals/<class>/``).

    A lone folder *of images* is a class folder (``~/photos/cats/*.jpg``), not a wrapper.
    """
    subdirs = _class_dirs(path)
    if len(subdirs) != 1 or subdirs[0].name in ("train", "test"):
        return False
    if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir()):
        return False
    inner = subdirs[0]
    return bool(_class_dirs(inner)) and not any(
        p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in inner.iterdir()
    )


def resolve_image_root(path_or_tar, cache_dir=None) -> Path:
    """Folder holding the class folders (or train/ and test/): extracts archives, skips one wrapper folder."""
    path = Path(path_or_tar).expanduser()
    if not path.exists():
        raise DataError(
            f"{path}: not found; pass a folder of class subfolders (root/<class>/*.jpg) or a .tar.gz of one"
        )
    if path.is_file():
        if not _is_tar(path):
            raise DataError(f"{path}: not a folder or a .tar.gz/.tgz/.tar archive of class folders")
        path = extract_tar_once(path, cache_dir)
    try:
        if _is_wrapper(path):
            path = _class_dirs(path)[0]  # archive wrapped in one top folder
    except OSError as exc:
        raise DataError(f"{path}: cannot list the folder ({exc.strerror or exc}); check its permissions") from None
    return path


@dataclass
class ImageScan:
    """Every image under a folder, with its class folder when it has one (``zsl extract``).

    rows: (part, path, class id or -1 for an image outside any class folder); part is ``all``, or
    ``train``/``test`` for a ``root/train/<class>`` + ``root/test/<class>`` tree.
    """

    root: Path
    class_names: list[str]
    rows: list[tuple[str, str, int]]
    ignored_files: int = 0
    empty_folders: list[str] = field(default_factory=list)

    def describe(self) -> str:
        n = len(self.rows)
        counts = np.bincount([c for _, _, c in self.rows if c >= 0], minlength=len(self.class_names))
        loose = sum(1 for _, _, c in self.rows if c < 0)
        parts = sorted({p for p, _, _ in self.rows} - {"all"})
        out = f"found {n} image{'s' * (n != 1)} in {self.root}"
        if self.class_names:
            shown = ", ".join(f"{name} ({k})" for name, k in list(zip(self.class_names, counts.tolist()))[:8])
            more = f", ... ({len(self.class_names) - 8} more)" if len(self.class_names) > 8 else ""
            out += f": {len(self.class_names)} class folder{'s' * (len(self.class_names) != 1)} ({shown}{more})"
            if parts:
                out += f" in {'/'.join(parts)} parts"
        if loose:
            out += (
                f"{';' if self.class_names else ':'} {loose} image{'s' * (loose != 1)} outside class folders (label -1)"
            )
        if self.empty_folders:
            out += f"; {len(self.empty_folders)} folder{'s' * (len(self.empty_folders) != 1)} without images ignored"
        if self.ignored_files:
            out += f"; {self.ignored_files} non-image file{'s' * (self.ignored_files != 1)} ignored"
        return out


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def scan_images(path_or_tar, cache_dir=None) -> ImageScan:
    """Every image under a folder, an archive of one, or a single image file; class folders optional.

    Class folders are the visible subfolders holding images (at any depth below them); images
    directly in the root are kept with class -1; a ``train/`` + ``test/`` pair of class-folder trees
    is read as two parts. Raises a :class:`DataError` only when there is no image at all.
    """
    path = Path(path_or_tar).expanduser()
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageScan(path.parent, [], [("all", str(path), -1)])
    root = resolve_image_root(path, cache_dir)
    try:
        subdirs = {d.name: d for d in _class_dirs(root)}
        if "train" in subdirs and "test" in subdirs and _class_dirs(subdirs["train"]):
            parts = {"train": subdirs["train"], "test": subdirs["test"]}
        else:
            parts = {"all": root}
        found: dict[str, list[tuple[str, str]]] = {}  # class -> [(part, path)]
        loose: list[tuple[str, str]] = []
        ignored = 0
        empty = []
        for part, folder in parts.items():
            for f in sorted(folder.iterdir()):
                if f.name.startswith("."):
                    continue
                if _is_image(f):
                    loose.append((part, str(f)))
                elif f.is_file():
                    ignored += 1
            for d in _class_dirs(folder):
                files = sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
                images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
                ignored += len(files) - len(images)
                if images:
                    found.setdefault(d.name, []).extend((part, str(p)) for p in images)
                else:
                    empty.append(d.name)
    except OSError as exc:
        raise DataError(f"{root}: cannot list the folder ({exc.strerror or exc}); check its permissions") from None
    names = sorted(found)
    rows = [(part, p, -1) for part, p in loose]
    rows += [(part, p, names.index(name)) for name in names for part, p in found[name]]
    rows.sort(key=lambda r: (r[0] != "train", r[0], r[2], r[1]))
    empty = sorted(set(empty) - set(names))
    if not rows:
        raise DataError(
            f"{root}: no images found ({', '.join(IMAGE_EXTENSIONS)}), neither in the folder nor in "
            f"subfolders{f'; {ignored} other files ignored' if ignored else ''}"
        )
    return ImageScan(root, names, rows, ignored, empty)


def scan_image_folder(root: Path) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """(class names, {part: [(path, class id), ...]}); part is ``all`` or ``train``/``test``."""
    subdirs = {d.name: d for d in _class_dirs(root)}
    if "train" in subdirs and "test" in subdirs and _class_dirs(subdirs["train"]):
        parts = {"train": subdirs["train"], "test": subdirs["test"]}
        names = sorted({d.name for p in parts.values() for d in _class_dirs(p)})
    else:
        parts = {"all": root}
        names = sorted(subdirs)
    if len(names) < 3:
        raise DataError(f"{root}: found {len(names)} class folders ({', '.join(names) or 'none'}); "
                        "a zero-shot dataset needs at least 3 (root/<class>/*.jpg)")
    cid = {n: i for i, n in enumerate(names)}
    out: dict[str, list[tuple[str, int]]] = {}
    for part, folder in parts.items():
        out[part] = []
        for d in _class_dirs(folder):
            out[part] += [(str(p), cid[d.name]) for p in _images_in(d)]
    empty = [n for n in names if not any(c == cid[n] for part in out.values() for _, c in part)]
    if empty:
        raise DataError(f"{root}: class folders {empty[:5]} contain no images ({', '.join(IMAGE_EXTENSIONS)})")
    return names, out


# ----------------------------------------------------------------------------------------------
def _class_ids(names: list[str], chosen: Sequence[str | int] | None, what: str, where) -> list[int] | None:
    if chosen is None:
        return None
    ids = []
    for c in chosen:
        if isinstance(c, (int, np.integer)) and 0 <= int(c) < len(names):
            ids.append(int(c))
        elif isinstance(c, str) and c in names:
            ids.append(names.index(c))
        else:
            raise DataError(f"{where}: {what} class {c!r} is not one of the class folders: {', '.join(names)}")
    return sorted(set(ids))


def _subsample(rows: list[tuple[str, int]], max_per_class: int | None, rng: np.random.Generator) -> list[int]:
    if max_per_class is None:
        return list(range(len(rows)))
    labels = np.asarray([c for _, c in rows])
    keep = []
    for c in np.unique(labels):
        idx = np.where(labels == c)[0]
        keep += sorted(rng.permutation(idx)[:max_per_class].tolist())
    return sorted(keep)


def default_unseen_count(n_classes: int) -> int:
    """round(0.2 C), and at least 2 once the folder has 5 classes (else 1).

    ZSL top-1 over a single unseen class is 1.0 whatever the method does, so two candidates are
    the least that measures anything; with 3-4 classes one unseen class leaves two to train on.
    """
    return max(2 if n_classes >= 5 else 1, round(0.2 * n_classes))


def default_val_count(n_seen: int) -> int:
    """round(0.2 S) validation classes, at least 2 once 5 seen classes allow it (else 1).

    ZSL model selection on one validation class scores every candidate 1.0; with fewer than 5
    seen classes two validation classes would leave too few to train on.
    """
    return max(2 if n_seen >= 5 else 1, round(0.2 * n_seen))


def read_image_folder(
    path_or_tar,
    *,
    resolution: int | None = None,
    unseen_classes: Sequence[str | int] | None = None,
    val_classes: Sequence[str | int] | None = None,
    semantics: Sequence[str] = ("glove",),
    seed: int = 0,
    max_per_class: int | None = None,
    test_seen_fraction: float = 0.2,
    batch_size: int = 64,
    num_workers: int | None = None,
    cache_dir=None,
    progress: bool = True,
    name: str | None = None,
    split: str = "default",
) -> ZSLDataset:
    """Zero-shot dataset from an image folder or archive (see the module docstring for every choice)."""
    from ..features import DEFAULT_RESOLUTION, cached_extraction_exists, extract

    resolution = resolution or DEFAULT_RESOLUTION
    where = str(path_or_tar)
    if isinstance(semantics, str):
        semantics = (semantics,)
    if not semantics:
        raise DataError(f"{where}: at least one semantics source is needed (glove, minilm)")
    if max_per_class is not None and max_per_class < 1:
        raise DataError(f"max_per_class must be >= 1, got {max_per_class}")
    root = resolve_image_root(path_or_tar, cache_dir)
    names, parts = scan_image_folder(root)
    C = len(names)
    embeddings, _ = name_embeddings(names, semantics, where=where, cache_dir=cache_dir)

    rng = np.random.default_rng([seed, 7])
    unseen = _class_ids(names, unseen_classes, "unseen", where)
    if unseen is None:
        unseen = sorted(rng.choice(C, size=default_unseen_count(C), replace=False).tolist())
    seen = [c for c in range(C) if c not in unseen]
    if len(seen) < 2 or not unseen:
        raise DataError(f"{where}: need at least 2 seen and 1 unseen class; got {len(seen)} seen, {len(unseen)} unseen")
    val = _class_ids(names, val_classes, "validation", where)
    if val is None:
        val = sorted(rng.choice(seen, size=default_val_count(len(seen)), replace=False).tolist())
    if set(val) - set(seen):
        raise DataError(
            f"{where}: validation classes must be seen classes; {[names[c] for c in set(val) - set(seen)]} are unseen"
        )
    if len(val) >= len(seen):
        raise DataError(f"{where}: validation classes must leave at least one seen class for training")

    # which rows of each part the dataset uses (train-part images of unseen classes are never used).
    # Features are extracted for a split-independent file list -- the whole folder, or with
    # max_per_class the same seeded subsample of every part and class -- so all splits share one
    # cache entry; a subsample reuses the whole folder's entry when that exists.
    all_rows = [(part, i) for part in parts for i in range(len(parts[part]))]
    all_paths = [parts[p][i][0] for p, i in all_rows]
    sub_rng = np.random.default_rng([seed, 11])
    sample = [(part, i) for part, rows in parts.items() for i in _subsample(rows, max_per_class, sub_rng)]
    used_set = {(p, i) for p, i in sample if not (p == "train" and parts[p][i][1] not in seen)}
    if max_per_class is not None and not cached_extraction_exists(
        all_paths, resolution=resolution, cache_dir=cache_dir
    ):
        all_rows = sample
        all_paths = [parts[p][i][0] for p, i in sample]
    ext = extract(all_paths, resolution=resolution, batch_size=batch_size, num_workers=num_workers,
                  cache_dir=cache_dir, progress=progress)
    valid_rows = [r for r, v in zip(all_rows, ext.valid) if v]
    pick = [k for k, r in enumerate(valid_rows) if r in used_set]
    X = ext.features[pick]
    kept = [valid_rows[k] for k in pick]
    skipped = list(ext.skipped)
    y = np.asarray([parts[p][i][1] for p, i in kept], np.int64)
    part_of = np.asarray([p for p, _ in kept])
    missing = sorted(set(range(C)) - set(y.tolist()))
    if missing:
        raise DataError(f"{where}: no decodable images left for classes {[names[c] for c in missing][:5]}")

    idx = np.arange(len(y))
    if "all" in parts:
        splits = split_by_classes(y, seen, unseen, val, test_seen_fraction=test_seen_fraction, seed=seed)
    else:
        splits = split_by_classes(
            y, seen, unseen, val, seed=seed, test_seen_fraction=test_seen_fraction,
            trainval=idx[(part_of == "train") & np.isin(y, seen)],
            test_seen=idx[(part_of == "test") & np.isin(y, seen)],
            test_unseen=idx[(part_of == "test") & np.isin(y, unseen)],
        )
    return ZSLDataset(
        name=name or Path(str(path_or_tar)).name,
        X=X,
        y=y,
        class_names=names,
        embeddings=embeddings,
        splits=splits,
        seen_classes=np.asarray(seen),
        unseen_classes=np.asarray(unseen),
        train_classes=np.setdiff1d(seen, val),
        val_classes=np.asarray(val),
        split=split,
        default_semantics=semantics[0],
        meta={
            "source": where,
            "root": str(root),
            "paths": [parts[p][i][0] for p, i in kept],
            "skipped": skipped,
            "skip_reasons": list(ext.skip_reasons),
            "backbone": "efficientnet-lite0",
            "resolution": resolution,
            "max_per_class": max_per_class,
            "seed": seed,
        },
    )


# ----------------------------------------------------------------------------------------------
# CIFAR-10 with rotating class splits
def read_cifar10(
    tar_path, split: str = "rot0", *, semantics: Sequence[str] | None = None, seed: int = 0, **kw
) -> ZSLDataset:
    if split not in CIFAR10_UNSEEN:
        raise DataError(f"cifar10 has no split {split!r}; valid: {', '.join(CIFAR10_UNSEEN)}")
    if semantics is None:
        semantics = ("glove", "minilm") if minilm_available() else ("glove",)
    rng = np.random.default_rng([seed, 7])
    seen = [c for c in CIFAR10_CLASSES if c not in CIFAR10_UNSEEN[split]]
    val = sorted(rng.choice(seen, size=2, replace=False).tolist())
    return read_image_folder(tar_path, unseen_classes=CIFAR10_UNSEEN[split], val_classes=kw.pop("val_classes", val),
                             semantics=semantics, seed=seed, name="cifar10", split=split, **kw)


register_dataset(DatasetSpec(
    "cifar10",
    lambda root, split, cache_dir=None, **kw: read_cifar10(Path(root) / CIFAR10_TAR, split, cache_dir=cache_dir, **kw),
    lambda root: (Path(root) / CIFAR10_TAR).is_file(),
    tuple(CIFAR10_UNSEEN),
    "CIFAR-10 JPEGs, EfficientNet-Lite0 features, GloVe/MiniLM class names; 2 unseen classes per split",
))
