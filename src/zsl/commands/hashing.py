"""``zsl hashing``: the zero-shot retrieval table of the hashing methods (ZSH paper, Tables 2-3).

    zsl hashing --dataset flo --bits 16 32 64 128 --methods lsh itq sdh zsh --seeds 0 1 2 [--json]

A thin layer over :func:`zsl.bench.hashing.run_hashing_table` (protocol, selection, metrics: see
``zsl hashing --help``). Writes ``results.json`` (``results.partial.json`` after every run) and
``pr_<bits>bits.png`` to ``--out`` (default ``<cache>/hashing/<dataset>-<hash of the settings>``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ZSLError

PROTOCOL = """\
protocol (zsl.eval.retrieval.retrieval_data): hash functions are learnt on the seen classes only;
queries are unseen-class images that are not in the database; the database holds codes of every
other image (seen and unseen classes); relevant = same class.
  flo      queries = the unseen-class images of Oxford's own test split (setid.mat tstid, 755
           images of the 20 unseen classes); database = every other image (7,434); hash functions
           learnt on the 82 seen classes (xlsa17 trainval, 5,631 images)
  cifar10  queries = the unseen classes' test-folder images; database = every train-folder image;
           rotating splits rot0..rot4, averaged
  others   queries = --queries unseen-class images drawn with --query-seed; database = the rest
selection (default --select validation): each method's param_grid (and, for ZSH, the class-embedding
source) is chosen by mAP on the validation classes -- train classes fit, half of each validation
class's images (at most --queries) query the other seen-class images -- never on unseen queries.
metrics: mAP = tie-exact mean average precision over the Hamming ranking (the expectation over all
orders of equidistant items, McSherry & Najork 2008); mAP_authors = the ZSH authors' MATLAB
cat_apcal (ties in database order, top 10,000); mAP@k tie-exact; P@r2 = precision within Hamming
radius 2 (empty ball = 0); precision-recall per Hamming radius and per ranking depth (plot)."""


def register(subparsers) -> None:
    from ..cli import add_dataset_args

    p = subparsers.add_parser("hashing", help="zero-shot retrieval table: LSH, ITQ, SDH, ZSH over code lengths",
                              description="Zero-shot retrieval table of hashing methods over code lengths.",
                              epilog=PROTOCOL, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_args(p)
    p.add_argument("--splits", nargs="+", default=None,
                   help="class splits to average over (default: --split if given, else every split of the dataset, "
                        "e.g. cifar10 rot0..rot4)")
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64, 128], help="code lengths (multiples of 8)")
    p.add_argument(
        "--methods", nargs="+", default=["lsh", "itq", "sdh", "zsh"], help="hashing methods (name or name.preset)"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of the methods (mean ± std over them)")
    p.add_argument("--select", choices=["validation", "none"], default="validation",
                   help="choose hyperparameters on validation classes (default) or use the presets as they are")
    p.add_argument(
        "--queries", type=int, default=1000,
        help="unseen-class queries drawn when the dataset has no fixed query set (AwA1); cap on validation queries",
    )
    p.add_argument(
        "--query-seed", type=int, default=0, help="seed of the query draw (AwA1) and of the validation split"
    )
    p.add_argument("--top-k", type=int, default=1000, help="k of mAP@k")
    p.add_argument("--pr-bits", type=int, default=64, help="code length of the precision-recall plot")
    p.add_argument("--out", default=None, help="output folder (default: under the cache)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    p.set_defaults(func=_cmd_hashing)


def _cmd_hashing(args) -> int:
    from .._registry import get_method_class
    from ..bench.hashing import format_table, plot_pr, run_hashing_table, summarise
    from ..data import dataset_splits
    from ..io import cache_root, config_hash, write_json

    for spec in args.methods:
        if not get_method_class(spec).tags.get("retrieval"):
            raise ZSLError(f"method {spec!r} is not a hashing (retrieval) method; hashing methods: lsh, itq, sdh, zsh")
    for b in args.bits:
        if b <= 0 or b % 8:
            raise ZSLError(f"--bits {b}: code lengths must be positive multiples of 8")
    if args.top_k < 1:
        raise ZSLError(f"--top-k {args.top_k}: must be a positive number of items")
    splits = args.splits or ([args.split] if args.split else list(dataset_splits(args.dataset, args.data_root)))
    settings = {
        "dataset": args.dataset, "splits": splits, "bits": args.bits, "methods": args.methods, "seeds": args.seeds,
        "semantics": args.semantics, "select": args.select, "queries": args.queries, "query_seed": args.query_seed,
        "top_k": args.top_k,
    }
    out = (
        Path(args.out)
        if args.out
        else cache_root(args.cache_dir) / "hashing" / f"{args.dataset}-{config_hash(settings)}"
    )

    def save_partial(runs, selection):  # a long table survives an interruption: every finished run is on disk
        write_json(out / "results.partial.json", {"settings": settings, "selection": selection, "runs": runs})

    res = run_hashing_table(
        args.dataset, splits=splits, methods=args.methods, bits=args.bits, seeds=args.seeds, semantics=args.semantics,
        select=args.select, query_seed=args.query_seed, n_queries=args.queries, top_k=args.top_k,
        data_root=args.data_root, cache_dir=args.cache_dir, on_run=save_partial,
    )
    table = summarise(res["runs"], args.methods, args.bits, args.top_k)
    write_json(out / "results.json", {"settings": settings, "table": table, **res})
    png = None
    if args.pr_bits in args.bits:
        png = plot_pr(res["runs"], args.methods, args.pr_bits, out / f"pr_{args.pr_bits}bits.png",
                      title=f"{args.dataset} zero-shot retrieval, {args.pr_bits} bits ({len(splits)} split(s), "
                            f"{len(args.seeds)} seed(s))")
    if args.json:
        print(json.dumps({"dataset": args.dataset, "settings": settings, "table": table,
                          "results": str(out / "results.json"), "pr_png": str(png) if png else None}))
    else:
        title = (f"zero-shot retrieval on {args.dataset}, mean ± std over {len(splits)} split(s) ({', '.join(splits)}) "
                 f"x {len(args.seeds)} seed(s); hyperparameters: {args.select}")
        print(format_table(table, args.methods, args.bits, args.top_k, title))
        print(f"results: {out / 'results.json'}" + (f"\nPR plot: {png}" if png else ""))
    return 0
