"""The evaluation protocol: validation-based model selection, then one fit on trainval and a test.

``run_method("eszsl", dataset, setting="zsl"|"gzsl", selection="val"|"none"|"oracle")``

1. Selection (``val``, the default): every combination of the method's ``param_grid`` (minus the
   parameters the caller fixed) is fitted on the *train* classes and scored on the validation
   classes, which are seen classes held out as pseudo-unseen: ZSL per-class accuracy over the
   validation classes, or for GZSL H over val_seen + val_unseen -- calibrated H by default, or
   the uncalibrated H for methods that declare ``gzsl_objective = "H_uncalibrated"`` (the
   generative ones: their GZSL classifier is trained over all classes, so the balance of seen
   and unseen in its raw scores is part of what their parameters control, and the raw H is the
   papers' number). The objective used is recorded in the run's ``validation``. Test data is never
   looked at. ``none`` uses the preset as it is. ``oracle`` picks by *test* score, as many papers
   do; it exists only for parity with published numbers and every output labels it.
2. GZSL calibration: gamma (subtracted from seen-class scores) maximises H on the validation
   split with the selected parameters.
3. Final fit on trainval with the selected parameters and the run's seed; test ZSL accuracy over
   the unseen classes, or GZSL U/S/H over all classes with and without calibration, plus AUSUC.

Dataset presets: a method named without a preset (``"eszsl"``) runs with the preset named after
the dataset when the method declares one (``eszsl.flo`` on FLO, ``cvae_clusterable.awa1`` on
AwA1): those values were chosen on that dataset's validation classes (the measurements are in
``benchmarks/results/``), so a choice made on one kind of features is never the default on
another. Otherwise the ``default`` preset is used. The resolved spec is recorded in the run's
config (``method`` and ``preset``).

Reuse of fits is explicit: a caller that runs several settings of one method on one dataset (the
benchmark, ``zsl run --setting both``) passes one :class:`FitCache`; the ZSL and GZSL runs then
share the grid's fits and the final fit, which differ only in how they are scored. Without a
cache every fit is fresh. A reused fit is marked in the run record (``fits``: reused, and the
original fit time).
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
from ..io import content_digest
from .metrics import ausuc, gzsl_accuracies, per_class_accuracy, select_gamma

SETTINGS = ("zsl", "gzsl")
SELECTIONS = ("val", "none", "oracle")
MAX_GRID = 64


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
    fit_reused: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_class")
        return d


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def resolve_spec(spec: str, dataset_name: str) -> str:
    """``name`` -> ``name.<dataset>`` when the method declares that dataset preset; explicit presets stay."""
    if "." in spec:
        return spec
    return f"{spec}.{dataset_name}" if dataset_name in get_method_class(spec).dataset_presets else spec


# -- fitting and reuse ---------------------------------------------------------------------------
def make_method(spec: str, params: dict[str, Any], seed: int):
    """``create_method(spec, **params)`` with ``random_state`` set to the run's seed."""
    method = create_method(spec, **params)
    if "random_state" in method.get_params():
        method.set_params(random_state=seed)
    return method


def identity_params(method) -> dict[str, Any]:
    """The parameters that determine a fit's result (all but the method's ``runtime_params``)."""
    skip = set(getattr(method, "runtime_params", ()))
    return {k: v for k, v in method.get_params().items() if k not in skip}


@dataclass
class FitRecord:
    method: Any
    seconds: float
    reused: bool = False


