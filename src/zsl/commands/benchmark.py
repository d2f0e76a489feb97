"""``zsl benchmark``: run a declared grid into the results store (resumable), then print the table."""
from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    from ..cli import add_data_args

    p = subparsers.add_parser(
        "benchmark",
        help="run a grid of methods x datasets x splits x settings x seeds into the results store (resumable)",
        description="Run every cell of a grid that the results store does not hold yet, then print the "
                    "ZSL / GZSL tables. Kill it at any time and start it again: it completes the grid.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", const="quick", dest="grid",
                   help="the quick grid: every method, 1 seed, AwA1 standard+ps, a CIFAR-10 subset (default)")
    g.add_argument(
        "--full", action="store_const", const="full", dest="grid", help="the full grid: 3 seeds, every split"
    )
    g.add_argument("--grid", dest="grid", metavar="TOML", help="a grid file (see src/zsl/bench/grids/quick.toml)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="results store: SQLAlchemy URL or file path (default: sqlite:///<cache>/results.db)")
    p.add_argument("--methods", nargs="+", default=None, help="only these methods (names)")
    p.add_argument("--datasets", nargs="+", default=None, help="only these datasets")
    p.add_argument("--retry-errors", action="store_true", help="rerun cells stored as errors")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="run the cells as tasks on this Ray cluster (auto, HOST:PORT, or local); rows go to the "
                        "same store; needs pip install 'zsl[ray]'")
    add_data_args(p)
    p.set_defaults(func=_handler, grid="quick")


def check_filters(grid: dict, methods: list[str] | None, datasets: list[str] | None, data_root=None) -> None:
    """``--methods`` / ``--datasets`` must name things the grid has: a typo is an error, never "0 cells run"."""
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
        sets, _ = grid_datasets(grid, data_root)
        available = sorted({d for d, _, _ in sets})
        for name in datasets:
            if name not in available:
                declared = sorted(k for k, v in grid["datasets"].items() if not v.get("only_as_fallback"))
                raise ZSLError(
                    f"--datasets {name}: grid {grid['name']!r} has no such dataset under the data root; "
                    f"available: {', '.join(available) or 'none'} (the grid declares: "
                    f"{', '.join(declared) or 'none'}); "
                    "point at the data with --data-root or ZSL_DATA"
                )


def _handler(args) -> int:
    from ..bench.report import markdown
    from ..bench.runner import load_grid, run_benchmark
    from ..bench.store import ResultsStore
    from ..errors import ZSLError

    t0 = time.perf_counter()
    if args.ray_address is not None:
        from ..distributed import check_address, require_ray

        check_address(args.ray_address)
        require_ray(args.ray_address)  # a missing extra is one line, before anything runs
    grid = load_grid(args.grid)
    check_filters(grid, args.methods, args.datasets, args.data_root)
    store = ResultsStore(args.store, cache_dir=args.cache_dir)
    store.check_writable()  # before any cell runs: results are never computed and then lost
    print(f"zsl benchmark: grid {grid['name']!r}, results store {store.url}", file=sys.stderr, flush=True)
    if args.ray_address is not None:
        from ..bench.ray_runner import run_benchmark_ray

        summary = run_benchmark_ray(grid, store, address=args.ray_address, data_root=args.data_root,
                                    cache_dir=args.cache_dir, methods=args.methods, datasets=args.datasets,
                                    retry_errors=args.retry_errors)
    else:
        summary = run_benchmark(grid, store, data_root=args.data_root, cache_dir=args.cache_dir, methods=args.methods,
                                datasets=args.datasets, retry_errors=args.retry_errors)
    if not summary["cells"] and not summary["load_errors"] and not summary["over_budget"]:
        raise ZSLError(f"no cell of grid {grid['name']!r} matches --methods {' '.join(args.methods or ['(all)'])} "
                       f"--datasets {' '.join(args.datasets or ['(all)'])}; a method named with a preset must use the "
                       "preset the grid picks (give the method name alone)")
    hashes = set(summary["cells"])
    rows = [r for r in store.rows() if r["cell_hash"] in hashes]
    print(markdown(rows, title_suffix=f" — grid `{grid['name']}`"))
    for where, msg in summary["load_errors"].items():
        print(f"dataset {where} could not be loaded: {msg}")
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"{summary['ran']} cells run ({summary['errors']} errors), {summary['skipped']} already in the store; "
          f"wall time {time.perf_counter() - t0:.0f} s. Tables again: zsl report --store {store.url}")
    return 0
