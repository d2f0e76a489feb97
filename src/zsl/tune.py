"""Hyperparameter search for any method: an Optuna study over the method's ``search_space``.

``tune("eszsl", "awa1", split="ps", setting="zsl", trials=20, storage=URL)``

* Space: the method class's ``search_space`` -- ``{"param": ("float", lo, hi, log) | ("int", lo, hi)
  | ("categorical", [choices])}``; parameters not in it keep the preset's value.
* Objective: the validation score of the evaluation protocol -- fit on the *train* classes, score
  on the validation classes (seen classes held out as pseudo-unseen): per-class top-1 for ZSL, the
  calibrated H over val_seen + val_unseen for GZSL. Test classes are never looked at.
* Storage: any Optuna RDB URL; default ``sqlite:///<cache root>/optuna/studies.db``. The study name
  is derived from method/preset, dataset, split, setting and semantics and opened with
  ``load_if_exists=True``, so several workers (processes or machines) pointed at the same storage
  share one study; each trial records the worker (``host:pid``) that ran it.
* ``best_params(...)`` returns the best validated parameters of a study (or ``None``), for the
  benchmark or a user's ``zsl run --set``.
"""
from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path
from typing import Any

from .errors import ZSLError
from .io import cache_root


def default_storage(cache_dir=None) -> str:
    """``sqlite:///<cache root>/optuna/studies.db``: the one default storage of every study (tune, CPL search)."""
    folder = cache_root(cache_dir) / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'studies.db'}"


def study_name(method: str, dataset: str, split: str | None, setting: str = "zsl", semantics: str | None = None) -> str:
    spec = method if "." in method else f"{method}.default"
    return f"{spec}|{dataset}|{split or 'default'}|{setting}|{semantics or 'default-semantics'}"


def _storage(url: str | None, cache_dir=None):
    """An Optuna RDB storage; SQLite waits on locks (concurrent workers), postgresql:// uses psycopg v3."""
    from .bench.store import normalise_url
    from .errors import require_extra

    optuna = require_extra("optuna", "tune")
    url = normalise_url(url or default_storage(cache_dir), cache_dir)
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    # Workers started together race to create the schema on an empty database (one gets "table
    # already exists" / a unique violation); the schema is then there, so opening again succeeds.
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception as exc:  # noqa: BLE001 - bad URL / unreachable server: one line naming the fix
            msg = str(exc)
            racing = any(s in msg for s in ("already exists", "UniqueViolation", "duplicate key", "UNIQUE constraint",
                                          "IntegrityError", "database is locked"))
            if not racing or attempt == 5:
                raise ZSLError(f"cannot open Optuna storage {url!r}: {msg.splitlines()[0]}") from None
            time.sleep(0.5 + random.random() * (attempt + 1))


def suggest(trial, space: dict[str, tuple]) -> dict[str, Any]:
    """Draw one parameter set from a declared search space."""
    params = {}
    for name, decl in sorted(space.items()):
        kind = decl[0]
        if kind == "float":
            lo, hi = decl[1], decl[2]
            log = bool(decl[3]) if len(decl) > 3 else False
            params[name] = trial.suggest_float(name, lo, hi, log=log)
        elif kind == "int":
            log = bool(decl[3]) if len(decl) > 3 else False
            params[name] = trial.suggest_int(name, int(decl[1]), int(decl[2]), log=log)
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(decl[1]))
        else:
            raise ZSLError(f"search space entry {name!r} has unknown kind {kind!r}; valid: float, int, categorical")
    return params


def validation_score(spec: str, dataset, params: dict[str, Any], *, setting: str = "zsl", seed: int = 0,
                     semantics: str | None = None) -> float:
    """Fit ``spec`` with ``params`` on the train classes; score on the validation classes (protocol's own code)."""
    from .eval.protocol import make_method, objective_value, score_split

    S = dataset.class_embeddings(semantics, stage="val")
    method = make_method(spec, params, seed)
    method.fit(*dataset.subset("train"), S, dataset.train_classes)
    return float(objective_value(score_split(method, dataset, setting, stage="val"), setting))


