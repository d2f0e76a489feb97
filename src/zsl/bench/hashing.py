"""The zero-shot retrieval table of the hashing methods (ZSH paper, Tables 2-3), as a library:
run it (``zsl hashing``) or one cell of it (``zsl benchmark --task retrieval``), summarise the
runs, format the table, plot precision-recall.

A *run* is one (method, dataset split, code length, seed):
1. selection (``select="validation"``, the default): each setting of the method's ``param_grid``
   -- and, for a method that reads class embeddings (ZSH), each class-embedding source of the
   dataset -- is fitted on the *train* classes and scored by tie-exact mAP with the *validation*
   classes as queries (``zsl.eval.retrieval.select_hashing_params``; seed = the first seed).
   Nothing of the unseen classes is used. ``select="none"`` takes the presets as they are. The
   choice is made once per (method, code length) and shared by every seed (``RetrievalContext``).
2. test: the chosen setting is fitted on all seen classes with the run's seed and evaluated on the
   unseen-class queries of the split's test protocol (``retrieval_data(role="test")``).
The queries of datasets without a fixed query set (AwA1) are drawn once with ``query_seed``, so
every seed and method sees the same queries; the seeds vary the methods' own randomness.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

METRICS = ("mAP", "mAP_authors", "P@r2")


class RetrievalContext:
    """What the runs on one loaded dataset split share: its retrieval splits (built once per role and
    query options) and the validation choice per (method, code length, search grid, seed, options)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._data: dict = {}
        self._choices: dict = {}

    def data(self, role: str, n_queries: int, query_seed: int):
        from ..eval.retrieval import retrieval_data

        key = (role, n_queries, query_seed)
        if key not in self._data:
            self._data[key] = retrieval_data(self.dataset, role=role, n_queries=n_queries, seed=query_seed)
        return self._data[key]

    def semantics_options(self, spec: str, grid: dict, semantics: str | None) -> list[str | None]:
        """Class-embedding sources to select among: every source of the dataset for a method that
        reads class embeddings, when selecting and the caller did not fix one; else ``[semantics]``."""
        from ..eval.retrieval import uses_class_embeddings

        if grid is not None and not semantics and uses_class_embeddings(spec):
            return sorted(self.dataset.embeddings)
        return [semantics]

    def n_trials(self, spec: str, grid: dict | None, semantics: str | None) -> int:
        """Validation fits the choice of ``spec`` needs (0: nothing to choose; ``grid=None``: no selection)."""
        options = self.semantics_options(spec, grid, semantics)
        if grid is None or (not grid and len(options) == 1):
            return 0
        return int(np.prod([len(v) for v in grid.values()])) * len(options)

    def choose(self, spec: str, n_bits: int, *, grid: dict | None, semantics: str | None, seed: int, top_k: int,
               n_queries: int, query_seed: int, fixed: dict | None = None, on_trial=None) -> dict:
        """``{"overrides", "semantics"[, "val_mAP", "trials"]}``: the setting chosen on validation classes
        (``grid=None``: no selection, the preset as it is), memoised for the other seeds."""
        from ..eval.retrieval import select_hashing_params

        if not self.n_trials(spec, grid, semantics):
            return {"overrides": dict(fixed or {}), "semantics": semantics}
        options = self.semantics_options(spec, grid, semantics)
        key = json.dumps([spec, n_bits, grid, options, seed, top_k, n_queries, query_seed, fixed], sort_keys=True,
                         default=str)
        if key not in self._choices:
            self._choices[key] = select_hashing_params(
                spec, self.dataset, n_bits=n_bits, seed=seed, grid=grid, semantics_options=options, top_k=top_k,
                data=self.data("validation", n_queries, query_seed), fixed_overrides=fixed, on_trial=on_trial)
        return self._choices[key]


def evaluate_choice(spec: str, ctx: RetrievalContext, chosen: dict, *, n_bits: int, seed: int, top_k: int,
                    n_queries: int, query_seed: int) -> dict:
    """Step 2: fit the chosen setting on the seen classes with ``seed``, evaluate on the unseen queries."""
    from ..eval.retrieval import evaluate_hashing

    data = ctx.data("test", n_queries, query_seed)
    r = evaluate_hashing(spec, ctx.dataset, n_bits=n_bits, seed=seed, semantics=chosen["semantics"],
                         overrides=chosen["overrides"], top_k=top_k, data=data).to_json()
    r["selected"] = {"overrides": chosen["overrides"], "semantics": chosen["semantics"],
                     "val_mAP": chosen.get("val_mAP")}
    r["query_rule"] = data.query_rule
    return r


