"""Hyperparameter search for any method: one Optuna study over the method's ``search_space``.

``tune("cpl", dataset, objective="classwise-cv", sampler="grid", trials=20, storage=URL)``

* Space: the method class's ``search_space`` (declared in the method's own file) --
  ``{"param": ("float", lo, hi, log) | ("int", lo, hi) | ("categorical", [choices])}``; parameters
  not in it keep the preset's value.
* Objective (pluggable, :data:`OBJECTIVES`):
  - ``"val"``: the evaluation protocol's validation score -- fit on the *train* classes, score on
    the validation classes (seen classes held out as pseudo-unseen): per-class top-1 for ZSL, the
    method's GZSL objective (H) for GZSL.
  - ``"classwise-cv"``: the CPL slides' class-wise cross-validation -- the seen classes are split
    into ``folds`` groups; for each, the method is fitted on the other seen classes (their images
    and descriptions only) and scored by ZSL per-class top-1 on the held-out group; the mean over
    folds. Test classes -- not even their descriptions -- are never used.
* Sampler: ``"tpe"`` (Optuna's TPE, each worker its own stream) or ``"grid"`` (every point of a
  categorical space in a fixed shuffled order; trial number n evaluates point n, so N trials cover
  N distinct points across any number of workers).
* Storage: any Optuna RDB URL; default ``sqlite:///<cache root>/optuna/studies.db``. The study
  name is derived from method/preset, dataset, split, setting, semantics and objective, plus
  ``STUDY_VERSION`` (a trial's score belongs to the code that earned it); studies are opened with
  ``load_if_exists`` so several workers (processes or machines) share one. A lock (a file lock
  beside a SQLite database, an advisory lock on a PostgreSQL/MySQL server) makes "is the budget
  used up? -> ask" atomic, so a study ends with exactly
  ``trials`` trials however many workers run; each trial records its worker (``host:pid``).
* Using the result is explicit: ``zsl run M --params-from-study NAME`` (:func:`study_best_params`),
  recorded in the run's config.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ZSLError, require_extra
from .io import cache_root, content_digest

OBJECTIVES = ("val", "classwise-cv")
SAMPLERS = ("tpe", "grid")
STUDY_VERSION = 3  # bump when the methods' training changes so much that old trials no longer apply
GRID_SEED = 0


def default_storage(cache_dir=None) -> str:
    """``sqlite:///<cache root>/optuna/studies.db``: the one default storage of every study."""
    folder = cache_root(cache_dir) / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'studies.db'}"


def study_name(method: str, dataset: str, split: str | None, setting: str = "zsl", semantics: str | None = None,
               objective: str = "val") -> str:
    spec = method if "." in method else f"{method}.default"
    return "|".join([f"v{STUDY_VERSION}", spec, dataset, split or "default", setting,
                     semantics or "default-semantics", objective])


def _storage(url: str | None, cache_dir=None):
    """An Optuna RDB storage; SQLite waits on locks (concurrent workers), postgresql:// uses psycopg v3."""
    from .bench.store import normalise_url

    optuna = require_extra("optuna", "tune")
    url = normalise_url(url or default_storage(cache_dir), cache_dir)
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
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
            params[name] = trial.suggest_float(name, decl[1], decl[2], log=bool(decl[3]) if len(decl) > 3 else False)
        elif kind == "int":
            params[name] = trial.suggest_int(
                name, int(decl[1]), int(decl[2]), log=bool(decl[3]) if len(decl) > 3 else False
            )
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(decl[1]))
        else:
            raise ZSLError(f"search space entry {name!r} has unknown kind {kind!r}; valid: float, int, categorical")
    return params


def search_grid(space: dict[str, tuple]) -> list[dict[str, Any]]:
    """Every point of a categorical ``space`` in a fixed shuffled order (trial n -> point n)."""
    if not all(decl[0] == "categorical" for decl in space.values()):
        raise ZSLError("the grid sampler needs a search space of categorical entries only")
    keys = sorted(space)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*(space[k][1] for k in keys))]
    order = np.random.default_rng(GRID_SEED).permutation(len(points))
    return [points[i] for i in order]


# -- objectives --------------------------------------------------------------------------------------
def validation_score(spec: str, dataset, params: dict[str, Any], *, setting: str = "zsl", seed: int = 0,
                     semantics: str | None = None) -> dict[str, Any]:
    """Fit ``spec`` with ``params`` on the train classes; score on the validation classes (protocol's own code)."""
    from .eval.protocol import make_method, objective_value, score_split

    S = dataset.class_embeddings(semantics, stage="val")
    method = make_method(spec, params, seed)
    method.fit(*dataset.subset("train"), S, dataset.train_classes)
    return {
        "score": float(
            objective_value(score_split(method, dataset, setting, stage="val"), setting, method.gzsl_objective)
        )
    }


