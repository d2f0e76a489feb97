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
import re
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
        import nltk  # noqa: F401 - only whether nltk is installed
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
    except Exception:  # noqa: BLE001 - nltk raises WordNetError or others for an unknown offset
        raise ZSLError(f"{wnid_}: no such noun synset in WordNet 3.0") from None


def lemma_names(wnid_: str, wn=None) -> list[str]:
    """Synonyms of a synset with spaces for underscores (``["dog", "domestic dog", "Canis familiaris"]``)."""
    return [name.replace("_", " ") for name in synset_of(wnid_, wn).lemma_names()]


# ---------------------------------------------------------------------------------------------------
# The noun database read straight from the WordNet files (wndb(5WN) format), without nltk.
#
# Label spaces need, for tens of thousands of labels, a word's noun senses, a synset's lemmas, gloss
# and hypernyms, and the ancestor closure of every synset. nltk builds Python Synset objects one by
# one (minutes for all 82,115 nouns on a 2-core machine); parsing data.noun / index.noun / noun.exc
# directly takes about two seconds, and the ancestor closure is one sparse matrix.

#: noun detachment rules of morphy(7WN): (suffix, replacement), tried in this order
#: words a head-noun back-off never drops (the rest of the phrase is then not a kind of its head)
FUNCTION_WORDS = frozenset(
    {"of", "in", "the", "on", "at", "de", "du", "la", "le", "and", "with", "for", "to", "from", "by"}
)
NOUN_DETACHMENT = (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
                   ("men", "man"), ("ies", "y"))


