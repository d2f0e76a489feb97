"""``zsl benchmark``: run a declared grid into the results store (resumable), then print the table."""
from __future__ import annotations

import argparse
import sys
import time

from ..bench.runner import TASKS

TASKS_HELP = """\
tasks (one runner, one results store, one report; a cell is stored once under the hash of its config):
  classification  method x dataset x split x setting (ZSL, GZSL) x seed: per-class top-1, GZSL U/S/H
                  uncalibrated and calibrated (the evaluation protocol of `zsl run`)
  retrieval       hashing method x dataset x split x code length x seed: the `zsl hashing` protocol
                  (hash functions learnt on seen classes, unseen-class queries, hyperparameters and the
                  class-embedding source chosen on validation classes with the grid's first seed);
                  metrics mAP (tie-exact), mAP_authors (the ZSH authors' cat_apcal), mAP@1000, P@r2
  labelling       label space x T x dataset x split: the `zsl label` labeller (ConSE over the ImageNet-1k
                  EfficientNet-Lite0 classifier, logits from the dataset's Lite0 features) ranks the
                  split's test images (or its unseen-class ones: the grid's `images`) against the
                  dataset's class names; metrics hit@1, hit@2, hit@5 and
                  the share flagged far from what the classifier knows. Datasets with Lite0 features only
                  (image folders, cifar10, flo); deterministic, so one cell per space and T
examples:
  zsl benchmark --task retrieval --datasets flo --quick
  zsl benchmark --task labelling --quick
  zsl benchmark --datasets image-folder:~/photos --methods eszsl sae"""


def register(subparsers) -> None:
    from ..cli import add_data_args

    p = subparsers.add_parser(
        "benchmark",
        help="run a grid of cells (classification, retrieval or labelling) into the results store (resumable)",
        description="Run every cell of a grid that the results store does not hold yet, then print the task's "
                    "table. Kill it at any time and start it again: it completes the grid.",
        epilog=TASKS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", choices=TASKS, default="classification",
                   help="what the cells measure (default classification; see below)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", const="quick", dest="grid",
                   help="the task's quick grid (default; classification: every method, 1 seed, AwA1 standard+ps, "
                        "FLO, a CIFAR-10 subset; retrieval: LSH/ITQ/SDH/ZSH at 32 and 64 bits, 1 seed; "
                        "labelling: 3 label spaces, T=10)")
    g.add_argument("--full", action="store_const", const="full", dest="grid",
                   help="the task's full grid (3 seeds, every split; retrieval 16-128 bits; every label space, "
                        "T=1/10/all)")
    g.add_argument("--grid", dest="grid", metavar="TOML",
                   help="a grid file (see src/zsl/bench/grids/; its `task` must match --task)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="results store: SQLAlchemy URL or file path (default: sqlite:///<cache>/results.db)")
    p.add_argument("--methods", nargs="+", default=None, help="only these methods (names)")
    p.add_argument("--datasets", nargs="+", default=None,
                   help="only these datasets: the grid's, any other one under the data root (first split), "
                        "or image-folder:PATH (a folder of class folders, or a .tar.gz of one)")
    p.add_argument("--retry-errors", action="store_true", help="rerun cells stored as errors")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="run the cells as tasks on this Ray cluster (auto, HOST:PORT, or local); rows go to the "
                        "same store; needs pip install 'zsl[ray]'")
    add_data_args(p)
    p.set_defaults(func=_handler, grid="quick")


def check_filters(grid: dict, methods: list[str] | None, datasets: list[str] | None, data_root=None) -> None:
    """``--methods`` must name methods of the grid, ``--datasets`` datasets that exist (:func:`grid_datasets`):
    a typo is an error, never "0 cells run"."""
    from .._registry import get_method_class
    from ..bench.runner import grid_datasets, grid_methods
    from ..errors import ZSLError

    if methods:
        in_grid = sorted({spec.split(".", 1)[0] for spec in grid_methods(grid)})
        for name in methods:
            cls = get_method_class(name)  # an unknown method: the error lists every registered method
            preset = name.partition(".")[2]
            if preset and preset not in cls.all_presets():
                raise ZSLError(f"--methods {name}: unknown preset {preset!r} for method {cls.name!r}; valid presets: "
                               f"{', '.join(sorted(cls.all_presets()))}")
            if name.split(".", 1)[0] not in in_grid:
                raise ZSLError(f"--methods {name}: not in grid {grid['name']!r}; its methods: {', '.join(in_grid)}")
    if datasets:
        grid_datasets(grid, data_root, datasets)  # an unknown name: one line naming the valid ones


def _handler(args) -> int:
    from ..bench.report import task_markdown
    from ..bench.runner import load_grid, run_benchmark
    from ..bench.store import ResultsStore
    from ..errors import ZSLError

    t0 = time.perf_counter()
    if args.ray_address is not None:
        from ..distributed import check_address, require_ray

        check_address(args.ray_address)
        require_ray(args.ray_address)  # a missing extra is one line, before anything runs
        if args.task != "classification":
            raise ZSLError("--ray-address runs classification grids only; run retrieval and labelling grids locally")
    grid = load_grid(args.grid, args.task)
    check_filters(grid, args.methods, args.datasets, args.data_root)
    store = ResultsStore(args.store, cache_dir=args.cache_dir)
    store.check_writable()  # before any cell runs: results are never computed and then lost
    print(f"zsl benchmark: {grid['task']} grid {grid['name']!r}, results store {store.url}", file=sys.stderr,
          flush=True)
    if args.ray_address is not None:
        from ..bench.ray_runner import run_benchmark_ray

        summary = run_benchmark_ray(grid, store, address=args.ray_address, data_root=args.data_root,
                                    cache_dir=args.cache_dir, methods=args.methods, datasets=args.datasets,
                                    retry_errors=args.retry_errors)
    else:
        summary = run_benchmark(grid, store, data_root=args.data_root, cache_dir=args.cache_dir, methods=args.methods,
                                datasets=args.datasets, retry_errors=args.retry_errors)
    if not summary["cells"] and not summary["load_errors"] and not summary["over_budget"]:
        if not args.methods and not args.datasets:
            raise ZSLError(f"grid {grid['name']!r} found none of its datasets ({', '.join(grid['datasets'])}) "
                           "under the data root; point at the data with --data-root or ZSL_DATA, or pass --datasets "
                           "image-folder:PATH")
        raise ZSLError(f"no cell of grid {grid['name']!r} matches --methods {' '.join(args.methods or ['(all)'])} "
                       f"--datasets {' '.join(args.datasets or ['(all)'])}; a method named with a preset must use the "
                       "preset the grid picks (give the method name alone)")
    hashes = set(summary["cells"])
    rows = [r for r in store.rows(task=grid["task"]) if r["cell_hash"] in hashes]
    print(task_markdown(grid["task"], rows, title_suffix=f" — grid `{grid['name']}`"))
    for where, msg in summary["load_errors"].items():
        print(f"dataset {where} could not be loaded: {msg}")
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"{summary['ran']} cells run ({summary['errors']} errors), {summary['skipped']} already in the store; "
          f"wall time {time.perf_counter() - t0:.0f} s. "
          f"Tables again: zsl report --task {grid['task']} --store {store.url}")
    return 0
