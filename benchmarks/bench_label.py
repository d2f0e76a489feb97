"""Speed of `zsl label`: ConSE labelling against feature extraction alone, same images, same run.

    .venv/bin/python benchmarks/bench_label.py [--images 40] [--resolution 224] [--vocabulary imagenet21k]

Images: scikit-image's sample photos (chelsea, coffee, rocket, motorcycle, astronaut) written as
JPEG files and repeated to --images files. Measured, in one process, alternating to share any
background load fairly (best of --repeats):
    extract     zsl.features.extract(paths, cache=False)             -- the baseline
    label       ZeroShotLabeller.label(paths)  (extract + logits + ConSE ranking of the vocabulary)
    conse step  ZeroShotLabeller.rank(logits) alone
    vocabulary  building the labeller with a cold and with a warm vocabulary-embedding cache
Target (issue 5): label / extract - 1 < 10% with a ~20k-label vocabulary.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


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
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--vocabulary", default="imagenet21k")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    from zsl.features import extract
    from zsl.labelling import ZeroShotLabeller

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        paths = sample_images(Path(tmp), args.images)
        t0 = time.perf_counter()
        labeller = ZeroShotLabeller(args.vocabulary, resolution=args.resolution, cache_dir=cache)
        vocab_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        labeller = ZeroShotLabeller(args.vocabulary, resolution=args.resolution, cache_dir=cache)
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
        t0 = time.perf_counter()
        for _ in range(5):
            labeller.rank(ex.logits, top_k=5)
        t_rank = (time.perf_counter() - t0) / 5
    n = len(paths)
    te, tl = min(t_extract), min(t_label)
    print(f"images: {n} at {args.resolution}px; vocabulary {args.vocabulary}: {len(labeller.vocabulary)} labels ranked")
    print(f"feature extraction alone : {n / te:7.2f} images/s  ({te:.2f} s)")
    print(f"zsl label (extract+ConSE): {n / tl:7.2f} images/s  ({tl:.2f} s)   ratio label/extract = {tl / te:.3f}")
    print(f"ConSE step alone         : {n / t_rank:7.0f} images/s  ({t_rank * 1000:.1f} ms) = {100 * t_rank / te:.2f}% of extraction")
    print(f"vocabulary embedding     : cold {vocab_cold:.2f} s, cached {vocab_warm:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
