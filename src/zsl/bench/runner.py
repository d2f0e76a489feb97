"""The benchmark runner: a declared grid of cells, each run and stored as one row; resumable.

One runner and one store serve three tasks (a grid's ``task``, ``zsl benchmark --task``):

* ``classification`` (``grids/quick.toml``, ``grids/full.toml``): methods x datasets x splits x
  settings (ZSL, GZSL) x seeds, each cell run with the evaluation protocol
  (:func:`zsl.eval.protocol.run_method`);
* ``retrieval`` (``grids/retrieval-*.toml``): hashing methods x datasets x splits x code lengths x
  seeds, each cell one test run of the zero-shot retrieval protocol with its hyperparameters
  chosen on validation classes (:func:`zsl.bench.hashing.run_retrieval_cell`);
* ``labelling`` (``grids/labelling-*.toml``): label spaces x T x datasets x splits, each cell the
  ``zsl label`` ConSE labeller ranking a split's test images against the dataset's class names
  (:func:`zsl.bench.labelling.run_labelling_cell`).

A *cell* is one (method spec, dataset, split, setting, seed); its identity is the hash of its
resolved config -- method spec and overrides, dataset, split, loader options, setting, seed,
semantics, selection and the dataset fingerprint (so changed data is a new cell, never a stale
hit); retrieval and labelling cells add their task and task parameters (code length, label space,
protocol options) to it. Cells already in the store are skipped, so a benchmark killed at any
point (even SIGKILL) completes on the next start with no duplicate and no partial row: a row is
inserted in one transaction only after its cell has finished.

A cell that raises (or passes the grid's ``cell_timeout_seconds``) is stored with status
``error`` and its message; the benchmark carries on. ``--retry-errors`` reruns those cells.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ZSLError
from ..io import config_hash

GRIDS = ("quick", "full")
TASKS = ("classification", "retrieval", "labelling")


# ---------------------------------------------------------------------------------------- grids
def grid_file(name: str, task: str = "classification") -> str:
    """The packaged grid file of preset ``name`` for ``task`` (classification keeps its old names)."""
    return f"{name}.toml" if task == "classification" else f"{task}-{name}.toml"


def load_grid(name_or_path: str | os.PathLike, task: str | None = None) -> dict[str, Any]:
    """A grid by preset name (``quick``, ``full``; of ``task``) or TOML file path, with defaults filled in.

    A grid file declares its ``task`` (default ``classification``); asking for another task is an error.
    """
    if task is not None and task not in TASKS:
        raise ZSLError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    text: str
    p = Path(name_or_path)
    if str(name_or_path) in GRIDS:
        fname = grid_file(str(name_or_path), task or "classification")
        text = resources.files("zsl.bench").joinpath("grids", fname).read_text()
        default_name = str(name_or_path) if task in (None, "classification") else f"{task}-{name_or_path}"
    elif p.is_file():
        text = p.read_text()
        default_name = p.stem
    else:
        raise ZSLError(f"grid {str(name_or_path)!r} is neither a preset ({', '.join(GRIDS)}) nor a TOML file")
    try:
        grid = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ZSLError(f"{name_or_path}: invalid TOML: {exc}") from None
    grid.setdefault("name", default_name)
    grid.setdefault("task", "classification")
    where = f"grid {grid['name']!r}"
    if grid["task"] not in TASKS:
        raise ZSLError(f"{where}: unknown task {grid['task']!r}; valid tasks: {', '.join(TASKS)}")
    if task is not None and grid["task"] != task:
        raise ZSLError(f"{where} is a {grid['task']} grid, not a {task} grid; pass --task {grid['task']}")
    grid.setdefault("methods", "conse" if grid["task"] == "labelling" else "all")
    grid.setdefault("presets", ["default"])
    grid.setdefault("settings", ["zsl", "gzsl"] if grid["task"] == "classification" else ["zsl"])
    grid.setdefault("seeds", [0])
    grid.setdefault("selection", "val")
    grid.setdefault("cell_timeout_seconds", 0)
    grid.setdefault("total_budget_seconds", 0)
    grid.setdefault("other_datasets", False)
    grid.setdefault("fallback", None)
    grid.setdefault("datasets", {})
    grid.setdefault("method_options", {})
    for key in ("presets", "settings", "seeds"):
        if not isinstance(grid[key], list) or not grid[key]:
            raise ZSLError(f"{where}: {key!r} must be a non-empty list")
    bad = [s for s in grid["settings"] if s not in ("zsl", "gzsl")]
    if bad:
        raise ZSLError(f"{where}: unknown settings {bad}; valid: zsl, gzsl")
    if grid["task"] == "labelling":
        grid["methods"] = ["conse"]  # the labeller is ConSE over the ImageNet-1k classifier; its axes are below
    elif grid["methods"] != "all" and (not isinstance(grid["methods"], list) or not grid["methods"]
                                       or not all(isinstance(m, str) for m in grid["methods"])):
        raise ZSLError(
            f"{where}: 'methods' must be \"all\" or a non-empty list of method names, got {grid['methods']!r}"
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in grid["seeds"]):
        raise ZSLError(f"{where}: 'seeds' must be integers in [0, {2**32 - 1}], got {grid['seeds']!r}")
    if not isinstance(grid["datasets"], dict) or not all(isinstance(v, dict) for v in grid["datasets"].values()):
        raise ZSLError(f"{where}: 'datasets' must be tables ([datasets.NAME])")
    for name, opts in grid["datasets"].items():
        splits = opts.get("splits", [])
        if not isinstance(splits, list) or not all(isinstance(x, str) for x in splits):
            raise ZSLError(f"{where}: datasets.{name}.splits must be a list of split names, got {splits!r}")
    if grid["task"] == "retrieval":
        _check_retrieval_grid(grid, where)
    elif grid["task"] == "labelling":
        _check_labelling_grid(grid, where)
    _check_presets(grid)
    return grid


def _positive_ints(grid: dict[str, Any], key: str, where: str, *, zero_ok: bool = False) -> None:
    values = grid[key]
    if not isinstance(values, list) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and (v >= 0 if zero_ok else v > 0) for v in values):
        raise ZSLError(f"{where}: {key!r} must be a non-empty list of {'non-negative' if zero_ok else 'positive'} "
                       f"integers, got {values!r}")


def _check_retrieval_grid(grid: dict[str, Any], where: str) -> None:
    grid.setdefault("bits", [32, 64])
    grid.setdefault("top_k", 1000)
    grid.setdefault("queries", 1000)
    grid.setdefault("query_seed", 0)
    _positive_ints(grid, "bits", where)
    if any(b % 8 for b in grid["bits"]):
        raise ZSLError(f"{where}: 'bits' must be positive multiples of 8, got {grid['bits']!r}")
    for key, least in (("top_k", 1), ("queries", 1), ("query_seed", 0)):
        if not isinstance(grid[key], int) or isinstance(grid[key], bool) or grid[key] < least:
            raise ZSLError(f"{where}: {key!r} must be an integer >= {least}, got {grid[key]!r}")
    if grid["selection"] not in ("val", "none"):
        raise ZSLError(f"{where}: retrieval 'selection' must be \"val\" (validation classes) or \"none\" (presets as "
                       f"they are), got {grid['selection']!r}")
    if grid["methods"] != "all":
        from .._registry import get_method_class

        for name in grid["methods"]:
            if not get_method_class(name).tags.get("retrieval"):
                raise ZSLError(f"{where}: {name!r} is not a hashing (retrieval) method; "
                               "hashing methods: lsh, itq, sdh, zsh")


def _check_labelling_grid(grid: dict[str, Any], where: str) -> None:
    from ..labelling import DEFAULT_SPACE
    from ..semantics.label_spaces import parse_space

    grid.setdefault("spaces", [DEFAULT_SPACE])
    grid.setdefault("T", [10])
    grid.setdefault("images", "test")
    if not isinstance(grid["spaces"], list) or not grid["spaces"]:
        raise ZSLError(f"{where}: 'spaces' must be a non-empty list of label spaces")
    for space in grid["spaces"]:
        parse_space(space)  # a bad name: one line listing the valid spaces
    _positive_ints(grid, "T", where, zero_ok=True)
    for key, images in [("images", grid["images"]),
                        *((f"datasets.{n}.images", o["images"]) for n, o in grid["datasets"].items() if "images" in o)]:
        if images not in ("test", "test_unseen"):
            raise ZSLError(f"{where}: {key!r} must be \"test\" (every test image of the split) or \"test_unseen\", "
                           f"got {images!r}")


def _check_presets(grid: dict[str, Any]) -> None:
    """Every preset a grid names must be declared by some method (a typo would silently fall back)."""
    from .._registry import get_method_class, list_methods

    declared = {p for name in list_methods() for p in get_method_class(name).all_presets()}
    named = [*grid["presets"], *(p for opts in grid["datasets"].values() for p in opts.get("presets", [])),
             *(opts["preset"] for opts in grid["method_options"].values() if "preset" in opts)]
    unknown = sorted(set(named) - declared)
    if unknown:
        raise ZSLError(f"grid {grid['name']!r} names presets no method declares: {', '.join(unknown)}; "
                       f"valid: {', '.join(sorted(declared))}")


def grid_methods(grid: dict[str, Any], dataset: str | None = None) -> list[str]:
    """Method specs ``name.preset`` of the grid (``"all"`` = every registered non-retrieval method, or
    every hashing method in a retrieval grid).

    A method without an explicit preset gets the first preset it declares from, in order, its
    ``method_options`` preset, the dataset's ``presets`` list, then the grid's ``presets`` list
    (so ``cpl.awa1`` is used on AwA1 when CPL declares it, ``tiny`` on the synthetic fallback).
    """
    from .._registry import get_method_class, list_methods

    names = grid["methods"]
    if names == "all":
        names = list_methods(retrieval=grid.get("task") == "retrieval")
    specs = []
    for name in names:
        base, _, preset = str(name).partition(".")
        cls = get_method_class(base)
        if not preset:
            opts = grid["method_options"].get(base, {})
            ds_order = grid["datasets"].get(dataset, {}).get("presets", []) if dataset else []
            order = [opts["preset"]] if "preset" in opts else [*ds_order, *grid["presets"]]
            preset = next((p for p in order if p in cls.all_presets()), "default")
        specs.append(f"{base}.{preset}")
    return specs


IMAGE_FOLDER = "image-folder:"


def grid_datasets(grid: dict[str, Any], data_root=None, requested: list[str] | None = None
                  ) -> tuple[list[tuple[str, str, dict]], list[str]]:
    """``[(dataset, split, loader kwargs)]`` to run, and notes about the rest.

    Without ``requested``: the grid's datasets present under the data root (plus any other one when
    the grid says ``other_datasets``; the fallback when none is). With ``requested`` (``--datasets``):
    exactly those, each one the grid declares with its splits and loader options, any other dataset
    present under the data root on its first split, and ``image-folder:PATH`` (a folder of class
    folders or a ``.tar.gz``; loader options from the grid's ``[datasets."image-folder"]``). A name
    that is none of these is a one-line error naming the valid ones, never a silent skip.
    """
    from ..data import dataset_splits, list_datasets

    available = list_datasets(data_root)
    declared = grid["datasets"]
    out: list[tuple[str, str, dict]] = []
    notes: list[str] = []

    def add(name: str, opts: dict, default_splits=None) -> None:
        for split in opts.get("splits") or list(default_splits or dataset_splits(name, data_root))[:1]:
            out.append((name, split, dict(opts.get("load", {}))))

    if requested:
        for name in requested:
            if name.startswith(IMAGE_FOLDER):
                path = Path(name[len(IMAGE_FOLDER):]).expanduser()
                if not name[len(IMAGE_FOLDER):].strip() or not path.exists():
                    raise ZSLError(f"--datasets {name}: no such folder or archive; give image-folder:PATH with PATH a "
                                   "folder of class folders (or a .tar.gz of one)")
                opts = declared.get("image-folder", {})
                out.append((f"{IMAGE_FOLDER}{path.resolve()}", "default", dict(opts.get("load", {}))))
            elif name in available:
                add(name, declared.get(name, {}))
            else:
                from ..io import data_root as resolve_root

                raise ZSLError(f"--datasets {name}: the data root {resolve_root(data_root)} has no such dataset; "
                               f"valid: {', '.join(available)}, or image-folder:PATH (point at the data with "
                               "--data-root or ZSL_DATA)")
        return out, notes
    for name, opts in declared.items():
        if opts.get("only_as_fallback") or name == "image-folder":
            continue
        if name not in available:
            notes.append(f"{name}: not found under the data root, skipped")
            continue
        add(name, opts)
    if grid["other_datasets"]:
        for name in available:
            if name not in declared and name != "synthetic":
                out.append((name, list(dataset_splits(name, data_root))[0], {}))
    if not out and grid["fallback"]:
        fb = grid["fallback"]
        add(fb, declared.get(fb, {}))
        notes.append(
            f"no real dataset found: running on the built-in {fb!r} dataset. Point at real data with "
            "--data-root PATH or ZSL_DATA=PATH (a folder holding awa1-lampert/, cifar10-jpg.tar.gz or xlsa17 folders)"
        )
    return out, notes


@dataclass
class Cell:
    spec: str
    dataset: str
    split: str
    setting: str
    seed: int
    selection: str = "val"
    semantics: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    task: str = "classification"
    #: what else defines a retrieval / labelling cell (code length and protocol; label space and T)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.spec.split(".", 1)[0]

    def identity(self) -> dict[str, Any]:
        ident = {
            "spec": self.spec, "overrides": self.overrides, "dataset": self.dataset, "split": self.split,
            "load": self.load, "setting": self.setting, "seed": self.seed, "semantics": self.semantics,
            "selection": self.selection, "dataset_fingerprint": self.fingerprint,
        }
        if self.task != "classification":  # classification identities (and stored hashes) stay as they were
            ident.update(task=self.task, params=self.params)
        return ident

    @property
    def cell_hash(self) -> str:
        return config_hash(self.identity())

    def label(self) -> str:
        if self.task == "labelling":
            return f"labelling {self.dataset}/{self.split} in {self.params['space']}, T={self.params['T'] or 'all'}"
        setting = f"{self.params['n_bits']} bits" if self.task == "retrieval" else self.setting.upper()
        return f"{self.spec} on {self.dataset}/{self.split} {setting} seed {self.seed}"


def expand_grid(grid: dict[str, Any], datasets: list[tuple[str, str, dict]]) -> list[Cell]:
    """Every cell of the grid over the given datasets (fingerprints are filled in when loaded)."""
    from .._registry import get_method_class

    task = grid.get("task", "classification")
    if task == "retrieval":
        return _retrieval_cells(grid, datasets)
    if task == "labelling":
        return _labelling_cells(grid, datasets)
    cells = []
    for dataset, split, load in datasets:
        for spec in grid_methods(grid, dataset):
            cls = get_method_class(spec)
            opts = grid["method_options"].get(cls.name, {})
            for setting in grid["settings"]:
                if setting == "gzsl" and not cls.tags.get("supports_gzsl", True):
                    continue
                for seed in grid["seeds"]:
                    cells.append(
                        Cell(
                            spec, dataset, split, setting, int(seed), opts.get("selection", grid["selection"]),
                            opts.get("semantics"), dict(opts.get("overrides", {})), dict(load),
                        )
                    )
    return cells


def _retrieval_cells(grid: dict[str, Any], datasets) -> list[Cell]:
    """method x dataset x split x code length x seed. The store's ``setting`` column holds the code
    length (``"64b"``); the protocol options and the seed of the validation selection (the grid's
    first seed, shared by every seed of a cell's method and code length) are cell parameters."""
    from .._registry import get_method_class

    cells = []
    for dataset, split, load in datasets:
        for spec in grid_methods(grid, dataset):
            opts = grid["method_options"].get(get_method_class(spec).name, {})
            selection = opts.get("selection", grid["selection"])
            for n_bits in grid["bits"]:
                params = {"n_bits": int(n_bits), "top_k": grid["top_k"], "queries": grid["queries"],
                          "query_seed": grid["query_seed"],
                          "selection_seed": int(grid["seeds"][0]) if selection == "val" else None,
                          "param_grid": opts.get("param_grid")}
                for seed in grid["seeds"]:
                    cells.append(Cell(spec, dataset, split, f"{n_bits}b", int(seed), selection, opts.get("semantics"),
                                      dict(opts.get("overrides", {})), dict(load), task="retrieval",
                                      params=dict(params)))
    return cells


def _labelling_cells(grid: dict[str, Any], datasets) -> list[Cell]:
    """label space x T x dataset x split (deterministic: seed 0). ``setting`` holds ``T10`` / ``Tall``;
    the images ranked are the grid's ``images`` unless the dataset's table says otherwise."""
    cells = []
    for dataset, split, load in datasets:
        declared = grid["datasets"].get("image-folder" if dataset.startswith(IMAGE_FOLDER) else dataset, {})
        for space in grid["spaces"]:
            for T in grid["T"]:
                params = {"space": space, "T": int(T) or None, "images": declared.get("images", grid["images"])}
                cells.append(Cell(f"conse.{space}", dataset, split, f"T{int(T) or 'all'}", 0, "none", None, {},
                                  dict(load), task="labelling", params=params))
    return cells


# ---------------------------------------------------------------------------------------- measuring
def code_version() -> str:
    """``<package version>+g<commit>[.dirty]`` when running from a git checkout, else the version."""
    from .. import __version__

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        if not sha:
            return __version__
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(here.parent)], cwd=here, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


class PeakMemory:
    """Peak resident memory of this process during a block, in MiB.

    Linux: resets the kernel's high-water mark (``/proc/self/clear_refs`` <- 5) on entry and reads
    ``VmHWM`` on exit, so each cell gets its own peak although they share a process. Elsewhere it
    falls back to ``ru_maxrss`` (the process-lifetime peak), and says so in ``self.method``.
    """

    def __enter__(self):
        self.method = "VmHWM"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.method = "ru_maxrss"
        self.peak_mb = float("nan")
        return self

    def __exit__(self, *exc):
        if self.method == "VmHWM":
            try:
                with open("/proc/self/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            self.peak_mb = int(line.split()[1]) / 1024.0
                            break
            except OSError:
                self.method = "ru_maxrss"
        if self.method == "ru_maxrss":
            from ..eval.protocol import peak_rss_mb

            self.peak_mb = peak_rss_mb()
        return False


class CellTimeout(BaseException):
    """Raised inside a cell that ran past its time budget (BaseException: method code must not swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    if not seconds or seconds <= 0 or not hasattr(signal, "SIGALRM") or os.name != "posix":
        yield
        return

    def _alarm(signum, frame):
        raise CellTimeout(f"exceeded the cell time budget of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------- running
def stored_dataset_name(name: str, width: int = 64) -> str:
    """The store's ``dataset`` column holds 64 characters (PostgreSQL enforces it): a longer
    ``image-folder:PATH`` keeps the end of its path there; the whole name is in the row's config."""
    if len(name) <= width:
        return name
    return IMAGE_FOLDER + "..." + name[-(width - len(IMAGE_FOLDER) - 3):]


def _base_row(cell: Cell, dataset, code: str, grid_name: str) -> dict[str, Any]:
    return {
        "cell_hash": cell.cell_hash, "grid": grid_name, "task": cell.task, "method": cell.method, "spec": cell.spec,
        "dataset": stored_dataset_name(cell.dataset), "split": cell.split, "setting": cell.setting, "seed": cell.seed,
        "semantics": cell.semantics or dataset.default_semantics, "selection": cell.selection,
        "code_version": code, "dataset_fingerprint": cell.fingerprint,
    }


def task_context(task: str, dataset, cache_dir=None):
    """What the cells of one dataset share: the classification ``FitCache`` (ZSL and GZSL cells reuse
    a fit), the retrieval splits and validation choices, or the labelling classifier logits."""
    if task == "retrieval":
        from .hashing import RetrievalContext

        return RetrievalContext(dataset)
    if task == "labelling":
        from .labelling import LabellingContext

        return LabellingContext(dataset, cache_dir)
    from ..eval.protocol import FitCache

    return FitCache()


def _guarded(cell: Cell, row: dict[str, Any], timeout: float, work: Callable[[], Any]):
    """Run one cell's work under the time limit with its peak memory measured; fill the row's wall
    time and peak RSS. Returns ``(output, memory)``; a failure becomes an error row (output None)."""
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        try:
            with time_limit(timeout):
                out = work()
        except (Exception, CellTimeout) as exc:  # noqa: BLE001 - a failing cell is stored, the grid goes on
            out = None
            row.update(status="error", error=f"{type(exc).__name__}: {exc}",
                       config_json={**cell.identity(), "traceback": traceback.format_exc(limit=-3)},
                       config_hash=config_hash(cell.identity()), metrics_json={})
    row["wall_seconds"] = time.perf_counter() - t0
    row["peak_rss_mb"] = mem.peak_mb
    return out, mem


def _run_task_cell(cell: Cell, dataset, *, timeout: float, code: str, grid_name: str, context,
                   cache_dir=None) -> dict[str, Any]:
    """A retrieval or labelling cell: its task's function, timed and memory-measured like a classification cell."""
    if cell.task == "retrieval":
        from .hashing import run_retrieval_cell as run
    else:
        from .labelling import run_labelling_cell as run
    row = _base_row(cell, dataset, code, grid_name)
    context = context if context is not None else task_context(cell.task, dataset, cache_dir)
    out, mem = _guarded(cell, row, timeout, lambda: run(cell, dataset, context))
    if out is None:
        return row
    config = {**out["config"], "cell": cell.identity(), "peak_memory_method": mem.method}
    row.update(status="ok", error=None, config_json=config, config_hash=config_hash(out["config"]),
               metrics_json=out["metrics"], fit_seconds=out.get("fit_seconds"),
               semantics=out.get("semantics", row["semantics"]))
    return row


def cell_score(cell: Cell, metrics: dict[str, Any]) -> str:
    """The one-line score of a finished cell (progress log)."""
    if cell.task == "retrieval":
        return f"mAP {metrics['mAP']:.4f} mAP_authors {metrics['mAP_authors']:.4f}"
    if cell.task == "labelling":
        return f"hit@1 {metrics['hit@1']:.4f} hit@5 {metrics['hit@5']:.4f}"
    if cell.setting == "zsl":
        return f"top-1 {metrics['acc']:.4f}"
    return f"U {metrics['U']:.4f} S {metrics['S']:.4f} H {metrics['H']:.4f}"


def run_cell(cell: Cell, dataset, *, timeout: float = 0, code: str = "", grid_name: str = "",
             cache_dir=None, save_runs: bool = True, fit_cache=None) -> dict[str, Any]:
    """Run one cell; return its store row (ok or error).

    Classification cells run through :func:`zsl.eval.protocol.run_method`; ``fit_cache``: a
    :class:`~zsl.eval.protocol.FitCache` shared by the cells of one dataset, so a method's ZSL and
    GZSL cells reuse identical fits (marked ``fit_reused`` in the row's config). Methods that can
    checkpoint long fits do so under ``<cache>/checkpoints``. Retrieval and labelling cells take
    their task's context (:func:`task_context`) in ``fit_cache``.
    """
    if cell.task != "classification":
        return _run_task_cell(cell, dataset, timeout=timeout, code=code, grid_name=grid_name, context=fit_cache,
                              cache_dir=cache_dir)
    from .._registry import get_method_class
    from ..eval.protocol import run_method, save_run
    from ..io import cache_root

    overrides = dict(cell.overrides)
    if "checkpoint_dir" in get_method_class(cell.spec).param_names():
        overrides.setdefault("checkpoint_dir", str(cache_root(cache_dir) / "checkpoints"))

    row = _base_row(cell, dataset, code, grid_name)
    result, mem = _guarded(cell, row, timeout, lambda: run_method(
        cell.spec, dataset, setting=cell.setting, semantics=cell.semantics, seed=cell.seed, selection=cell.selection,
        overrides=overrides, fit_cache=fit_cache))
    if result is None:
        return row
    config = {**result.config, "cell": cell.identity(), "validation": result.validation,
              "peak_memory_method": mem.method, "fit_reused": result.fit_reused}
    row.update(
        status="ok", error=None, config_json=config, config_hash=config_hash(result.config),
        metrics_json=result.metrics, fit_seconds=result.fit_seconds, predict_seconds=result.predict_seconds,
        semantics=result.semantics, selection=result.selection,
        **{m: result.metrics.get(m) for m in ("acc", "U", "S", "H")},
    )
    if save_runs:
        result.peak_rss_mb = mem.peak_mb
        with contextlib.suppress(OSError):
            save_run(result, cache_dir)
    return row


def plan_benchmark(grid: dict[str, Any], store, *, data_root=None, methods=None, datasets=None,
                   retry_errors: bool = False, log: Callable[[str], None] = lambda msg: None):
    """What a benchmark run (local or on Ray) has to do: ``(todo_sets, cells, done, errored_before,
    summary)`` -- the datasets to load, the grid's cells after the method filter, the cell hashes
    the store already holds, those held as errors that ``retry_errors`` reruns, an empty summary."""
    todo_sets, notes = grid_datasets(grid, data_root, datasets)
    for n in notes:
        log(f"zsl benchmark: {n}")
    cells = expand_grid(grid, todo_sets)
    if methods:
        cells = [c for c in cells if c.method in methods or c.spec in methods]
    done = store.done_hashes(include_errors=not retry_errors)
    errored_before = store.done_hashes() - store.done_hashes(include_errors=False) if retry_errors else set()
    summary = {"cells": [], "ran": 0, "skipped": 0, "errors": 0, "over_budget": 0, "load_errors": {}, "notes": notes}
    return todo_sets, cells, done, errored_before, summary


def run_benchmark(
    grid: dict[str, Any],
    store,
    *,
    data_root=None,
    cache_dir=None,
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
    retry_errors: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Run every cell of ``grid`` not yet in ``store``; returns a summary with the grid's cell hashes."""
    from ..data import load_dataset, require_semantics

    todo_sets, cells, done, errored_before, summary = plan_benchmark(
        grid, store, data_root=data_root, methods=methods, datasets=datasets, retry_errors=retry_errors, log=log)
    code = code_version()
    budget = float(grid.get("total_budget_seconds") or 0)
    n_total = len(cells)
    t_start = time.perf_counter()
    i = 0
    for dataset, split, load in todo_sets:
        group = [c for c in cells if (c.dataset, c.split) == (dataset, split) and c.load == load]
        if not group:
            continue
        if budget and time.perf_counter() - t_start > budget:
            # the budget is spent: do not even load (or extract features for) this dataset
            summary["over_budget"] += len(group)
            i += len(group)
            continue
        try:
            t0 = time.perf_counter()
            ds = load_dataset(dataset, split, data_root=data_root, cache_dir=cache_dir, **load)
            for source in {c.semantics for c in group if c.semantics}:
                require_semantics(ds, source, cache_dir)
            fp = ds.fingerprint()
            log(f"[{dataset}/{split}] loaded in {time.perf_counter() - t0:.1f}s: {ds.summary()}")
        except Exception as exc:  # noqa: BLE001 - a dataset that fails to load is reported, the rest still runs
            msg = f"{type(exc).__name__}: {exc}"
            summary["load_errors"][f"{dataset}/{split}"] = msg
            log(f"[{dataset}/{split}] could not be loaded, its {len(group)} cells are skipped: {msg}")
            i += len(group)
            continue
        context = task_context(grid["task"], ds, cache_dir)
        for cell in group:
            i += 1
            cell.fingerprint = fp
            h = cell.cell_hash
            summary["cells"].append(h)
            if h in done:
                summary["skipped"] += 1
                continue
            if budget and time.perf_counter() - t_start > budget:
                # not stored: the next start of the same grid picks these cells up
                summary["over_budget"] += 1
                continue
            log(f"[{i}/{n_total}] {cell.label()} ...")
            row = run_cell(cell, ds, timeout=float(grid.get("cell_timeout_seconds") or 0), code=code,
                           grid_name=grid["name"], cache_dir=cache_dir, fit_cache=context)
            stored = store.insert(row, replace=h in errored_before)
            summary["ran"] += 1
            if row["status"] == "error":
                summary["errors"] += 1
                log(f"[{i}/{n_total}]   ERROR after {row['wall_seconds']:.1f}s: {row['error']}")
            else:
                log(f"[{i}/{n_total}]   {cell_score(cell, row['metrics_json'])}  "
                    f"({row['wall_seconds']:.1f}s, peak {row['peak_rss_mb']:.0f} MiB)"
                    + ("" if stored else " [already stored by another worker]"))
        del ds
    summary["wall_seconds"] = time.perf_counter() - t_start
    if summary["over_budget"]:
        summary["notes"].append(f"{summary['over_budget']} cells not started: the grid's total budget of {budget:g} s "
                                "was spent; run the same command again to continue where it stopped")
    return summary
