"""``zsl tune METHOD --dataset D``: a hyperparameter search (Optuna) over the method's search space.

The objective is the validation classes (``--objective val``) or the CPL slides' class-wise
cross-validation on the seen classes (``--objective classwise-cv``); test classes are never used.
Start several workers (on one or many machines) with the same ``--storage`` URL to share a study.
``zsl run METHOD --params-from-study NAME`` applies the best trial.
"""
from __future__ import annotations

import json
import sys


def add_tune_args(p) -> None:
    from ..tune import OBJECTIVES, SAMPLERS

    p.add_argument("--objective", choices=OBJECTIVES, default="val",
                   help="validation classes (default) or class-wise CV over the seen classes")
    p.add_argument("--setting", choices=("zsl", "gzsl"), default="zsl")
    p.add_argument("--trials", type=int, default=20, help="trials the study should hold in total (default 20)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                   help="tpe, or grid: each trial a distinct point of a categorical space, in a fixed order")
    p.add_argument("--folds", type=int, default=3, help="class-wise CV: folds over the seen classes (default 3)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage, e.g. postgresql://user@host:5432/db "
                   "(default: sqlite:///<cache>/optuna/studies.db)")
    p.add_argument("--study-name", default=None, help="override the derived study name")
    p.add_argument("--seed", type=int, default=0, help="seed for the fits")
    p.add_argument("--max-per-class", type=int, default=None, help="class-wise CV: images per seen class (default all)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="fix a hyperparameter outside the search (repeatable)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the best parameters")


def register(subparsers) -> None:
    from ..cli import add_dataset_args

    p = subparsers.add_parser(
        "tune",
        help="hyperparameter search (Optuna) over a method's search space, on validation classes or class-wise CV",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("method", help="method name or name.preset (see `zsl methods`)")
    add_dataset_args(p)
    add_tune_args(p)
    p.set_defaults(func=run_tune)


def run_tune(args) -> int:
    from .._registry import create_method
    from ..cli import parse_overrides
    from ..data import load_dataset, require_semantics
    from ..errors import ZSLError
    from ..tune import describe, study_best_params, tune

    if args.trials < 1:
        raise ZSLError("--trials must be at least 1")
    fixed = parse_overrides(args.set)
    spec = args.method
    if fixed:
        create_method(spec, **fixed)  # a bad --set is a one-line error before the data is read
    load = {"max_per_class": args.max_per_class} if args.max_per_class and args.objective == "val" else {}
    ds = require_semantics(
        load_dataset(args.dataset, args.split, data_root=args.data_root, cache_dir=args.cache_dir, **load),
        args.semantics, args.cache_dir,
    )
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    study = tune(spec, ds, objective=args.objective, setting=args.setting, trials=args.trials, storage=args.storage,
                 semantics=args.semantics, seed=args.seed, folds=args.folds, sampler=args.sampler,
                 max_per_class=args.max_per_class, cache_dir=args.cache_dir, name=args.study_name, log=log,
                 fixed=fixed)
    if args.json:
        try:
            best = study_best_params(study.study_name, args.storage, cache_dir=args.cache_dir)
        except ZSLError:
            best = None
        print(json.dumps({"study": study.study_name, "n_trials": len(study.trials), "best_params": best}))
    else:
        print(describe(study))
        print(f"use it with: zsl run {spec} --dataset {args.dataset} --params-from-study '{study.study_name}'")
    return 0
