"""CPL hyperparameter search: class-wise cross-validation on the seen classes, as an Optuna study.

The slides pick beta in {1e-3, 1e-2, 1e-1} and lambda_1..3 (``lambda_rec``, ``lambda_cls``,
``lambda_inter``) in {1e-4, 1e-3, 1e-2, 1e-1} by class-wise cross-validation: the seen classes are
split into ``folds`` groups; for each fold CPL is fitted on the other seen classes and scored by
ZSL per-class accuracy on the held-out group (pseudo-unseen). The objective is the mean over
folds. Nothing about the real unseen classes (not even their descriptions) is used.

The grid (192 points) is enumerated in a fixed shuffled order and trial number n evaluates grid
point n, so a budget of N trials covers N distinct points and concurrent workers never repeat one
(Optuna assigns trial numbers atomically in the storage). With a file storage (SQLite) a lock file
beside the database serialises "is the budget used up? -> ask" so the study ends with exactly
``n_trials`` trials however many workers run; with a server URL (PostgreSQL) the lock is per
machine and a worker that starts a trial past the budget marks it pruned.

Storage: ``sqlite:///<cache_root()>/optuna/studies.db`` by default; any SQLAlchemy URL works. Study
name ``cpl-v<MODEL_VERSION>-<dataset>-<split>-<semantics>``; ``load_if_exists`` so a search can be
resumed. The version is part of the name because a trial's score belongs to the model that earned
it: after a change to CPL's networks or training, the old study's best weights would otherwise be
applied to a different model (session 3's similarity-network fix made every earlier trial stale).

Each fold fits CPL with the preset that ``zsl run cpl`` deploys (``default``) on all of the fold's
images (``max_per_class=None``): the relation network needs its full number of steps (see
:mod:`zsl.methods.cpl`), so a subsampled or longer-trained CV model would rank weights for a model
that is never run.
:func:`best_cpl_params` returns the best trial's parameters (``zsl run cpl`` uses them).
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ZSLError, require_extra
from .io import cache_root

GRID_SEED = 0
MODEL_VERSION = 2  # bump when CPL's model or training changes: studies of older models are not reused
# the slides' grid (beta; lambda_1..3 = lambda_rec, lambda_cls, lambda_inter); CPL.search_space is this
def _search_space() -> dict[str, tuple]:
    from .methods.cpl import CPL

    return CPL.search_space


def search_grid() -> list[dict[str, float]]:
    """All grid points of CPL's search space in a fixed shuffled order (trial n -> point n)."""
    space = _search_space()
    keys = sorted(space)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*(space[k][1] for k in keys))]
    order = np.random.default_rng(GRID_SEED).permutation(len(points))
    return [points[i] for i in order]


def default_storage(cache_dir: str | os.PathLike | None = None) -> str:
    from .tune import default_storage as shared

    return shared(cache_dir)


def study_name(dataset: str, split: str, semantics: str = "attributes") -> str:
    return f"cpl-v{MODEL_VERSION}-{dataset}-{split}-{semantics}"


def _sqlite_path(storage: str) -> Path | None:
    return Path(storage[len("sqlite:///"):]) if storage.startswith("sqlite:///") else None


def _make_sampler():
    import optuna

    grid = search_grid()

    class GridOrderSampler(optuna.samplers.BaseSampler):
        """Trial number n takes grid point n: distinct points across any number of workers."""

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            return grid[trial.number % len(grid)][param_name]

    return GridOrderSampler()


def open_study(dataset: str, split: str, *, semantics: str = "attributes", storage: str | None = None):
    require_extra("optuna", "tune")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage or default_storage()
    name = study_name(dataset, split, semantics)
    try:
        with _budget_lock(storage, name):  # two workers creating the same SQLite schema/study at once
            return optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                       sampler=_make_sampler(), load_if_exists=True)
    except Exception as exc:  # bad URL, unreachable server, unwritable file
        raise ZSLError(f"cannot open the Optuna storage {storage!r}: {type(exc).__name__}: {exc}") from None


