"""VGSE: relation solvers (exact QP), patch clustering module, and the ``--semantics vgse`` path."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import zsl
from zsl.data import require_semantics
from zsl.errors import DataError, ZSLError
from zsl.semantics.relation import class_relation, relation_cosine, relation_lstsq, relation_qp
from zsl.semantics.vgse import (
    ClusteringConfig,
    VGSEConfig,
    attach_vgse,
    fit_patch_clustering,
    fit_vgse,
    patch_boxes,
    transfer_to_unseen,
)


def _brute_force_qp(A: np.ndarray, b: np.ndarray, alpha: float) -> float:
    """min ||A r - b||^2 s.t. alpha<=r<=1, sum r = 1 by enumerating every active set (lower/upper/free)."""
    S = A.shape[1]
    G, c = A.T @ A, A.T @ b
    best = np.inf
    for states in itertools.product((0, 1, 2), repeat=S):
        st = np.asarray(states)
        free = st == 2
        r = np.where(st == 0, alpha, 1.0).astype(float)
        if free.any():
            nf = int(free.sum())
            K = np.zeros((nf + 1, nf + 1))
            K[:nf, :nf] = G[np.ix_(free, free)]
            K[:nf, nf] = K[nf, :nf] = 1.0
            rhs = np.concatenate([c[free] - G[np.ix_(free, ~free)] @ r[~free], [1.0 - r[~free].sum()]])
            try:
                r[free] = np.linalg.solve(K, rhs)[:nf]
            except np.linalg.LinAlgError:
                continue
        if (r < alpha - 1e-9).any() or (r > 1 + 1e-9).any() or abs(r.sum() - 1) > 1e-9:
            continue
        best = min(best, float(np.sum((A @ r - b) ** 2)))
    return best


@pytest.mark.parametrize("alpha", [0.0, -0.3, 0.1])
def test_qp_relation_satisfies_constraints_and_matches_brute_force(alpha):
    rng = np.random.default_rng(3)
    for _ in range(5):
        W_seen = rng.normal(size=(5, 4))
        W_unseen = rng.normal(size=(3, 4))
        R, info = relation_qp(W_seen, W_unseen, alpha=alpha, return_info=True)
        assert R.shape == (3, 5)
        assert all(i["exact"] for i in info)
        np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-10)
        assert (R >= alpha - 1e-12).all() and (R <= 1 + 1e-12).all()
        for u in range(3):
            got = float(np.sum((W_seen.T @ R[u] - W_unseen[u]) ** 2))
            assert got == pytest.approx(_brute_force_qp(W_seen.T, W_unseen[u], alpha), rel=1e-8, abs=1e-10)


def test_qp_recovers_an_interior_convex_combination_and_rejects_infeasible_alpha():
    rng = np.random.default_rng(0)
    W_seen = rng.normal(size=(4, 10))
    r_true = np.array([0.1, 0.2, 0.3, 0.4])
    R = relation_qp(W_seen, r_true @ W_seen)
    np.testing.assert_allclose(R[0], r_true, atol=1e-9)
    with pytest.raises(ZSLError, match="infeasible"):
        relation_qp(W_seen, r_true @ W_seen, alpha=0.3)  # 4 * 0.3 > 1


def test_lstsq_and_cosine_relations():
    rng = np.random.default_rng(1)
    W_seen = rng.normal(size=(4, 10))
    w = np.array([[0.7, -0.5, 0.2, 1.1]]) @ W_seen
    np.testing.assert_allclose(relation_lstsq(W_seen, w), [[0.7, -0.5, 0.2, 1.1]], atol=1e-10)
    Rc = relation_cosine(W_seen, w)
    assert (Rc >= 0).all() and Rc.sum() == pytest.approx(1.0)
    with pytest.raises(ZSLError, match="unknown relation"):
        class_relation(W_seen, w, "nope")


def test_patch_boxes_cover_a_cifar_image_with_nine_overlapping_16px_patches():
    boxes = patch_boxes(32, 32, grid=3, patch_fraction=0.5)
    assert len(boxes) == 9
    assert boxes[0] == (0, 0, 16, 16) and boxes[4] == (8, 8, 24, 24) and boxes[8] == (16, 16, 32, 32)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # tiny networks: thread hand-offs cost more than they save (and the CI machine is shared)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _synthetic_patches(n_per_class=20, n_seen=4, nt=4, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_seen, d)) * 3
    labels = np.repeat(np.arange(n_seen), n_per_class)
    P = centres[labels][:, None, :] + rng.normal(size=(len(labels), nt, d))
    W = rng.normal(size=(n_seen, 6))
    return P.astype(np.float32), labels, W.astype(np.float32)


def test_patch_clustering_learns_class_embeddings_of_the_right_shape():
    P, labels, W = _synthetic_patches()
    res = fit_patch_clustering(P, labels, W, ClusteringConfig(n_clusters=8, epochs=10, batch_size=80, lr=2e-2), progress=False)
    assert res.class_embeddings.shape == (4, 8)
    assert res.image_embeddings.shape == (80, 8)
    np.testing.assert_allclose(res.class_embeddings.sum(1), 1.0, atol=1e-5)  # means of softmax rows
    assert res.history[-1]["acc"] > 0.9  # separable classes: Q(a) classifies the patches
    assert res.history[-1]["cls"] < res.history[0]["cls"]
    # class embeddings differ between classes (the clusters are class-discriminative)
    assert np.abs(res.class_embeddings[0] - res.class_embeddings[1]).sum() > 0.5
    again = fit_patch_clustering(P, labels, W, ClusteringConfig(n_clusters=8, epochs=10, batch_size=80, lr=2e-2), progress=False)
    np.testing.assert_allclose(res.class_embeddings, again.class_embeddings, atol=1e-6)  # seeded
    Phi_u, R = transfer_to_unseen(res.class_embeddings, W, W[:1] * 0.5 + W[1:2] * 0.5, "qp")
    assert Phi_u.shape == (1, 8) and R.sum() == pytest.approx(1.0)


def test_patch_clustering_rejects_bad_shapes():
    P, labels, W = _synthetic_patches()
    with pytest.raises(ZSLError, match="one label per image"):
        fit_patch_clustering(P[:, 0], labels, W)
    with pytest.raises(ZSLError, match="labels must cover"):
        fit_patch_clustering(P, labels, W[:3])


CLASSES = ("cat", "dog", "car", "ship", "horse")


def _image_folder(root, per_class=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            base = np.zeros((32, 32, 3), np.uint8)
            base[..., k % 3] = 200  # class colour
            base[: 8 * (k + 1) % 32] = 40  # class-specific band
            img = np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.jpg")
    return root


def test_semantics_vgse_on_a_tiny_image_folder(tmp_path):
    folder = _image_folder(tmp_path / "imgs")
    name = f"image-folder:{folder}"
    kw = dict(unseen_classes=["ship"], val_classes=["horse"], resolution=32, progress=False)
    ds = zsl.load_dataset(name, **kw)
    with pytest.raises(DataError, match="zsl vgse fit"):
        zsl.run_method("eszsl", ds, semantics="vgse", selection="none")
    cfg = VGSEConfig(images_per_class=None, grid=2, resolution=32,
                     clustering=ClusteringConfig(n_clusters=6, epochs=3, batch_size=32))
    summary = fit_vgse(ds, cfg, progress=False)
    assert summary["n_patches"] == len(ds.splits["trainval"]) * 4
    ds2 = zsl.load_dataset(name, **kw)
    assert "vgse" not in ds2.embeddings  # loading never reads learnt embeddings from the cache
    fingerprint = ds2.fingerprint()
    require_semantics(ds2, "vgse")  # asking for them by name does
    assert {"vgse", "vgse-lstsq", "vgse-cosine"} <= set(ds2.embeddings)
    assert ds2.fingerprint() == fingerprint  # attaching a source changes no run identity
    E = ds2.embeddings["vgse"]
    assert E.shape == (5, 6) and np.isfinite(E).all()
    ship = ds2.class_names.index("ship")
    assert E[ship].sum() == pytest.approx(1.0, abs=1e-5)  # convex combination of seen embeddings (alpha=0)
    res = zsl.run_method("eszsl", ds2, semantics="vgse", selection="none")
    assert 0.0 <= res.metrics["acc"] <= 1.0
    # a stored fit for another split is not attached
    ds3 = zsl.load_dataset(name, unseen_classes=["cat"], val_classes=["horse"], resolution=32, progress=False)
    with pytest.warns(UserWarning, match="refit"):
        attach_vgse(ds3)
    assert "vgse" not in ds3.embeddings


def test_cli_vgse_fit_then_run_with_semantics_vgse(tmp_path, capsys):
    from zsl.cli import main

    folder = _image_folder(tmp_path / "imgs", per_class=3)
    rc = main(["vgse", "fit", "--dataset", f"image-folder:{folder}", "--images-per-class", "0", "--grid", "2",
               "--resolution", "32", "--clusters", "5", "--epochs", "2", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert '"n_patches"' in out
