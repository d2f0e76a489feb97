"""Hierarchical evaluation over WordNet 3.0 (the ImageNet hierarchy), as in DeViSE and ConSE.

* Hop distance between two noun synsets: length of the shortest path in the undirected is-a graph
  (hypernym and instance-hypernym edges) of WordNet 3.0 nouns.
* ImageNet "n-hop" label sets (Frome et al. 2013; Norouzi et al. 2014, section 5): the ImageNet-21k
  synsets within n hops of at least one ImageNet-1k class, minus the 1k classes themselves. The
  papers report 1,589 labels for 2 hops and 7,860 for 3 hops on the fall-2011 release. Choice:
  paths may pass through any WordNet noun synset (``restrict_to_vocabulary=False``) or only through
  synsets of the 21k vocabulary (``True``); both are computed by :func:`imagenet_hop_sets` and the
  sizes are printed by the benchmark so the closer one to the papers' counts can be seen.
* Hierarchical precision@k (Frome et al. 2013, appendix): for an image with true label y, the
  correct set is grown ring by ring -- all valid labels within R = 0, 1, 2, ... hops of y -- until
  it holds at least k labels; precision@k is |top-k predictions intersect correct set| / k. With
  R = 0 alone this would be the flat hit@k divided by k; flat hit@k is reported beside it.

Shapes: ``ranked`` (n, K) labels best first, each a wnid or a collection of wnids (a label that
merges several synsets with one name, as ``zsl label`` does; it counts once, as correct when any of
its ids is), ``true`` (n,) wnids.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from ..semantics.wordnet import nltk_data_root


class HypernymGraph:
    """Undirected is-a graph of WordNet 3.0 noun synsets, nodes named by wnid (``n%08d``)."""

    def __init__(self, data_noun_path=None):
        # Parsed straight from data.noun (wndb(5WN) format): nltk's Synset objects take minutes to
        # build for all 82,115 noun synsets on a 2-core machine, this takes about a second.
        path = data_noun_path or (nltk_data_root() / "corpora" / "wordnet" / "data.noun")
        self.adjacency: dict[str, list[str]] = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):  # licence header
                    continue
                fields = line.split()
                a = "n" + fields[0]
                self.adjacency.setdefault(a, [])
                w_cnt = int(fields[3], 16)
                i = 4 + 2 * w_cnt
                p_cnt = int(fields[i])
                for j in range(p_cnt):
                    symbol, offset, pos = fields[i + 1 + 4 * j: i + 4 + 4 * j]
                    if symbol in ("@", "@i") and pos == "n":  # hypernym / instance hypernym
                        b = "n" + offset
                        self.adjacency[a].append(b)
                        self.adjacency.setdefault(b, []).append(a)

    def __contains__(self, node: str) -> bool:
        return node in self.adjacency

    def bfs(self, sources: Iterable[str], max_hops: int, allowed: set[str] | None = None) -> dict[str, int]:
        """Hop count from the nearest source to every node within ``max_hops`` (only through ``allowed``)."""
        dist = {s: 0 for s in sources if s in self.adjacency}
        queue = deque(dist)
        while queue:
            node = queue.popleft()
            d = dist[node]
            if d == max_hops:
                continue
            for nb in self.adjacency[node]:
                if nb not in dist and (allowed is None or nb in allowed):
                    dist[nb] = d + 1
                    queue.append(nb)
        return dist

    def hop_distance(self, a: str, b: str, max_hops: int = 64) -> int | None:
        """Shortest undirected is-a path length between two synsets (None if farther than max_hops)."""
        return self.bfs([a], max_hops).get(b)


@lru_cache(maxsize=1)
def wordnet_graph() -> HypernymGraph:
    return HypernymGraph()


def imagenet_hop_sets(seen_wnids: Sequence[str], vocabulary_wnids: Sequence[str], max_hops: int = 3, *,
                      restrict_to_vocabulary: bool = False, graph: HypernymGraph | None = None) -> dict[int, list[str]]:
    """{n: vocabulary wnids within n hops of a seen class, seen classes excluded} for n = 1..max_hops."""
    graph = graph or wordnet_graph()
    vocab = set(vocabulary_wnids)
    seen = set(seen_wnids)
    dist = graph.bfs(seen, max_hops, allowed=(vocab | seen) if restrict_to_vocabulary else None)
    return {n: sorted(w for w, d in dist.items() if 0 < d <= n and w in vocab and w not in seen)
            for n in range(1, max_hops + 1)}


def correct_set(
    true_wnid: str, k: int, valid: set[str], graph: HypernymGraph | None = None, max_radius: int = 32
) -> set[str]:
    """Frome et al.'s hCorrectSet: valid labels within R hops of the truth, R grown until >= k labels."""
    graph = graph or wordnet_graph()
    dist = graph.bfs([true_wnid], max_radius)
    by_radius: dict[int, list[str]] = {}
    for w, d in dist.items():
        if w in valid:
            by_radius.setdefault(d, []).append(w)
    out: set[str] = set()
    for R in range(max_radius + 1):
        out.update(by_radius.get(R, ()))
        if len(out) >= k:
            break
    return out


def _ids(label) -> tuple[str, ...]:
    return (label,) if isinstance(label, str) else tuple(label)


def hierarchical_precision_at_k(ranked: Sequence[Sequence], true: Sequence[str], k: int,
                                valid: Iterable[str], graph: HypernymGraph | None = None) -> float:
    """Mean over images of |top-k intersect hCorrectSet(true, k)| / k (Frome et al. 2013)."""
    graph = graph or wordnet_graph()
    valid = set(valid)
    cache: dict[str, set[str]] = {}
    vals = []
    for row, t in zip(ranked, true):
        if t not in cache:
            cache[t] = correct_set(t, k, valid, graph)
        vals.append(sum(any(i in cache[t] for i in _ids(label)) for label in list(row)[:k]) / k)
    return float(np.mean(vals)) if vals else float("nan")


