"""ConSE / DeViSE result tables: zero-shot labelling (issue 16), CIFAR-10 rotating splits, FLO, AwA1.

    ZSL_DATA=/work/shared/data .venv/bin/python benchmarks/conse_tables.py --parts dev,label,flo,photos [--out FILE]

Parts (each prints markdown; --out writes them all):
    resolution  dev check of the classifier's input size (100 train images per class; 96-224 px).
    dev     DEVELOPMENT set for zero-shot labelling: 300 CIFAR-10 *train* images per class (3,000; the
            reported test images are never used for a choice) at 224 px, the ImageNet-1k classifier.
            Per label space: hit@1/hit@2 against the 10 class names (T = 1, 10, all) and, with T = 10,
            ImageNet-21k minus the 1k classes: flat hit@5 and hierarchical precision@5. The default
            space is the best mean of (10-name hit@1, 21k hP@5), both T = 10. Then the far-flag
            threshold of each space (see zsl.labelling): near = CIFAR dev images with the 10 names
            and with the 21k vocabulary; far = FLO images of the 62 *train* classes with the 102
            flower names, CIFAR dev images with the flower names, FLO train images with the 10
            names; threshold = best balanced accuracy.
    label   TEST: all 10,000 CIFAR-10 test images, the same measures per space, the classifier's
            WordNet ceiling, the partition bound, the pre-issue behaviour (GloVe, synonyms averaged),
            flag rates; FLO test_unseen images (classes 1-20) against the 102 flower names.
    flo     ConSE in the protocol on FLO (`zsl run conse --dataset flo --semantics minilm|attributes`):
            ZSL per-class top-1 and GZSL U/S/H, uncalibrated and calibrated (gamma on validation).
    photos  `zsl label` on the photos that ship with scikit-image and scikit-learn (the printed output).
    cifar   ConSE(1/10/all) and DeViSE on the rotating CIFAR-10 splits (GloVe class names).
    awa1    the same on AwA1 (attributes); hops: ImageNet-21k hop sets.
Every choice is made on the dev part or on validation classes; the test parts only measure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import zsl
from zsl.eval.metrics import hit_at_k

CONSE_VARIANTS = [
    ("ConSE(1)", "conse", {"T": 1}), ("ConSE(10)", "conse", {"T": 10}), ("ConSE(all)", "conse", {"T": None}),
]


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
        g = zsl.run_method(
            name, ds, setting="gzsl", semantics=sem, seed=seed, overrides={**fixed, **z.config["selected"]}
        )
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
    out = [
        f"### CIFAR-10, GloVe class names, rotating splits {', '.join(per_split)} ({size}), "
        f"mean (min-max) over the {len(per_split)} splits\n",
        "| method | ZSL top-1 | GZSL U | GZSL S | GZSL H | hit@1 | hit@2 | hit@5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
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
        out.append(
            f"| {label} | "
            + " | ".join(
                f"{100 * per_split[r][label]['zsl']:.1f} / {100 * per_split[r][label]['H']:.1f}" for r in per_split
            )
            + " |"
        )
    return "\n".join(out)


def cifar_part(max_per_class, data_root, splits=("rot0", "rot1", "rot2", "rot3", "rot4"), rows_out=None):
    per_split = cifar_rows(max_per_class, data_root, splits)
    if rows_out:
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
        out.append(
            f"| {label} | {100 * r['zsl']:.1f} | {100 * r['U']:.1f} | "
            f"{100 * r['S']:.1f} | {100 * r['H']:.1f} | {r['selected']} |"
        )
    return "\n".join(out)


# -- zero-shot labelling with the ImageNet-1k classifier (issue 16) -------------------------------------
LABEL_SPACES_MEASURED = ("glove", "minilm", "minilm-gloss", "wordnet", "wordnet-uniform", "wordnet+minilm",
                         "wordnet+minilm-gloss")
RESOLUTION = 224  # zsl label's default input size


def _cifar_logits(data_root, part, per_class):
    from zsl.features import extract
    from zsl.io import data_root as resolve_root
    from zsl.labelling import labelled_images

    paths, names, y = labelled_images(resolve_root(data_root) / "cifar10-jpg.tar.gz", part, per_class=per_class, seed=0)
    ex = extract(paths, resolution=RESOLUTION, with_logits=True)
    if not ex.valid.all():
        raise SystemExit(f"{(~ex.valid).sum()} CIFAR-10 images did not decode")
    return ex.logits, list(names), y, paths


def _flo_logits(data_root, split):
    from zsl.features import logits_from_features

    flo = zsl.load_dataset("flo", data_root=data_root)
    idx = flo.splits[split]
    return logits_from_features(flo.X[idx]), list(flo.class_names), flo.y[idx]


def _measure_space(space, logits, names, y, true, T_values=(10,), with_21k=True, synonyms="best"):
    from zsl.labelling import ZeroShotLabeller, hierarchy_scores, names_hit_at_k

    row = {}
    for T in T_values:
        lab = ZeroShotLabeller(names, space=space, T=T, synonyms=synonyms)
        r = lab.rank(logits, 2)
        h = names_hit_at_k(r, lab.vocabulary, names, y)
        row[f"T{T}"] = {
            "hit@1": h[1], "hit@2": h[2], "known": r.known, "score": r.scores[:, 0], "reasons": lab.far_reasons(r),
        }
    if with_21k:
        lab = ZeroShotLabeller("imagenet21k", space=space, T=10, exclude_seen=True, synonyms=synonyms, progress=True)
        r = lab.rank(logits, 5)
        row["21k"] = {
            **hierarchy_scores(r, lab.vocabulary, true, 5), "labels": len(lab.vocabulary), "missing": len(lab.missing),
            "known": r.known, "score": r.scores[:, 0], "reasons": lab.far_reasons(r), "excluded": lab.excluded,
            "duplicates": len(lab.vocabulary.duplicates),
        }
    return row


def _pct(v):
    return f"{100 * v:.1f}"


def dev_part(data_root, per_class=300):
    from zsl.labelling import (
        CIFAR10_WNIDS,
        ZeroShotLabeller,
        choose_far_threshold,
        choose_score_threshold,
        classifier_ceiling,
        partition_hit_at_1,
    )

    logits, names, y, _ = _cifar_logits(data_root, "train", per_class)
    true = [CIFAR10_WNIDS[names[c]] for c in y]
    class_wnids = [CIFAR10_WNIDS[n] for n in names]
    out = [
        f"### Development set: {len(y)} CIFAR-10 train images ({per_class} per class), {RESOLUTION} px, "
        "ImageNet-1k EfficientNet-Lite0 + ConSE\n",
        "Classifier ceiling (its top-1 ImageNet class lies under the true name in WordNet): "
        f"{_pct(classifier_ceiling(logits, true))}%. "
        f"Partition bound (each name scores the top-T probability of the classes under it), T=1 / 10 / all: "
        + " / ".join(_pct(partition_hit_at_1(logits, class_wnids, y, T)) for T in (1, 10, None))
        + "%.\n",
        "| space | hit@1 T=1 | hit@1 T=10 | hit@2 T=10 | hit@1 T=all | 21k-1k hit@5 | 21k-1k hP@5 | selection score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {}
    for space in LABEL_SPACES_MEASURED:
        rows[space] = _measure_space(space, logits, names, y, true, (1, 10, None))
        log(f"  dev {space}: " + str({k: {m: v for m, v in d.items() if m not in ('known', 'score', 'reasons')}
                                      for k, d in rows[space].items()}))
    for space, r in rows.items():
        r["score"] = (r["T10"]["hit@1"] + r["21k"]["hp@5"]) / 2
        out.append(
            f"| {space} | {_pct(r['T1']['hit@1'])} | {_pct(r['T10']['hit@1'])} | {_pct(r['T10']['hit@2'])} | "
            f"{_pct(r['TNone']['hit@1'])} | {_pct(r['21k']['hit@5'])} | {_pct(r['21k']['hp@5'])} | {_pct(r['score'])} |"
        )
    offered = [s for s in rows if s in zsl.labelling.SPACES]
    best = max(offered, key=lambda s: rows[s]["score"])
    out.append(f"\nChosen default (best selection score among the offered spaces {', '.join(offered)}): **{best}**.\n")
    # far flags. "label": one known-score threshold for all spaces (the known score does not depend on
    # the space), chosen with the pools the chosen default space produces; "image": a top-score
    # threshold per space, chosen with the label threshold fixed
    flo_logits, flo_names, _ = _flo_logits(data_root, "train")
    def ranked(vocab, L, space):
        r = ZeroShotLabeller(vocab, space=space).rank(L, 1)
        return r.known, r.scores[:, 0]
    def pools(space):
        near = [
            (rows[space]["T10"]["known"], rows[space]["T10"]["score"]),
            (rows[space]["21k"]["known"], rows[space]["21k"]["score"]),
        ]
        far = [ranked(flo_names, flo_logits, space), ranked(flo_names, logits, space), ranked(names, flo_logits, space)]
        return near, far
    near, far = pools(best)
    t, acc = choose_far_threshold([k for k, _ in near], [k for k, _ in far])
    out += [
        f'Far flag "label" (known score of the top label < threshold), by balanced accuracy on the pools of the {best} '
        f'space: **{t:.3f}** (balanced accuracy {_pct(acc)}%). Far flag "image" (top label\'s cosine to f(x) < a '
        "threshold per space, chosen with the label threshold fixed). Flag rates of the two rules together per "
        "development pool (near: vocabulary covers what the classifier sees; far: it does not):\n",
        "| space | score threshold | balanced acc. | near: CIFAR/10 names | near: CIFAR/21k-1k | far: FLO/flower names "
        "| far: CIFAR/flower names | far: FLO/10 names |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for space in offered:
        near, far = pools(space)
        ts, acc_s = choose_score_threshold(near, far, t)
        rates = [np.mean((np.isfinite(k) & (k < t)) | (sc < ts)) for k, sc in near + far]
        out.append(f"| {space} | {ts:.3f} | {_pct(acc_s)} | " + " | ".join(_pct(r) for r in rates) + " |")
    return "\n".join(out)


def resolution_part(data_root, per_class=100):
    """Dev check of the classifier's input size on CIFAR-10's 32 px images (zsl label --resolution)."""
    from zsl.features import extract
    from zsl.io import data_root as resolve_root
    from zsl.labelling import (
        CIFAR10_WNIDS,
        DEFAULT_SPACE,
        ZeroShotLabeller,
        classifier_ceiling,
        labelled_images,
        names_hit_at_k,
    )

    paths, names, y = labelled_images(
        resolve_root(data_root) / "cifar10-jpg.tar.gz", "train", per_class=per_class, seed=0
    )
    true = [CIFAR10_WNIDS[names[c]] for c in y]
    lab = ZeroShotLabeller(list(names), space=DEFAULT_SPACE)
    out = [
        f"### Development: classifier input size, {len(y)} CIFAR-10 train images ({per_class} per class), "
        f"{DEFAULT_SPACE}, T=10\n",
        "| resolution | classifier ceiling | hit@1 | hit@2 |",
        "|---|---|---|---|",
    ]
    for R in (96, 128, 160, 224):
        logits = extract(paths, resolution=R, with_logits=True).logits
        h = names_hit_at_k(lab.rank(logits, 2), lab.vocabulary, list(names), y)
        out.append(f"| {R} | {_pct(classifier_ceiling(logits, true))} | {_pct(h[1])} | {_pct(h[2])} |")
        log(f"  resolution {out[-1]}")
    return "\n".join(out)


def label_part(data_root):
    from zsl.labelling import (
        CIFAR10_WNIDS,
        DEFAULT_SPACE,
        ZeroShotLabeller,
        classifier_ceiling,
        names_hit_at_k,
        partition_hit_at_1,
    )

    logits, names, y, paths = _cifar_logits(data_root, "test", None)
    true = [CIFAR10_WNIDS[names[c]] for c in y]
    class_wnids = [CIFAR10_WNIDS[n] for n in names]
    out = [
        f"### Test: all {len(y)} CIFAR-10 test images, {RESOLUTION} "
        "px, ImageNet-1k EfficientNet-Lite0 + ConSE (T=10)\n",
        "All ten CIFAR-10 classes have ImageNet-1k counterparts (airliner, sports car, tabby, ...), so this measures "
        "the label space, not zero-shot transfer of the classifier.\n",
        "Classifier ceiling (top-1 ImageNet class under the true name in WordNet): "
        f"{_pct(classifier_ceiling(logits, true))}%. "
        f"Partition bound T=1 / 10 / all: "
        + " / ".join(_pct(partition_hit_at_1(logits, class_wnids, y, T)) for T in (1, 10, None))
        + "%.\n",
        "| space | ranking | hit@1 | hit@2 | flagged far | 21k-1k "
        "labels | 21k-1k hit@5 | 21k-1k hP@5 | flagged far (21k) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for space, synonyms in [("glove", "mean")] + [(s, "best") for s in LABEL_SPACES_MEASURED]:
        r = _measure_space(space, logits, names, y, true, (10,), synonyms=synonyms)
        def flag(reasons):
            return _pct(np.mean([bool(x) for x in reasons]))
        tag = " (default)" if space == DEFAULT_SPACE and synonyms == "best" else ""
        how = "synonyms averaged (before)" if synonyms == "mean" else "best synonym (paper)"
        out.append(
            f"| {space}{tag} | {how} | {_pct(r['T10']['hit@1'])} | {_pct(r['T10']['hit@2'])} | "
            f"{flag(r['T10']['reasons'])} | "
            f"{r['21k']['labels']} | {_pct(r['21k']['hit@5'])} | {_pct(r['21k']['hp@5'])} | "
            f"{flag(r['21k']['reasons'])} |"
        )
        log(f"  test {space}/{synonyms}: {out[-1]}")
    lab = ZeroShotLabeller(names, space=DEFAULT_SPACE)
    r = lab.rank(logits, 1)
    flagged = np.array([bool(x) for x in lab.far_reasons(r)])
    top = np.array([names.index(lab.vocabulary.names[j]) for j in r.top[:, 0]])
    out.append(
        f"\nDefault space, 10 names: hit@1 on the {flagged.sum()} flagged images "
        f"{_pct(np.mean(top[flagged] == y[flagged]))}, "
        f"on the {(~flagged).sum()} others {_pct(np.mean(top[~flagged] == y[~flagged]))}."
    )
    lab = ZeroShotLabeller(names, space=DEFAULT_SPACE, T=None)
    lab1 = ZeroShotLabeller(names, space=DEFAULT_SPACE, T=1)
    h_all = names_hit_at_k(lab.rank(logits, 2), lab.vocabulary, names, y)
    h_1 = names_hit_at_k(lab1.rank(logits, 2), lab1.vocabulary, names, y)
    out.append(
        f"\nDefault space with T=1: hit@1 {_pct(h_1[1])}, hit@2 {_pct(h_1[2])}; "
        f"T=all: hit@1 {_pct(h_all[1])}, hit@2 {_pct(h_all[2])}.\n"
    )
    # FLO: photos of the 20 test classes against the 102 flower names -- the labelling cells of
    # `zsl benchmark --task labelling` (grids/labelling-*.toml: flo images = "test_unseen")
    from zsl.bench.labelling import LabellingContext, label_dataset

    flo = LabellingContext(zsl.load_dataset("flo", data_root=data_root))
    out += [f"FLO test_unseen photos ({len(flo.rows('test_unseen'))}, classes 1-20) against the 102 flower names "
            "(chance hit@1 1.0%):\n", "| space | hit@1 | hit@5 | flagged far |", "|---|---|---|---|"]
    for space in zsl.labelling.SPACES:
        m = label_dataset(flo, space=space, T=10, images="test_unseen")["metrics"]
        out.append(f"| {space} | {_pct(m['hit@1'])} | {_pct(m['hit@5'])} | {_pct(m['far'])} |")
    # examples with the default space
    lab = ZeroShotLabeller("imagenet21k", space=DEFAULT_SPACE, exclude_seen=True)
    r = lab.rank(logits, 5)
    rng = np.random.default_rng(0)
    out.append(f"\nExamples ({DEFAULT_SPACE}, 21k minus 1k, T=10, 5 random test images):\n")
    for i in rng.choice(len(y), 5, replace=False):
        out.append(f"- true **{names[y[i]]}** (confidence {r.confidence[i]:.2f}, known {r.known[i]:.2f}): " + ", ".join(
            f"{lab.vocabulary.names[j]} ({s:.2f})" for j, s in zip(r.top[i], r.scores[i])))
    return "\n".join(out)


def flo_part(data_root):
    from zsl.data import require_semantics

    ds = zsl.load_dataset("flo", data_root=data_root)
    log(ds.summary())
    out = [
        "### ConSE in the protocol on FLO (xlsa17 split; "
        "EfficientNet-Lite0 features; seen-class softmax trained here)\n",
        "| semantics | ZSL top-1 | GZSL U / S / H uncalibrated | GZSL U / S / H calibrated | gamma | selected |",
        "|---|---|---|---|---|---|",
    ]
    for sem in ("minilm", "attributes", "minilm-gloss", "wordnet", "wordnet+minilm"):
        t0 = time.perf_counter()
        require_semantics(ds, sem)
        z = zsl.run_method("conse", ds, setting="zsl", semantics=sem, seed=0)
        g = zsl.run_method("conse", ds, setting="gzsl", semantics=sem, seed=0, overrides=z.config["selected"])
        m = g.metrics
        out.append(
            f"| {sem} | {_pct(z.metrics['acc'])} | {_pct(m['U_uncalibrated'])} / {_pct(m['S_uncalibrated'])} / "
            f"{_pct(m['H_uncalibrated'])} | {_pct(m['U'])} / {_pct(m['S'])} / {_pct(m['H'])} | {m['gamma']:.3f} | "
            f"{z.config['selected']} |"
        )
        log(f"  flo {sem}: {out[-1]} ({time.perf_counter() - t0:.0f}s)")
    return "\n".join(out)


def sample_photos(folder: Path) -> list[str]:
    """The colour photos that ship with scikit-image and scikit-learn, written as JPEG files."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                                                        "immunohistochemistry", "retina", "camera")}
    photos["motorcycle"] = data.stereo_motorcycle()[0]
    sk = load_sample_images()
    for fname, img in zip(sk.filenames, sk.images):
        photos[Path(fname).stem] = img
    paths = []
    for name, img in sorted(photos.items()):
        p = folder / f"{name}.jpg"
        Image.fromarray(img).convert("RGB").save(p, quality=95)
        paths.append(str(p))
    return paths