class NounDatabase:
    """WordNet 3.0 nouns: senses of a word, lemmas/gloss/hypernyms of a synset, ancestor closure.

    Synsets are addressed by wnid (``n%08d``) and by row (0..N-1, data.noun order). ``folder`` holds
    ``data.noun``, ``index.noun`` and ``noun.exc`` (default: :func:`wordnet_source_dir`).
    """

    def __init__(self, folder=None):
        folder = Path(folder) if folder is not None else wordnet_source_dir()
        missing = [f for f in ("data.noun", "index.noun") if not (folder / f).is_file()]
        if missing:
            raise ZSLError(
                f"WordNet 3.0 not found in {folder} (missing {', '.join(missing)}); install it with "
                "`apt-get install wordnet-base` (Debian/Ubuntu) or point ZSL_WORDNET_DIR at a WordNet 3.0 dict folder"
            )
        self.folder = folder
        self.wnids: list[str] = []
        self.lemmas: list[list[str]] = []
        self.glosses: list[str] = []
        parents: list[list[str]] = []
        with open(folder / "data.noun", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):  # licence header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                w_cnt = int(fields[3], 16)
                words = [fields[4 + 2 * j].replace("_", " ") for j in range(w_cnt)]
                i = 4 + 2 * w_cnt
                p_cnt = int(fields[i])
                hyper = [f"n{fields[i + 2 + 4 * j]}" for j in range(p_cnt)
                         if fields[i + 1 + 4 * j] in ("@", "@i") and fields[i + 3 + 4 * j] == "n"]
                self.wnids.append("n" + fields[0])
                self.lemmas.append(words)
                self.glosses.append(gloss.strip())
                parents.append(hyper)
        self.row = {w: r for r, w in enumerate(self.wnids)}
        self.parents = [[self.row[p] for p in ps] for ps in parents]  # hypernym + instance-hypernym rows
        self.senses: dict[str, list[str]] = {}
        with open(folder / "index.noun", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):
                    continue
                f = line.split()
                n_senses = int(f[2])
                self.senses[f[0]] = ["n" + off for off in f[len(f) - n_senses:]]  # most frequent sense first
        self.exceptions: dict[str, list[str]] = {}
        if (folder / "noun.exc").is_file():
            for line in (folder / "noun.exc").read_text(encoding="utf-8").splitlines():
                f = line.split()
                if len(f) >= 2:
                    self.exceptions.setdefault(f[0], []).extend(f[1:])
        self._closure = None
        self._n = len(self.wnids)

    def __len__(self) -> int:
        return self._n

    def __contains__(self, wnid_: str) -> bool:
        return wnid_ in self.row

    # -- words -> synsets ---------------------------------------------------------------------------
    def base_forms(self, word: str) -> list[str]:
        """Index forms of a noun (morphy(7WN)): the word itself, its exceptions, then detached suffixes."""
        w = "_".join(word.strip().lower().split())
        out = []
        for cand in [w, *self.exceptions.get(w, [])]:
            if cand in self.senses and cand not in out:
                out.append(cand)
        if not out:
            for suffix, repl in NOUN_DETACHMENT:
                if w.endswith(suffix) and len(w) > len(suffix):
                    cand = w[: len(w) - len(suffix)] + repl
                    if cand in self.senses and cand not in out:
                        out.append(cand)
        return out

    def noun_senses(self, word: str) -> list[str]:
        """wnids of the noun senses of ``word`` (most frequent first); [] when WordNet has none.

        Tried in turn: the phrase as written, with hyphens as spaces, without hyphens, and as one
        closed compound without apostrophes (``colt's foot`` -> ``coltsfoot``, ``passion flower`` ->
        ``passionflower``); the first variant WordNet knows wins.
        """
        closed = re.sub(r"['\s-]+", "", word.replace("'s ", "s "))
        for variant in (word, word.replace("-", " "), word.replace("-", ""), closed):
            senses: list[str] = []
            for form in self.base_forms(variant):
                senses += [s for s in self.senses[form] if s not in senses]
            if senses:
                return senses
        return []

    def resolve(self, word: str, prefer=None) -> tuple[str | None, str]:
        """(wnid, how) for a vocabulary word.

        The word's first noun sense in ``prefer`` (a set of wnids, e.g. the ImageNet-21k synsets,
        which are picturable concepts), else its most frequent noun sense: ``how = "exact"``. A
        phrase WordNet lacks backs off to its head noun phrase by dropping leading modifiers
        (``hard-leaved pocket orchid`` -> ``pocket orchid`` -> ``orchid``): ``how = "head"``; the
        back-off stops at a function word (``prince of wales feathers`` is not a kind of feather)
        and, when ``prefer`` is given, accepts only a sense in it (``bolero deep blue`` is not the
        colour blue). Otherwise ``(None, "unknown")``.
        """
        words = word.replace("_", " ").split()
        for start in range(len(words)):
            if start and words[start - 1].lower() in FUNCTION_WORDS:
                break
            senses = self.noun_senses(" ".join(words[start:]))
            if not senses:
                continue
            preferred = [s for s in senses if prefer is not None and s in prefer]
            if start == 0:
                return (preferred or senses)[0], "exact"
            if preferred or prefer is None:
                return (preferred or senses)[0], "head"
        return None, "unknown"

    # -- the hierarchy --------------------------------------------------------------------------------
    def ancestor_matrix(self):
        """(N, N) scipy CSR boolean matrix A: A[i, j] = 1 when synset j is synset i or one of its
        hypernym/instance-hypernym ancestors (transitive closure over all inheritance paths)."""
        if self._closure is None:
            import numpy as np
            import scipy.sparse as sp

            child = np.repeat(np.arange(self._n), [len(p) for p in self.parents])
            parent = np.fromiter((p for ps in self.parents for p in ps), np.int64, len(child))
            P = sp.csr_matrix((np.ones(len(child), np.float32), (child, parent)), shape=(self._n, self._n))
            A = sp.identity(self._n, np.float32, format="csr")
            frontier = P
            while frontier.nnz:  # add ancestors one generation at a time (WordNet depth <= 20)
                A = ((A + frontier) > 0).astype(np.float32)
                frontier = ((frontier @ P) > 0).astype(np.float32)
                frontier = frontier - frontier.multiply(A)
                frontier.eliminate_zeros()
            self._closure = A.tocsr()
        return self._closure

    def descendant_counts(self):
        """(N,) number of synsets under each synset, itself included (distinct, over all paths)."""
        import numpy as np

        return np.asarray(self.ancestor_matrix().sum(0)).ravel()

    def ancestors(self, wnid_: str) -> list[str]:
        """The synset and all its ancestors (wnids)."""
        A = self.ancestor_matrix()
        r = self.row[wnid_]
        return [self.wnids[j] for j in A.indices[A.indptr[r]:A.indptr[r + 1]]]

    def is_under(self, wnid_: str, ancestor: str) -> bool:
        """True when ``ancestor`` is ``wnid_`` or one of its hypernym ancestors."""
        if wnid_ not in self.row or ancestor not in self.row:
            return False
        A = self.ancestor_matrix()
        r = self.row[wnid_]
        return self.row[ancestor] in set(A.indices[A.indptr[r]:A.indptr[r + 1]].tolist())


@lru_cache(maxsize=2)
def _noun_database(folder: str) -> NounDatabase:
    return NounDatabase(folder)


def noun_database(folder=None) -> NounDatabase:
    """The parsed WordNet 3.0 noun database (read once per process: the files never change)."""
    return _noun_database(str(Path(folder) if folder is not None else wordnet_source_dir()))
