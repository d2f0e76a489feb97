"""``zsl cpl ablation|relation|sensitivity|confusion|similarity|tsne|search``: the CPL slides' analyses.

Figures (PNG) and tables (markdown) go to ``--out`` (default
``<cache>/analyses/cpl/<dataset>-<split>/``). ``search`` is the slides' class-wise cross-validation
over their grid: exactly ``zsl tune cpl --objective classwise-cv --sampler grid`` (one tuner);
``zsl run cpl --params-from-study NAME`` applies its best trial.
"""
from __future__ import annotations

import sys
from pathlib import Path

ANALYSES = ("ablation", "relation", "sensitivity", "confusion", "similarity", "tsne")


def register(subparsers) -> None:
    from ..cli import add_dataset_args

    p = subparsers.add_parser("cpl", help="CPL analyses (ablation, sensitivity, ...) and its hyperparameter search")
    p.add_argument("analysis", choices=ANALYSES + ("search",))
    add_dataset_args(p)
    p.add_argument("--out", default=None, help="output folder (default: <cache>/analyses/cpl/<dataset>-<split>/)")
    p.add_argument(
        "--seeds", default="0", help="comma-separated seeds averaged by ablation/relation/sensitivity (default 0)"
    )
    p.add_argument("--preset", default="default", help="CPL preset (default: default)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a CPL hyperparameter (repeatable)")
    p.add_argument(
        "--params-from-study", default=None, metavar="NAME",
        help="start from the best trial of this Optuna study (see `zsl cpl search`); recorded with the outputs",
    )
    p.add_argument("--study-storage", default=None,
                   help="storage of --params-from-study (default sqlite:///<cache>/optuna/studies.db)")
    p.add_argument(
        "--params", default=None, help="sensitivity: comma-separated subset of lambda_rec,lambda_cls,lambda_inter,beta"
    )
    g = p.add_argument_group("search")
    g.add_argument("--n-trials", type=int, default=20, help="search: total trials the study should hold (default 20)")
    g.add_argument("--folds", type=int, default=3, help="search: class-wise folds over the seen classes (default 3)")
    g.add_argument("--storage", default=None,
                   help="search: SQLAlchemy URL (default sqlite:///<cache>/optuna/studies.db)")
    g.add_argument("--max-per-class", type=int, default=0, help="search: images per seen class used (default 0 = all)")
    g.add_argument("--json", action="store_true", help="search: print one JSON object with the best parameters")
    p.set_defaults(func=_cmd_cpl)


def _cmd_cpl(args) -> int:
    from .._registry import create_method
    from ..cli import parse_overrides
    from ..data import load_dataset, require_semantics
    from ..errors import ZSLError

    create_method(f"cpl.{args.preset}", **parse_overrides(args.set))  # a bad --set or preset: one line, before any work
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    if args.analysis == "search":
        import argparse

        from .tune import run_tune

        return run_tune(argparse.Namespace(
            method=f"cpl.{args.preset}", dataset=args.dataset, split=args.split, semantics=args.semantics,
            data_root=args.data_root, cache_dir=args.cache_dir, objective="classwise-cv", setting="zsl",
            trials=args.n_trials, sampler="grid", folds=args.folds, storage=args.storage, study_name=None, seed=0,
            max_per_class=args.max_per_class or None, set=args.set, json=args.json))

    from ..analysis import cpl as analysis

    ds = require_semantics(load_dataset(args.dataset, args.split, data_root=args.data_root, cache_dir=args.cache_dir),
                           args.semantics, args.cache_dir)

    try:
        seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    except ValueError:
        raise ZSLError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    base = parse_overrides(args.set)
    if args.params_from_study:
        from ..tune import study_best_params

        tuned = study_best_params(args.params_from_study, args.study_storage, cache_dir=args.cache_dir)
        log(f"using the best trial of study {args.params_from_study!r}: {tuned}")
        base = {**tuned, **base}
    out = Path(args.out) if args.out else analysis.default_out(ds, args.cache_dir)
    common = dict(preset=args.preset, base=base, semantics=args.semantics, log=log)
    if args.analysis in ("ablation", "relation"):
        paths = getattr(analysis, args.analysis)(ds, out, seeds=seeds, **common)
    elif args.analysis == "sensitivity":
        params = tuple(p.strip() for p in args.params.split(",")) if args.params else tuple(analysis.SENSITIVITY)
        bad = [p for p in params if p not in analysis.SENSITIVITY]
        if bad:
            raise ZSLError(f"--params: unknown {bad}; valid: {', '.join(analysis.SENSITIVITY)}")
        paths = analysis.sensitivity(ds, out, seeds=seeds, params=params, **common)
    elif args.analysis in ("confusion", "tsne"):
        paths = getattr(analysis, args.analysis)(ds, out, seed=seeds[0], **common)
    else:
        paths = analysis.similarity(ds, out, semantics=args.semantics, relation=base.get("relation", "lstsq"), log=log)
    for p in paths:
        print(p)
    return 0
