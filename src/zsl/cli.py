"""The ``zsl`` command line: a thin layer over the Python API.

Core commands live here (``datasets``, ``methods``, ``run``). Every other command is a module in
:mod:`zsl.commands` exposing ``register(subparsers)``, which adds its parser and sets
``func=handler(args) -> int``; modules are discovered, so features add commands without
touching this file. Any :class:`~zsl.errors.ZSLError` becomes one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pkgutil
import sys
import warnings
from importlib import import_module

from .errors import ZSLError


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-root", default=None, help="folder with the datasets (default: $ZSL_DATA, else ~/.cache/zsl/data)"
    )
    p.add_argument(
        "--cache-dir", default=None, help="where derived artefacts go (default: $ZSL_CACHE, else ~/.cache/zsl)"
    )


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset name (see `zsl datasets`) or image-folder:PATH")
    p.add_argument("--split", default=None, help="class split (awa1: standard|ps; cifar10: rot0..rot4)")
    p.add_argument("--semantics", default=None, help="class-embedding source (attributes, glove, minilm, vgse)")
    add_data_args(p)


def _cmd_datasets(args) -> int:
    from .data import dataset_splits, list_datasets
    from .io import data_root

    root = data_root(args.data_root)
    print(f"data root: {root}{'' if root.is_dir() else ' (missing: set ZSL_DATA or --data-root)'}")
    for name in list_datasets(args.data_root):
        print(f"  {name:12s} splits: {', '.join(dataset_splits(name))}")
    return 0


def _cmd_methods(args) -> int:
    from ._registry import get_method_class, list_methods

    for name in list_methods():
        cls = get_method_class(name)
        tags = cls.tags
        doc = (cls.__module__ and sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        print(f"  {name:18s} {tags.get('family', ''):12s} gzsl={'yes' if tags.get('supports_gzsl') else 'no ':3s} "
              f"presets: {', '.join(sorted(cls.all_presets()))}   {doc[0] if doc else ''}")
    return 0


def parse_overrides(items: list[str] | None) -> dict:
    """``--set key=value`` pairs; values parsed as JSON when possible (numbers, booleans, lists).

    Python's spellings ``True``, ``False`` and ``None`` are read as JSON's ``true``, ``false`` and
    ``null``: the parameter errors print values the Python way, so a user copies them like that.
    """
    python_words = {"True": True, "False": False, "None": None}
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ZSLError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        if v in python_words:
            out[k] = python_words[v]
            continue
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def run_overrides(
    spec: str, items: list[str] | None, *, params_from_study: str | None = None, study_storage: str | None = None,
    cache_dir=None,
) -> tuple[dict, dict]:
    """``--set`` values over a study's best trial (when named), validated before any data is loaded.

    Returns (overrides, provenance) -- provenance is recorded in the run's config. Methods that can
    checkpoint long fits get ``<cache>/checkpoints`` unless ``--set checkpoint_dir=...`` says otherwise.
    """
    from ._registry import create_method, get_method_class
    from .io import cache_root, check_writable

    overrides = parse_overrides(items)
    provenance: dict = {}
    if params_from_study:
        from .tune import study_best_params

        tuned = study_best_params(params_from_study, study_storage, cache_dir=cache_dir)
        provenance["params_from_study"] = {
            "study": params_from_study, "storage": study_storage or "default", "params": tuned,
        }
        overrides = {**tuned, **overrides}
    cls = get_method_class(spec)
    if "checkpoint_dir" in cls.param_names() and "checkpoint_dir" not in overrides:
        overrides["checkpoint_dir"] = str(cache_root(cache_dir) / "checkpoints")
    create_method(spec, **overrides)  # a bad --set is a one-line error before the data is read
    if isinstance(overrides.get("checkpoint_dir"), str):
        check_writable(overrides["checkpoint_dir"], what="--set checkpoint_dir=", kind="folder")
    return overrides, provenance


def _cmd_run(args) -> int:
    from .data import load_dataset, require_semantics
    from .eval.protocol import run_method, save_run

    overrides, provenance = run_overrides(args.method, args.set, params_from_study=args.params_from_study,
                                          study_storage=args.study_storage, cache_dir=args.cache_dir)
    ds = require_semantics(load_dataset(args.dataset, args.split, data_root=args.data_root, cache_dir=args.cache_dir),
                           args.semantics, args.cache_dir)
    result = run_method(
        args.method,
        ds,
        setting=args.setting,
        semantics=args.semantics,
        seed=args.seed,
        selection=args.selection,
        overrides=overrides,
        verbose=not args.json,
    )
    result.config.update(provenance)
    folder = save_run(result, args.cache_dir)
    if args.json:
        keys = (
            ("acc",)
            if args.setting == "zsl"
            else ("U", "S", "H", "U_uncalibrated", "S_uncalibrated", "H_uncalibrated", "gamma", "AUSUC")
        )
        out = {
            "method": result.method,
            "dataset": result.dataset,
            "split": result.split,
            "setting": result.setting,
            "seed": result.seed,
            "selection": result.selection,
            "metrics": {k: result.metrics[k] for k in keys if k in result.metrics},
            "fit_seconds": result.fit_seconds,
            "predict_seconds": result.predict_seconds,
            "peak_rss_mb": result.peak_rss_mb,
            "config": result.config,
            "run_dir": str(folder),
        }
        print(json.dumps(out))
    else:
        label = " [ORACLE: tuned on test]" if result.selection.startswith("oracle") else ""
        m = result.metrics
        if args.setting == "zsl":
            print(f"{result.method} on {result.dataset}/{result.split} ZSL top-1 (per-class): {m['acc']:.4f}{label}")
        else:
            print(
                f"{result.method} on {result.dataset}/{result.split} GZSL uncalibrated U={m['U_uncalibrated']:.4f} "
                f"S={m['S_uncalibrated']:.4f} H={m['H_uncalibrated']:.4f}; "
                f"calibrated (gamma={m['gamma']:.4g} from validation) "
                f"U={m['U']:.4f} S={m['S']:.4f} H={m['H']:.4f}; AUSUC={m.get('AUSUC', float('nan')):.4f}{label}"
            )
        print(
            f"fit {result.fit_seconds:.1f}s, predict {result.predict_seconds:.2f}s, peak RSS {result.peak_rss_mb:.0f} "
            f"MiB; selected {result.config['selected']}; saved to {folder}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zsl", description="Zero-shot recognition, labelling and retrieval.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("datasets", help="list the datasets found under the data root")
    add_data_args(p)
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("methods", help="list the registered methods")
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("run", help="run one method on one dataset with the evaluation protocol")
    p.add_argument("method", help="method name or name.preset (see `zsl methods`)")
    add_dataset_args(p)
    p.add_argument("--setting", choices=("zsl", "gzsl"), default="zsl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--selection", choices=("val", "none", "oracle"), default="val",
                   help="model selection: validation classes (default), preset as is, or oracle (test-tuned, labelled)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hyperparameter (repeatable)")
    p.add_argument(
        "--params-from-study",
        default=None,
        metavar="NAME",
        help="start from the best trial of this Optuna study (`zsl tune` / `zsl cpl search`); "
        "recorded in the run config",
    )
    p.add_argument("--study-storage", default=None,
                   help="storage URL of --params-from-study (default sqlite:///<cache>/optuna/studies.db)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.set_defaults(func=_cmd_run)

    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


#: commands that only read: a read-only cache is fine for them
READ_ONLY_COMMANDS = frozenset({"datasets", "methods", "report"})
#: arguments naming a file or folder a command writes (checked before the command starts)
OUTPUT_ARGS = ("out", "figure", "csv", "plots", "update_readme")


def check_args(args) -> None:
    """Checks every command shares, done before any work: seeds, the cache, output paths.

    A long fit or extraction is never started when its result could not be saved.
    """
    from .io import cache_root, check_writable

    for name in ("seed", "seeds", "query_seed"):
        value = getattr(args, name, None)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, int) and not 0 <= v < 2**32:
                raise ZSLError(f"--{name.replace('_', '-')} must be an integer in [0, {2**32 - 1}], got {v}")
    if hasattr(args, "cache_dir") and args.command not in READ_ONLY_COMMANDS:
        cache_root(args.cache_dir)
    for name in OUTPUT_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            check_writable(value, what=f"--{name}")


def one_line(message: str) -> str:
    """Errors are one line (messages of libraries -- tarfile, SQLAlchemy -- may span several)."""
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # file names need not be valid UTF-8: print them escaped
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="backslashreplace")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _dispatch(args)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the command line are one line each, like errors (no source location)."""
    print(f"zsl: warning: {one_line(str(message))}", file=file or sys.stderr)


def _dispatch(args) -> int:
    try:
        check_args(args)
        return int(args.func(args) or 0)
    except ZSLError as exc:
        print(f"zsl: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `zsl methods | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the environment, not zsl: a full disk, a permission changed mid-run
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"zsl: error: {where}{one_line(str(exc.strerror or exc))} ({type(exc).__name__}); check the path, its "
              "permissions and the free space", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "zsl: error: out of memory; use a smaller dataset or batch (e.g. --batch-size), or a machine with more RAM",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
