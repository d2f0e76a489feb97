"""Fit / predict time and peak memory of every registered method, and how fit time grows with
the number of training samples and of classes -- each figure as a ratio to a baseline measured
in the same run on the same data.

    python benchmarks/bench_methods.py [--methods eszsl sae ...] [--datasets awa1 cifar10]
        [--sizes 1000 4000 16000 all] [--classes 10 20 40] [--max-fit-seconds 300]

Baseline: ridge regression from features to one-hot seen-class targets, closed form
``W = (X^T X + I)^-1 X^T Y`` in float64 -- the cheapest sensible linear zero-shot-shaped fit, one
dense solve that every machine runs at BLAS speed. Ratio = method / baseline on the same subset.
Each method uses its dataset preset when it declares one (``awa1``, ``cifar10``), else
``default``, with ``random_state=0``; no model selection (one fit on trainval, predict on the
unseen test images against the unseen classes). Peak memory is the rise of the process's peak
RSS during the fit (``/proc/self/clear_refs`` reset, ``VmHWM`` read), in MiB.
Scaling (first dataset): stratified subsets of trainval with n samples; then the first c seen
classes with all their samples. A method whose fit passes ``--max-fit-seconds`` is not run on
larger subsets (marked "over budget"). Prints one markdown section; progress goes to stderr.
``ZSL_BENCH_QUICK=1`` runs sizes 1000/4000 and classes 10/20 only.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import zsl
from zsl import get_method_class
from zsl.bench.runner import PeakMemory


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def measure(fn):
    """(result, seconds, peak RSS rise in MiB) of ``fn()``."""
    gc.collect()
    before = _rss_mb() if os.path.exists("/proc/self/status") else float("nan")
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        out = fn()
        secs = time.perf_counter() - t0
    return out, secs, max(mem.peak_mb - before, 0.0)


class RidgeBaseline:
    def fit(self, X, y, seen):
        Xd = X.astype(np.float64)
        Y = (y[:, None] == seen[None, :]).astype(np.float64)
        self.W = np.linalg.solve(Xd.T @ Xd + np.eye(X.shape[1]), Xd.T @ Y)
        return self

    def predict(self, X):
        return np.argmax(X.astype(np.float64) @ self.W, axis=1)


def preset_for(name: str, dataset: str) -> str:
    return f"{name}.{dataset}" if dataset in get_method_class(name).dataset_presets else f"{name}.default"


def fit_method(spec, X, y, S, seen):
    m = zsl.create_method(spec)
    if "random_state" in m.get_params():
        m.set_params(random_state=0)
    if "progress" in m.get_params():
        m.set_params(progress=False)
    return m.fit(X, y, S, seen)


def stratified(y, n, rng):
    if n >= len(y):
        return np.arange(len(y))
    classes = np.unique(y)
    per = max(1, n // len(classes))
    idx = np.concatenate([rng.permutation(np.where(y == c)[0])[:per] for c in classes])
    return np.sort(idx[:n])


def ratio(a, b):
    return f"{a / b:.1f}x" if b > 0 and np.isfinite(a) else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=os.environ.get("ZSL_BENCH_METHODS", "").split() or None,
                    help="default: every registered method ($ZSL_BENCH_METHODS overrides)")
    ap.add_argument("--datasets", nargs="+", default=os.environ.get("ZSL_BENCH_DATASETS", "awa1 cifar10").split())
    quick = os.environ.get("ZSL_BENCH_QUICK") == "1"
    ap.add_argument("--cifar-max-per-class", type=int, default=200 if quick else 500)
    ap.add_argument("--sizes", nargs="+", default=["1000", "4000"] if quick else ["1000", "4000", "16000", "all"])
    ap.add_argument("--classes", nargs="+", type=int, default=[10, 20] if quick else [10, 20, 40])
    ap.add_argument("--max-fit-seconds", type=float, default=120.0 if quick else 300.0)
    args = ap.parse_args(argv)
    methods = args.methods or zsl.list_methods()
    available = zsl.list_datasets()
    env_names = ("ZSL_BENCH_METHODS", "ZSL_BENCH_DATASETS")
    env_vars = "".join(f"{k}={os.environ[k]!r} " for k in env_names if os.environ.get(k))
    lines = [
        "## Methods: fit / predict time and peak memory (bench_methods.py)",
        "",
        f"Command: `{'ZSL_BENCH_QUICK=1 ' if quick else ''}"
        f"{env_vars}python benchmarks/bench_methods.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`. "
        "Baseline = closed-form ridge regression to one-hot seen-class targets on the same data, measured in "
        "the same run. Ratios are method / baseline; seconds and MiB in parentheses for scale.",
        "",
    ]
    first = None
    for dname in args.datasets:
        if dname not in available:
            lines += [f"_{dname}: not found under the data root (set ZSL_DATA), skipped._", ""]
            continue
        kw = {"max_per_class": args.cifar_max_per_class} if dname == "cifar10" else {}
        ds = zsl.load_dataset(dname, None, **kw)
        first = first or ds
        X, y = ds.subset("trainval")
        Xt = ds.X[ds.splits["test_unseen"]]
        S = ds.class_embeddings()
        log(f"[{dname}] {ds.summary()}")
        base, b_fit, b_mem = measure(lambda: RidgeBaseline().fit(X, y, ds.seen_classes))
        _, b_pred, _ = measure(lambda: base.predict(Xt))
        lines += [f"### {dname}/{ds.split}: {len(X)} training x {X.shape[1]} features, {len(Xt)} test images", "",
                  f"Baseline: fit {b_fit:.2f} s, predict {b_pred * 1000:.1f} ms, peak +{b_mem:.0f} MiB.", "",
                  "| method (preset) | fit time / baseline | predict time / baseline | peak memory / baseline |",
                  "|---|---|---|---|"]
        for name in methods:
            spec = preset_for(name, dname)
            log(f"[{dname}] {spec}")
            try:
                model, f_s, f_mem = measure(lambda: fit_method(spec, X, y, S, ds.seen_classes))
                _, p_s, _ = measure(lambda: model.predict(Xt, ds.unseen_classes))
                lines.append(
                    f"| {spec} | {ratio(f_s, b_fit)} ({f_s:.1f} s) | {ratio(p_s, b_pred)} ({p_s * 1000:.0f} ms) | "
                    f"{ratio(f_mem, b_mem)} (+{f_mem:.0f} MiB) |"
                )
            except Exception as exc:  # noqa: BLE001 - one broken method is reported, the rest still run
                lines.append(f"| {spec} | error: {type(exc).__name__}: {str(exc)[:100]} | | |")
            model = None
            gc.collect()
        lines.append("")
        if ds is not first:
            del ds
    if first is not None:
        ds = first
        X, y = ds.subset("trainval")
        S = ds.class_embeddings()
        rng = np.random.default_rng(0)
        sizes = [len(y) if s == "all" else min(int(s), len(y)) for s in args.sizes]
        sizes = sorted(set(sizes))
        seen = ds.seen_classes
        class_counts = sorted({min(c, len(seen)) for c in args.classes})
        header = [f"n={n}" for n in sizes] + [f"{c} classes" for c in class_counts]
        lines += [f"### Fit-time scaling on {ds.name}/{ds.split} (fit time / baseline fit time on the same subset)", "",
                  "| method (preset) | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
        subsets = [stratified(y, n, rng) for n in sizes]
        for c in class_counts:
            keep = seen[:c]
            subsets.append(np.where(np.isin(y, keep))[0])
        base_secs = []
        for idx in subsets:
            _, s, _ = measure(lambda: RidgeBaseline().fit(X[idx], y[idx], np.unique(y[idx])))
            base_secs.append(s)
        lines.append("| baseline (ridge) | " + " | ".join(f"1.0x ({s:.2f} s)" for s in base_secs) + " |")
        for name in methods:
            spec = preset_for(name, ds.name)
            cells, over = [], False
            for k, idx in enumerate(subsets):
                if k == len(sizes):
                    over = False  # the class sweep starts again from small subsets
                if over:
                    cells.append("over budget")
                    continue
                log(f"[scaling] {spec} subset {header[k]}")
                try:
                    _, s, _ = measure(lambda: fit_method(spec, X[idx], y[idx], S, np.unique(y[idx])))
                    cells.append(f"{ratio(s, base_secs[k])} ({s:.1f} s)")
                    over = s > args.max_fit_seconds
                except Exception as exc:  # noqa: BLE001 - a subset that fails is a table cell, the scaling run goes on
                    cells.append(f"error: {type(exc).__name__}")
                gc.collect()
            lines.append(f"| {spec} | " + " | ".join(cells) + " |")
        lines.append("")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