def tune(
    method: str,
    dataset: str,
    *,
    split: str | None = None,
    setting: str = "zsl",
    trials: int = 20,
    storage: str | None = None,
    semantics: str | None = None,
    seed: int = 0,
    data_root=None,
    cache_dir=None,
    load_kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    verbose: bool = True,
):
    """Run ``trials`` trials of the shared study in this worker; returns the Optuna study."""
    from ._registry import get_method_class
    from .data import load_dataset
    from .errors import require_extra

    optuna = require_extra("optuna", "tune")
    if setting not in ("zsl", "gzsl"):
        raise ZSLError(f"unknown setting {setting!r}; valid: zsl, gzsl")
    cls = get_method_class(method)
    space = dict(getattr(cls, "search_space", {}) or {})
    if not space:
        raise ZSLError(f"method {cls.name!r} declares no search_space; nothing to tune")
    if setting == "gzsl" and not cls.tags.get("supports_gzsl", True):
        raise ZSLError(f"method {cls.name!r} does not support the GZSL setting")
    spec = method if "." in method else f"{method}.default"
    ds = load_dataset(dataset, split, data_root=data_root, **(load_kwargs or {}))
    if not len(ds.val_classes):
        raise ZSLError(f"dataset {dataset!r} split {ds.split!r} has no validation classes to tune on")
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    study = optuna.create_study(
        study_name=name or study_name(spec, dataset, ds.split, setting, semantics),
        storage=_storage(storage, cache_dir),
        direction="maximize",
        load_if_exists=True,
        # each worker its own sampler stream, so concurrent workers do not propose identical points
        sampler=optuna.samplers.TPESampler(seed=seed + os.getpid() % 100_000, n_startup_trials=min(10, trials)),
    )
    study.set_user_attr("method", spec)
    study.set_user_attr("dataset_fingerprint", ds.fingerprint())
    study.set_user_attr("objective", "validation classes: " + ("per-class top-1" if setting == "zsl" else "calibrated H"))

    def objective(trial):
        params = suggest(trial, space)
        trial.set_user_attr("worker", worker)
        return validation_score(spec, ds, params, setting=setting, seed=seed, semantics=semantics)

    study.optimize(objective, n_trials=trials, catch=(ValueError, ArithmeticError, RuntimeError), gc_after_trial=True,
                   show_progress_bar=False)
    return study


def best_params(method: str, dataset: str, split: str | None = None, setting: str = "zsl",
                storage: str | None = None, semantics: str | None = None, *, cache_dir=None) -> dict[str, Any] | None:
    """Best validated parameters of the study for this method/dataset/split/setting, or ``None``."""
    from .errors import require_extra

    optuna = require_extra("optuna", "tune")
    url = storage or default_storage(cache_dir)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        return None
    name = study_name(method, dataset, split, setting, semantics)
    try:
        study = optuna.load_study(study_name=name, storage=_storage(url, cache_dir))
    except KeyError:
        return None
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return None
    return dict(max(done, key=lambda t: t.value).params)


def study_best_params(name: str, storage: str | None = None, *, cache_dir=None) -> dict[str, Any]:
    """Best completed trial's parameters of the study called ``name``; an error if there is none.

    This is how tuned values reach a run: explicitly (``zsl run M --params-from-study NAME``), and
    recorded in the run's config, never looked up behind the user's back.
    """
    from .errors import require_extra

    optuna = require_extra("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage(cache_dir)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise ZSLError(f"no study storage at {url}; run `zsl tune` or `zsl cpl search` first, or pass --study-storage")
    try:
        study = optuna.load_study(study_name=name, storage=_storage(url, cache_dir))
    except KeyError:
        names = optuna.get_all_study_names(storage=_storage(url, cache_dir))
        raise ZSLError(f"no study named {name!r} in {url}; studies there: {', '.join(names) or 'none'}") from None
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ZSLError(f"study {name!r} has no completed trial yet")
    return dict(max(done, key=lambda t: (t.value, -t.number)).params)


def describe(study) -> str:
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return f"study {study.study_name!r}: no completed trials"
    best = max(done, key=lambda t: t.value)
    return (f"study {study.study_name!r}: {len(study.trials)} trials ({len(done)} complete); "
            f"best validation score {best.value:.4f} with {best.params}")


__all__ = ["best_params", "default_storage", "describe", "study_best_params", "study_name", "suggest", "tune", "validation_score"]
