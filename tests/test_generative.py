"""Generative ZSL: the f-CLSWGAN component API, checkpoint/resume, clusterability score, few-shot episodes, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

import zsl
from zsl.eval.clustering import clusterability_score
from zsl.eval.fewshot import fewshot_accuracy, sample_episodes
from zsl.methods import _torch_utils
from zsl.methods.fclswgan import ConditionalGenerator, Critic, synthesize, train_conditional_wgan


@pytest.fixture(scope="module")
def syn():
    ds = zsl.make_synthetic(seed=0)
    X, y = ds.subset("trainval")
    return ds, X, y, ds.class_embeddings()


def test_component_api_shapes_and_determinism(syn):
    ds, X, y, S = syn
    kw = dict(noise_dim=8, hidden=32, epochs=2, batch_size=64, lr=1e-3, critic_iters=2, gp_lambda=10.0, cls_weight=0.1,
              random_state=5, progress=False)
    g1 = train_conditional_wgan(X, y, S, ds.seen_classes, **kw)
    g2 = train_conditional_wgan(X, y, S, ds.seen_classes, **kw)
    assert isinstance(g1, ConditionalGenerator) and g1.noise_dim == 8 and g1.out_dim == X.shape[1]
    Xs, ys = synthesize(g1, S, ds.unseen_classes, 7, random_state=1)
    assert Xs.shape == (7 * len(ds.unseen_classes), X.shape[1]) and Xs.dtype == np.float32
    np.testing.assert_array_equal(ys, np.repeat(ds.unseen_classes, 7))
    assert (Xs >= 0).all(), "non-negative training features -> ReLU output (auto)"
    np.testing.assert_array_equal(Xs, synthesize(g2, S, ds.unseen_classes, 7, random_state=1)[0])
    assert not np.array_equal(Xs, synthesize(g1, S, ds.unseen_classes, 7, random_state=2)[0])
    critic = Critic(X.shape[1], S.shape[1], 16)
    import torch

    assert critic(torch.zeros(3, X.shape[1]), torch.zeros(3, S.shape[1])).shape == (3,)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("spec,extra", [
    ("fclswgan.tiny", {"epochs": 4}),
    ("cvae_clusterable.tiny", {"epochs": 4, "finetune_epochs": 3}),
])
def test_interrupted_fit_resumes_to_the_same_result(spec, extra, syn, monkeypatch, tmp_path):
    ds, X, y, S = syn
    Xq = ds.X[ds.splits["test_unseen"][:40]]
    ref = zsl.create_method(spec, **extra, checkpoint=False, random_state=2).fit(X, y, S, ds.seen_classes)
    expected = ref.decision_function(Xq, ds.unseen_classes)

    monkeypatch.setenv("ZSL_CACHE", str(tmp_path / "cache"))
    real_save = _torch_utils.Checkpointer.save
    calls = {"n": 0}

    def save_then_die(self, state):  # the process "dies" right after the 3rd checkpoint is on disk
        real_save(self, state)
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Interrupt

    monkeypatch.setattr(_torch_utils.Checkpointer, "save", save_then_die)
    with pytest.raises(_Interrupt):
        zsl.create_method(spec, **extra, checkpoint=True, random_state=2).fit(X, y, S, ds.seen_classes)
    assert list((tmp_path / "cache" / "checkpoints").rglob("state.pt")), "a checkpoint was written"
    monkeypatch.setattr(_torch_utils.Checkpointer, "save", real_save)
    resumed = zsl.create_method(spec, **extra, checkpoint=True, random_state=2).fit(X, y, S, ds.seen_classes)
    np.testing.assert_allclose(resumed.decision_function(Xq, ds.unseen_classes), expected, rtol=1e-5, atol=1e-5)
    # and a different seed is a different checkpoint folder and a different model
    other = zsl.create_method(spec, **extra, checkpoint=True, random_state=3).fit(X, y, S, ds.seen_classes)
    assert not np.allclose(other.decision_function(Xq, ds.unseen_classes), expected)


def test_ablation_switches_change_the_feature_space(syn):
    ds, X, y, S = syn
    na = zsl.create_method("cvae_clusterable.tiny", use_mapping=False, use_gaussian=False, noise_alpha=0.0).fit(X, y, S, ds.seen_classes)
    cls = zsl.create_method("cvae_clusterable.tiny", use_gaussian=False, noise_alpha=0.0).fit(X, y, S, ds.seen_classes)
    assert na.mapping_ is None and na.finetune_ is None
    assert cls.mapping_ is not None and cls.finetune_ is None
    Z = cls.transform(X[:10])
    assert Z.shape == (10, cls.map_dim) and (Z > 0).all() and (Z < 1).all(), "M is FC + Sigmoid"
    assert na.transform(X[:10]).shape == (10, X.shape[1])


def test_clusterability_score_orders_feature_spaces():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 40)
    centres = rng.normal(0, 10, (5, 8))
    tight = centres[y] + rng.normal(0, 0.1, (200, 8))
    loose = centres[y] + rng.normal(0, 12, (200, 8))
    s_tight = clusterability_score(tight, y)
    s_loose = clusterability_score(loose, y)
    assert s_tight["nmi"] > 0.99 and abs(s_tight["mi"] - np.log(5)) < 1e-6
    assert s_loose["nmi"] < s_tight["nmi"] - 0.3
    assert s_tight == clusterability_score(tight, y), "deterministic"
    with pytest.raises(zsl.DataError):
        clusterability_score(tight[:, :1].ravel(), y)


def test_fewshot_episodes_and_accuracy():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(8), 30)
    X = np.eye(8)[y] * 5 + rng.normal(0, 0.5, (240, 8))
    eps = list(sample_episodes(y, np.arange(8), n_way=5, k_shot=2, n_query=3, n_episodes=4, random_state=0))
    s_idx, s_lab, q_idx, q_lab = eps[0]
    assert len(s_idx) == 10 and len(q_idx) == 15 and not set(s_idx) & set(q_idx)
    assert len({int(y[i]) for i in s_idx}) == 5
    good = fewshot_accuracy(X, y, np.arange(8), k_shot=1, n_episodes=50)
    noise = fewshot_accuracy(rng.normal(size=X.shape), y, np.arange(8), k_shot=1, n_episodes=50)
    assert good["mean"] > 0.9 and noise["mean"] < 0.45 and good["ci95"] >= 0
    assert good == fewshot_accuracy(X, y, np.arange(8), k_shot=1, n_episodes=50)
    with pytest.raises(zsl.DataError):
        fewshot_accuracy(X, y, np.arange(3), n_way=5)


def test_cli_ablation_and_fewshot_on_synthetic(capsys):
    from zsl.cli import main

    assert main(["ablation", "--method", "cvae_clusterable.tiny", "--dataset", "synthetic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in out["rows"]] == ["NA", "+Cls", "+Cls+Gaussian", "+Cls+Gaussian+noise"]
    assert all(0 <= r["nmi"] <= 1 and 0 <= r["zsl_acc"] <= 1 for r in out["rows"])
    assert main(["fewshot", "--dataset", "synthetic", "--episodes", "20", "--queries", "5", "--epochs", "2", "--pca-dim", "0",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {(r["features"], r["shots"]) for r in out["rows"]} == {(f, k) for f in ("raw features", "Gaussian map F") for k in (1, 5)}
    assert main(["ablation", "--method", "eszsl", "--dataset", "synthetic"]) == 2


def test_pca_whitening_gives_every_component_unit_variance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 20)) * np.geomspace(10, 0.1, 20)  # very unequal variances
    Z = _torch_utils.FeaturePreprocessor(8, scale="whiten").fit(X).transform(X)
    np.testing.assert_allclose(Z.std(0), 1.0, rtol=1e-3)
    Zs = _torch_utils.FeaturePreprocessor(8, scale="std").fit(X).transform(X)
    assert Zs.std(0)[0] > 5 * Zs.std(0)[-1], "'std' keeps the PCA spectrum, one global scale"
    with pytest.raises(ValueError):
        _torch_utils.FeaturePreprocessor(8, scale="bogus").fit(X)


def test_rbf_input_map_is_applied_before_pca_at_fit_and_transform():
    from zsl.methods._kernels import RBFAnchors

    rng = np.random.default_rng(0)
    X, Xq = rng.random((300, 12)), rng.random((40, 12))
    prep = _torch_utils.FeaturePreprocessor(6, scale="whiten", rbf_anchors=50).fit(X)
    K = RBFAnchors(50, 0).fit(X)
    by_hand = _torch_utils.FeaturePreprocessor(6, scale="whiten").fit(K.transform(X))
    np.testing.assert_allclose(prep.transform(Xq), by_hand.transform(K.transform(Xq)), rtol=1e-4, atol=1e-5)
    assert prep.transform(Xq).shape == (40, 6)


@pytest.mark.parametrize("spec", ["cvae_clusterable", "fclswgan"])
def test_checkpoint_identity_includes_the_input_map(spec):
    """A checkpoint trained in one input space must never be resumed in another."""
    plain, mapped = zsl.create_method(spec), zsl.create_method(spec, rbf_anchors=100)
    config = (lambda m: m._config()) if spec == "cvae_clusterable" else (lambda m: m._gan_config())
    assert config(plain) != config(mapped)


def test_embedding_scale_sets_the_row_norm_of_the_condition(syn):
    from zsl.methods.fclswgan import embedding_norm

    ds, X, y, S = syn
    k = S.shape[1]
    assert embedding_norm("sqrt_dim", k) == pytest.approx(np.sqrt(k)) and embedding_norm(2.5, k) == 2.5
    with pytest.raises(ValueError):
        embedding_norm("big", k)
    for spec in ("fclswgan.tiny", "cvae_clusterable.tiny"):
        m = zsl.create_method(spec, embedding_scale="sqrt_dim", epochs=1).fit(X, y, S, ds.seen_classes)
        np.testing.assert_allclose(np.linalg.norm(m.class_embeddings_, axis=1), np.sqrt(k), rtol=1e-5)


@pytest.mark.parametrize("method", ["fclswgan", "cvae_clusterable"])
def test_quick_and_awa1_presets_declared(method):
    from zsl._registry import get_method_class

    presets = get_method_class(method).presets
    assert {"default", "awa1", "quick", "tiny"} <= set(presets)
    assert presets["quick"]["epochs"] < zsl.create_method(f"{method}.awa1").epochs, "quick trains less than awa1"
