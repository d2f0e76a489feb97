"""``zsl tune METHOD --dataset D --trials N --storage URL``: an Optuna study on validation classes."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    from ..cli import add_dataset_args

    p = subparsers.add_parser(
        "tune",
        help="hyperparameter search (Optuna) over a method's search space, scored on validation classes",
        description="Run N trials of a shared Optuna study. Start several workers (on one or many machines) with "
                    "the same --storage URL to share the study; test classes are never used.",
    )
    p.add_argument("method", help="method name or name.preset (see `zsl methods`)")
    add_dataset_args(p)
    p.add_argument("--setting", choices=("zsl", "gzsl"), default="zsl")
    p.add_argument("--trials", type=int, default=20, help="trials this worker runs (default 20)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage, e.g. postgresql://user@host:5432/db (default: sqlite:///<cache>/optuna/studies.db)")
    p.add_argument("--study-name", default=None, help="override the derived study name")
    p.add_argument("--seed", type=int, default=0, help="seed for the fits (the sampler also mixes in the worker's pid)")
    p.add_argument("--max-per-class", type=int, default=None, help="subsample images per class (image datasets)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the best parameters")
    p.set_defaults(func=_handler)


def _handler(args) -> int:
    from ..tune import describe, tune

    if args.trials < 1:
        from ..errors import ZSLError

        raise ZSLError("--trials must be at least 1")
    load = {"max_per_class": args.max_per_class} if args.max_per_class else None
    study = tune(args.method, args.dataset, split=args.split, setting=args.setting, trials=args.trials,
                 storage=args.storage, semantics=args.semantics, seed=args.seed, data_root=args.data_root,
                 cache_dir=args.cache_dir, load_kwargs=load, name=args.study_name, verbose=not args.json)
    if args.json:
        import optuna

        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = max(done, key=lambda t: t.value) if done else None
        print(json.dumps({"study": study.study_name, "n_trials": len(study.trials),
                          "best_value": best.value if best else None, "best_params": best.params if best else None}))
    else:
        print(describe(study))
    return 0
