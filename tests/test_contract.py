"""One contract suite over every registered method: one pytest id per (method, check).

Each method is built from its ``tiny`` preset (or ``default``) and fitted once per module on the
seeded synthetic dataset; checks that need a fresh fit make their own.
"""
from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
from sklearn.base import clone

import zsl
from zsl.errors import NotFittedError

METHODS = zsl.list_methods()
CLASSIFIERS = zsl.list_methods(retrieval=False)
RETRIEVAL = zsl.list_methods(retrieval=True)


def _spec(name: str) -> str:
    cls = zsl.get_method_class(name)
    return f"{name}.tiny" if "tiny" in cls.all_presets() else name


@pytest.fixture(scope="module")
def data():
    ds = zsl.make_synthetic(seed=0)
    Xtr, ytr = ds.subset("trainval")
    return ds, Xtr, ytr, ds.class_embeddings()


_FITTED: dict[str, object] = {}


def _fitted(name, data):
    if name not in _FITTED:
        ds, Xtr, ytr, S = data
        _FITTED[name] = zsl.create_method(_spec(name)).fit(Xtr, ytr, S, ds.seen_classes)
    return _FITTED[name]


# -- every method -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_registered_with_tags_and_presets(name):
    cls = zsl.get_method_class(name)
    assert cls.name == name
    assert {"family", "supports_gzsl", "retrieval", "stochastic"} <= set(cls.tags)
    assert "default" in cls.presets
    assert cls.__module__.startswith("zsl.methods.")
    assert (inspect.getmodule(cls).__doc__ or "").strip(), "method module needs a docstring with the reference"


@pytest.mark.parametrize("name", METHODS)
def test_init_stores_params_unchanged(name):
    cls = zsl.get_method_class(name)
    preset = cls.all_presets()["tiny" if "tiny" in cls.all_presets() else "default"]
    method = zsl.create_method(_spec(name))
    params = method.get_params()
    for k, v in preset.items():
        assert params[k] == v, f"{name}: param {k} changed from {v!r} to {params[k]!r} in __init__"
    sig = inspect.signature(cls.__init__)
    assert all(p.kind == p.KEYWORD_ONLY for n, p in sig.parameters.items() if n != "self"), (
        "params must be keyword-only"
    )
    cloned = clone(method)
    assert cloned.get_params() == params
    method.set_params(**{k: v for k, v in params.items()})


@pytest.mark.parametrize("name", METHODS)
def test_unfitted_raises(name, data):
    ds, *_ = data
    method = zsl.create_method(_spec(name))
    with pytest.raises(NotFittedError):
        if zsl.get_method_class(name).tags.get("retrieval"):
            method.encode(ds.X[:5])
        else:
            method.decision_function(ds.X[:5], ds.unseen_classes)


@pytest.mark.parametrize("name", METHODS)
def test_fit_returns_self_and_sets_fitted_attributes(name, data):
    method = _fitted(name, data)
    assert isinstance(method, zsl.get_method_class(name))
    params = method.get_params(deep=False)
    assert any(k.endswith("_") and not k.startswith("_") and k not in params for k in vars(method))