def class_folds(seen_classes: np.ndarray, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Split the seen class ids into ``folds`` disjoint groups (shuffled with ``seed``)."""
    if folds < 2 or folds > len(seen_classes) // 2:
        raise ZSLError(f"folds must be in [2, {len(seen_classes) // 2}] for {len(seen_classes)} seen classes; got {folds}")
    order = np.random.default_rng(seed).permutation(np.asarray(seen_classes))
    return [np.sort(g) for g in np.array_split(order, folds)]


def cross_validate(params: dict[str, Any], X: np.ndarray, y: np.ndarray, S: np.ndarray, seen: np.ndarray, *,
                   folds: int = 3, preset: str = "default", seed: int = 0, max_per_class: int | None = None,
                   progress: bool = False) -> dict[str, Any]:
    """Class-wise CV of CPL on the seen classes -> {"score": mean ZSL acc, "fold_scores": [...]}.

    Only seen-class images and seen-class descriptions are used: in fold f the model sees the
    descriptions of the seen classes only, treats fold f's classes as unseen, and is scored by
    per-class accuracy on their images. ``max_per_class`` subsamples images per class (speed).
    """
    from ._registry import create_method
    from .eval.metrics import per_class_accuracy

    rng = np.random.default_rng(seed)
    keep = np.isin(y, seen)
    X, y = X[keep], y[keep]
    if max_per_class:
        idx = np.concatenate([rng.permutation(np.where(y == c)[0])[:max_per_class] for c in seen])
        X, y = X[idx], y[idx]
    remap = {c: i for i, c in enumerate(seen)}  # seen-only description matrix
    y_local = np.array([remap[c] for c in y])
    S_local = S[seen]
    scores = []
    for group in class_folds(np.arange(len(seen)), folds, seed):
        train_cls = np.setdiff1d(np.arange(len(seen)), group)
        tr, te = np.isin(y_local, train_cls), np.isin(y_local, group)
        method = create_method(f"cpl.{preset}", **params)
        method.set_params(random_state=seed, progress=progress)
        method.fit(X[tr], y_local[tr], S_local, train_cls)
        pred = method.predict(X[te], group)
        scores.append(per_class_accuracy(y_local[te], pred))
    return {"score": float(np.mean(scores)), "fold_scores": [float(s) for s in scores]}


@contextlib.contextmanager
def _budget_lock(storage: str, name: str):
    path = _sqlite_path(storage)
    if path is None:
        yield
        return
    import fcntl

    lock = path.parent / f".{path.name}.{name}.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_study(study, objective: Callable[[dict[str, Any]], dict[str, Any]], n_trials: int, *,
              storage: str | None = None, log: Callable[[str], None] = lambda m: None) -> int:
    """Run trials of ``study`` until it holds ``n_trials`` trials in total; returns how many this worker ran.

    ``objective(params) -> {"score": float, ...}``; extra keys are stored as trial user attributes.
    """
    import optuna
    from optuna.trial import TrialState

    storage = storage or default_storage()
    ran = 0
    while True:
        with _budget_lock(storage, study.study_name):
            if len(study.get_trials(deepcopy=False)) >= n_trials:
                return ran
            trial = study.ask()
        if trial.number >= n_trials:  # only possible without a shared lock (server storage)
            study.tell(trial, state=TrialState.PRUNED)
            return ran
        params = {name: trial.suggest_categorical(name, list(values))
                  for name, (_kind, values) in sorted(_space().items())}
        try:
            out = objective(params)
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            raise
        for k, v in out.items():
            if k != "score":
                trial.set_user_attr(k, v)
        study.tell(trial, out["score"])
        ran += 1
        log(f"trial {trial.number}: {params} -> {out['score']:.4f}")
    del optuna


def _space() -> dict[str, tuple]:
    return _search_space()


def search(dataset, *, n_trials: int = 20, folds: int = 3, preset: str = "default", storage: str | None = None,
           semantics: str | None = None, seed: int = 0, max_per_class: int | None = None, progress: bool = False,
           log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
    """Run (or resume) the class-wise CV study of CPL on ``dataset``'s seen classes; returns the study."""
    semantics = semantics or dataset.default_semantics
    storage = storage or default_storage()
    study = open_study(dataset.name, dataset.split, semantics=semantics, storage=storage)
    X, y = dataset.subset("trainval")
    S = dataset.class_embeddings(semantics)

    def objective(params):
        return cross_validate(params, X, y, S, dataset.seen_classes, folds=folds, preset=preset, seed=seed,
                              max_per_class=max_per_class, progress=progress)

    run_study(study, objective, n_trials, storage=storage, log=log)
    return study


def best_cpl_params(dataset: str, split: str, storage: str | None = None, *,
                    semantics: str = "attributes") -> dict[str, Any] | None:
    """Parameters of the best completed trial of the study for (dataset, split, semantics), or None.

    Never creates a database: with the default storage and no ``studies.db`` yet, returns None.
    """
    if storage is None:
        path = cache_root() / "optuna" / "studies.db"
        if not path.is_file():
            return None
        storage = f"sqlite:///{path}"
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name(dataset, split, semantics), storage=storage)
    except KeyError:  # no such study
        return None
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.value, -t.number))
    return dict(best.params)
