"""Figures of the generative methods: real vs synthesised unseen features (the clusterable-CVAE
paper's Fig. 3), for any fitted method that exposes ``transform`` (the space its final classifier
sees) and ``synthesize`` (features drawn from its generator in that space): ``cvae_clusterable``
and ``fclswgan``.

Besides the picture, one number says whether the generator lands where the real features are:
for each unseen class, is the mean of its synthesised features nearer (Euclidean, in the
classifier's space) to the mean of its own real test features than to any other unseen class's
real mean. The fraction of classes for which that holds is printed and written beside the figure.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .figures import markdown_table, pyplot, save_figure, write_markdown


def synthetic_alignment(real: np.ndarray, y_real: np.ndarray, synth: np.ndarray, y_synth: np.ndarray,
                        classes: np.ndarray) -> dict[str, Any]:
    """Per class: is the synthesised mean nearest to its own class's real mean? Returns the fraction
    and, per class, the rank of the own class (0 = nearest) among all real class means."""
    real_means = np.stack([real[y_real == c].mean(0) for c in classes])
    ranks = []
    for i, c in enumerate(classes):
        d = np.linalg.norm(real_means - synth[y_synth == c].mean(0), axis=1)
        ranks.append(int(np.sum(d < d[i])))
    return {"fraction_nearest_own": float(np.mean(np.array(ranks) == 0)), "ranks": ranks}


def real_vs_synthetic_tsne(method, dataset, out: Path, *, seed: int = 0, max_classes: int = 10, per_class: int = 100,
                           log: Callable[[str], None] = print) -> list[Path]:
    """t-SNE of real unseen test features (dots) and synthesised ones (crosses), one colour per class.

    ``method`` is fitted already. At most ``max_classes`` unseen classes (the first ones by id, so
    the figure is readable; the alignment number uses every unseen class).
    """
    plt = pyplot()
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    unseen = dataset.unseen_classes
    X, y = dataset.subset("test_unseen")
    real = method.transform(X)
    synth, y_synth = method.synthesize(unseen, per_class, random_state=seed)
    align = synthetic_alignment(real, y, synth, y_synth, unseen)
    log(f"  synthesised class mean nearest to its own real mean: {align['fraction_nearest_own']:.2f} of "
        f"{len(unseen)} unseen classes")

    shown = unseen[:max_classes]
    keep = np.concatenate([rng.permutation(np.where(y == c)[0])[:per_class] for c in shown])
    keep_s = np.isin(y_synth, shown)
    Z = np.vstack([real[keep], synth[keep_s]])
    emb = TSNE(2, init="pca", random_state=seed, perplexity=30).fit_transform(Z)
    pts_r, pts_s = emb[:len(keep)], emb[len(keep):]
    yr, ys = y[keep], y_synth[keep_s]
    fig, ax = plt.subplots(figsize=(8, 7))
    cmap = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")
    for i, c in enumerate(shown):
        col = cmap(i % cmap.N)
        ax.scatter(*pts_r[yr == c].T, s=8, color=col, alpha=0.7, label=str(dataset.class_names[c]))
        ax.scatter(*pts_s[ys == c].T, s=14, color=col, marker="x", alpha=0.7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2)
    share = align["fraction_nearest_own"]
    ax.set_title(f"{method.name}: real (dots) vs synthesised (x) unseen features, {dataset.name}/{dataset.split}\n"
                 f"synthesised mean nearest its own class: {share:.2f} of {len(unseen)} classes", fontsize=10)
    rows = [[str(dataset.class_names[c]), r] for c, r in zip(unseen, align["ranks"])]
    md = (f"# Real vs synthesised unseen features, {method.name} on {dataset.name}/{dataset.split} (seed {seed})\n\n"
          f"Fraction of unseen classes whose synthesised mean is nearest its own real mean: "
          f"{align['fraction_nearest_own']:.3f}\n\n"
          + markdown_table(["unseen class", "rank of its own real mean (0 = nearest)"], rows))
    stem = f"tsne-{method.name}"
    return [write_markdown(out / f"{stem}.md", md), save_figure(fig, out / f"{stem}.png")]
