"""``zsl report``: the papers' tables from the results store, as markdown, CSV and PNG bar charts."""
from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    from ..bench.runner import TASKS

    p = subparsers.add_parser("report", help="tables (markdown, CSV) and bar charts from the results store")
    p.add_argument("--task", choices=TASKS, default="classification",
                   help="whose table: classification (default; also --csv, --plots, --update-readme), "
                        "retrieval, labelling")
    p.add_argument("--store", default=None, metavar="URL", help="results store (default: sqlite:///<cache>/results.db)")
    p.add_argument("--grid", default=None, help="only rows of this grid (quick, full, or a grid file's name)")
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--datasets", nargs="+", default=None)
    p.add_argument("--csv", default=None, metavar="PATH", help="also write the long-format CSV here")
    p.add_argument("--plots", default=None, metavar="DIR", help="also write one PNG bar chart per dataset/split here")
    p.add_argument(
        "--update-readme", default=None, metavar="README",
        help="replace the section between <!-- zsl-report:start --> and <!-- zsl-report:end --> with the tables",
    )
    p.add_argument("--cache-dir", default=None, help="cache root (default: $ZSL_CACHE, else ~/.cache/zsl)")
    p.set_defaults(func=_handler)


def _handler(args) -> int:
    from ..bench.report import plot_bars, task_markdown, to_csv, update_readme
    from ..bench.store import ResultsStore
    from ..errors import ZSLError
    from ..io import atomic_write

    if args.task != "classification" and (args.csv or args.plots or args.update_readme):
        raise ZSLError(f"--csv, --plots and --update-readme are for classification tables; --task {args.task} prints "
                       "its markdown table only")
    store = ResultsStore(args.store, cache_dir=args.cache_dir)
    rows = store.rows(methods=args.methods, datasets=args.datasets, grid=args.grid, task=args.task)
    md = task_markdown(args.task, rows, title_suffix=f" — grid `{args.grid}`" if args.grid else "")
    print(md)
    if args.csv:
        with atomic_write(Path(args.csv), "w") as fh:
            fh.write(to_csv(rows))
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.plots:
        for path in plot_bars(rows, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    if args.update_readme:
        # the command that reproduces these rows: the grid(s) they came from, and the datasets asked for
        grids = sorted({r.get("grid") or "quick" for r in rows}) or ["quick"]
        flags = " ".join(f"--{g}" if g in ("quick", "full") else f"--grid {g}" for g in grids)
        where = f" --datasets {' '.join(args.datasets)}" if args.datasets else ""
        cmd = f"zsl benchmark {flags}{where} && zsl report{where}" + (f" --grid {args.grid}" if args.grid else "")
        changed = update_readme(args.update_readme, md, cmd)
        print(f"{'updated' if changed else 'unchanged'}: {args.update_readme}", file=sys.stderr)
    return 0
