"""Feature-extraction throughput of ``zsl.features.extract_features`` against plain loops, same run.

For each resolution, on the same N CIFAR-10 JPEGs (or any image folder):
  model-only   ``for batch in pre-decoded tensors: penultimate(model, batch)`` (the network's ceiling)
  naive        single process ``for batch: decode + preprocess each file, then the model``
  zsl          ``extract_features(paths, cache=False)`` (DataLoader decoding workers, uint8 transfer)
and prints img/s and the ratios zsl/naive (speed-up) and zsl/model-only (share of the ceiling).
The machine's load average is printed with the numbers: on a shared machine they move together.

With ``--accuracy`` it also measures what the resolution buys on CIFAR-10 (``max_per_class`` images
per class and folder, rot0): ESZSL ZSL per-class top-1 on the unseen classes (validation-selected
hyperparameters, GloVe class names) and a linear probe (logistic regression) trained on the seen
classes' train images, tested on their test images.

    ZSL_DATA=/work/shared/data ZSL_CACHE=/tmp/zsl-cache-bench .venv/bin/python benchmarks/bench_features.py \
        --n 128 --resolutions 128 160 224 [--accuracy --max-per-class 30]

Results go to stdout and ``benchmarks/results/features.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cifar_paths(n: int) -> list[str]:
    from zsl.data.image_folder import resolve_image_root, scan_image_folder
    from zsl.io import data_root

    tar = data_root() / "cifar10-jpg.tar.gz"
    if not tar.is_file():
        sys.exit(f"{tar} not found: set ZSL_DATA to the shared data folder or pass --images")
    _, parts = scan_image_folder(resolve_image_root(tar))
    rows = parts["test"]
    rng = np.random.default_rng(0)
    return [rows[i][0] for i in sorted(rng.choice(len(rows), size=n, replace=False))]


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (decoding workers are joined when a run ends)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def throughput(paths: list[str], resolution: int, batch_size: int, num_workers: int | None) -> dict:
    import torch

    from zsl.features import extract_features, load_efficientnet_lite0
    from zsl.features.efficientnet import decode_file, normalise_batch, penultimate

    model = load_efficientnet_lite0()
    n = len(paths)
    batches = [paths[s:s + batch_size] for s in range(0, n, batch_size)]
    # warm-up (one batch) so lazy initialisation is not timed
    with torch.inference_mode():
        penultimate(
            model, normalise_batch(torch.from_numpy(np.stack([decode_file(p, resolution) for p in batches[0]])))
        )

    decoded = [torch.from_numpy(np.stack([decode_file(p, resolution) for p in b])) for b in batches]
    t, c = time.perf_counter(), _cpu_seconds()
    with torch.inference_mode():
        ref = [penultimate(model, normalise_batch(b)).numpy() for b in decoded]
    model_only = n / (time.perf_counter() - t)
    model_cpu_ms = 1000 * (_cpu_seconds() - c) / n

    t = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            penultimate(model, normalise_batch(torch.from_numpy(np.stack([decode_file(p, resolution) for p in b]))))
    naive = n / (time.perf_counter() - t)

    t, c = time.perf_counter(), _cpu_seconds()
    feats = extract_features(paths, resolution=resolution, batch_size=batch_size, num_workers=num_workers,
                             cache=False, progress=False)
    ours = n / (time.perf_counter() - t)
    ours_cpu_ms = 1000 * (_cpu_seconds() - c) / n
    err = float(np.abs(feats - np.concatenate(ref)).max())
    return {"resolution": resolution, "model_only": model_only, "naive": naive, "zsl": ours, "max_abs_diff": err,
            "model_cpu_ms": model_cpu_ms, "zsl_cpu_ms": ours_cpu_ms,
            "load": _loadavg()}


def accuracy(resolution: int, max_per_class: int) -> dict:
    """ESZSL ZSL top-1 averaged over rot0..rot4 (every class unseen once) and a seen-class linear probe.

    The max_per_class subsample does not depend on the split, so features are extracted once per resolution.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    import zsl
    from zsl.data.image_folder import CIFAR10_UNSEEN
    from zsl.eval.protocol import run_method

    zsl_top1, probe = [], []
    for split in CIFAR10_UNSEEN:
        ds = zsl.load_dataset("cifar10", split, max_per_class=max_per_class, resolution=resolution,
                              semantics=("glove",), progress=True)
        res = run_method("eszsl.default", ds, setting="zsl", semantics="glove", seed=0)
        zsl_top1.append(res.metrics["acc"])  # per-class mean top-1 over the unseen test images
        Xtr, ytr = ds.subset("trainval")
        Xte, yte = ds.subset("test_seen")
        sc = StandardScaler().fit(Xtr)
        clf = LogisticRegression(C=0.1, max_iter=2000).fit(sc.transform(Xtr), ytr)
        pred = clf.predict(sc.transform(Xte))
        probe.append(np.mean([np.mean(pred[yte == c] == c) for c in np.unique(yte)]))
    return {"resolution": resolution, "eszsl_zsl_top1": float(np.mean(zsl_top1)), "per_split": zsl_top1,
            "probe_seen_top1": float(np.mean(probe)), "n_train": len(ytr), "n_test_seen": len(yte),
            "n_test_unseen": len(ds.splits["test_unseen"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=128, help="images timed per resolution")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 160, 224])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-workers", type=int, default=None)
    ap.add_argument("--images", default=None, help="image folder to time instead of CIFAR-10")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true", help="only the accuracy table")
    ap.add_argument("--max-per-class", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "features.md"))
    args = ap.parse_args()

    import torch

    if args.images:
        from zsl.data.image_folder import resolve_image_root, scan_image_folder

        _, parts = scan_image_folder(resolve_image_root(args.images))
        paths = [p for rows in parts.values() for p, _ in rows][: args.n]
    else:
        paths = cifar_paths(args.n)
    lines = [
        "# Feature extraction (EfficientNet-Lite0)",
        "",
        f"`{' '.join(['python', *sys.argv])}`",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); shared with other jobs (load average at each row).",
        f"{len(paths)} images, batch {args.batch_size}.",
        "",
        "CPU ms/img counts every process's CPU time (the decoding workers too): on a shared machine it is",
        "the steadier measure of cost; wall-clock img/s depends on how many other jobs run.",
        "",
        "| resolution | model-only img/s | naive decode+model img/s | extract_features img/s | zsl / naive | zsl / "
        "model-only | model-only CPU ms/img | extract_features CPU ms/img | load avg | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines[6:]), flush=True)
    for r in [] if args.skip_throughput else args.resolutions:
        t = throughput(paths, r, args.batch_size, args.num_workers)
        row = (
            f"| {r} | {t['model_only']:.1f} | {t['naive']:.1f} | {t['zsl']:.1f} | {t['zsl'] / t['naive']:.2f} | "
            f"{t['zsl'] / t['model_only']:.2f} | {t['model_cpu_ms']:.0f} | {t['zsl_cpu_ms']:.0f} | {t['load']} | "
            f"{t['max_abs_diff']:.1e} |"
        )
        lines.append(row)
        print(row, flush=True)
    if args.accuracy:
        head = [
            "",
            f"Accuracy on CIFAR-10 (max_per_class={args.max_per_class} images per class and folder), mean over "
            "rot0..rot4; ESZSL (validation-selected, GloVe class names), 2 unseen classes per split:",
            "",
            "| resolution | ESZSL ZSL top-1 (mean of 5 splits) | per split | linear probe top-1 (8 seen) | train / "
            "test_seen / test_unseen per split |",
            "|---|---|---|---|---|",
        ]
        lines += head
        print("\n".join(head), flush=True)
        for r in args.resolutions:
            a = accuracy(r, args.max_per_class)
            row = (f"| {r} | {100 * a['eszsl_zsl_top1']:.1f} | {' '.join(f'{100 * v:.0f}' for v in a['per_split'])} | "
                   f"{100 * a['probe_seen_top1']:.1f} | "
                   f"{a['n_train']} / {a['n_test_seen']} / {a['n_test_unseen']} |")
            lines.append(row)
            print(row, flush=True)
    from zsl.io import atomic_write

    with atomic_write(args.out) as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
