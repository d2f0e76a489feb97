"""``zsl hashing``: the zero-shot retrieval table of the hashing methods (ZSH paper, Tables 2-3).

    zsl hashing --dataset cifar10 --bits 16 32 64 128 --methods lsh itq sdh zsh [--splits rot0 ...]

For every (split, method, code length) it fits the hash functions on the seen-class training
images, encodes the database and the unseen-class queries (``zsl.eval.retrieval``), and prints
mAP, mAP@k and precision within Hamming radius 2 averaged over the splits (cifar10: the five
rotating splits rot0..rot4, so every class is an unseen query class once). It writes
``results.json`` (``results.partial.json`` after every run) and ``pr_<bits>bits.png`` (precision-recall over Hamming radius, averaged over
the splits) to ``--out`` (default ``<cache>/hashing/<dataset>-<hash of the settings>``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import ZSLError


def register(subparsers) -> None:
    from ..cli import add_dataset_args

    p = subparsers.add_parser("hashing", help="zero-shot retrieval table: LSH, ITQ, SDH, ZSH over code lengths")
    add_dataset_args(p)
    p.add_argument("--splits", nargs="+", default=None,
                   help="class splits to average over (default: every split of the dataset, e.g. cifar10 rot0..rot4)")
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64, 128], help="code lengths (multiples of 8)")
    p.add_argument("--methods", nargs="+", default=["lsh", "itq", "sdh", "zsh"], help="hashing methods (name or name.preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=1000,
                   help="unseen-class queries drawn per split when the dataset has no train/test image split (AwA1)")
    p.add_argument("--top-k", type=int, default=1000, help="k of mAP@k")
    p.add_argument("--pr-bits", type=int, default=64, help="code length of the precision-recall plot")
    p.add_argument("--out", default=None, help="output folder (default: under the cache)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    p.set_defaults(func=_cmd_hashing)


def _cmd_hashing(args) -> int:
    from .._registry import get_method_class
    from ..data import dataset_splits, load_dataset
    from ..eval.retrieval import evaluate_hashing
    from ..io import cache_root, config_hash, write_json

    for spec in args.methods:
        cls = get_method_class(spec)
        if not cls.tags.get("retrieval"):
            raise ZSLError(f"method {spec!r} is not a hashing (retrieval) method; hashing methods: lsh, itq, sdh, zsh")
    for b in args.bits:
        if b <= 0 or b % 8:
            raise ZSLError(f"--bits {b}: code lengths must be positive multiples of 8")
    splits = args.splits or list(dataset_splits(args.dataset, args.data_root))
    settings = {"dataset": args.dataset, "splits": splits, "bits": args.bits, "methods": args.methods, "seed": args.seed,
                "semantics": args.semantics, "queries": args.queries, "top_k": args.top_k}
    out = Path(args.out) if args.out else cache_root(args.cache_dir) / "hashing" / f"{args.dataset}-{config_hash(settings)}"

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    jobs = [(s, m, b) for s in splits for m in args.methods for b in args.bits]
    bar = tqdm(total=len(jobs), desc="hashing", file=sys.stderr, disable=tqdm is None) if tqdm else None
    results = []
    for split in splits:
        ds = load_dataset(args.dataset, split, data_root=args.data_root, cache_dir=args.cache_dir)
        for spec in args.methods:
            for n_bits in args.bits:
                if bar:
                    bar.set_postfix_str(f"{split} {spec} {n_bits}b")
                r = evaluate_hashing(spec, ds, n_bits=n_bits, seed=args.seed, semantics=args.semantics,
                                     n_queries=args.queries, top_k=args.top_k)
                results.append(r.to_json())
                # a long table survives an interruption: every finished run is on disk
                write_json(out / "results.partial.json", {"settings": settings, "runs": results})
                if bar:
                    bar.update()
    if bar:
        bar.close()

    table = summarise(results, args.methods, args.bits, args.top_k)
    write_json(out / "results.json", {"settings": settings, "table": table, "runs": results})
    png = None
    if args.pr_bits in args.bits:
        png = plot_pr(results, args.methods, args.pr_bits, out / f"pr_{args.pr_bits}bits.png",
                      title=f"{args.dataset} zero-shot retrieval, {args.pr_bits} bits ({len(splits)} split(s))")
    if args.json:
        print(json.dumps({"table": table, "out": str(out), "pr_png": str(png) if png else None}))
    else:
        print(format_table(table, args.methods, args.bits, args.top_k, args.dataset, splits))
        print(f"results: {out / 'results.json'}" + (f"\nPR plot: {png}" if png else ""))
    return 0


def summarise(results: list[dict], methods, bits, top_k: int) -> dict:
    """{method: {bits: {metric: mean over splits, ..._std, fit_seconds}}}."""
    table: dict = {}
    for m in methods:
        for b in bits:
            rows = [r for r in results if r["method"] == m and r["n_bits"] == b]
            cell = {}
            for key in ("mAP", f"mAP@{top_k}", "P@r2"):
                vals = np.array([r["metrics"][key] for r in rows])
                cell[key], cell[key + "_std"] = float(vals.mean()), float(vals.std())
            cell["fit_seconds"] = float(np.mean([r["fit_seconds"] for r in rows]))
            cell["n_splits"] = len(rows)
            table.setdefault(m, {})[str(b)] = cell
    return table


def format_table(table: dict, methods, bits, top_k: int, dataset: str, splits) -> str:
    lines = [f"zero-shot retrieval on {dataset}, mean over {len(splits)} split(s) ({', '.join(splits)})"]
    for key in ("mAP", f"mAP@{top_k}", "P@r2"):
        lines.append("")
        lines.append(f"{key:12s}" + "".join(f"{b:>10d}b" for b in bits))
        for m in methods:
            lines.append(f"{m:12s}" + "".join(f"{table[m][str(b)][key]:11.4f}" for b in bits))
    lines.append("")
    lines.append("fit seconds " + "".join(f"{b:>10d}b" for b in bits))
    for m in methods:
        lines.append(f"{m:12s}" + "".join(f"{table[m][str(b)]['fit_seconds']:11.1f}" for b in bits))
    return "\n".join(lines)


def plot_pr(results: list[dict], methods, n_bits: int, path: Path, title: str = "") -> Path:
    """Precision-recall over Hamming radius (mean over splits) at ``n_bits``, one line per method."""
    from ..errors import require_extra
    from ..io import atomic_write

    matplotlib = require_extra("matplotlib", "plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for m in methods:
        rows = [r["metrics"]["pr_curve"] for r in results if r["method"] == m and r["n_bits"] == n_bits]
        if not rows:
            continue
        prec = np.array([[np.nan if v is None else v for v in r["precision"]] for r in rows], dtype=float)
        rec = np.array([r["recall"] for r in rows], dtype=float)
        # precision is undefined (None) at a radius where no split retrieved anything: average
        # only the defined values and leave those radii out of the curve
        defined = np.isfinite(prec)
        ok = defined.any(0)
        p = np.where(ok, np.where(defined, prec, 0.0).sum(0) / np.maximum(defined.sum(0), 1), np.nan)
        rc = rec.mean(0)
        ax.plot(rc[ok], p[ok], marker=".", label=m)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return path
