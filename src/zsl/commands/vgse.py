"""``zsl vgse fit|figure``: learn visually-grounded class embeddings (VGSE) for an image dataset.

    zsl vgse fit --dataset cifar10 --split rot0 [rot1 ...] [--images-per-class 500] [--clusters 64]
    zsl vgse figure --dataset cifar10 --split rot0 --out vgse-clusters.png

``fit`` stores ``<cache>/vgse/fit/<dataset>-<split>/embeddings.npz``; afterwards every method takes
``--semantics vgse`` (QP relation), ``vgse-lstsq`` or ``vgse-cosine`` on that dataset and split.
"""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("vgse", help="learn visually-grounded class embeddings (VGSE) from image patches")
    sub = p.add_subparsers(dest="vgse_command", required=True)

    def common(q):
        q.add_argument("--dataset", required=True, help="image dataset: cifar10 or image-folder:PATH")
        q.add_argument("--split", nargs="+", default=[None], help="split(s), e.g. rot0 rot1 (default: the dataset's first)")
        q.add_argument("--data-root", default=None, help="data root (default: $ZSL_DATA)")
        q.add_argument("--cache-dir", default=None, help="cache root (default: $ZSL_CACHE, else ~/.cache/zsl)")
        q.add_argument("--max-per-class", type=int, default=None,
                       help="load at most this many images per class and part (quick runs)")
        q.add_argument("--quiet", action="store_true", help="no progress bars")

    f = sub.add_parser("fit", help="fit the patch clustering and class relation modules; store the embeddings")
    common(f)
    f.add_argument("--images-per-class", type=int, default=500,
                   help="seen-class training images per class to crop into patches (default 500; 0 = all)")
    f.add_argument("--grid", type=int, default=3, help="patch grid per side: N_t = grid^2 (default 3)")
    f.add_argument("--patch-fraction", type=float, default=0.5, help="patch side / image side (default 0.5)")
    f.add_argument("--resolution", type=int, default=64, help="backbone input size of each patch (default 64)")
    f.add_argument("--clusters", type=int, default=64, help="D_v, the number of visual clusters (default 64)")
    f.add_argument("--lambda-sem", type=float, default=1.0, help="weight of the cluster-to-semantic loss")
    f.add_argument("--epochs", type=int, default=30)
    f.add_argument("--alpha", type=float, default=0.0, help="lower bound of the QP relation weights")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--figure", default=None, metavar="PNG", help="also draw the cluster figure here")
    f.set_defaults(func=_fit)

    g = sub.add_parser("figure", help="patches nearest to 6 cluster centres, from seen and unseen classes (PNG)")
    common(g)
    g.add_argument("--out", required=True, metavar="PNG")
    g.add_argument("--n-clusters-shown", type=int, default=6)
    g.add_argument("--per-row", type=int, default=6, help="patches shown per cluster and panel")
    g.add_argument("--unseen-images", type=int, default=50, help="unseen-class test images cropped for the unseen panel")
    g.set_defaults(func=_figure)


def _load(args, split):
    from ..data import load_dataset

    kw = {"max_per_class": args.max_per_class} if args.max_per_class else {}
    if args.cache_dir:
        kw["cache_dir"] = args.cache_dir
    return load_dataset(args.dataset, split, data_root=args.data_root, **kw)


def _fit(args) -> int:
    from ..semantics.vgse import ClusteringConfig, VGSEConfig, fit_vgse

    for split in args.split:
        ds = _load(args, split)
        cfg = VGSEConfig(images_per_class=args.images_per_class or None, grid=args.grid,
                         patch_fraction=args.patch_fraction, resolution=args.resolution, alpha=args.alpha,
                         clustering=ClusteringConfig(n_clusters=args.clusters, lambda_sem=args.lambda_sem,
                                                     epochs=args.epochs, seed=args.seed))
        summary = fit_vgse(ds, cfg, cache_dir=args.cache_dir, progress=not args.quiet)
        short = {k: summary[k] for k in ("dataset", "split", "n_images", "n_patches", "extract_seconds",
                                         "train_seconds", "extract_cpu_seconds", "train_cpu_seconds",
                                         "final_epoch", "path")}
        print(json.dumps(short))
        if args.figure:
            from ..semantics.vgse import cluster_figure

            path = cluster_figure(ds, args.figure if len(args.split) == 1 else args.figure.replace(".png", f"-{ds.split}.png"),
                                  cache_dir=args.cache_dir, progress=not args.quiet)
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _figure(args) -> int:
    from ..semantics.vgse import cluster_figure

    for split in args.split:
        ds = _load(args, split)
        out = args.out if len(args.split) == 1 else args.out.replace(".png", f"-{ds.split}.png")
        path = cluster_figure(ds, out, n_clusters_shown=args.n_clusters_shown, per_row=args.per_row,
                              unseen_images=args.unseen_images, cache_dir=args.cache_dir, progress=not args.quiet)
        print(f"wrote {path}", file=sys.stderr)
    return 0
