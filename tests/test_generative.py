"""Generative ZSL: the shared generator API, checkpoint/resume, input spaces, conditions, clusterability,
few-shot, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import zsl
from zsl import nn as znn
from zsl.eval.clustering import clusterability_score
from zsl.eval.fewshot import fewshot_accuracy, sample_episodes
from zsl.methods._generative import ConditionSpace, synthesize
from zsl.methods.fclswgan import ConditionalGenerator, Critic, train_conditional_wgan
from zsl.preprocessing import FeaturePreprocessor, RBFAnchors

EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def syn():
    ds = zsl.make_synthetic(seed=0)
    X, y = ds.subset("trainval")
    return ds, X, y, ds.class_embeddings()


def test_component_api_shapes_and_determinism(syn):
    ds, X, y, S = syn
    kw = dict(noise_dim=8, hidden=32, steps=30, batch_size=64, lr=1e-3, critic_iters=2, gp_lambda=10.0, cls_weight=0.1,
              classifier_epochs=2, random_state=5)
    with znn.deterministic_torch(1):
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
    assert critic(torch.zeros(3, X.shape[1]), torch.zeros(3, S.shape[1])).shape == (3,)


def _class_means(X, y, classes):
    return np.stack([X[y == c].mean(0) for c in classes])


@pytest.mark.parametrize("spec,extra", [
    ("fclswgan.tiny", {"gan_steps": 600, "hidden": 128, "cls_weight": 1.0}),
    ("cvae_clusterable.tiny", {}),
    ("cpl.tiny", {"gan_steps": 600, "gan_hidden": 128, "gan_cls_weight": 1.0}),
])
def test_generated_unseen_features_lie_nearest_their_own_class(spec, extra):
    """Issue 14 item 6: each generator's unseen samples are nearer their class's true mean than any other's.

    Synthetic data whose class means are a linear function of the attributes (what every generator
    here can learn from the seen classes); the check is on classes the generator never saw.
    """
    rng = np.random.default_rng(0)
    n_cls, k, d = 24, 6, 16  # 20 seen classes pin down the 6-d linear map
    S = rng.normal(size=(n_cls, k)).astype(np.float32)
    W = rng.normal(size=(k, d)).astype(np.float32)
    means = S @ W
    means = 2.0 * (means - means.min()) / (means.max() - means.min())  # non-negative, like CNN features
    y = np.repeat(np.arange(n_cls), 60)
    X = (means[y] + 0.05 * rng.normal(size=(len(y), d))).astype(np.float32)
    unseen = np.array([0, 1, 2, 3])
    seen = np.setdiff1d(np.arange(n_cls), unseen)
    tr = np.isin(y, seen)
    m = zsl.create_method(spec, random_state=0, **extra).fit(X[tr], y[tr], S, seen)
    if spec.startswith("cvae"):
        Z_true, (Z_syn, y_syn) = m.transform(X), m.synthesize(unseen, 100, random_state=1)
    else:
        Z_true = m.embed(X) if spec.startswith("cpl") else m.preprocessor_.transform(X)
        G = m.generator_
        Z_syn, y_syn = synthesize(G, m.conditions_, unseen, 100, random_state=1)
    true_means = _class_means(Z_true, y, unseen)
    syn_means = _class_means(Z_syn, y_syn, unseen)
    dist = ((syn_means[:, None, :] - true_means[None, :, :]) ** 2).sum(-1)
    assert (dist.argmin(1) == np.arange(len(unseen))).all(), dist


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("spec,extra", [
    ("fclswgan.tiny", {"gan_steps": 40}),
    ("cvae_clusterable.tiny", {"epochs": 4, "finetune_epochs": 3}),
    ("cpl.tiny", {"epochs": 4, "gan_steps": 20}),
])
def test_interrupted_fit_resumes_to_the_same_result(spec, extra, syn, monkeypatch, tmp_path):
    ds, X, y, S = syn
    Xq = ds.X[ds.splits["test_unseen"][:40]]
    ref = zsl.create_method(spec, **extra, random_state=2).fit(X, y, S, ds.seen_classes)
    expected = ref.decision_function(Xq, ds.unseen_classes)

    folder = str(tmp_path / "ckpt")
    real_save = znn.Checkpointer.save
    calls = {"n": 0}

    def save_then_die(self, state):  # the process "dies" right after the 3rd checkpoint is on disk
        real_save(self, state)
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Interrupt

    monkeypatch.setattr(znn.Checkpointer, "save", save_then_die)
    with pytest.raises(_Interrupt):
        zsl.create_method(spec, **extra, checkpoint_dir=folder, random_state=2).fit(X, y, S, ds.seen_classes)
    assert list((tmp_path / "ckpt").rglob("state.pt")), "a checkpoint was written"
    monkeypatch.setattr(znn.Checkpointer, "save", real_save)
    resumed = zsl.create_method(spec, **extra, checkpoint_dir=folder, random_state=2).fit(X, y, S, ds.seen_classes)
    # the same float32 operations in the same order from the same restored state: identical
    np.testing.assert_array_equal(resumed.decision_function(Xq, ds.unseen_classes), expected)
    # and a different seed is a different checkpoint folder and a different model
    other = zsl.create_method(spec, **extra, checkpoint_dir=folder, random_state=3).fit(X, y, S, ds.seen_classes)
    assert not np.allclose(other.decision_function(Xq, ds.unseen_classes), expected)


def test_no_checkpoint_is_written_unless_a_folder_is_given(syn, tmp_path, monkeypatch):
    ds, X, y, S = syn
    monkeypatch.setenv("ZSL_CACHE", str(tmp_path))
    zsl.create_method("fclswgan.tiny", gan_steps=10).fit(X, y, S, ds.seen_classes)
    assert not list(tmp_path.rglob("state.pt"))


def test_checkpoint_identity_follows_params_data_and_code(syn, tmp_path):
    ds, X, y, S = syn
    root = tmp_path / "ckpt"
    for extra in ({}, {"rbf_anchors": 50}, {"pca_dim": 8}):  # another input space is another folder
        zsl.create_method("fclswgan.tiny", gan_steps=5, checkpoint_dir=str(root), **extra).fit(X, y, S, ds.seen_classes)
    assert len([p for p in root.iterdir() if p.is_dir()]) == 3
    a = znn.Checkpointer.for_fit(root, "m", {"x": 1}, "data", znn.code_digest(train_conditional_wgan))
    b = znn.Checkpointer.for_fit(root, "m", {"x": 1}, "data", znn.code_digest(train_conditional_wgan, Critic))
    c = znn.Checkpointer.for_fit(root, "m", {"x": 1}, "other data", znn.code_digest(train_conditional_wgan))
    assert len({a.folder, b.folder, c.folder}) == 3
    assert not znn.Checkpointer.for_fit(None, "m", {}, "d", "c").enabled


def test_a_crafted_checkpoint_never_runs_code(tmp_path, capsys):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save({"step": 1, "payload": Evil()}, folder / "state.pt", pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert znn.Checkpointer(folder).load() is None
    assert not marker.exists()
    assert "ignoring checkpoint" in capsys.readouterr().err


def test_ablation_switches_change_the_feature_space(syn):
    ds, X, y, S = syn
    na = zsl.create_method("cvae_clusterable.tiny", use_mapping=False, use_gaussian=False, noise_alpha=0.0).fit(
        X, y, S, ds.seen_classes
    )
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
    assert (
        main(
            [
                "fewshot", "--dataset", "synthetic", "--episodes", "20", "--queries", "5", "--epochs", "2", "--pca-dim",
                "0", "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert {(r["features"], r["shots"]) for r in out["rows"]} == {
        (f, k) for f in ("raw features", "Gaussian map F") for k in (1, 5)
    }
    assert main(["ablation", "--method", "eszsl", "--dataset", "synthetic"]) == 2


def test_synthetic_alignment_finds_the_nearest_real_class_mean():
    from zsl.analysis.generative import synthetic_alignment

    real = np.array([[0.0, 0], [0, 0.2], [5, 5], [5, 5.2], [10, 0], [10, 0.2]])
    y_real = np.array([0, 0, 1, 1, 2, 2])
    # class 0 and 1 synthesised on target, class 2 synthesised on top of class 1
    synth = np.array([[0.1, 0.1], [5, 5.1], [5.2, 5.0]])
    out = synthetic_alignment(real, y_real, synth, np.array([0, 1, 2]), np.array([0, 1, 2]))
    assert out["ranks"] == [0, 0, 1] and out["fraction_nearest_own"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("spec", ["cvae_clusterable.tiny", "fclswgan.tiny"])
def test_cli_tsne_writes_the_figure_and_the_alignment(spec, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from zsl.cli import main

    assert main(["tsne", "--method", spec, "--dataset", "synthetic", "--out", str(tmp_path)]) == 0
    name = spec.split(".")[0]
    assert (tmp_path / f"tsne-{name}.png").stat().st_size > 1000
    md = (tmp_path / f"tsne-{name}.md").read_text()
    assert "nearest its own real mean" in md and md.count("\n|") >= 1 + 5  # header + one row per unseen class
    assert main(["tsne", "--method", "eszsl", "--dataset", "synthetic", "--out", str(tmp_path)]) == 2


def test_feature_scales():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 20)) * np.geomspace(10, 0.1, 20)  # very unequal variances
    Z = FeaturePreprocessor(8, scale="whiten").fit(X).transform(X)
    np.testing.assert_allclose(Z.std(0), 1.0, rtol=1e-3)
    Zs = FeaturePreprocessor(8, scale="std").fit(X).transform(X)
    assert Zs.std(0)[0] > 5 * Zs.std(0)[-1], "'std' keeps the PCA spectrum, one global scale"
    R = np.abs(X).astype(np.float32)  # non-negative like CNN features
    Zm = FeaturePreprocessor(None, scale="minmax").fit(R).transform(R)
    np.testing.assert_allclose(Zm.min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(Zm.max(0), 1.0, rtol=1e-6)
    with pytest.raises(ValueError):
        FeaturePreprocessor(8, scale="bogus").fit(X)


def test_rbf_input_map_is_applied_before_pca_at_fit_and_transform():
    rng = np.random.default_rng(0)
    X, Xq = rng.random((300, 12)), rng.random((40, 12))
    prep = FeaturePreprocessor(6, scale="whiten", rbf_anchors=50).fit(X)
    K = RBFAnchors(50, 0).fit(X)
    by_hand = FeaturePreprocessor(6, scale="whiten").fit(K.transform(X))
    got, want = prep.transform(Xq), by_hand.transform(K.transform(Xq))
    # Both paths evaluate the same float32 kernel (50 terms per entry) and PCA; whitening divides by
    # each component's std, so an absolute error of a few float32 ulps of the kernel values grows by
    # (kernel scale / smallest retained std). The bound is that factor times 50 * eps32.
    amplification = float(np.abs(K.transform(X)).max() / by_hand.scale_.min())
    np.testing.assert_allclose(got, want, rtol=0, atol=50 * EPS32 * amplification * np.sqrt(12))
    assert got.shape == (40, 6)


def test_condition_space_norm_and_seen_span(syn):
    ds, X, y, S = syn
    k = S.shape[1]
    A = ConditionSpace(norm="sqrt_dim").fit_transform(S, ds.seen_classes)
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), np.sqrt(k), rtol=1e-5)
    with pytest.raises(ValueError):
        ConditionSpace(norm="big").fit_transform(S, ds.seen_classes)
    wide = np.random.default_rng(0).normal(size=(12, 300)).astype(np.float32)  # k > number of seen classes
    seen = np.arange(8)
    space = ConditionSpace(seen_span=True)
    B = space.fit_transform(wide, seen)
    assert B.shape == (12, 7)  # at most |S| - 1 axes of the centred seen embeddings
    np.testing.assert_allclose(np.linalg.norm(B, axis=1), 1.0, rtol=1e-5)
    # seen rows keep their pairwise geometry (the axes span them exactly)
    Wn = wide / np.linalg.norm(wide, axis=1, keepdims=True)
    Ws = Wn[seen] - Wn[seen].mean(0)
    Bs = (Ws @ space.axes_.T)
    np.testing.assert_allclose(Bs @ Bs.T, Ws @ Ws.T, atol=1e-5)


@pytest.mark.parametrize("method", ["fclswgan", "cvae_clusterable", "cpl"])
def test_dataset_presets_declared(method):
    from zsl import get_method_class

    presets = get_method_class(method).all_presets()
    assert {"default", "awa1", "flo", "quick", "tiny"} <= set(presets)


def test_torch_fits_use_deterministic_kernels_and_restore_torch_state():
    from zsl.nn import Checkpointer, deterministic_torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    with deterministic_torch(1):
        assert torch.are_deterministic_algorithms_enabled()  # repeated-index backward sums in a fixed order
        assert torch.get_num_threads() == 1
        one = Checkpointer.for_fit("ck", "m", {"a": 1}, "data", "code").folder
    with deterministic_torch(2):
        two = Checkpointer.for_fit("ck", "m", {"a": 1}, "data", "code").folder
    assert one != two  # a fit at another thread count is another fit
    assert (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()) == before
