"""Datasets: one ``ZSLDataset`` from every reader, found by name under the data root.

``load_dataset(name, split=None, data_root=None)`` resolves:
    synthetic            the seeded generator (no files needed)
    awa1                 ``<root>/awa1-lampert`` (splits: standard, ps)
    cifar10              ``<root>/cifar10-jpg.tar.gz`` through the image-folder reader (rotating splits)
    flo                  ``<root>/flo``: Oxford Flowers-102, the xlsa17 split, ``res101.mat`` if present else
                         ``lite0.mat`` (EfficientNet-Lite0 features); attributes (the 1024-d text
                         embeddings), glove and minilm of the class names
    <xlsa17 name>        any folder ``<root>/<NAME>`` or ``<root>/xlsa17/<NAME>`` holding res101.mat and
                         att_splits.mat (awa2, cub, sun, apy, flo, ... as the folder is named)
    image-folder:PATH    any ``PATH/<class>/*.jpg`` tree or ``.tar.gz`` of one
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, ZSLError
from ..io import data_root as _data_root
from .dataset import SPLIT_KEYS, ZSLDataset, split_by_classes
from .synthetic import make_synthetic


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Callable[..., ZSLDataset]  # loader(root: Path, split: str, *, cache_dir=None, **kw)
    available: Callable[[Path], bool]  # is it present under this root?
    splits: tuple[str, ...]
    description: str


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    _DATASETS[spec.name] = spec
    return spec


def _awa1_loader(root: Path, split: str, *, cache_dir=None, **kw) -> ZSLDataset:
    from .awa1 import read_awa1

    return read_awa1(root / "awa1-lampert", split=split, **kw)


register_dataset(
    DatasetSpec(
        "synthetic", lambda root, split, cache_dir=None, **kw: make_synthetic(**kw), lambda root: True, ("default",),
        "seeded synthetic attributes->features dataset (no files)",
    )
)
register_dataset(DatasetSpec("awa1", _awa1_loader, lambda root: (root / "awa1-lampert" / "labels.npz").is_file(),
                             ("standard", "ps"), "Animals with Attributes 1, the authors' features (Lampert 2009)"))


FLO_FEATURE_FILES = ("res101.mat", "lite0.mat")


def _flo_features_file(folder: Path) -> str | None:
    return next((f for f in FLO_FEATURE_FILES if (folder / f).is_file()), None)


def _flo_loader(
    root: Path, split: str, *, features_file: str | None = None, semantics=None, cache_dir=None, **kw
) -> ZSLDataset:
    from .names import minilm_available
    from .xlsa17 import read_xlsa17

    folder = root / "flo"
    features_file = features_file or _flo_features_file(folder)
    if semantics is None:
        semantics = ("glove", "minilm") if minilm_available() else ("glove",)
    # two Oxford-102 names (gazania, osteospermum) are unknown to GloVe: they are described as "flower"
    return read_xlsa17(folder, name="flo", features_file=features_file, name_semantics=tuple(semantics),
                       name_fallback="flower", cache_dir=cache_dir, **kw)


register_dataset(
    DatasetSpec(
        "flo", _flo_loader,
        lambda root: (root / "flo" / "att_splits.mat").is_file() and _flo_features_file(root / "flo") is not None,
        ("ps",), "Oxford Flowers-102 (xlsa17 split), CNN features, text embeddings + class-name vectors",
    )
)


def _xlsa17_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for parent in (root, root / "xlsa17", root / "xlsa17-splits"):
        if parent.is_dir():
            for sub in sorted(parent.iterdir()):
                if (sub / "res101.mat").is_file() and (sub / "att_splits.mat").is_file():
                    found.setdefault(sub.name.lower(), sub)
    return found


def _load_builtin_plugins() -> None:
    # Readers that need heavier imports register themselves on import (image folders, CIFAR-10).
    try:
        from . import image_folder  # noqa: F401 - importing registers the reader
    except ImportError:  # pragma: no cover - the module is optional until it lands
        pass


def require_semantics(ds: ZSLDataset, source: str | None, cache_dir=None) -> ZSLDataset:
    """Make sure ``ds`` has the class embeddings ``source``; learnt VGSE embeddings join only here.

    VGSE embeddings (``vgse``, ``vgse-lstsq``, ``vgse-cosine``) come from a ``zsl vgse fit`` stored in
    the cache: they are attached when a command asks for them by name, never at load time, so what
    a run sees never depends on what happens to be cached. Label spaces of class names
    (``minilm-gloss``, ``wordnet``, ``wordnet+minilm``, ...; :mod:`zsl.semantics.label_spaces`) are
    computed from the class names when asked for. Any other missing source is an error listing the
    available ones.
    """
    if source and source.startswith("vgse") and source not in ds.embeddings:
        from ..semantics.vgse import attach_vgse

        attach_vgse(ds, cache_dir)
    from ..semantics import LABEL_SPACE_SOURCES

    if source and source not in ds.embeddings and source in LABEL_SPACE_SOURCES:
        from ..semantics import class_embeddings

        ds.embeddings[source] = class_embeddings(list(ds.class_names), source, cache_dir=cache_dir)[0]
    if source:
        ds.class_embeddings(source)
    return ds


def list_datasets(data_root=None, *, available_only: bool = True) -> list[str]:
    """Names of datasets present under the data root (``synthetic`` is always there)."""
    _load_builtin_plugins()
    root = _data_root(data_root)
    names = [n for n, s in _DATASETS.items() if not available_only or s.available(root)]
    names += [n for n in _xlsa17_folders(root) if n not in names]
    return names


def dataset_splits(name: str, data_root=None) -> tuple[str, ...]:
    _load_builtin_plugins()
    if name in _DATASETS:
        return _DATASETS[name].splits
    return ("ps",)


def load_dataset(name: str, split: str | None = None, *, data_root=None, cache_dir=None, **kwargs) -> ZSLDataset:
    """Load a dataset by name; errors list the valid names and say how to point at the data.

    ``cache_dir`` is where derived files (extracted images, features, name embeddings) are read and
    written (default ``$ZSL_CACHE``); other keywords go to the dataset's reader.
    """
    _load_builtin_plugins()
    root = _data_root(data_root)
    if name.startswith("image-folder:"):
        from .image_folder import read_image_folder

        if not name.split(":", 1)[1].strip():
            raise DataError(
                "image-folder: needs a path, e.g. --dataset "
                "image-folder:~/photos (a folder of class folders or a .tar.gz)"
            )
        if split not in (None, "default"):
            raise DataError(
                "an image folder has one split, 'default' (unseen classes "
                f"drawn with the seed); got {split!r}. Valid splits: default"
            )
        return read_image_folder(name.split(":", 1)[1], cache_dir=cache_dir, **kwargs)
    if name in _DATASETS:
        spec = _DATASETS[name]
        split = split or spec.splits[0]
        if split not in spec.splits:
            raise DataError(f"dataset {name!r} has no split {split!r}; valid splits: {', '.join(spec.splits)}")
        if name != "synthetic" and not root.is_dir():
            raise DataError(
                f"data root {root} does not exist; pass --data-root or set ZSL_DATA to the folder holding the data"
            )
        if not spec.available(root):
            raise DataError(f"dataset {name!r} not found under data root {root}; pass --data-root or set ZSL_DATA")
        return spec.loader(root, split, cache_dir=cache_dir, **kwargs)
    folders = _xlsa17_folders(root)
    if name.lower() in folders:
        from .xlsa17 import read_xlsa17

        if split not in (None, "ps"):
            raise DataError(f"xlsa17 dataset {name!r} has only the proposed split 'ps'")
        return read_xlsa17(folders[name.lower()], name=name.lower(), cache_dir=cache_dir, **kwargs)
    if not root.is_dir():
        raise DataError(
            f"data root {root} does not exist; pass --data-root or set ZSL_DATA (known datasets: "
            f"{', '.join(_DATASETS)})"
        )
    valid = list_datasets(root)
    raise ZSLError(f"unknown dataset {name!r}; valid datasets under {root}: {', '.join(valid)} (or image-folder:PATH)")


__all__ = [
    "DatasetSpec",
    "SPLIT_KEYS",
    "ZSLDataset",
    "dataset_splits",
    "list_datasets",
    "load_dataset",
    "make_synthetic",
    "register_dataset",
    "require_semantics",
    "split_by_classes",
]
