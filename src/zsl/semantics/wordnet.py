"""WordNet 3.0 (the ImageNet hierarchy) read through nltk from Debian's ``wordnet-base`` files.

nltk reads WordNet only from ``<NLTK_DATA>/corpora/wordnet/`` and needs a ``lexnames`` file that
Debian's package does not ship. :func:`nltk_data_root` builds such a root in the cache: copies of
the database files in ``/usr/share/wordnet`` (28 MB, made once; nltk refuses symlinks that resolve
outside its data roots) (override with ``$ZSL_WORDNET_DIR``) plus a
``lexnames`` file written from the table in the man page lexnames(5WN) (45 lines
``NN<TAB>lexname<TAB>syntactic-category``) and an empty ``index.sense`` when the source has none
(see :func:`nltk_data_root`). No download happens: when the files are missing the
error says to ``apt-get install wordnet-base``.

Synsets are addressed as ImageNet does, by WordNet id ``wnid = "n%08d" % offset``.
"""
from __future__ import annotations

import os
import shutil
import threading
import warnings
from functools import lru_cache
from pathlib import Path

from ..errors import ZSLError
from ..io import atomic_write, cache_root

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
#: Files nltk's reader opens (index.sense is optional: only lemma_from_key needs it).
REQUIRED_FILES = ("data.noun", "index.noun", "noun.exc", "data.verb", "index.verb", "verb.exc",
                  "data.adj", "index.adj", "adj.exc", "data.adv", "index.adv", "adv.exc")
OPTIONAL_FILES = ("cntlist.rev", "index.sense")

# lexnames(5WN): file number, lexicographer file name, syntactic category (1 noun, 2 verb, 3 adj, 4 adv)
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_LOCK = threading.Lock()


def lexnames_text() -> str:
    """Content of the ``lexnames`` file nltk expects (45 lines)."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def wordnet_source_dir() -> Path:
    """Folder with the WordNet 3.0 database files (``$ZSL_WORDNET_DIR`` or Debian's location)."""
    return Path(os.environ.get("ZSL_WORDNET_DIR") or DEBIAN_WORDNET_DIR)


def wordnet_available() -> bool:
    src = wordnet_source_dir()
    return all((src / f).is_file() for f in REQUIRED_FILES)


def nltk_data_root(cache_dir=None) -> Path:
    """Build (once) and return an NLTK_DATA root whose ``corpora/wordnet`` is WordNet 3.0.

    Set ``NLTK_DATA`` to the returned folder to use ``nltk.corpus.wordnet`` elsewhere.
    """
    src = wordnet_source_dir()
    missing = [f for f in REQUIRED_FILES if not (src / f).is_file()]
    if missing:
        raise ZSLError(
            f"WordNet 3.0 not found in {src} (missing {', '.join(missing[:3])}); install it with "
            "`apt-get install wordnet-base` (Debian/Ubuntu) or point ZSL_WORDNET_DIR at a WordNet 3.0 dict folder"
        )
    root = cache_root(cache_dir) / "nltk_data"
    target = root / "corpora" / "wordnet"
    with _LOCK:
        target.mkdir(parents=True, exist_ok=True)
        for name in REQUIRED_FILES + OPTIONAL_FILES:
            dst, real = target / name, src / name
            if not real.is_file():
                continue
            if dst.is_file() and not dst.is_symlink() and dst.stat().st_size == real.stat().st_size:
                continue
            # a copy, not a symlink: nltk refuses files that resolve outside its data roots
            tmp = target / f".{name}.{os.getpid()}.tmp"
            shutil.copyfile(real, tmp)
            os.replace(tmp, dst)  # atomic: a concurrent reader never sees half a file
        sense = target / "index.sense"
        if not sense.exists():
            # Debian ships no sense-key index; nltk's constructor reads it only to map other WordNet
            # versions (OMW). An empty one keeps English synsets, lemmas and relations intact;
            # sense-key lookups (lemma_from_key) are then unavailable.
            with atomic_write(sense) as fh:
                fh.write("")
        lex = target / "lexnames"
        if not lex.is_file() or lex.read_text() != lexnames_text():
            with atomic_write(lex) as fh:
                fh.write(lexnames_text())
    return root


@lru_cache(maxsize=4)
def _reader(root: str):
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if root not in nltk.data.path:
        nltk.data.path.append(root)  # nltk only opens files under its data roots
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": we need English only
        return WordNetCorpusReader(str(Path(root) / "corpora" / "wordnet"), None)


def load_wordnet(cache_dir=None):
    """nltk ``WordNetCorpusReader`` over WordNet 3.0 (cached per process)."""
    try:
        import nltk  # noqa: F401
    except ImportError:
        raise ZSLError("nltk is needed for WordNet; install it with: pip install 'zsl[labelling]'") from None
    return _reader(str(nltk_data_root(cache_dir)))


def wnid(synset) -> str:
    """ImageNet id of a noun synset: ``n`` + 8-digit WordNet offset."""
    return f"{synset.pos()}{synset.offset():08d}"


def synset_of(wnid_: str, wn=None):
    """Synset for an ImageNet id ``nXXXXXXXX``; raises ZSLError for a malformed or unknown id."""
    wn = wn or load_wordnet()
    if len(wnid_) != 9 or wnid_[0] != "n" or not wnid_[1:].isdigit():
        raise ZSLError(f"{wnid_!r} is not a WordNet noun id (expected n + 8 digits, e.g. n02084071)")
    try:
        return wn.synset_from_pos_and_offset("n", int(wnid_[1:]))
    except Exception:
        raise ZSLError(f"{wnid_}: no such noun synset in WordNet 3.0") from None


def lemma_names(wnid_: str, wn=None) -> list[str]:
    """Synonyms of a synset with spaces for underscores (``["dog", "domestic dog", "Canis familiaris"]``)."""
    return [name.replace("_", " ") for name in synset_of(wnid_, wn).lemma_names()]
