"""Benchmark cells on a Ray cluster: ``zsl benchmark ... --ray-address ADDR``.

The same grid gives the same cells, rows and store as the local runner (:mod:`zsl.bench.runner`):
cells come from ``expand_grid`` with identity ``Cell.cell_hash``, a cell's row is ``run_cell``'s,
and every row goes into the :class:`~zsl.bench.store.ResultsStore` in one transaction under its
unique cell hash. A restarted run skips every stored cell exactly as the local one does, and the
printed tables are built from the store by the same ``markdown``, so they come out identical.

Who does what:

* The driver (the ``zsl benchmark`` process) expands the grid, loads each dataset once as the local
  runner does (feature extraction for image datasets included), computes its fingerprint, puts it
  in Ray's object store once (``ray.put``; tasks on the same node read it without copying), submits
  tasks, and inserts each row into the store the moment it comes back. Only the driver touches the
  store, so any store works, also a SQLite file on a multi-machine cluster; a PostgreSQL URL lets
  several drivers (several grids, or a local and a Ray run) share one table.
* A task runs the cells of one *fit group* -- cells that differ only in their setting (ZSL, GZSL)
  -- in grid order with one ``FitCache``, so they share their fit and their validation selection
  fits exactly as they do in the local runner's per-dataset cache (whose key also holds only one
  method's parameters and seed). The task is a Ray streaming generator: it yields each cell's row
  as soon as that cell finishes, so rows are stored as early as locally. A task per cell
  (``group_fits=False``) would fit the same method twice; ``benchmarks/bench_ray.py`` measures both.
* A task takes one CPU and limits torch and the BLAS libraries to it (threadpoolctl), so tasks do
  not oversubscribe a node. Floating-point results can therefore differ from a local run with
  more threads by rounding (reductions split differently); the tables show them to 0.1 %.

Failures. A killed worker: Ray reruns its task (``max_retries``); rows that already arrived are
not stored twice (the driver ignores a hash it has received, and the store refuses duplicates).
A killed driver: Ray ends its tasks; the next run computes only the cells without a row, as
locally. The grid's ``cell_timeout_seconds`` works inside tasks (they run in a worker's main
thread, where SIGALRM is delivered); its ``total_budget_seconds`` is checked by the driver before
loading a dataset or submitting a task, and by a task before each cell.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from .runner import Cell, code_version, plan_benchmark, run_cell, stored_dataset_name


def fit_groups(cells: list[Cell]) -> list[list[Cell]]:
    """Cells that can share a fit (same everything but the setting), in first-appearance order."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        ident = {k: v for k, v in cell.identity().items() if k != "setting"}
        groups.setdefault(json.dumps(ident, sort_keys=True, default=str), []).append(cell)
    return list(groups.values())


def run_fit_group(cells: list[Cell], dataset, *, timeout: float, code: str, grid_name: str, cache_dir,
                  deadline: float | None):
    """The body of one Ray task: yields each cell's store row (or an over-budget marker) in order."""
    import ray
    import torch
    from threadpoolctl import threadpool_limits

    from ..eval.protocol import FitCache

    cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    torch.set_num_threads(cpus)
    fit_cache = FitCache()
    with threadpool_limits(limits=cpus):
        for cell in cells:
            if deadline is not None and time.time() > deadline:
                yield {"cell_hash": cell.cell_hash, "over_budget": True}
                continue
            yield run_cell(cell, dataset, timeout=timeout, code=code, grid_name=grid_name, cache_dir=cache_dir,
                           fit_cache=fit_cache)


def failed_row(cell: Cell, message: str, *, grid_name: str, code: str, semantics: str | None) -> dict[str, Any]:
    """The store row of a cell whose task died outside ``run_cell`` (status ``error``, like a cell that raised)."""
    from ..io import config_hash

    return {
        "cell_hash": cell.cell_hash, "grid": grid_name, "task": cell.task, "method": cell.method, "spec": cell.spec,
        "dataset": stored_dataset_name(cell.dataset), "split": cell.split, "setting": cell.setting, "seed": cell.seed,
        "semantics": cell.semantics or semantics, "selection": cell.selection, "code_version": code,
        "dataset_fingerprint": cell.fingerprint, "status": "error", "error": message,
        "config_json": cell.identity(), "config_hash": config_hash(cell.identity()), "metrics_json": {},
        "wall_seconds": float("nan"), "peak_rss_mb": float("nan"),
    }


