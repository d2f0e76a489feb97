"""The evaluation protocol: validation-based model selection, then one fit on trainval and a test.

``run_method("eszsl", dataset, setting="zsl"|"gzsl", selection="val"|"none"|"oracle")``

1. Selection (``val``, the default): every combination of the method's ``param_grid`` (minus the
   parameters the caller fixed) is fitted on the *train* classes and scored on the validation
   classes, which are seen classes held out as pseudo-unseen: ZSL per-class accuracy over the
   validation classes, or for GZSL the calibrated H over val_seen + val_unseen. Test data is never
   looked at. ``none`` uses the preset as it is. ``oracle`` picks by *test* score, as many papers
   do; it exists only for parity with published numbers and every output labels it.
2. GZSL calibration: gamma (subtracted from seen-class scores) maximises H on the validation
   split with the selected parameters.
3. Final fit on trainval with the selected parameters and the run's seed; test ZSL accuracy over
   the unseen classes, or GZSL U/S/H over all classes with and without calibration, plus AUSUC.

Fitted models are reused within a process: the ZSL and GZSL runs of one method on one dataset fit
the same grid on the same train split and the same final model on trainval, differing only in how
they are scored. A fit is reused only when everything that determines it is identical (method,
parameters, seed, dataset fingerprint, subset and class embeddings); the reused run reports the
fit time of the original fit.
"""
from __future__ import annotations

import itertools
import json
import resource
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._registry import create_method, get_method_class
from ..data.dataset import ZSLDataset
from ..errors import ZSLError
from .metrics import ausuc, gzsl_accuracies, per_class_accuracy, select_gamma

SETTINGS = ("zsl", "gzsl")
SELECTIONS = ("val", "none", "oracle")
MAX_GRID = 64
FIT_MEMO_SIZE = 16
_FIT_MEMO: OrderedDict = OrderedDict()


