"""ConSE / DeViSE result tables (issue 5): CIFAR-10 rotating splits, AwA1, ImageNet-1k classifier on CIFAR-10.

    ZSL_DATA=/work/shared/data ZSL_CACHE=/tmp/zsl-shared-cache \
        .venv/bin/python benchmarks/conse_tables.py [--max-per-class N] [--parts cifar,awa1,imagenet] [--out FILE]

Prints markdown tables (and writes them to --out). Every number comes from the protocol
(``run_method``: hyperparameters and the GZSL calibration chosen on validation classes, never on
test; GZSL reuses the hyperparameters selected for ZSL and picks its calibration gamma on validation)
except hit@k, which re-fits the selected configuration on trainval and ranks all 10 classes
for the unseen test images (generalised hit@k, uncalibrated scores).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import zsl
from zsl.eval.metrics import hit_at_k

CIFAR_WNIDS = {  # WordNet 3.0 synset of each CIFAR-10 class name (the first noun sense)
    "airplane": "n02691156", "automobile": "n02958343", "bird": "n01503061", "cat": "n02121620",
    "deer": "n02430045", "dog": "n02084071", "frog": "n01639765", "horse": "n02374451",
    "ship": "n04194289", "truck": "n04490091",
}
CONSE_VARIANTS = [("ConSE(1)", "conse", {"T": 1}), ("ConSE(10)", "conse", {"T": 10}), ("ConSE(all)", "conse", {"T": None})]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _hits(spec, params, ds, sem, seed=0):
    m = zsl.create_method(spec, **params)
    if "random_state" in m.get_params():
        m.set_params(random_state=seed)
    m.fit(*ds.subset("trainval"), ds.class_embeddings(sem), ds.seen_classes)
    idx = ds.splits["test_unseen"]
    cand = np.arange(ds.n_classes)
    S = m.decision_function(ds.X[idx], cand)
    return {k: hit_at_k(S, ds.y[idx], cand, k) for k in (1, 2, 5)}


def protocol_rows(ds, sem, variants, seed=0):
    rows = {}
    for label, name, fixed in variants:
        t0 = time.perf_counter()
        z = zsl.run_method(name, ds, setting="zsl", semantics=sem, seed=seed, overrides=fixed)
        # GZSL reuses the hyperparameters chosen on validation for ZSL; gamma is still chosen on validation
        g = zsl.run_method(name, ds, setting="gzsl", semantics=sem, seed=seed, overrides={**fixed, **z.config["selected"]})
        h = _hits(name, {**fixed, **z.config["selected"]}, ds, sem, seed) if ds.n_classes <= 10 else {}
        rows[label] = {"zsl": z.metrics["acc"], "U": g.metrics["U"], "S": g.metrics["S"], "H": g.metrics["H"],
                       **{f"hit@{k}": v for k, v in h.items()}, "selected": z.config["selected"],
                       "seconds": time.perf_counter() - t0}
        log(f"  {ds.name}/{ds.split} {label}: {rows[label]}")
    return rows


def cifar_rows(max_per_class, data_root, splits):
    variants = CONSE_VARIANTS + [("DeViSE", "devise", {})]
    per_split = {}
    for rot in splits:
        ds = zsl.load_dataset("cifar10", rot, data_root=data_root, max_per_class=max_per_class)
        log(ds.summary())
        per_split[rot] = protocol_rows(ds, "glove", variants)
    return per_split


def cifar_table(per_split, max_per_class):
    labels = list(next(iter(per_split.values())))
    keys = ["zsl", "U", "S", "H", "hit@1", "hit@2", "hit@5"]
    size = "all images" if max_per_class is None else f"max {max_per_class} images per class and part"
    out = [f"### CIFAR-10, GloVe class names, rotating splits {', '.join(per_split)} ({size}), "
           f"mean (min-max) over the {len(per_split)} splits\n",
           "| method | ZSL top-1 | GZSL U | GZSL S | GZSL H | hit@1 | hit@2 | hit@5 |", "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        cells = []
        for k in keys:
            v = np.array([per_split[r][label][k] for r in per_split])
            cells.append(f"{100 * v.mean():.1f} ({100 * v.min():.0f}-{100 * v.max():.0f})")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("\nPer split ZSL top-1 / GZSL H:\n")
    out.append("| method | " + " | ".join(per_split) + " |")
    out.append("|---|" + "---|" * len(per_split))
    for label in labels:
        out.append(f"| {label} | " + " | ".join(f"{100 * per_split[r][label]['zsl']:.1f} / {100 * per_split[r][label]['H']:.1f}" for r in per_split) + " |")
    return "\n".join(out)


def cifar_part(max_per_class, data_root, splits=("rot0", "rot1", "rot2", "rot3", "rot4"), rows_out=None):
    per_split = cifar_rows(max_per_class, data_root, splits)
    if rows_out:
        import json

        from zsl.io import write_json

        write_json(rows_out, per_split)
    return cifar_table(per_split, max_per_class)


def awa1_part(data_root):
    ds = zsl.load_dataset("awa1", "standard", data_root=data_root)
    log(ds.summary())
    variants = [(l, "conse.awa1", f) for l, _, f in CONSE_VARIANTS] + [("DeViSE", "devise.awa1", {})]
    rows = protocol_rows(ds, "attributes", variants)
    out = ["### AwA1 standard 40/10 split, the authors' features (Hellinger), 85 continuous attributes\n",
           "| method | ZSL top-1 | GZSL U | GZSL S | GZSL H | selected |", "|---|---|---|---|---|---|"]
    for label, r in rows.items():
        out.append(f"| {label} | {100 * r['zsl']:.1f} | {100 * r['U']:.1f} | {100 * r['S']:.1f} | {100 * r['H']:.1f} | {r['selected']} |")
    return "\n".join(out)


def imagenet_part(max_per_class, data_root, n_examples=5):
    from zsl.eval.hierarchy import flat_hit_at_k, hierarchical_precision_at_k, wordnet_graph
    from zsl.features import logits_from_features
    from zsl.labelling import ZeroShotLabeller

    ds = zsl.load_dataset("cifar10", "rot0", data_root=data_root, max_per_class=max_per_class)
    idx = np.concatenate([ds.splits["test_seen"], ds.splits["test_unseen"]])  # every CIFAR-10 test image loaded
    logits = logits_from_features(ds.X[idx])
    y = ds.y[idx]
    names = list(ds.class_names)
    out = [f"### ImageNet-1k EfficientNet-Lite0 + ConSE on {len(idx)} CIFAR-10 test images (no CIFAR training at all)\n",
           "Vocabulary = the 10 CIFAR-10 class names (GloVe):\n", "| T | hit@1 | hit@2 |", "|---|---|---|"]
    for T in (1, 10, None):
        lab = ZeroShotLabeller(names, T=T)
        top, _, _ = lab.rank(logits, top_k=2)
        pred = np.array([[names.index(lab.vocabulary.names[j]) for j in row] for row in top])
        out.append(f"| {T or 'all'} | {100 * np.mean(pred[:, 0] == y):.1f} | {100 * np.mean((pred == y[:, None]).any(1)):.1f} |")
    graph = wordnet_graph()
    true = [CIFAR_WNIDS[names[c]] for c in y]
    out += ["\nVocabulary = ImageNet-21k (21,843 synsets, labels without a GloVe vector cannot be ranked); "
            "the true label is the WordNet synset of the CIFAR class:\n",
            "| vocabulary | labels ranked | T | flat hit@1 | flat hit@5 | hierarchical precision@5 |", "|---|---|---|---|---|---|"]
    examples = None
    for exclude in (False, True):
        for T in (1, 10, None):
            lab = ZeroShotLabeller("imagenet21k", T=T, exclude_seen=exclude)
            V = lab.vocabulary
            top, sc, conf = lab.rank(logits, top_k=5)
            ranked = [[V.wnids[j] for j in row] for row in top]
            valid = set(V.wnids)
            hp5 = hierarchical_precision_at_k(ranked, true, 5, valid, graph)
            out.append(f"| 21k{' minus 1k' if exclude else ''} | {len(V)} | {T or 'all'} | {100 * flat_hit_at_k(ranked, true, 1):.1f} | "
                       f"{100 * flat_hit_at_k(ranked, true, 5):.1f} | {100 * hp5:.1f} |")
            if exclude and T == 10:
                rng = np.random.default_rng(0)
                pick = rng.choice(len(idx), n_examples, replace=False)
                examples = [f"- true **{names[y[i]]}** (confidence {conf[i]:.2f}): " + ", ".join(
                    f"{V.names[j]} ({s:.2f})" for j, s in zip(top[i], sc[i])) for i in pick]
    out += ["\nExamples (21k minus 1k, T=10, 5 random test images):\n"] + (examples or [])
    return "\n".join(out)


def hops_part():
    from zsl.eval.hierarchy import imagenet_hop_sets, wordnet_graph
    from zsl.labelling import imagenet1k_classes, imagenet21k_synsets

    w21, _ = imagenet21k_synsets()
    w1, _ = imagenet1k_classes()
    g = wordnet_graph()
    full = imagenet_hop_sets(w1, w21, 3, graph=g)
    restricted = imagenet_hop_sets(w1, w21, 3, restrict_to_vocabulary=True, graph=g)
    out = ["### ImageNet-21k labels within n is-a hops of an ImageNet-1k class (1k classes excluded), WordNet 3.0\n",
           f"{len(set(w1) - set(w21))} of the 1k wnids are not in the 21k list ({', '.join(sorted(set(w1) - set(w21)))}).\n",
           "| hops | paths through any WordNet noun | paths through 21k synsets only | papers (DeViSE/ConSE) |", "|---|---|---|---|"]
    paper = {1: "-", 2: "1,589", 3: "7,860"}
    for n in (1, 2, 3):
        out.append(f"| {n} | {len(full[n])} | {len(restricted[n])} | {paper[n]} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-per-class", type=int, default=None, help="CIFAR-10 images per class and part (default: all)")
    ap.add_argument("--parts", default="cifar,awa1,imagenet")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--splits", default="rot0,rot1,rot2,rot3,rot4", help="CIFAR-10 splits (run splits in parallel processes)")
    ap.add_argument("--rows-out", default=None, help="write the CIFAR-10 per-split rows as JSON")
    ap.add_argument("--merge", nargs="*", default=None, help="CIFAR-10 rows JSON files to merge into one table")
    args = ap.parse_args(argv)
    if args.merge:
        import json

        per_split = {}
        for f in args.merge:
            per_split.update(json.loads(Path(f).read_text()))
        print(cifar_table(dict(sorted(per_split.items())), args.max_per_class))
        return
    parts = []
    for part in args.parts.split(","):
        t0 = time.perf_counter()
        if part == "cifar":
            parts.append(cifar_part(args.max_per_class, args.data_root, args.splits.split(","), args.rows_out))
        elif part == "awa1":
            parts.append(awa1_part(args.data_root))
        elif part == "hops":
            parts.append(hops_part())
        elif part == "imagenet":
            parts.append(imagenet_part(args.max_per_class, args.data_root))
        else:
            raise SystemExit(f"unknown part {part!r}")
        log(f"part {part}: {time.perf_counter() - t0:.0f}s")
        print(parts[-1] + "\n", flush=True)
    if args.out:
        from zsl.io import atomic_write

        with atomic_write(args.out) as fh:
            fh.write("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
