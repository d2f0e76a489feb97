"""The ``zsl`` command line: a thin layer over the Python API.

Core commands live here (``datasets``, ``methods``, ``run``). Every other command is a module in
:mod:`zsl.commands` exposing ``register(subparsers)``, which adds its parser and sets
``func=handler(args) -> int``; modules are discovered, so features add commands without
touching this file. Any :class:`~zsl.errors.ZSLError` becomes one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import json
import os
import pkgutil
import sys
from importlib import import_module
from pathlib import Path

from .errors import ZSLError


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="folder with the datasets (default: $ZSL_DATA, else ~/.cache/zsl/data)")
    p.add_argument("--cache-dir", default=None, help="where derived artefacts go (default: $ZSL_CACHE, else ~/.cache/zsl)")


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
              f"presets: {', '.join(sorted(cls.presets))}   {doc[0] if doc else ''}")
    return 0


def parse_overrides(items: list[str] | None) -> dict:
    """``--set key=value`` pairs; values parsed as JSON when possible (numbers, booleans, lists)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ZSLError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def save_run(result, cache_dir=None) -> Path:
    """Write the run's resolved config and metrics to ``<cache>/runs/<id>/`` (atomically)."""
    from .io import cache_root, config_hash, write_json

    rid = f"{result.method}-{result.dataset}-{result.split}-{result.setting}-s{result.seed}-{config_hash(result.config)}"
    folder = cache_root(cache_dir) / "runs" / rid
    write_json(folder / "config.json", result.config)
    write_json(folder / "result.json", {**result.to_json(), "per_class": result.per_class})
    return folder


def _cmd_run(args) -> int:
    from .data import load_dataset
    from .eval.protocol import run_method

    ds = load_dataset(args.dataset, args.split, data_root=args.data_root)
    result = run_method(
        args.method,
        ds,
        setting=args.setting,
        semantics=args.semantics,
        seed=args.seed,
        selection=args.selection,
        overrides=parse_overrides(args.set),
        verbose=not args.json,
    )
    folder = save_run(result, args.cache_dir)
    if args.json:
        keys = ("acc",) if args.setting == "zsl" else ("U", "S", "H", "H_uncalibrated", "gamma", "AUSUC")
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
            print(f"{result.method} on {result.dataset}/{result.split} GZSL U={m['U']:.4f} S={m['S']:.4f} H={m['H']:.4f} "
                  f"(uncalibrated H={m['H_uncalibrated']:.4f}, gamma={m['gamma']:.4g}, AUSUC={m.get('AUSUC', float('nan')):.4f}){label}")
        print(f"fit {result.fit_seconds:.1f}s, predict {result.predict_seconds:.2f}s, peak RSS {result.peak_rss_mb:.0f} MiB; "
              f"selected {result.config['selected']}; saved to {folder}")
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
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.set_defaults(func=_cmd_run)

    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ZSLError as exc:
        print(f"zsl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `zsl methods | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
