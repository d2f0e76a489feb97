"""VGSE on CIFAR-10 rotating splits: GloVe vs VGSE class embeddings across methods, and speed.

Quality (``compare``): for every split, method, seed, semantics source (``glove``, ``vgse`` = QP
relation, ``vgse-lstsq``, ``vgse-cosine``) and setting, one ``zsl.run_method`` (validation-selected
hyperparameters, GZSL gamma on validation). Rows are appended to a JSONL file as they finish, so an
interrupted run resumes; the markdown table (mean over splits x seeds) goes to stdout and
``benchmarks/results/vgse.md``. Needs ``zsl vgse fit --dataset cifar10 --split <rot>`` first (same
``--max-per-class`` and cache).

    ZSL_DATA=/work/shared/data ZSL_CACHE=/tmp/zsl-cache-vgse .venv/bin/python benchmarks/bench_vgse.py compare \
        --splits rot0 rot1 rot2 --seeds 0 1 2 --methods eszsl --max-per-class 60 --jsonl /tmp/vgse-rows.jsonl

Speed (``speed``): patch-feature throughput (patches/s through ``zsl.features.extract_features`` on
in-memory patches) against whole-image throughput (``extract_features`` on the same files with the
cache off) in the same run, and the projected time for the full CIFAR-10 seen-class extraction.

    ZSL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_vgse.py speed --n 64 --resolution 32
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "vgse.md"


def _loadavg() -> str:
    try:
        return "%.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        return "n/a"


def compare(args) -> int:
    import zsl

    done = set()
    jsonl = Path(args.jsonl)
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            r = json.loads(line)
            done.add((r["split"], r["method"], r["seed"], r["semantics"], r["setting"]))
    overrides = json.loads(args.overrides) if args.overrides else {}
    for split in args.splits:
        ds = zsl.load_dataset("cifar10", split, max_per_class=args.max_per_class, progress=False)
        missing = [s for s in args.semantics if s not in ds.embeddings]
        if missing:
            print(f"skip {split}: no {missing} embeddings (run zsl vgse fit --dataset cifar10 --split {split})", file=sys.stderr)
            continue
        for method in args.methods:
            for seed in args.seeds:
                for sem in args.semantics:
                    for setting in args.settings:
                        key = (split, method, seed, sem, setting)
                        if key in done:
                            continue
                        t0 = time.perf_counter()
                        res = zsl.run_method(method, ds, setting=setting, semantics=sem, seed=seed,
                                             selection=args.selection, overrides=overrides.get(method.split(".")[0]))
                        row = {"split": split, "method": method, "seed": seed, "semantics": sem, "setting": setting,
                               "acc": res.metrics.get("acc"), "H": res.metrics.get("H"), "U": res.metrics.get("U"),
                               "S": res.metrics.get("S"), "seconds": time.perf_counter() - t0,
                               "selection": args.selection, "max_per_class": args.max_per_class}
                        with open(jsonl, "a") as fh:
                            fh.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)
    print(table(jsonl, args.semantics))
    return 0


def table(jsonl: Path, sources=("glove", "vgse", "vgse-lstsq", "vgse-cosine")) -> str:
    rows = [json.loads(line) for line in Path(jsonl).read_text().splitlines() if line.strip()]
    vals: dict = defaultdict(list)
    splits, seeds = defaultdict(set), defaultdict(set)
    for r in rows:
        metric = r["acc"] if r["setting"] == "zsl" else r["H"]
        vals[(r["method"], r["semantics"], r["setting"])].append(100 * metric)
        splits[r["method"]].add(r["split"])
        seeds[r["method"]].add(r["seed"])
    methods = sorted({r["method"] for r in rows})
    head = "| method | splits x seeds | " + " | ".join(f"{s} ZSL T1 | {s} GZSL H" for s in sources) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(sources))]
    for m in methods:
        cells = []
        for s in sources:
            for setting in ("zsl", "gzsl"):
                v = vals.get((m, s, setting), [])
                cells.append(f"{np.mean(v):.1f} ± {np.std(v):.1f} (n={len(v)})" if v else "–")
        lines.append(f"| {m} | {len(splits[m])} x {len(seeds[m])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed(args) -> int:
    import torch  # noqa: F401

    from zsl.data.image_folder import CIFAR10_CLASSES, resolve_image_root, scan_image_folder
    from zsl.features import extract_features
    from zsl.semantics.vgse import image_patches

    root = resolve_image_root(Path(os.environ.get("ZSL_DATA", "/work/shared/data")) / "cifar10-jpg.tar.gz")
    _, parts = scan_image_folder(root)
    paths = [p for p, _ in parts["train"][:: max(1, len(parts["train"]) // args.n)]][: args.n]
    extract_features(paths[:8], resolution=args.reference_resolution, progress=False, cache=False)  # warm-up
    t0 = time.perf_counter()
    extract_features(paths, resolution=args.reference_resolution, progress=False, cache=False)
    whole = len(paths) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    patches = [p for path in paths for p in image_patches(path, args.grid, 0.5)]
    extract_features(patches, resolution=args.resolution, batch_size=144, progress=False)
    patch_rate = len(patches) / (time.perf_counter() - t0)
    n_seen_images = 8 * 5000  # one rotation's seen classes, all train images
    n_all = 10 * 5000  # every class once: serves all five rotations
    nt = args.grid ** 2
    ratio = patch_rate / whole  # patches per second per whole image per second, same run
    free = ratio * args.free_reference_rate
    lines = [
        f"load average {_loadavg()}; patch resolution {args.resolution}; N_t = {nt}; {len(paths)} CIFAR-10 train images",
        f"whole images at {args.reference_resolution} px (extract_features, files, cache off): {whole:.1f} img/s",
        f"patches at {args.resolution} px (image_patches + extract_features, in memory): {patch_rate:.1f} patch/s",
        f"ratio patch/s : whole-image/s = {ratio:.2f}",
        f"projected at this load: one rotation's seen classes (8 x 5000 images) {n_seen_images * nt / patch_rate / 60:.0f} min; "
        f"all 10 classes {n_all * nt / patch_rate / 60:.0f} min",
        f"projected on a free machine (whole images {args.free_reference_rate:g} img/s at {args.reference_resolution} px, "
        f"data/README.md): {free:.0f} patch/s -> 8 x 5000 images {n_seen_images * nt / free / 60:.1f} min, "
        f"10 x 5000 {n_all * nt / free / 60:.1f} min",
    ]
    print("\n".join(lines))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--splits", nargs="+", default=["rot0", "rot1", "rot2"])
    c.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    c.add_argument("--methods", nargs="+", default=["eszsl"])
    c.add_argument("--semantics", nargs="+", default=["glove", "vgse", "vgse-lstsq", "vgse-cosine"])
    c.add_argument("--settings", nargs="+", default=["zsl", "gzsl"])
    c.add_argument("--selection", default="val")
    c.add_argument("--overrides", default=None, help='JSON {"method": {param: value}}')
    c.add_argument("--max-per-class", type=int, default=60)
    c.add_argument("--jsonl", required=True)
    c.set_defaults(func=compare)
    t = sub.add_parser("table")
    t.add_argument("--jsonl", required=True)
    t.set_defaults(func=lambda a: print(table(Path(a.jsonl))) or 0)
    s = sub.add_parser("speed")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--resolution", type=int, default=32)
    s.add_argument("--grid", type=int, default=3)
    s.add_argument("--reference-resolution", type=int, default=128)
    s.add_argument("--free-reference-rate", type=float, default=90.0,
                   help="whole-image img/s at the reference resolution on a free 2-core machine (data/README.md)")
    s.set_defaults(func=speed)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
