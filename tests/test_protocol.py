"""The protocol's reuse of identical fits, and the kernel map's memo: reuse must never change a result."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from zsl.eval import protocol
from zsl.methods import _kernels
from zsl.methods.eszsl import ESZSL


@pytest.fixture
def count_fits(monkeypatch):
    calls = []
    original = ESZSL.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(self.get_params())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ESZSL, "fit", counting_fit)
    protocol.clear_fit_memo()
    yield calls
    protocol.clear_fit_memo()


def test_identical_fits_are_reused_across_settings(synthetic, count_fits):
    grid = len(protocol._grid(ESZSL, {}))
    zsl = protocol.run_method("eszsl.linear", synthetic, setting="zsl")
    assert len(count_fits) == grid + 1  # the validation grid on train, then the final fit on trainval
    gzsl = protocol.run_method("eszsl.linear", synthetic, setting="gzsl")
    # the GZSL run scores the same grid differently: at most its final fit (if H picks other params) is new
    assert len(count_fits) <= grid + 2
    again = protocol.run_method("eszsl.linear", synthetic, setting="zsl")
    assert again.metrics == zsl.metrics
    assert again.fit_seconds == zsl.fit_seconds  # the original fit's time, not ~0
    assert 0 <= gzsl.metrics["H"] <= 1


def test_a_different_seed_or_embedding_is_a_new_fit(synthetic, count_fits):
    protocol.run_method("eszsl.linear", synthetic, setting="zsl", selection="none", seed=0)
    protocol.run_method("eszsl.linear", synthetic, setting="zsl", selection="none", seed=1)
    assert len(count_fits) == 2
    ds = copy.deepcopy(synthetic)  # the fixture is shared by the session: never mutate it
    ds.embeddings["noisy"] = ds.class_embeddings() + 0.01
    protocol.run_method("eszsl.linear", ds, setting="zsl", selection="none", semantics="noisy", seed=0)
    assert len(count_fits) == 3


def test_reused_fit_equals_a_fresh_fit(synthetic):
    protocol.clear_fit_memo()
    first = protocol.run_method("eszsl.linear", synthetic, setting="gzsl", selection="none")
    second = protocol.run_method("eszsl.linear", synthetic, setting="gzsl", selection="none")
    protocol.clear_fit_memo()
    fresh = protocol.run_method("eszsl.linear", synthetic, setting="gzsl", selection="none")
    assert first.metrics == second.metrics == fresh.metrics


def test_kernel_map_memo_returns_identical_read_only_features(monkeypatch):
    monkeypatch.setattr(_kernels, "MEMO_MIN_SIZE", 0)
    _kernels.clear_memo()
    rng = np.random.default_rng(0)
    X, Xt = rng.random((300, 20), dtype=np.float32), rng.random((50, 20), dtype=np.float32)
    a = _kernels.RBFAnchors(40, 0).fit(X)
    Fa = a.transform(Xt)
    b = _kernels.RBFAnchors(40, 0).fit(X.copy())  # same content, another array: a memo hit
    Fb = b.transform(Xt.copy())
    assert Fb is Fa and not Fa.flags.writeable
    monkeypatch.setattr(_kernels, "MEMO_MIN_SIZE", 10**12)  # memo off: recompute from scratch
    fresh = _kernels.RBFAnchors(40, 0).fit(X).transform(Xt)
    np.testing.assert_array_equal(fresh, Fa)
    other_seed = _kernels.RBFAnchors(40, 1).fit(X).transform(Xt)
    assert not np.array_equal(other_seed, Fa)
    _kernels.clear_memo()


def test_fit_then_transform_of_the_training_set_evaluates_the_kernel_once(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((300, 20), dtype=np.float32)
    monkeypatch.setattr(_kernels, "MEMO_MIN_SIZE", 10**12)  # memo off: the reference
    expected = _kernels.RBFAnchors(40, 0).fit(X).transform(X)
    monkeypatch.setattr(_kernels, "MEMO_MIN_SIZE", 0)
    _kernels.clear_memo()
    calls = []
    real_kernel = _kernels.RBFAnchors._kernel
    monkeypatch.setattr(_kernels.RBFAnchors, "_kernel", lambda self, A, **kw: calls.append(len(A)) or real_kernel(self, A, **kw))
    got = _kernels.RBFAnchors(40, 0).fit(X).transform(X)
    assert calls == [300], "fit computes the kernel of X; transform of the same X reuses it"
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    _kernels.clear_memo()
