"""Speed of `zsl label`: ConSE labelling against feature extraction alone, same images, same run.

    .venv/bin/python benchmarks/bench_label.py [--images 40] [--resolution 224] [--vocabulary imagenet21k]
                                               [--spaces wordnet+minilm,...] [--cold]

Images: scikit-image's sample photos (chelsea, coffee, rocket, motorcycle, astronaut) written as
JPEG files and repeated to --images files. Measured in one process, alternating to share any
background load fairly (best of --repeats):
    extract     zsl.features.extract(paths, cache=False)             -- the baseline
    label       ZeroShotLabeller.label(paths)  (extract + logits + ConSE ranking of the vocabulary)
    conse step  ZeroShotLabeller.rank(logits) alone, for every space in --spaces
    vocabulary  building the labeller with a warm label-space cache (the cache is content-keyed:
                <cache>/labelling/space-<hash>.npz); with --cold also from an empty cache (MiniLM
                then encodes the 40,742 names of the 21k vocabulary: minutes on 2 cores)
Target (issue 16): ConSE step < 10% of extraction with the 21k vocabulary.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def sample_images(folder: Path, n: int) -> list[str]:
    from PIL import Image
    from skimage import data

    base = []
    for name in ("chelsea", "coffee", "rocket", "stereo_motorcycle", "astronaut"):
        img = getattr(data, name)()
        img = img[0] if isinstance(img, tuple) else img
        base.append(Image.fromarray(img).convert("RGB"))
    paths = []
    for i in range(n):
        p = folder / f"img{i:04d}.jpg"
        base[i % len(base)].save(p, quality=92)
        paths.append(str(p))
    return paths


def main(argv=None):
    from zsl.labelling import DEFAULT_SPACE

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--vocabulary", default="imagenet21k")
    ap.add_argument("--spaces", default=f"{DEFAULT_SPACE},glove,minilm,wordnet,wordnet+minilm-gloss")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cold", action="store_true", help="also time the label-space embedding from an empty cache")
    args = ap.parse_args(argv)

    from zsl.features import extract
    from zsl.labelling import ZeroShotLabeller

    spaces = args.spaces.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        paths = sample_images(Path(tmp), args.images)
        vocab_cold = None
        if args.cold:
            t0 = time.perf_counter()
            ZeroShotLabeller(args.vocabulary, space=spaces[0], resolution=args.resolution, cache_dir=Path(tmp) / "cold")
            vocab_cold = time.perf_counter() - t0
        ZeroShotLabeller(
            args.vocabulary, space=spaces[0], resolution=args.resolution
        )  # fill the shared cache if needed
        t0 = time.perf_counter()
        labeller = ZeroShotLabeller(args.vocabulary, space=spaces[0], resolution=args.resolution)
        vocab_warm = time.perf_counter() - t0
        extract(paths[:4], resolution=args.resolution, cache=False, progress=False)  # warm-up: model load, workers
        t_extract, t_label = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ex = extract(paths, resolution=args.resolution, cache=False, progress=False, with_logits=True)
            t_extract.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            results, skipped = labeller.label(paths, top_k=5, progress=False)
            t_label.append(time.perf_counter() - t0)
        assert len(results) == len(paths) and not skipped
        t_rank = {}
        for space in spaces:
            lab = (
                labeller
                if space == spaces[0]
                else ZeroShotLabeller(args.vocabulary, space=space, resolution=args.resolution)
            )
            lab.rank(ex.logits, top_k=5)
            t0 = time.perf_counter()
            for _ in range(5):
                lab.rank(ex.logits, top_k=5)
            t_rank[space] = ((time.perf_counter() - t0) / 5, lab.candidates.n_entries)
    n = len(paths)
    te, tl = min(t_extract), min(t_label)
    print(f"images: {n} at {args.resolution}px; vocabulary {args.vocabulary}: {len(labeller.vocabulary)} labels ranked")
    print(f"feature extraction alone : {n / te:7.2f} images/s  ({te:.2f} s)")
    print(
        f"zsl label (extract+ConSE): {n / tl:7.2f} images/s  ({tl:.2f} "
        f"s)   ratio label/extract = {tl / te:.3f}   [space {spaces[0]}]"
    )
    for space, (t, m) in t_rank.items():
        print(
            f"ConSE step, {space:22s}: {n / t:7.0f} images/s  ({t * 1000:6.1f} ms, {m} synonym vectors) = "
            f"{100 * t / te:.2f}% of extraction"
        )
    cold = f"cold {vocab_cold:.1f} s, " if vocab_cold is not None else ""
    print(f"labeller construction ({spaces[0]}): {cold}cached {vocab_warm:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