def run_benchmark_ray(
    grid: dict[str, Any],
    store,
    *,
    address: str,
    data_root=None,
    cache_dir=None,
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
    retry_errors: bool = False,
    group_fits: bool = True,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """:func:`zsl.bench.runner.run_benchmark` with the cells run as tasks on the Ray cluster at ``address``.

    Returns the same summary (``cells`` = the grid's hashes in grid order, ``ran``, ``skipped``,
    ``errors``, ``over_budget``, ``load_errors``, ``notes``, ``wall_seconds``).
    """
    from ..data import load_dataset, require_semantics
    from ..distributed import cluster_cpus, ray_cluster

    todo_sets, cells, done, errored_before, summary = plan_benchmark(
        grid, store, data_root=data_root, methods=methods, datasets=datasets, retry_errors=retry_errors, log=log)
    code = code_version()
    budget = float(grid.get("total_budget_seconds") or 0)
    timeout = float(grid.get("cell_timeout_seconds") or 0)
    n_total = len(cells)
    t_start = time.perf_counter()
    deadline = time.time() + budget if budget else None

    def over_budget() -> bool:
        return bool(budget) and time.perf_counter() - t_start > budget

    with ray_cluster(address, worker_env=True) as ray:
        slots = cluster_cpus(ray)
        task = ray.remote(num_cpus=1)(run_fit_group)
        log(f"zsl benchmark: Ray cluster with {slots} CPUs; {n_total} cells, one task per "
            f"{'fit group (ZSL+GZSL of a method)' if group_fits else 'cell'}")
        in_flight: dict[Any, list[Cell]] = {}  # generator -> its cells
        received: set[str] = set()
        default_semantics: dict[tuple[str, str], str] = {}
        finished = 0

        def collect(block: bool) -> None:
            """Store every row that is ready (waiting for at least one when ``block``)."""
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=None if block else 0)
                if not ready:
                    return
                block = False
                gen = ready[0]
                try:
                    row = ray.get(next(gen))
                except StopIteration:
                    del in_flight[gen]
                    continue
                except Exception as exc:  # noqa: BLE001 - the task failed past Ray's retries (a crashing worker)
                    lost = [c for c in in_flight.pop(gen) if c.cell_hash not in received]
                    msg = f"the Ray task died: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
                    for cell in lost:
                        record(failed_row(cell, msg, grid_name=grid["name"], code=code,
                                          semantics=default_semantics.get((cell.dataset, cell.split))))
                    continue
                record(row)

        def record(row: dict[str, Any]) -> None:
            nonlocal finished
            h = row["cell_hash"]
            if h in received:  # a retried task yields its finished cells again
                return
            received.add(h)
            if row.get("over_budget"):
                summary["over_budget"] += 1
                return
            finished += 1
            stored = store.insert(row, replace=h in errored_before)
            summary["ran"] += 1
            label = f"{row['spec']} on {row['dataset']}/{row['split']} {row['setting'].upper()} seed {row['seed']}"
            if row["status"] == "error":
                summary["errors"] += 1
                log(f"[{finished} done] {label}: ERROR after {row['wall_seconds']:.1f}s: {row['error']}")
            else:
                m = row["metrics_json"]
                score = (f"top-1 {m['acc']:.4f}" if row["setting"] == "zsl"
                         else f"U {m['U']:.4f} S {m['S']:.4f} H {m['H']:.4f}")
                log(
                    f"[{finished} done] {label}: {score}  "
                    f"({row['wall_seconds']:.1f}s, peak {row['peak_rss_mb']:.0f} MiB)"
                    + ("" if stored else " [already stored by another worker]")
                )

        for dataset, split, load in todo_sets:
            group = [c for c in cells if (c.dataset, c.split) == (dataset, split) and c.load == load]
            if not group:
                continue
            if over_budget():
                summary["over_budget"] += len(group)
                continue
            try:
                t0 = time.perf_counter()
                ds = load_dataset(dataset, split, data_root=data_root, cache_dir=cache_dir, **load)
                for source in {c.semantics for c in group if c.semantics}:
                    require_semantics(ds, source, cache_dir)
                fp = ds.fingerprint()
                default_semantics[(dataset, split)] = ds.default_semantics
                log(f"[{dataset}/{split}] loaded in {time.perf_counter() - t0:.1f}s: {ds.summary()}")
            except Exception as exc:  # noqa: BLE001 - a dataset that fails to load is reported, the rest still runs
                msg = f"{type(exc).__name__}: {exc}"
                summary["load_errors"][f"{dataset}/{split}"] = msg
                log(f"[{dataset}/{split}] could not be loaded, its {len(group)} cells are skipped: {msg}")
                continue
            todo = []
            for cell in group:
                cell.fingerprint = fp
                summary["cells"].append(cell.cell_hash)
                if cell.cell_hash in done:
                    summary["skipped"] += 1
                else:
                    todo.append(cell)
            if not todo:
                del ds
                continue
            ds_ref = ray.put(ds)
            del ds
            for part in (fit_groups(todo) if group_fits else [[c] for c in todo]):
                while len(in_flight) >= slots:  # submit as CPUs free up, so the budget can stop new work
                    collect(block=True)
                if over_budget():
                    summary["over_budget"] += len(part)  # not stored: the next start picks them up
                    continue
                gen = task.remote(part, ds_ref, timeout=timeout, code=code, grid_name=grid["name"],
                                  cache_dir=cache_dir, deadline=deadline)
                in_flight[gen] = part
            del ds_ref  # the tasks in flight keep the object alive; it goes when they finish
        while in_flight:
            collect(block=True)
    summary["wall_seconds"] = time.perf_counter() - t_start
    if summary["over_budget"]:
        summary["notes"].append(f"{summary['over_budget']} cells not started: the grid's total budget of {budget:g} s "
                                "was spent; run the same command again to continue where it stopped")
    return summary


__all__ = ["failed_row", "fit_groups", "run_benchmark_ray", "run_fit_group"]
