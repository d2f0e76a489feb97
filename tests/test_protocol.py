"""The protocol's explicit fit cache: reuse only when passed, visible in the record, never changing a result."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from zsl.eval import protocol
from zsl.methods.eszsl import ESZSL
from zsl.preprocessing import RBFAnchors


@pytest.fixture
def count_fits(monkeypatch):
    calls = []
    original = ESZSL.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(self.get_params())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ESZSL, "fit", counting_fit)
    return calls


def test_without_a_cache_every_run_fits_afresh(synthetic, count_fits):
    grid = len(protocol.param_grid(ESZSL, {}))
    protocol.run_method("eszsl.linear", synthetic, setting="zsl")
    protocol.run_method("eszsl.linear", synthetic, setting="zsl")
    assert len(count_fits) == 2 * (grid + 1)


def test_identical_fits_are_reused_across_settings_with_a_cache(synthetic, count_fits):
    cache = protocol.FitCache()
    grid = len(protocol.param_grid(ESZSL, {}))
    zsl = protocol.run_method("eszsl.linear", synthetic, setting="zsl", fit_cache=cache)
    assert len(count_fits) == grid + 1  # the validation grid on train, then the final fit on trainval
    assert not zsl.fit_reused and zsl.validation["final_fit"]["reused"] is False
    gzsl = protocol.run_method("eszsl.linear", synthetic, setting="gzsl", fit_cache=cache)
    # the GZSL run scores the same grid differently: at most its final fit (if H picks other params) is new
    assert len(count_fits) <= grid + 2
    again = protocol.run_method("eszsl.linear", synthetic, setting="zsl", fit_cache=cache)
    assert again.metrics == zsl.metrics
    assert again.fit_reused and again.validation["final_fit"]["reused"] is True
    assert again.fit_seconds == zsl.fit_seconds  # the original fit's time, marked as reused
    assert 0 <= gzsl.metrics["H"] <= 1


def test_a_different_seed_or_embedding_is_a_new_fit(synthetic, count_fits):
    cache = protocol.FitCache()
    protocol.run_method("eszsl.linear", synthetic, setting="zsl", selection="none", seed=0, fit_cache=cache)
    protocol.run_method("eszsl.linear", synthetic, setting="zsl", selection="none", seed=1, fit_cache=cache)
    assert len(count_fits) == 2
    ds = copy.deepcopy(synthetic)  # the fixture is shared by the session: never mutate it
    ds.embeddings["noisy"] = ds.class_embeddings() + 0.01
    protocol.run_method("eszsl.linear", ds, setting="zsl", selection="none", semantics="noisy", seed=0, fit_cache=cache)
    assert len(count_fits) == 3


def test_a_cache_of_size_zero_reuses_nothing(synthetic, count_fits):
    cache = protocol.FitCache(max_entries=0)
    for _ in range(2):
        protocol.run_method("eszsl.linear", synthetic, setting="zsl", selection="none", fit_cache=cache)
    assert len(count_fits) == 2 and len(cache) == 0


def test_cache_is_bounded(synthetic, count_fits):
    cache = protocol.FitCache(max_entries=1)
    for seed in (0, 1, 0):
        protocol.run_method("eszsl.linear", synthetic, setting="zsl", selection="none", seed=seed, fit_cache=cache)
    assert len(cache) == 1 and len(count_fits) == 3  # seed 0 was evicted by seed 1
    one = protocol.footprint(
        protocol.make_method("eszsl.linear", {}, 0).fit(
            *synthetic.subset("trainval"), synthetic.class_embeddings(), synthetic.seen_classes
        )
    )
    assert one > 0
    by_bytes = protocol.FitCache(max_bytes=int(1.5 * one))
    for seed in (0, 1, 2):
        protocol.run_method("eszsl.linear", synthetic, setting="zsl", selection="none", seed=seed, fit_cache=by_bytes)
    assert len(by_bytes) == 1


def test_reused_fit_equals_a_fresh_fit(synthetic):
    cache = protocol.FitCache()
    first = protocol.run_method("eszsl.linear", synthetic, setting="gzsl", selection="none", fit_cache=cache)
    second = protocol.run_method("eszsl.linear", synthetic, setting="gzsl", selection="none", fit_cache=cache)
    fresh = protocol.run_method("eszsl.linear", synthetic, setting="gzsl", selection="none")
    assert second.fit_reused and not fresh.fit_reused
    assert first.metrics == second.metrics == fresh.metrics


def test_runtime_params_do_not_split_the_cache(synthetic):
    from zsl.methods.fclswgan import FCLSWGAN

    assert "progress" in FCLSWGAN.runtime_params
    method = FCLSWGAN(progress=False)
    assert "progress" not in protocol.identity_params(method)


def test_kernel_map_fit_transform_equals_fit_then_transform():
    rng = np.random.default_rng(0)
    X = rng.random((300, 20), dtype=np.float32)
    expected = RBFAnchors(40, 0).fit(X).transform(X)
    got = RBFAnchors(40, 0).fit_transform(X)
    # same float32 operations in the same order: identical, not merely close
    np.testing.assert_array_equal(got, expected)
    other_seed = RBFAnchors(40, 1).fit_transform(X)
    assert not np.array_equal(other_seed, expected)
