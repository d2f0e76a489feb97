"""The CPL slides' analyses: ablations, lstsq vs cosine, sensitivity, confusion, class similarity, t-SNE.

Every analysis writes a PNG (matplotlib, Agg backend) and a markdown table into ``out``
(default ``<cache_root()>/analyses/cpl/<dataset>-<split>/``) and returns the paths.

Evaluation of one CPL configuration (:func:`evaluate`) follows the protocol of
:mod:`zsl.eval.protocol` with the configuration fixed: a fit on the *train* classes chooses the
GZSL calibration gamma on the validation classes; a fit on all seen classes (trainval) gives ZSL
per-class top-1 on the unseen test classes and GZSL U/S/H with that gamma. Test data never
chooses anything. Figures made from real data belong in the cache, not in the repository.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import cache_root
from .figures import markdown_table as _md_table
from .figures import pyplot as _plt
from .figures import save_figure as _save_fig
from .figures import write_markdown as _write_md

VARIANTS = {
    "full": {},
    "no generated": {"use_generated": False},
    "no inter-class": {"use_inter_class": False},
    "no decoder": {"use_decoder": False},
}
SENSITIVITY = {
    "lambda_rec": [1e-4, 1e-3, 1e-2, 1e-1],
    "lambda_cls": [1e-4, 1e-3, 1e-2, 1e-1],
    "lambda_inter": [1e-4, 1e-3, 1e-2, 1e-1],
    "beta": [1e-3, 1e-2, 1e-1],
}
SYMBOL = {"lambda_rec": "λ1 (reconstruction)", "lambda_cls": "λ2 (classification)",
          "lambda_inter": "λ3 (inter-class)", "beta": "β (generated term)"}


def default_out(dataset, cache_dir: str | os.PathLike | None = None) -> Path:
    return cache_root(cache_dir) / "analyses" / "cpl" / f"{dataset.name}-{dataset.split}"


# -- evaluation ---------------------------------------------------------------------------------
def evaluate(dataset, params: dict[str, Any], *, seed: int = 0, preset: str = "default",
             semantics: str | None = None, return_model: bool = False) -> dict[str, Any]:
    """ZSL acc and GZSL U/S/H (gamma chosen on validation classes) of CPL with ``params`` fixed."""
    from .._registry import create_method
    from ..eval.protocol import score_split

    S = dataset.class_embeddings(semantics)

    def fitted(split, classes):
        m = create_method(f"cpl.{preset}", **params)
        m.set_params(random_state=seed)
        return m.fit(*dataset.subset(split), S, classes)

    val = score_split(fitted("train", dataset.train_classes), dataset, "gzsl", stage="val")
    model = fitted("trainval", dataset.seen_classes)
    zsl = score_split(model, dataset, "zsl", stage="test")
    gzsl = score_split(model, dataset, "gzsl", stage="test", gamma=val["gamma"])
    out = {"acc": zsl["acc"], "U": gzsl["U"], "S": gzsl["S"], "H": gzsl["H"], "gamma": val["gamma"],
           "per_class": zsl["per_class"]}
    if return_model:
        out["model"] = model
    return out


def _mean_over_seeds(dataset, params, seeds, preset, semantics, log) -> dict[str, float]:
    runs = []
    for s in seeds:
        r = evaluate(dataset, params, seed=s, preset=preset, semantics=semantics)
        log(f"  {params} seed {s}: ZSL {r['acc']:.4f}  GZSL U {r['U']:.4f} S {r['S']:.4f} H {r['H']:.4f}")
        runs.append(r)
    keys = ("acc", "U", "S", "H")
    out = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    out.update({f"{k}_std": float(np.std([r[k] for r in runs])) for k in keys})
    return out


def _bar_chart(rows: dict[str, dict[str, float]], title: str, path: Path) -> Path:
    plt = _plt()
    names = list(rows)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.6))
    for j, (key, label) in enumerate((("acc", "ZSL top-1"), ("H", "GZSL H"))):
        vals = [rows[n][key] for n in names]
        errs = [rows[n].get(f"{key}_std", 0.0) for n in names]
        bars = ax.bar(x + (j - 0.5) * 0.38, vals, 0.38, yerr=errs, capsize=3, label=label)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.25 * max(1e-3, max(max(r["acc"], r["H"]) for r in rows.values())))
    ax.set_ylabel("per-class accuracy")
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)  # above the bars, never over a label
    return _save_fig(fig, path)


def ablation(dataset, out: Path, *, seeds=(0,), preset="default", base: dict | None = None, semantics=None,
             log: Callable[[str], None] = print) -> list[Path]:
    """Table + bar chart: full model vs no generated samples / no inter-class loss / no decoder."""
    base = dict(base or {})
    rows = {
        name: _mean_over_seeds(dataset, {**base, **v}, seeds, preset, semantics, log) for name, v in VARIANTS.items()
    }
    header = ["variant", "ZSL top-1", "GZSL U", "GZSL S", "GZSL H"]
    table = _md_table(header, [[n, r["acc"], r["U"], r["S"], r["H"]] for n, r in rows.items()])
    md = (f"# CPL ablation on {dataset.name}/{dataset.split} (mean of seeds {list(seeds)}; preset {preset}; "
          f"base {base or 'preset'})\n\n{table}")
    return [_write_md(out / "ablation.md", md),
            _bar_chart(rows, f"CPL ablation, {dataset.name}/{dataset.split}", out / "ablation.png")]


def relation(dataset, out: Path, *, seeds=(0,), preset="default", base: dict | None = None, semantics=None,
             log: Callable[[str], None] = print) -> list[Path]:
    """Table + bar chart: inter-class soft labels from least squares vs cosine similarity."""
    base = dict(base or {})
    rows = {
        rel: _mean_over_seeds(dataset, {**base, "relation": rel}, seeds, preset, semantics, log)
        for rel in ("lstsq", "cosine")
    }
    table = _md_table(["relation", "ZSL top-1", "GZSL U", "GZSL S", "GZSL H"],
                      [[n, r["acc"], r["U"], r["S"], r["H"]] for n, r in rows.items()])
    md = (f"# CPL inter-class relation: least squares vs cosine, {dataset.name}/{dataset.split} "
          f"(seeds {list(seeds)})\n\n{table}")
    return [_write_md(out / "relation.md", md),
            _bar_chart(rows, f"CPL soft labels, {dataset.name}/{dataset.split}", out / "relation.png")]


def sensitivity(dataset, out: Path, *, seeds=(0,), preset="default", base: dict | None = None, semantics=None,
                params: Sequence[str] = tuple(SENSITIVITY), log: Callable[[str], None] = print) -> list[Path]:
    """ZSL top-1 and GZSL H as each of l1, l2, l3, beta moves over its grid, the others held at ``base``."""
    plt = _plt()
    from .._registry import create_method

    base = dict(base or {})
    defaults = create_method(f"cpl.{preset}", **base).get_params()
    curves: dict[str, list[tuple[float, dict]]] = {}
    for p in params:
        curves[p] = [
            (v, _mean_over_seeds(dataset, {**base, p: v}, seeds, preset, semantics, log)) for v in SENSITIVITY[p]
        ]
    fig, axes = plt.subplots(1, len(params), figsize=(3.4 * len(params), 3.2), squeeze=False)
    for ax, p in zip(axes[0], params):
        xs = [v for v, _ in curves[p]]
        for key, label, marker in (("acc", "ZSL top-1", "o"), ("H", "GZSL H", "s")):
            ax.plot(xs, [r[key] for _, r in curves[p]], marker=marker, label=label)
        ax.axvline(defaults[p], color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(SYMBOL[p])
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("per-class accuracy")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"CPL sensitivity, {dataset.name}/{dataset.split} (dotted: base value)")
    rows = [[p, v, r["acc"], r["H"]] for p in params for v, r in curves[p]]
    md = (f"# CPL sensitivity on {dataset.name}/{dataset.split} (seeds {list(seeds)}; others at "
          f"{ {p: defaults[p] for p in params} })\n\n" + _md_table(["parameter", "value", "ZSL top-1", "GZSL H"], rows))
    return [_write_md(out / "sensitivity.md", md), _save_fig(fig, out / "sensitivity.png")]


def confusion(dataset, out: Path, *, seed=0, preset="default", base: dict | None = None, semantics=None,
              log: Callable[[str], None] = print) -> list[Path]:
    """Per-class ZSL accuracy and the row-normalised confusion matrix over the unseen test classes."""
    plt = _plt()
    from .._registry import create_method

    model = create_method(f"cpl.{preset}", **dict(base or {}))
    model.set_params(random_state=seed)
    model.fit(*dataset.subset("trainval"), dataset.class_embeddings(semantics), dataset.seen_classes)
    unseen = dataset.unseen_classes
    X, y = dataset.subset("test_unseen")
    pred = model.predict(X, unseen)
    cm = np.zeros((len(unseen), len(unseen)))
    for i, c in enumerate(unseen):
        row = pred[y == c]
        cm[i] = [np.mean(row == d) if len(row) else 0.0 for d in unseen]
    names = [dataset.class_names[c] for c in unseen]
    fig, ax = plt.subplots(figsize=(0.5 * len(unseen) + 3, 0.5 * len(unseen) + 2.5))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    if len(unseen) <= 20:
        for i in range(len(unseen)):
            for j in range(len(unseen)):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046)
    acc = float(np.mean(np.diag(cm)))
    ax.set_title(f"CPL ZSL confusion, {dataset.name}/{dataset.split} (mean per-class {acc:.3f})")
    md = (f"# CPL per-class ZSL accuracy, {dataset.name}/{dataset.split} (seed {seed}; mean {acc:.4f})\n\n"
          + _md_table(["class", "top-1"], [[n, float(cm[i, i])] for i, n in enumerate(names)]))
    return [_write_md(out / "per_class.md", md), _save_fig(fig, out / "confusion.png")]


def similarity(dataset, out: Path, *, semantics=None, relation: str = "lstsq", ridge: float = 1e-1,
               log: Callable[[str], None] = print) -> list[Path]:
    """Cosine similarity of the class descriptions (unseen x unseen) and the seen->unseen soft labels."""
    plt = _plt()
    from ..methods.cpl import soft_labels

    S = dataset.class_embeddings(semantics).astype(np.float64)
    unseen, seen = dataset.unseen_classes, dataset.seen_classes
    Sn = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-12)
    cos = Sn[unseen] @ Sn[unseen].T
    r = soft_labels(S, seen, unseen, relation=relation, ridge=ridge, scale=1.0)
    un = [dataset.class_names[c] for c in unseen]
    sn = [dataset.class_names[c] for c in seen]
    fig, axes = plt.subplots(1, 2, figsize=(0.3 * len(unseen) + 0.25 * len(unseen) + 9, max(5, 0.22 * len(seen) + 2)),
                             gridspec_kw={"width_ratios": [1, 1]})
    im = axes[0].imshow(cos, cmap="viridis")
    axes[0].set_xticks(range(len(un)), un, rotation=60, ha="right", fontsize=7)
    axes[0].set_yticks(range(len(un)), un, fontsize=7)
    axes[0].set_title("cosine similarity of unseen class descriptions", fontsize=9)
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    im = axes[1].imshow(r, cmap="magma", aspect="auto")
    axes[1].set_xticks(range(len(un)), un, rotation=60, ha="right", fontsize=7)
    axes[1].set_yticks(range(len(sn)), sn, fontsize=6)
    axes[1].set_title(f"soft labels r (seen x unseen, {relation}, row-rescaled)", fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    fig.suptitle(f"class semantic similarity, {dataset.name}/{dataset.split}")
    top = [[sn[i], un[int(np.argmax(r[i]))], float(r[i].max())] for i in range(len(sn))]
    md = (f"# Most related unseen class of each seen class ({relation} soft labels), {dataset.name}/{dataset.split}\n\n"
          + _md_table(["seen class", "most related unseen", "r"], top))
    return [_write_md(out / "similarity.md", md), _save_fig(fig, out / "similarity.png")]


def tsne(dataset, out: Path, *, seed=0, preset="default", base: dict | None = None, semantics=None,
         max_per_class: int = 150, log: Callable[[str], None] = print) -> list[Path]:
    """t-SNE of unseen test features in CPL's visual space with the encoded class prototypes E(a_u),
    for a model trained without and with generated unseen samples (slides 3.3)."""
    plt = _plt()
    from sklearn.manifold import TSNE

    from .._registry import create_method

    rng = np.random.default_rng(seed)
    X, y = dataset.subset("test_unseen")
    keep = np.concatenate([rng.permutation(np.where(y == c)[0])[:max_per_class] for c in dataset.unseen_classes])
    X, y = X[keep], y[keep]
    unseen = dataset.unseen_classes
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    rows = []
    cmap = plt.get_cmap("tab10" if len(unseen) <= 10 else "tab20")
    for ax, (label, use_gen) in zip(axes, (("without generated samples", False), ("with generated samples", True))):
        model = create_method(f"cpl.{preset}", **{**dict(base or {}), "use_generated": use_gen})
        model.set_params(random_state=seed)
        model.fit(*dataset.subset("trainval"), dataset.class_embeddings(semantics), dataset.seen_classes)
        Z = model.embed(X)
        P = model.class_prototypes_[unseen]
        emb = TSNE(2, init="pca", random_state=seed, perplexity=min(30, (len(Z) + len(P)) // 4)).fit_transform(
            np.vstack([Z, P]))
        pts, protos = emb[:len(Z)], emb[len(Z):]
        # how close each prototype lands to its own class: mean distance to own samples / to all samples
        ratio = float(np.mean([np.linalg.norm(pts[y == c] - protos[i], axis=1).mean()
                               / np.linalg.norm(pts - protos[i], axis=1).mean() for i, c in enumerate(unseen)]))
        acc = float(np.mean([np.mean(model.predict(X[y == c], unseen) == c) for c in unseen]))
        rows.append([label, acc, ratio])
        for i, c in enumerate(unseen):
            m = y == c
            ax.scatter(pts[m, 0], pts[m, 1], s=4, color=cmap(i % cmap.N), alpha=0.6, label=dataset.class_names[c])
            ax.scatter(*protos[i], marker="*", s=260, color=cmap(i % cmap.N), edgecolor="black", linewidth=0.8)
        ax.set_title(f"{label}\nZSL {acc:.3f}; ★ = E(a_u)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=3)
    fig.suptitle(f"t-SNE of unseen test features in CPL's visual space, {dataset.name}/{dataset.split}")
    md = (
        f"# t-SNE of unseen test features, {dataset.name}/{dataset.split} (seed {seed}, {max_per_class} per class)\n\n"
        + _md_table(["model", "ZSL top-1 (on the plotted samples)", "prototype-to-own-class / to-all distance"], rows)
    )
    return [_write_md(out / "tsne.md", md), _save_fig(fig, out / "tsne.png")]