def class_folds(seen_classes: np.ndarray, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Split the seen class ids into ``folds`` disjoint groups (shuffled with ``seed``)."""
    if folds < 2 or folds > len(seen_classes) // 2:
        raise ZSLError(
            f"folds must be in [2, {len(seen_classes) // 2}] for {len(seen_classes)} seen classes; got {folds}"
        )
    order = np.random.default_rng(seed).permutation(np.asarray(seen_classes))
    return [np.sort(g) for g in np.array_split(order, folds)]


def classwise_cv_score(spec: str, dataset, params: dict[str, Any], *, folds: int = 3, seed: int = 0,
                       semantics: str | None = None, max_per_class: int | None = None) -> dict[str, Any]:
    """Class-wise CV on the seen classes -> {"score": mean ZSL acc over folds, "fold_scores": [...]}.

    Only seen-class images and seen-class descriptions are used: in fold f the model sees the
    descriptions of the seen classes only, treats fold f's classes as unseen, and is scored by
    per-class accuracy on their trainval images. ``max_per_class`` subsamples images (speed).
    """
    from .eval.metrics import per_class_accuracy
    from .eval.protocol import make_method

    source = semantics or dataset.default_semantics
    if source in dataset.validation_embeddings:
        # learnt from seen-class images (VGSE): a held-out seen class would be described by its own
        # photos, so its score would not measure what test does
        raise ZSLError(
            f"class-wise CV cannot use {source!r}: those embeddings are learnt from the seen classes' images; "
            "use --objective val (validation classes go through the relation step like test classes)"
        )
    X, y = dataset.subset("trainval")
    seen = dataset.seen_classes
    S_local = dataset.class_embeddings(source)[seen]
    if max_per_class:
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rng.permutation(np.where(y == c)[0])[:max_per_class] for c in seen])
        X, y = X[np.sort(idx)], y[np.sort(idx)]
    y_local = np.searchsorted(seen, y)
    scores = []
    for group in class_folds(np.arange(len(seen)), folds, seed):
        train_cls = np.setdiff1d(np.arange(len(seen)), group)
        tr, te = np.isin(y_local, train_cls), np.isin(y_local, group)
        method = make_method(spec, params, seed).fit(X[tr], y_local[tr], S_local, train_cls)
        scores.append(per_class_accuracy(y_local[te], method.predict(X[te], group)))
    return {"score": float(np.mean(scores)), "fold_scores": [float(s) for s in scores]}


# -- studies -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _budget_lock(storage: str, name: str):
    """Serialise "count trials, then ask" between workers sharing one study.

    SQLite: an exclusive ``flock`` on a file beside the database. PostgreSQL / MySQL: a
    session-level advisory lock on the server (``pg_advisory_lock`` / ``GET_LOCK``), so workers
    on different machines serialise too. Other URLs get no lock; :func:`run_study` then marks an
    overshooting trial as pruned.
    """
    if storage.startswith("sqlite:///"):
        import fcntl

        path = Path(storage[len("sqlite:///"):])
        lock = path.parent / f".{path.name}.{content_digest(name, length=12)}.lock"
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    dialect = storage.split(":", 1)[0].split("+", 1)[0]
    if dialect not in ("postgresql", "mysql"):
        yield
        return
    import sqlalchemy

    key = int(content_digest(name, length=15), 16)  # fits a signed 64-bit advisory key
    acquire, release = (("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)") if dialect == "postgresql"
                        else ("SELECT GET_LOCK(:k, -1)", "SELECT RELEASE_LOCK(:k)"))
    engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(acquire), {"k": key if dialect == "postgresql" else str(key)})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text(release), {"k": key if dialect == "postgresql" else str(key)})
    finally:
        engine.dispose()


class _GridOrderSampler:
    """Trial number n takes grid point n: distinct points across any number of workers."""

    def __new__(cls, grid: list[dict[str, Any]]):
        import optuna

        class GridOrderSampler(optuna.samplers.BaseSampler):
            def infer_relative_search_space(self, study, trial):
                return {}

            def sample_relative(self, study, trial, search_space):
                return {}

            def sample_independent(self, study, trial, param_name, param_distribution):
                return grid[trial.number % len(grid)][param_name]

        return GridOrderSampler()


def open_study(name: str, *, storage: str, space: dict[str, tuple], sampler: str = "tpe", seed: int = 0):
    optuna = require_extra("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler not in SAMPLERS:
        raise ZSLError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    chosen = (_GridOrderSampler(search_grid(space)) if sampler == "grid" else
              # each worker its own stream, so concurrent workers do not propose identical points
              optuna.samplers.TPESampler(seed=seed + os.getpid() % 100_000, n_startup_trials=10))
    with _budget_lock(storage, name):  # two workers creating the same schema/study at once
        return optuna.create_study(study_name=name, storage=_storage(storage), direction="maximize", sampler=chosen,
                                   load_if_exists=True)


def run_study(study, objective: Callable[[dict[str, Any]], dict[str, Any]], n_trials: int, space: dict[str, tuple], *,
              storage: str, log: Callable[[str], None] = lambda m: None) -> int:
    """Run trials until the study holds ``n_trials`` in total; returns how many this worker ran.

    ``objective(params) -> {"score": float, ...}``; extra keys are stored as trial user attributes.
    A trial that raises a ValueError/ArithmeticError/RuntimeError is marked failed and the search
    goes on; any other error stops it.
    """
    from optuna.trial import TrialState

    worker = f"{socket.gethostname()}:{os.getpid()}"
    ran = 0
    while True:
        with _budget_lock(storage, study.study_name):
            if len(study.get_trials(deepcopy=False)) >= n_trials:
                return ran
            trial = study.ask()
        if trial.number >= n_trials:  # only possible on storage without a lock
            study.tell(trial, state=TrialState.PRUNED)
            return ran
        params = suggest(trial, space)
        trial.set_user_attr("worker", worker)
        try:
            out = objective(params)
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            study.tell(trial, state=TrialState.FAIL)
            log(f"trial {trial.number}: {params} failed: {type(exc).__name__}: {exc}")
            ran += 1
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        for k, v in out.items():
            if k != "score":
                trial.set_user_attr(k, v)
        study.tell(trial, out["score"])
        ran += 1
        log(f"trial {trial.number}: {params} -> {out['score']:.4f}")


def tune(method: str, dataset, *, objective: str = "val", setting: str = "zsl", trials: int = 20,
         storage: str | None = None, semantics: str | None = None, seed: int = 0, folds: int = 3,
         sampler: str = "tpe", max_per_class: int | None = None, cache_dir=None, name: str | None = None,
         log: Callable[[str], None] = lambda m: None, fixed: dict[str, Any] | None = None):
    """Run the shared study until it holds ``trials`` trials; returns the Optuna study.

    ``dataset`` is a :class:`~zsl.data.ZSLDataset`; ``fixed`` are parameters held outside the
    search (they are part of every trial's fit and recorded on the study). The score is maximised.
    """
    from ._registry import get_method_class

    if objective not in OBJECTIVES:
        raise ZSLError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    if setting not in ("zsl", "gzsl"):
        raise ZSLError(f"unknown setting {setting!r}; valid: zsl, gzsl")
    if objective == "classwise-cv" and setting != "zsl":
        raise ZSLError("the class-wise cross-validation scores ZSL accuracy; use --setting zsl")
    cls = get_method_class(method)
    space = dict(cls.search_space or {})
    if not space:
        raise ZSLError(f"method {cls.name!r} declares no search_space; nothing to tune")
    if setting == "gzsl" and not cls.tags.get("supports_gzsl", True):
        raise ZSLError(f"method {cls.name!r} does not support the GZSL setting")
    if objective == "val" and not len(dataset.val_classes):
        raise ZSLError(f"dataset {dataset.name!r} split {dataset.split!r} has no validation classes to tune on")
    spec = method if "." in method else f"{method}.default"
    storage = storage or default_storage(cache_dir)
    study = open_study(name or study_name(spec, dataset.name, dataset.split, setting, semantics, objective),
                       storage=storage, space=space, sampler=sampler, seed=seed)
    study.set_user_attr("method", spec)
    study.set_user_attr("dataset_fingerprint", dataset.fingerprint())
    study.set_user_attr("objective", objective)
    fixed = dict(fixed or {})
    if fixed:
        study.set_user_attr("fixed_params", {k: repr(v) for k, v in fixed.items()})

    def score(params):
        params = {**params, **fixed}
        if objective == "val":
            return validation_score(spec, dataset, params, setting=setting, seed=seed, semantics=semantics)
        return classwise_cv_score(spec, dataset, params, folds=folds, seed=seed, semantics=semantics,
                                  max_per_class=max_per_class)

    run_study(study, score, trials, space, storage=storage, log=log)
    return study


def study_best_params(name: str, storage: str | None = None, *, cache_dir=None) -> dict[str, Any]:
    """Best completed trial's parameters of the study called ``name``; an error if there is none.

    This is how tuned values reach a run: explicitly (``zsl run M --params-from-study NAME``), and
    recorded in the run's config, never looked up behind the user's back.
    """
    optuna = require_extra("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage(cache_dir)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise ZSLError(f"no study storage at {url}; run `zsl tune` first, or pass --study-storage")
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

    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return f"study {study.study_name!r}: no completed trials"
    best = max(done, key=lambda t: (t.value, -t.number))
    return (f"study {study.study_name!r}: {len(study.trials)} trials ({len(done)} complete); "
            f"best score {best.value:.4f} with {best.params}")


__all__ = ["OBJECTIVES", "SAMPLERS", "class_folds", "classwise_cv_score", "default_storage", "describe", "open_study",
           "run_study", "search_grid", "study_best_params", "study_name", "suggest", "tune", "validation_score"]