def photos_part():
    import subprocess
    import tempfile

    exe = str(Path(sys.executable).with_name("zsl"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = sample_photos(Path(tmp))
        names = [Path(p).name for p in paths]
        vocab = Path(tmp) / "cifar10.txt"
        vocab.write_text(
            "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]) + "\n"
        )
        out = ["### `zsl label` on the sample photos of scikit-image and scikit-learn\n"]
        for args in (["--exclude-seen"], ["--vocabulary", "cifar10.txt", "--top-k", "3"]):
            proc = subprocess.run([exe, "label", *names, *args], cwd=tmp, capture_output=True, text=True)
            err = [line for line in proc.stderr.splitlines() if line.startswith("zsl")]
            out += [f"    $ zsl label {' '.join(names)} {' '.join(args)}"] + [
                "    " + line for line in proc.stdout.splitlines()
            ]
            out += ["    (stderr)"] + ["    " + line for line in err] + [""]
    return "\n".join(out)


def hops_part():
    from zsl.eval.hierarchy import imagenet_hop_sets, wordnet_graph
    from zsl.labelling import imagenet1k_classes, imagenet21k_synsets

    w21, _ = imagenet21k_synsets()
    w1, _ = imagenet1k_classes()
    g = wordnet_graph()
    full = imagenet_hop_sets(w1, w21, 3, graph=g)
    restricted = imagenet_hop_sets(w1, w21, 3, restrict_to_vocabulary=True, graph=g)
    out = [
        "### ImageNet-21k labels within n is-a hops of an ImageNet-1k class (1k classes excluded), WordNet 3.0\n",
        f"{len(set(w1) - set(w21))} of the 1k wnids are not in the 21k list "
        f"({', '.join(sorted(set(w1) - set(w21)))}).\n",
        "| hops | paths through any WordNet noun | paths through 21k synsets only | papers (DeViSE/ConSE) |",
        "|---|---|---|---|",
    ]
    paper = {1: "-", 2: "1,589", 3: "7,860"}
    for n in (1, 2, 3):
        out.append(f"| {n} | {len(full[n])} | {len(restricted[n])} | {paper[n]} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-per-class", type=int, default=None, help="CIFAR-10 images per class and part (default: all)")
    ap.add_argument("--parts", default="dev,label,flo,photos,cifar,awa1")
    ap.add_argument("--dev-per-class", type=int, default=300, help="CIFAR-10 train images per class in the dev set")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--splits", default="rot0,rot1,rot2,rot3,rot4", help="CIFAR-10 splits (run splits in parallel processes)"
    )
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
        elif part == "dev":
            parts.append(dev_part(args.data_root, args.dev_per_class))
        elif part == "resolution":
            parts.append(resolution_part(args.data_root))
        elif part == "label":
            parts.append(label_part(args.data_root))
        elif part == "flo":
            parts.append(flo_part(args.data_root))
        elif part == "photos":
            parts.append(photos_part())
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
