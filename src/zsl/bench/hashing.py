"""The zero-shot retrieval table of the hashing methods (ZSH paper, Tables 2-3), as a library:
run it, summarise the runs, format the table, plot precision-recall.

``run_hashing_table`` does, for every class split of the dataset and every (method, code length):
1. selection (``select="validation"``, the default): each setting of the method's ``param_grid``
   -- and, for a method that reads class embeddings (ZSH), each class-embedding source of the
   dataset -- is fitted on the *train* classes and scored by tie-exact mAP with the *validation*
   classes as queries (``zsl.eval.retrieval.select_hashing_params``; seed = the first seed).
   Nothing of the unseen classes is used. ``select="none"`` takes the presets as they are.
2. test: the chosen setting is fitted on all seen classes once per seed and evaluated on the
   unseen-class queries of the split's test protocol (``retrieval_data(role="test")``).
The queries of datasets without a fixed query set (AwA1) are drawn once with ``query_seed``, so
every seed and method sees the same queries; the seeds vary the methods' own randomness.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

METRICS = ("mAP", "mAP_authors", "P@r2")


def run_hashing_table(dataset: str, *, splits, methods, bits, seeds=(0,), semantics: str | None = None,
                      select: str = "validation", query_seed: int = 0, n_queries: int = 1000, top_k: int = 1000,
                      data_root=None, cache_dir=None, progress: bool = True,
                      on_run: Callable[[list, list], None] | None = None) -> dict:
    """Run the table; returns ``{"runs": [...], "selection": [...]}`` (see module docstring).

    ``on_run(runs, selection)`` is called after every finished test run (to save partial results).
    """
    from .._registry import get_method_class
    from ..data import load_dataset
    from ..eval.retrieval import evaluate_hashing, retrieval_data, select_hashing_params, uses_class_embeddings

    if select not in ("validation", "none"):
        raise ValueError(f"select must be 'validation' or 'none'; got {select!r}")
    seeds = list(seeds)
    grids = {m: (get_method_class(m).param_grid if select == "validation" else {}) for m in methods}
    runs, selection = [], []
    bar = _progress_bar(progress)
    for split in splits:
        ds = load_dataset(dataset, split, data_root=data_root, cache_dir=cache_dir)
        test_data = retrieval_data(ds, role="test", n_queries=n_queries, seed=query_seed)
        val_data = None
        # the class-embedding source is chosen on validation too, unless the caller fixed it
        sem_options = {m: sorted(ds.embeddings) if select == "validation" and not semantics and uses_class_embeddings(m)
                       else [semantics] for m in methods}
        n_trials = {m: (int(np.prod([len(v) for v in grids[m].values()])) * len(sem_options[m])
                        if grids[m] or len(sem_options[m]) > 1 else 0) for m in methods}
        if bar is not None:
            bar.total = (bar.total or 0) + len(bits) * sum(n_trials[m] + len(seeds) for m in methods)
            bar.refresh()
        for spec in methods:
            for n_bits in bits:
                chosen = {"overrides": {}, "semantics": semantics}
                if n_trials[spec]:
                    if val_data is None:
                        val_data = retrieval_data(ds, role="validation", n_queries=n_queries, seed=query_seed)
                    if bar is not None:
                        bar.set_postfix_str(f"{split} {spec} {n_bits}b: validation")
                    chosen = select_hashing_params(spec, ds, n_bits=n_bits, seed=seeds[0], grid=grids[spec],
                                                   semantics_options=sem_options[spec], top_k=top_k, data=val_data,
                                                   on_trial=bar.update if bar is not None else None)
                    selection.append({"split": split, "method": spec, "n_bits": n_bits, **chosen})
                for seed in seeds:
                    if bar is not None:
                        bar.set_postfix_str(f"{split} {spec} {n_bits}b seed {seed}")
                    r = evaluate_hashing(spec, ds, n_bits=n_bits, seed=seed, semantics=chosen["semantics"],
                                         overrides=chosen["overrides"], top_k=top_k, data=test_data).to_json()
                    r["selected"] = {"overrides": chosen["overrides"], "semantics": chosen["semantics"],
                                     "val_mAP": chosen.get("val_mAP")}
                    r["query_rule"] = test_data.query_rule
                    runs.append(r)
                    if bar is not None:
                        bar.update()
                    if on_run:
                        on_run(runs, selection)
    if bar is not None:
        bar.close()
    return {"runs": runs, "selection": selection}


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=0, desc="hashing fits", file=sys.stderr)


def summarise(runs: list[dict], methods, bits, top_k: int, baseline: str = "sdh") -> dict:
    """{method: {bits: {metric: mean over splits x seeds, metric_std, fit_seconds, fit_ratio, n_runs}}}.

    ``fit_ratio`` = mean fit time / mean fit time of ``baseline`` (or its first preset among the
    methods) at the same code length, measured in the same run.
    """
    table: dict = {}
    keys = ("mAP", f"mAP@{top_k}", "mAP_authors", "P@r2")
    for m in methods:
        for b in bits:
            rows = [r for r in runs if r["method"] == m and r["n_bits"] == b]
            if not rows:
                continue
            cell: dict = {}
            for key in keys:
                vals = np.array([r["metrics"][key] for r in rows])
                cell[key], cell[key + "_std"] = float(vals.mean()), float(vals.std())
            cell["fit_seconds"] = float(np.mean([r["fit_seconds"] for r in rows]))
            cell["n_runs"] = len(rows)
            cell["selected"] = sorted({_describe(r["selected"]) for r in rows})
            table.setdefault(m, {})[str(b)] = cell
    base_spec = next((m for m in table if m.split(".")[0] == baseline), None)  # "sdh" or a preset of it
    if base_spec is not None:
        for m in table:
            for b, cell in table[m].items():
                base = table[base_spec].get(b, {}).get("fit_seconds")
                cell["fit_ratio"] = float(cell["fit_seconds"] / base) if base else None
    return table


def _describe(selected: dict) -> str:
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(selected["overrides"].items())]
    if selected.get("semantics"):
        parts.append(f"semantics={selected['semantics']}")
    return ", ".join(parts) or "preset"


def format_table(table: dict, methods, bits, top_k: int, title: str) -> str:
    """Plain-text table: one block per metric (mean ± std over splits x seeds), fit seconds and ratio."""
    methods = [m for m in methods if m in table]
    lines = [title]
    for key in ("mAP", "mAP_authors", f"mAP@{top_k}", "P@r2"):
        lines.append("")
        lines.append(f"{key:14s}" + "".join(f"{b:>16d}b" for b in bits))
        for m in methods:
            cells = [table[m].get(str(b)) for b in bits]
            lines.append(
                f"{m:14s}" + "".join(f"{c[key]:>10.4f} ±{c[key + '_std']:.3f}" if c else f"{'-':>17s}" for c in cells)
            )
    lines.append("")
    lines.append("fit seconds   " + "".join(f"{b:>16d}b" for b in bits))
    for m in methods:
        cells = [table[m].get(str(b)) for b in bits]
        lines.append(
            f"{m:14s}"
            + "".join(
                (
                    f"{c['fit_seconds']:>9.1f} x{c['fit_ratio']:<6.2f}"
                    if c.get("fit_ratio") is not None
                    else f"{c['fit_seconds']:>17.1f}"
                )
                if c
                else f"{'-':>17s}"
                for c in cells
            )
        )
    selected = [(m, b, table[m][str(b)]["selected"]) for m in methods for b in bits
                if str(b) in table[m] and table[m][str(b)]["selected"] != ["preset"]]
    if selected:
        lines.append("")
        lines.append("chosen on validation classes:")
        lines.extend(f"  {m} {b}b: {' | '.join(s)}" for m, b, s in selected)
    return "\n".join(lines)


def plot_pr(runs: list[dict], methods, n_bits: int, path: Path, title: str = "") -> Path:
    """Two panels at ``n_bits``, one line per method (mean over runs): precision-recall of the
    Hamming ball per radius, and the tie-exact precision-recall over ranking depth."""
    from ..errors import require_extra
    from ..io import atomic_write

    matplotlib = require_extra("matplotlib", "plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for m in methods:
        rows = [r["metrics"] for r in runs if r["method"] == m and r["n_bits"] == n_bits]
        if not rows:
            continue
        prec = np.array([[np.nan if v is None else v for v in r["pr_curve"]["precision"]] for r in rows], dtype=float)
        rec = np.array([r["pr_curve"]["recall"] for r in rows], dtype=float)
        # precision is undefined (None) at a radius where no run retrieved anything: average only
        # the defined values and leave those radii out of the curve
        defined = np.isfinite(prec)
        ok = defined.any(0)
        p = np.where(ok, np.where(defined, prec, 0.0).sum(0) / np.maximum(defined.sum(0), 1), np.nan)
        axes[0].plot(rec.mean(0)[ok], p[ok], marker=".", label=m)
        if all("pr_ranking" in r for r in rows) and len({len(r["pr_ranking"]["n"]) for r in rows}) == 1:
            axes[1].plot(np.mean([r["pr_ranking"]["recall"] for r in rows], 0),
                         np.mean([r["pr_ranking"]["precision"] for r in rows], 0), label=m)
    axes[0].set_title("Hamming ball, radius 0..n_bits", fontsize=9)
    axes[1].set_title("Hamming ranking, tie-exact (expected over tie orders)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return path
