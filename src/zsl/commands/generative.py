"""``zsl ablation`` (clusterable CVAE component table) and ``zsl fewshot`` (N-way K-shot with the Gaussian map).

ablation: fits ``cvae_clusterable`` four times on the dataset's trainval split with the components
switched on one at a time, as the paper's Fig. 4 / Table 4 -- NA (plain CVAE), +Cls (mapping M
supervised by C), +Cls+Gaussian (fine-tuning F first), +noise (alpha on the reconstruction
targets) -- and prints, per row, the clusterability of the test-unseen features in the space the
final classifier sees (NMI of K-Means with K = #unseen, and raw MI in nats), ZSL top-1 and GZSL H
(calibration gamma = 0, no validation search: the rows differ only in the switched component).
"""
from __future__ import annotations

import json
import sys
import time

ABLATION_ROWS = (
    ("NA", {"use_mapping": False, "use_gaussian": False, "noise_alpha": 0.0}),
    ("+Cls", {"use_mapping": True, "use_gaussian": False, "noise_alpha": 0.0}),
    ("+Cls+Gaussian", {"use_mapping": True, "use_gaussian": True, "noise_alpha": 0.0}),
    ("+Cls+Gaussian+noise", {"use_mapping": True, "use_gaussian": True}),
)


def register(subparsers) -> None:
    from ..cli import add_dataset_args

    p = subparsers.add_parser("ablation", help="clusterable-CVAE component table: MI and accuracy per component")
    p.add_argument(
        "--method", default="cvae_clusterable", help="method spec (name or name.preset); rows override its switches"
    )
    add_dataset_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a hyperparameter in every row (repeatable)"
    )
    p.add_argument("--json", action="store_true", help="print the rows as one JSON object on stdout")
    p.set_defaults(func=_ablation)

    p = subparsers.add_parser(
        "fewshot", help="N-way K-shot accuracy on novel classes: raw features vs the Gaussian map"
    )
    add_dataset_args(p)
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gamma", type=float, default=1.0, help="Gaussian similarity gamma (eq. 7)")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the Gaussian map on the base classes")
    p.add_argument("--pca-dim", type=int, default=256, help="PCA dims before the map (0 = none)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_fewshot)

    p = subparsers.add_parser(
        "tsne", help="t-SNE of real vs synthesised unseen features of a generative method (CVAE paper Fig. 3)"
    )
    p.add_argument("--method", default="cvae_clusterable",
                   help="cvae_clusterable or fclswgan (name or name.preset; the dataset preset by default)")
    add_dataset_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hyperparameter (repeatable)")
    p.add_argument("--out", default=None, help="folder for tsne-<method>.png/.md (default: <cache>/analyses/...)")
    p.set_defaults(func=_tsne)


def _ablation(args) -> int:
    import numpy as np

    from .._registry import create_method
    from ..cli import parse_overrides
    from ..data import load_dataset
    from ..errors import ZSLError
    from ..eval.clustering import clusterability_score
    from ..eval.metrics import gzsl_accuracies, per_class_accuracy

    ds = load_dataset(args.dataset, args.split, data_root=args.data_root, cache_dir=args.cache_dir)
    S = ds.class_embeddings(args.semantics)
    from ..eval.protocol import resolve_spec

    overrides = parse_overrides(args.set)
    args.method = resolve_spec(args.method, ds.name)  # the dataset preset, as every protocol run
    method0 = create_method(args.method, **overrides)
    if not hasattr(method0, "transform") or "use_mapping" not in method0.get_params():
        raise ZSLError(
            f"--method {args.method!r}: the ablation needs cvae_clusterable (component switches + transform)"
        )
    iu, is_ = ds.splits["test_unseen"], ds.splits["test_seen"]
    cand = np.arange(ds.n_classes)
    idx = np.concatenate([is_, iu])
    rows = []
    for label, switches in ABLATION_ROWS:
        t0 = time.perf_counter()
        method = create_method(args.method, **{**overrides, **switches, "random_state": args.seed})
        method.fit(*ds.subset("trainval"), S, ds.seen_classes)
        feats = method.transform(ds.X[iu])
        clus = clusterability_score(feats, ds.y[iu], random_state=args.seed)
        acc = per_class_accuracy(ds.y[iu], method.predict(ds.X[iu], ds.unseen_classes))
        g = gzsl_accuracies(
            method.decision_function(ds.X[idx], cand), ds.y[idx], cand, ds.seen_classes, ds.unseen_classes, 0.0
        )
        rows.append(
            {
                "row": label, "nmi": clus["nmi"], "mi": clus["mi"], "zsl_acc": acc, "U": g["U"], "S": g["S"],
                "H": g["H"], "noise_alpha": method.noise_alpha, "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"  {label}: NMI {clus['nmi']:.3f} ZSL {acc:.4f} H {g['H']:.4f} ({rows[-1]['seconds']:.0f}s)",
            file=sys.stderr, flush=True,
        )
    if args.json:
        print(
            json.dumps({"dataset": ds.name, "split": ds.split, "seed": args.seed, "method": args.method, "rows": rows})
        )
        return 0
    print(
        f"clusterable CVAE ablation on {ds.name}/{ds.split} (seed "
        f"{args.seed}; MI = NMI of K-Means on test-unseen features)"
    )
    print(f"{'components':22s} {'MI (NMI)':>9s} {'MI nats':>8s} {'ZSL top-1':>10s} {'GZSL U':>7s} {'S':>7s} {'H':>7s}")
    for r in rows:
        print(
            f"{r['row']:22s} {r['nmi']:9.3f} {r['mi']:8.3f} "
            f"{r['zsl_acc']:10.4f} {r['U']:7.4f} {r['S']:7.4f} {r['H']:7.4f}"
        )
    return 0


def _fewshot(args) -> int:
    from ..data import load_dataset
    from ..eval.fewshot import gaussian_fewshot_table

    ds = load_dataset(args.dataset, args.split, data_root=args.data_root, cache_dir=args.cache_dir)
    rows = gaussian_fewshot_table(
        ds, shots=tuple(args.shots), n_way=args.ways, n_query=args.queries, n_episodes=args.episodes, seed=args.seed,
        pca_dim=args.pca_dim or None, gamma=args.gamma, epochs=args.epochs, progress=not args.json,
    )
    if args.json:
        print(json.dumps({"dataset": ds.name, "split": ds.split, "rows": rows}))
        return 0
    print(f"{args.ways}-way few-shot on the novel (unseen) classes of {ds.name}/{ds.split}, {args.episodes} episodes, "
          f"{args.queries} queries/class (mean +- 95% interval)")
    for k in args.shots:
        cells = "  ".join(
            f"{r['features']}: {100 * r['mean']:.1f} +- {100 * r['ci95']:.1f}" for r in rows if r["shots"] == k
        )
        print(f"  {k}-shot  {cells}")
    return 0


def _tsne(args) -> int:
    from pathlib import Path

    from ..analysis.generative import real_vs_synthetic_tsne
    from ..cli import parse_overrides
    from ..data import load_dataset
    from ..errors import ZSLError
    from ..eval.protocol import make_method, resolve_spec
    from ..io import cache_root

    ds = load_dataset(args.dataset, args.split, data_root=args.data_root, cache_dir=args.cache_dir)
    spec = resolve_spec(args.method, ds.name)
    method = make_method(spec, parse_overrides(args.set), args.seed)
    if not (hasattr(method, "synthesize") and hasattr(method, "transform")):
        raise ZSLError(f"--method {args.method!r} has no generator to sample; use cvae_clusterable or fclswgan")
    default_out = cache_root(args.cache_dir) / "analyses" / "generative" / f"{ds.name}-{ds.split}"
    out = Path(args.out) if args.out else default_out
    print(f"fitting {spec} on {ds.name}/{ds.split} trainval (seed {args.seed}) ...", file=sys.stderr, flush=True)
    method.fit(*ds.subset("trainval"), ds.class_embeddings(args.semantics), ds.seen_classes)
    for path in real_vs_synthetic_tsne(method, ds, out, seed=args.seed,
                                       log=lambda m: print(m, file=sys.stderr, flush=True)):
        print(path)
    return 0