@dataclass
class RunResult:
    method: str
    dataset: str
    split: str
    setting: str
    seed: int
    selection: str
    semantics: str
    metrics: dict[str, float]
    fit_seconds: float
    predict_seconds: float
    peak_rss_mb: float
    config: dict[str, Any]
    validation: dict[str, Any] = field(default_factory=dict)
    per_class: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_class")
        return d


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _grid(method_cls, fixed: dict[str, Any]) -> list[dict[str, Any]]:
    grid = {k: v for k, v in method_cls.param_grid.items() if k not in fixed}
    if not grid:
        return [{}]
    keys = sorted(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
    if len(combos) > MAX_GRID:
        rng = np.random.default_rng(0)
        combos = [combos[i] for i in sorted(rng.choice(len(combos), MAX_GRID, replace=False))]
    return combos


def _make(spec: str, params: dict[str, Any], seed: int):
    method = create_method(spec, **params)
    if "random_state" in method.get_params():
        method.set_params(random_state=seed)
    return method


def _fit(spec: str, params: dict[str, Any], seed: int, ds: ZSLDataset, subset: str, S: np.ndarray,
         classes: np.ndarray) -> tuple[Any, float]:
    """Fit ``spec`` on ``ds.subset(subset)``, or reuse the identical fit made earlier in this process."""
    from ..methods._kernels import digest

    try:
        key = (spec, json.dumps(params, sort_keys=True), seed, ds.fingerprint(), subset, digest(S), digest(classes))
    except TypeError:  # a parameter that is not plain data (e.g. a model object): never reused
        key = None
    if key is not None and key in _FIT_MEMO:
        _FIT_MEMO.move_to_end(key)
        return _FIT_MEMO[key]
    method = _make(spec, params, seed)
    t0 = time.perf_counter()
    method.fit(*ds.subset(subset), S, classes)
    entry = (method, time.perf_counter() - t0)
    if key is not None:
        _FIT_MEMO[key] = entry
        while len(_FIT_MEMO) > FIT_MEMO_SIZE:
            _FIT_MEMO.popitem(last=False)
    return entry


def clear_fit_memo() -> None:
    _FIT_MEMO.clear()


def _score_split(method, ds: ZSLDataset, setting: str, *, stage: str, gamma: float | None = None) -> dict[str, Any]:
    """Score a fitted method on ``stage`` = "val" (train classes seen) or "test" (all seen)."""
    if stage == "val":
        seen, unseen = ds.train_classes, ds.val_classes
        seen_idx, unseen_idx = ds.splits["val_seen"], ds.splits["val_unseen"]
    else:
        seen, unseen = ds.seen_classes, ds.unseen_classes
        seen_idx, unseen_idx = ds.splits["test_seen"], ds.splits["test_unseen"]
    if setting == "zsl":
        t0 = time.perf_counter()
        pred = method.predict(ds.X[unseen_idx], unseen)
        secs = time.perf_counter() - t0
        y = ds.y[unseen_idx]
        per_class = {ds.class_names[c]: float(np.mean(pred[y == c] == c)) for c in unseen if np.any(y == c)}
        return {"acc": per_class_accuracy(y, pred), "seconds": secs, "per_class": per_class}
    cand = np.concatenate([seen, unseen])
    idx = np.concatenate([seen_idx, unseen_idx])
    t0 = time.perf_counter()
    scores = method.decision_function(ds.X[idx], cand)
    secs = time.perf_counter() - t0
    y = ds.y[idx]
    raw = gzsl_accuracies(scores, y, cand, seen, unseen, 0.0)
    if gamma is None:
        gamma, _ = select_gamma(scores, y, cand, seen, unseen)
    cal = gzsl_accuracies(scores, y, cand, seen, unseen, gamma)
    out = {"U": cal["U"], "S": cal["S"], "H": cal["H"], "H_uncalibrated": raw["H"], "gamma": float(gamma), "seconds": secs}
    if stage == "test":
        out["AUSUC"] = ausuc(scores, y, cand, seen, unseen)
    return out


def _objective(scores: dict[str, Any], setting: str) -> float:
    return scores["acc"] if setting == "zsl" else scores["H"]


def run_method(
    spec: str,
    dataset: ZSLDataset,
    *,
    setting: str = "zsl",
    semantics: str | None = None,
    seed: int = 0,
    selection: str = "val",
    overrides: dict[str, Any] | None = None,
    verbose: bool = False,
) -> RunResult:
    """Run the full protocol for one method on one dataset; see the module docstring."""
    if setting not in SETTINGS:
        raise ZSLError(f"unknown setting {setting!r}; valid: {', '.join(SETTINGS)}")
    if selection not in SELECTIONS:
        raise ZSLError(f"unknown selection {selection!r}; valid: {', '.join(SELECTIONS)}")
    cls = get_method_class(spec)
    if setting == "gzsl" and not cls.tags.get("supports_gzsl", True):
        raise ZSLError(f"method {cls.name!r} does not support the GZSL setting")
    overrides = dict(overrides or {})
    source = semantics or dataset.default_semantics
    S = dataset.class_embeddings(source)
    tuned: dict[str, Any] = {}
    if "." not in spec and selection != "oracle" and hasattr(cls, "tuned_params"):
        # a method with its own search (CPL's class-wise CV study) supplies its best trial as the
        # default for this dataset/split; explicit overrides still win; {} when no study exists
        tuned = cls.tuned_params(dataset, source)
        overrides = {**tuned, **overrides}
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if verbose else (lambda msg: None)

    validation: dict[str, Any] = {"trials": []}
    if tuned:
        validation["tuned_params"] = tuned
    best_params: dict[str, Any] = {}
    gamma: float | None = 0.0 if setting == "zsl" else None
    combos = _grid(cls, overrides) if selection != "none" else [{}]
    need_val = selection == "val" and (len(combos) > 1 or setting == "gzsl")
    if selection == "none" and setting == "gzsl":
        need_val = True  # gamma is still chosen on validation, never on test
    if need_val:
        best_score = -1.0
        for params in combos:
            method, _ = _fit(spec, {**params, **overrides}, seed, dataset, "train", S, dataset.train_classes)
            res = _score_split(method, dataset, setting, stage="val")
            score = _objective(res, setting)
            validation["trials"].append({"params": params, "score": score})
            log(f"  val {cls.name} {params}: {score:.4f}")
            if score > best_score:
                best_score, best_params = score, params
                if setting == "gzsl":
                    gamma = res["gamma"]
        validation["best_params"] = best_params
        validation["best_score"] = best_score
        if setting == "gzsl":
            validation["gamma"] = gamma

    final_params = {**best_params, **overrides}
    if selection == "oracle":
        best_score = -1.0
        for params in combos:
            method, _ = _fit(spec, {**params, **overrides}, seed, dataset, "trainval", S, dataset.seen_classes)
            res = _score_split(method, dataset, setting, stage="test", gamma=None if setting == "gzsl" else 0.0)
            validation["trials"].append({"params": params, "test_score": _objective(res, setting)})
            if _objective(res, setting) > best_score:
                best_score, final_params = _objective(res, setting), {**params, **overrides}
                gamma = res.get("gamma", 0.0)
        validation["note"] = "oracle: parameters and gamma chosen on TEST data, for parity with published numbers only"

    method, fit_seconds = _fit(spec, final_params, seed, dataset, "trainval", S, dataset.seen_classes)
    res = _score_split(method, dataset, setting, stage="test", gamma=gamma)
    per_class = res.pop("per_class", {})
    predict_seconds = res.pop("seconds")
    metrics = {k: float(v) for k, v in res.items()}
    config = {
        "method": spec,
        "params": {k: _jsonable(v) for k, v in method.get_params().items()},
        "selected": {k: _jsonable(v) for k, v in final_params.items()},
        "dataset": dataset.name,
        "split": dataset.split,
        "dataset_fingerprint": dataset.fingerprint(),
        "semantics": source,
        "setting": setting,
        "seed": seed,
        "selection": selection,
    }
    return RunResult(
        method=cls.name,
        dataset=dataset.name,
        split=dataset.split,
        setting=setting,
        seed=seed,
        selection=selection if selection != "oracle" else "oracle (test-tuned)",
        semantics=source,
        metrics=metrics,
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
        peak_rss_mb=peak_rss_mb(),
        config=config,
        validation=validation,
        per_class=per_class,
    )


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)