class FitCache:
    """Fitted methods kept for reuse by one orchestrator (a benchmark, a multi-setting run).

    A fit is reused only when everything that determines it is identical: the method class and
    its result-determining parameters (``get_params()`` minus ``runtime_params``; the seed is
    ``random_state``), the dataset fingerprint, the subset, and digests of the class embeddings
    and the class list. ``max_entries`` and ``max_bytes`` (the arrays and tensors a fitted method
    holds) bound memory, least recently used first out; ``max_entries=0`` turns reuse off. A method
    with a parameter that is not plain data (a model object) is never reused.
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 2 * 1024**3):
        if int(max_entries) < 0 or int(max_bytes) < 0:
            raise ZSLError(f"max_entries and max_bytes must be >= 0, got {max_entries}, {max_bytes}")
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[str, FitRecord] = OrderedDict()
        self._sizes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def fit(self, spec: str, params: dict[str, Any], seed: int, ds: ZSLDataset, subset: str, S: np.ndarray,
            classes: np.ndarray) -> FitRecord:
        method = make_method(spec, params, seed)
        key = None
        if self.max_entries:
            try:
                blob = json.dumps([type(method).__name__, identity_params(method)], sort_keys=True)
            except TypeError:
                blob = None
            if blob is not None:
                key = content_digest(blob, ds.fingerprint(), subset, S, np.asarray(classes))
        if key is not None and key in self._entries:
            self._entries.move_to_end(key)
            hit = self._entries[key]
            return FitRecord(hit.method, hit.seconds, reused=True)
        record = fit_once(method, ds, subset, S, classes)
        if key is not None:
            self._entries[key] = record
            self._sizes[key] = footprint(record.method)
            while len(self._entries) > self.max_entries or (
                len(self._entries) > 1 and sum(self._sizes.values()) > self.max_bytes
            ):
                old, _ = self._entries.popitem(last=False)
                self._sizes.pop(old)
        return record


def footprint(obj, depth: int = 3) -> int:
    """Bytes of the arrays and tensors an object holds (attributes, containers, modules; ``depth`` levels)."""
    import torch

    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, torch.nn.Module):
        return sum(t.element_size() * t.nelement() for t in [*obj.parameters(), *obj.buffers()])
    if depth == 0:
        return 0
    if isinstance(obj, dict):
        return sum(footprint(v, depth - 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(footprint(v, depth - 1) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(footprint(v, depth - 1) for v in vars(obj).values())
    return 0


def fit_once(method, ds: ZSLDataset, subset: str, S: np.ndarray, classes: np.ndarray) -> FitRecord:
    t0 = time.perf_counter()
    method.fit(*ds.subset(subset), S, classes)
    return FitRecord(method, time.perf_counter() - t0)


# -- scoring ------------------------------------------------------------------------------------
def score_split(method, ds: ZSLDataset, setting: str, *, stage: str, gamma: float | None = None) -> dict[str, Any]:
    """Score a fitted method on ``stage`` = "val" (train classes seen) or "test" (all seen).

    ZSL: per-class top-1 over the stage's unseen classes. GZSL: U, S, H calibrated with ``gamma``
    (chosen here on this split when None), the uncalibrated U, S, H, and AUSUC on test.
    """
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
    out = {"U": cal["U"], "S": cal["S"], "H": cal["H"], "U_uncalibrated": raw["U"], "S_uncalibrated": raw["S"],
           "H_uncalibrated": raw["H"], "gamma": float(gamma), "seconds": secs}
    if stage == "test":
        out["AUSUC"] = ausuc(scores, y, cand, seen, unseen)
    return out


def objective_value(scores: dict[str, Any], setting: str, gzsl_objective: str = "H") -> float:
    """The number model selection maximises: ZSL per-class top-1, or H (``gzsl_objective``) for GZSL."""
    return scores["acc"] if setting == "zsl" else scores[gzsl_objective]


def param_grid(method_cls, fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """Combinations of the method's ``param_grid`` minus the fixed parameters (at most MAX_GRID, seeded)."""
    grid = {k: v for k, v in method_cls.param_grid.items() if k not in fixed}
    if not grid:
        return [{}]
    keys = sorted(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
    if len(combos) > MAX_GRID:
        rng = np.random.default_rng(0)
        combos = [combos[i] for i in sorted(rng.choice(len(combos), MAX_GRID, replace=False))]
    return combos


# -- selection ----------------------------------------------------------------------------------
def select_on_validation(
    spec: str, ds: ZSLDataset, *, setting: str = "zsl", semantics: str | None = None, seed: int = 0,
    overrides: dict[str, Any] | None = None, fit_cache: FitCache | None = None,
) -> dict[str, Any]:
    """Only the selection step: the grid fitted on the train classes and scored on the validation classes.

    Returns the run record's ``validation`` part (trials, best parameters, best score, objective,
    gamma for GZSL). No test data is touched -- for choosing dataset presets and for tuning.
    """
    spec = resolve_spec(spec, ds.name)
    overrides = dict(overrides or {})
    S = ds.class_embeddings(semantics, stage="val")  # learnt sources tune with their validation stage
    combos = param_grid(get_method_class(spec), overrides)
    fits = fit_cache if fit_cache is not None else FitCache(max_entries=0)
    return _select_on_validation(spec, ds, setting, S, seed, overrides, combos, fits, lambda m: None)[2]


def _select_on_validation(spec, ds, setting, S, seed, overrides, combos, fits, log) -> tuple[dict, float | None, dict]:
    """Fit every combination on the train classes, keep the best on the validation classes."""
    objective = get_method_class(spec).gzsl_objective if setting == "gzsl" else "acc"
    validation: dict[str, Any] = {"trials": [], "objective": objective}
    best_params: dict[str, Any] = {}
    best_score, gamma = -1.0, None
    for params in combos:
        record = fits.fit(spec, {**params, **overrides}, seed, ds, "train", S, ds.train_classes)
        res = score_split(record.method, ds, setting, stage="val")
        score = res[objective]
        validation["trials"].append({"params": params, "score": score, **({"H_uncalibrated": res["H_uncalibrated"]}
                                                                           if setting == "gzsl" else {})})
        log(f"  val {spec} {params}: {score:.4f}")
        if score > best_score:
            best_score, best_params = score, params
            gamma = res.get("gamma")
    validation.update(best_params=best_params, best_score=best_score)
    if setting == "gzsl":
        validation["gamma"] = gamma
    return {**best_params, **overrides}, gamma, validation


def _select_on_test(spec, ds, setting, S, seed, overrides, combos, fits) -> tuple[dict, float | None, dict]:
    """Oracle selection: parameters and gamma by TEST score (parity with published numbers only)."""
    validation: dict[str, Any] = {"trials": [], "note": "oracle: parameters and gamma chosen on TEST data, "
                                                         "for parity with published numbers only"}
    best_score, final_params, gamma = -1.0, dict(overrides), None
    for params in combos:
        record = fits.fit(spec, {**params, **overrides}, seed, ds, "trainval", S, ds.seen_classes)
        res = score_split(record.method, ds, setting, stage="test", gamma=None if setting == "gzsl" else 0.0)
        score = objective_value(res, setting, get_method_class(spec).gzsl_objective)
        validation["trials"].append({"params": params, "test_score": score})
        if score > best_score:
            best_score, final_params, gamma = score, {**params, **overrides}, res.get("gamma")
    return final_params, gamma, validation


def check_protocol_is_meaningful(ds: ZSLDataset, spec: str, setting: str, selection: str, overrides: dict) -> None:
    """Refuse runs whose number could only be nonsense: ZSL over one candidate class scores 1.0
    whatever the method does, and so does ZSL model selection over one validation class."""

    def names(ids):
        return ", ".join(str(ds.class_names[int(c)]) for c in ids)

    if setting == "zsl" and len(ds.unseen_classes) < 2:
        raise ZSLError(
            f"{ds.name}/{ds.split} has {len(ds.unseen_classes)} unseen class ({names(ds.unseen_classes)}): ZSL top-1 "
            "over a single candidate is 1.0 whatever the method does. Use --setting gzsl (seen + unseen "
            "candidates), or a dataset with more classes (image folders hold out 2 from 5 classes on)"
        )
    if setting == "zsl" and selection == "val" and len(ds.val_classes) < 2 and \
            len(param_grid(get_method_class(spec), overrides)) > 1:
        raise ZSLError(
            f"{ds.name}/{ds.split} has {len(ds.val_classes)} validation class ({names(ds.val_classes)}): ZSL "
            "selection over a single candidate scores every setting 1.0. Pass --selection none (the preset as "
            "is), --set the parameters, or use --setting gzsl"
        )


def run_method(
    spec: str,
    dataset: ZSLDataset,
    *,
    setting: str = "zsl",
    semantics: str | None = None,
    seed: int = 0,
    selection: str = "val",
    overrides: dict[str, Any] | None = None,
    fit_cache: FitCache | None = None,
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
    spec = resolve_spec(spec, dataset.name)
    overrides = dict(overrides or {})
    check_protocol_is_meaningful(dataset, spec, setting, selection, overrides)
    source = semantics or dataset.default_semantics
    S = dataset.class_embeddings(source)
    # learnt sources (VGSE) tune with their validation-stage matrix: validation classes transferred
    # like test classes; identical to S for every other source
    S_val = dataset.class_embeddings(source, stage="val")
    fits = fit_cache if fit_cache is not None else FitCache(max_entries=0)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if verbose else (lambda msg: None)

    combos = param_grid(cls, overrides) if selection != "none" else [{}]
    if selection == "oracle":
        final_params, gamma, validation = _select_on_test(spec, dataset, setting, S, seed, overrides, combos, fits)
    elif len(combos) > 1 or setting == "gzsl":  # GZSL needs validation for gamma even with one candidate
        final_params, gamma, validation = _select_on_validation(
            spec, dataset, setting, S_val, seed, overrides, combos, fits, log
        )
    else:
        final_params, gamma, validation = {**combos[0], **overrides}, None, {"trials": []}
    if setting == "zsl":
        gamma = 0.0

    record = fits.fit(spec, final_params, seed, dataset, "trainval", S, dataset.seen_classes)
    method = record.method
    res = score_split(method, dataset, setting, stage="test", gamma=gamma)
    per_class = res.pop("per_class", {})
    predict_seconds = res.pop("seconds")
    metrics = {k: float(v) for k, v in res.items()}
    config = {
        "method": spec,
        "preset": spec.partition(".")[2] or "default",
        "params": {k: jsonable(v) for k, v in identity_params(method).items()},
        "selected": {k: jsonable(v) for k, v in final_params.items()},
        "dataset": dataset.name,
        "split": dataset.split,
        "dataset_fingerprint": dataset.fingerprint(),
        "semantics": source,
        "semantics_digest": content_digest(S),
        **({"semantics_validation_digest": content_digest(S_val)} if S_val is not S else {}),
        "setting": setting,
        "seed": seed,
        "selection": selection,
    }
    validation["final_fit"] = {"reused": record.reused, "fit_seconds": record.seconds}
    return RunResult(
        method=cls.name,
        dataset=dataset.name,
        split=dataset.split,
        setting=setting,
        seed=seed,
        selection=selection if selection != "oracle" else "oracle (test-tuned)",
        semantics=source,
        metrics=metrics,
        fit_seconds=record.seconds,
        predict_seconds=predict_seconds,
        peak_rss_mb=peak_rss_mb(),
        config=config,
        validation=validation,
        per_class=per_class,
        fit_reused=record.reused,
    )


def save_run(result: RunResult, cache_dir=None):
    """Write the run's resolved config and metrics to ``<cache>/runs/<id>/`` (atomically); returns the folder."""
    from ..io import cache_root, config_hash, write_json

    rid = (
        f"{result.method}-{result.dataset}-{result.split}-{result.setting}-s{result.seed}-{config_hash(result.config)}"
    )
    folder = cache_root(cache_dir) / "runs" / rid
    write_json(folder / "config.json", result.config)
    write_json(folder / "result.json", {**result.to_json(), "per_class": result.per_class})
    return folder


def jsonable(v):
    """``v`` as plain JSON data (numpy scalars to Python numbers; anything else by repr)."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)