@pytest.mark.parametrize("name", METHODS)
def test_save_load_round_trip(name, data, tmp_path):
    ds, *_ = data
    method = _fitted(name, data)
    path = method.save(tmp_path / f"{name}.npz")
    loaded = zsl.ZSLMethod.load(path)
    Xq = ds.X[ds.splits["test_unseen"][:20]]
    if zsl.get_method_class(name).tags.get("retrieval"):
        np.testing.assert_array_equal(method.encode(Xq), loaded.encode(Xq))
    else:
        np.testing.assert_allclose(
            method.decision_function(Xq, ds.unseen_classes),
            loaded.decision_function(Xq, ds.unseen_classes),
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_result(name, data):
    ds, Xtr, ytr, S = data
    Xq = ds.X[ds.splits["test_unseen"][:30]]
    outs = []
    for _ in range(2):
        m = zsl.create_method(_spec(name))
        if "random_state" in m.get_params():
            m.set_params(random_state=3)
        m.fit(Xtr, ytr, S, ds.seen_classes)
        outs.append(m.encode(Xq) if m.tags.get("retrieval") else m.decision_function(Xq, ds.unseen_classes))
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("name", METHODS)
def test_fit_does_not_mutate_inputs_and_accepts_read_only_arrays(name, data):
    ds, Xtr, ytr, S = data
    X, y, E, seen = Xtr.copy(), ytr.copy(), S.copy(), ds.seen_classes.copy()
    for a in (X, y, E, seen):
        a.setflags(write=False)
    m = zsl.create_method(_spec(name)).fit(X, y, E, seen)
    np.testing.assert_array_equal(X, Xtr)
    np.testing.assert_array_equal(E, S)
    Xq = ds.X[ds.splits["test_unseen"][:20]].copy()
    Xq.setflags(write=False)
    before = Xq.copy()
    if m.tags.get("retrieval"):
        m.encode(Xq)
    else:
        m.decision_function(Xq, ds.unseen_classes)
    np.testing.assert_array_equal(Xq, before)


@pytest.mark.parametrize("name", METHODS)
def test_default_preset_equals_the_class_defaults(name):
    cls = zsl.get_method_class(name)
    assert zsl.create_method(name).get_params() == cls().get_params()
    assert cls.presets["default"] == {}, "the default preset is the class defaults, nothing else"


@pytest.mark.parametrize("name", METHODS)
def test_presets_grids_and_spaces_name_only_real_parameters(name):
    cls = zsl.get_method_class(name)
    params = set(cls._get_param_names())
    for preset, values in cls.all_presets().items():
        assert set(values) <= params, f"preset {preset!r} names unknown parameters {set(values) - params}"
        zsl.create_method(f"{name}.{preset}")  # every preset passes the declared constraints
    assert set(cls.param_grid) <= params and set(cls.search_space) <= params
    assert set(cls.parameter_constraints) == params, "every constructor parameter declares its constraint"
    assert set(cls.runtime_params) <= params


@pytest.mark.parametrize("name", METHODS)
def test_invalid_parameter_values_are_one_line_errors_naming_the_parameter(name, data):
    from zsl.params import ParameterError

    ds, Xtr, ytr, S = data
    cls = zsl.get_method_class(name)
    numeric = [k for k, v in cls().get_params().items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "random_state"]
    assert numeric, "every method has a numeric hyperparameter"
    for bad in (float("nan"), -5, "abc"):
        with pytest.raises(ParameterError, match=numeric[0]):
            zsl.create_method(name, **{numeric[0]: bad})
        m = cls(**{numeric[0]: bad})  # the constructor only stores; fit checks
        with pytest.raises(ParameterError, match=numeric[0]):
            m.fit(Xtr, ytr, S, ds.seen_classes)


def test_grids_name_only_existing_presets():
    from zsl.bench.runner import GRIDS, grid_methods, load_grid

    for grid_name in GRIDS:
        grid = load_grid(grid_name)
        for dataset in [*grid["datasets"], None]:
            for spec in grid_methods(grid, dataset):
                base, _, preset = spec.partition(".")
                assert preset in zsl.get_method_class(base).all_presets(), (grid_name, dataset, spec)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_a_warm_fit_cache_gives_the_cold_answer(name, data):
    from zsl.eval.protocol import FitCache, run_method

    ds = data[0]
    cache = FitCache()
    cold = run_method(_spec(name), ds, setting="zsl", selection="none")
    run_method(_spec(name), ds, setting="zsl", selection="none", fit_cache=cache)
    warm = run_method(_spec(name), ds, setting="zsl", selection="none", fit_cache=cache)
    assert warm.fit_reused and not cold.fit_reused
    assert warm.metrics == cold.metrics


# -- classifiers --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_scores_finite_and_shaped(name, data):
    ds, *_ = data
    method = _fitted(name, data)
    Xq = ds.X[ds.splits["test_unseen"]]
    for cand in (ds.unseen_classes, np.arange(ds.n_classes), ds.unseen_classes[::-1].copy()):
        scores = method.decision_function(Xq, cand)
        assert scores.shape == (len(Xq), len(cand))
        assert np.isfinite(scores).all()
    # candidate order must permute the score columns, nothing else
    s1 = method.decision_function(Xq, ds.unseen_classes)
    s2 = method.decision_function(Xq, ds.unseen_classes[::-1].copy())
    np.testing.assert_allclose(s1, s2[:, ::-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_predictions_within_candidates(name, data):
    ds, *_ = data
    method = _fitted(name, data)
    Xq = ds.X[ds.splits["test_unseen"]]
    pred = method.predict(Xq, ds.unseen_classes)
    assert pred.shape == (len(Xq),)
    assert np.isin(pred, ds.unseen_classes).all()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_beats_chance_on_unseen_classes(name, data):
    ds, *_ = data
    method = _fitted(name, data)
    idx = ds.splits["test_unseen"]
    acc = zsl.eval.per_class_accuracy(ds.y[idx], method.predict(ds.X[idx], ds.unseen_classes))
    chance = 1.0 / len(ds.unseen_classes)
    assert acc > 1.5 * chance, f"{name}: ZSL accuracy {acc:.3f} is not clearly above chance {chance:.3f}"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_bad_input_is_a_clear_error(name, data):
    ds, Xtr, ytr, S = data
    method = _fitted(name, data)
    bad = ds.X[:4].copy()
    bad[1, 3] = np.nan
    with pytest.raises(zsl.DataError, match="NaN"):
        method.decision_function(bad, ds.unseen_classes)
    with pytest.raises(zsl.DataError):
        method.decision_function(ds.X[:4, :-1], ds.unseen_classes)
    S_missing = S.copy()
    S_missing[ds.unseen_classes[0]] = np.nan
    with pytest.raises(zsl.DataError, match="description"):
        copy.deepcopy(zsl.create_method(_spec(name))).fit(Xtr, ytr, S_missing, ds.seen_classes)


# -- retrieval (hashing) methods --------------------------------------------------------------
@pytest.mark.parametrize("name", RETRIEVAL)
def test_encode_packed_codes(name, data):
    ds, *_ = data
    method = _fitted(name, data)
    codes = method.encode(ds.X[:10])
    n_bits = method.get_params()["n_bits"]
    assert codes.dtype == np.uint8 and codes.shape == (10, n_bits // 8)


@pytest.mark.parametrize("name", RETRIEVAL)
def test_retrieval_beats_chance(name, data):
    from zsl.eval.retrieval import mean_average_precision

    ds, *_ = data
    method = _fitted(name, data)
    db = np.concatenate([ds.splits["trainval"], ds.splits["test_unseen"][::2]])
    q = ds.splits["test_unseen"][1::2]
    mAP = mean_average_precision(method.encode(ds.X[q]), ds.y[q], method.encode(ds.X[db]), ds.y[db])
    chance = np.mean([np.mean(ds.y[db] == c) for c in ds.y[q]])
    assert mAP > 1.2 * chance, f"{name}: mAP {mAP:.3f} not above chance {chance:.3f}"