def run_retrieval_cell(cell, dataset, ctx: RetrievalContext) -> dict:
    """One ``zsl benchmark --task retrieval`` cell (:mod:`zsl.bench.runner`): the run of ``cell.spec`` at
    ``cell.params["n_bits"]`` with ``cell.seed``; metrics mAP (tie-exact), mAP_authors, mAP@top_k, P@r2
    and the precision-recall curves. Selection (``cell.selection == "val"``) searches the method's
    ``param_grid`` (or the grid's ``param_grid`` for it) with the grid's first seed."""
    from .._registry import get_method_class

    p = cell.params
    search = None
    if cell.selection == "val":
        search = p["param_grid"] if p.get("param_grid") is not None else get_method_class(cell.spec).param_grid
    kw = {"n_bits": p["n_bits"], "top_k": p["top_k"], "n_queries": p["queries"], "query_seed": p["query_seed"]}
    chosen = ctx.choose(cell.spec, grid=search, semantics=cell.semantics, seed=p["selection_seed"] or 0,
                        fixed=cell.overrides, **kw)
    r = evaluate_choice(cell.spec, ctx, chosen, seed=cell.seed, **kw)
    config = {"selected": r["selected"], "query_rule": r["query_rule"], "params": r["params"],
              "n_train": r["n_train"], "n_database": r["n_database"], "n_query": r["n_query"],
              "validation_trials": chosen.get("trials", [])}
    return {"metrics": r["metrics"], "config": config, "fit_seconds": r["fit_seconds"], "semantics": r["semantics"]}


def run_hashing_table(dataset: str, *, splits, methods, bits, seeds=(0,), semantics: str | None = None,
                      select: str = "validation", query_seed: int = 0, n_queries: int = 1000, top_k: int = 1000,
                      data_root=None, cache_dir=None, progress: bool = True,
                      on_run: Callable[[list, list], None] | None = None) -> dict:
    """Run the table; returns ``{"runs": [...], "selection": [...]}`` (see module docstring).

    ``on_run(runs, selection)`` is called after every finished test run (to save partial results).
    """
    from .._registry import get_method_class
    from ..data import load_dataset

    if select not in ("validation", "none"):
        raise ValueError(f"select must be 'validation' or 'none'; got {select!r}")
    seeds = list(seeds)
    grids = {m: (get_method_class(m).param_grid if select == "validation" else None) for m in methods}
    runs, selection = [], []
    bar = _progress_bar(progress)
    kw = {"top_k": top_k, "n_queries": n_queries, "query_seed": query_seed}
    for split in splits:
        ds = load_dataset(dataset, split, data_root=data_root, cache_dir=cache_dir)
        ctx = RetrievalContext(ds)
        ctx.data("test", n_queries, query_seed)  # a dataset without a test protocol fails before any fit
        n_trials = {m: ctx.n_trials(m, grids[m], semantics) for m in methods}
        if bar is not None:
            bar.total = (bar.total or 0) + len(bits) * sum(n_trials[m] + len(seeds) for m in methods)
            bar.refresh()
        for spec in methods:
            for n_bits in bits:
                if bar is not None and n_trials[spec]:
                    bar.set_postfix_str(f"{split} {spec} {n_bits}b: validation")
                chosen = ctx.choose(spec, n_bits, grid=grids[spec], semantics=semantics, seed=seeds[0],
                                    on_trial=bar.update if bar is not None else None, **kw)
                if n_trials[spec]:
                    selection.append({"split": split, "method": spec, "n_bits": n_bits, **chosen})
                for seed in seeds:
                    if bar is not None:
                        bar.set_postfix_str(f"{split} {spec} {n_bits}b seed {seed}")
                    runs.append(evaluate_choice(spec, ctx, chosen, n_bits=n_bits, seed=seed, **kw))
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
            cell["selected"] = sorted({describe_choice(r["selected"]) for r in rows})
            table.setdefault(m, {})[str(b)] = cell
    base_spec = next((m for m in table if m.split(".")[0] == baseline), None)  # "sdh" or a preset of it
    if base_spec is not None:
        for m in table:
            for b, cell in table[m].items():
                base = table[base_spec].get(b, {}).get("fit_seconds")
                cell["fit_ratio"] = float(cell["fit_seconds"] / base) if base else None
    return table


def describe_choice(selected: dict) -> str:
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
