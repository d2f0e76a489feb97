"""VGSE: relation solvers (exact QP), patch geometry, the patch clustering module and its losses, the
honest two-stage fit (selection model on train classes, validation classes through the relation
step) and the ``zsl vgse fit`` -> ``--semantics vgse`` path."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import zsl
from zsl.data import require_semantics
from zsl.errors import DataError, ZSLError
from zsl.params import ParameterError
from zsl.semantics.relation import class_relation, relation_cosine, relation_lstsq, relation_qp
from zsl.semantics.vgse import (
    PatchClustering,
    VGSEConfig,
    attach_vgse,
    choose_alpha,
    embedding_matrix,
    fit_dir,
    fit_vgse,
    load_clustering,
)
from zsl.semantics.vgse_patches import dataset_image_paths, patch_boxes


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


def test_patch_boxes_are_square_crops_covering_the_photo():
    boxes = patch_boxes(32, 32, grid=3, patch_fraction=0.5)  # CIFAR-10: nine 16 px crops, stride 8
    assert len(boxes) == 9
    assert boxes[0] == (0, 0, 16, 16) and boxes[4] == (8, 8, 24, 24) and boxes[8] == (16, 16, 32, 32)
    boxes = patch_boxes(171, 128)  # a FLO photo (shorter side 128): 64 px squares touching every border
    assert all(r - left == 64 and b - t == 64 for left, t, r, b in boxes)
    assert boxes[0][:2] == (0, 0) and boxes[-1][2:] == (171, 128)
    assert sorted({b[0] for b in boxes}) == [0, 54, 107] and sorted({b[1] for b in boxes}) == [0, 32, 64]
    with pytest.raises(ZSLError, match="patch_fraction"):
        patch_boxes(32, 32, patch_fraction=0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # tiny networks: thread hand-offs cost more than they save (and the CI machine is shared)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _synthetic_patches(n_per_class=30, n_classes=6, nt=4, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, d)) * 2
    labels = np.repeat(np.arange(n_classes), n_per_class)
    P = centres[labels][:, None, :] + rng.normal(size=(len(labels), nt, d))
    W = rng.normal(size=(n_classes, 5))
    return P.astype(np.float32), labels, W.astype(np.float32)


def _clustering(**kw):
    return PatchClustering(**{"n_clusters": 8, "hidden": 16, "epochs": 20, "batch_size": 64, "lr": 1e-2, **kw})


def test_patch_clustering_learns_class_discriminative_clusters_deterministically():
    P, labels, W = _synthetic_patches()
    m = _clustering().fit(P, labels, W)
    assert m.class_embeddings_.shape == (6, 8)
    np.testing.assert_allclose(m.class_embeddings_.sum(1), 1.0, atol=1e-5)  # means of softmax rows
    assert m.history_[-1]["acc"] > 0.9 > m.history_[0]["acc"]  # Q(a) classifies the patches after training
    assert m.history_[-1]["cls"] < 0.5 * m.history_[0]["cls"]
    # the classes get different embeddings: nearest embedding of each image is its own class's
    img = m.image_embeddings(P)
    nearest = np.argmin(((img[:, None] - m.class_embeddings_[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.9
    again = _clustering().fit(P, labels, W)
    np.testing.assert_array_equal(m.class_embeddings_, again.class_embeddings_)  # private seeded generator
    other = _clustering(random_state=1).fit(P, labels, W)
    assert not np.allclose(m.class_embeddings_, other.class_embeddings_)


def test_semantic_and_balance_losses_do_what_they_say():
    P, labels, W = _synthetic_patches()
    plain = _clustering(lambda_sem=0.0, lambda_bal=0.0).fit(P, labels, W)
    sem = _clustering(lambda_sem=1.0, lambda_bal=0.0).fit(P, labels, W)
    bal = _clustering(lambda_sem=1.0, lambda_bal=5.0).fit(P, labels, W)
    # L_sem is only trained when weighted: S(a) then regresses the (unit) class-name vectors
    assert sem.history_[-1]["sem"] < 0.2 < 0.5 * plain.history_[-1]["sem"]
    # L_bal = KL(mean assignment || uniform) shrinks and more clusters stay in use (6 classes, 8 clusters)
    assert bal.history_[-1]["bal"] < 0.5 * sem.history_[-1]["bal"]
    assert bal.clusters_used_ > sem.clusters_used_ + 0.5


def test_patch_clustering_rejects_bad_input_and_round_trips_as_plain_arrays(tmp_path):
    P, labels, W = _synthetic_patches()
    with pytest.raises(ZSLError, match="one label per image"):
        _clustering().fit(P[:, 0], labels, W)
    with pytest.raises(ZSLError, match="labels must cover"):
        _clustering().fit(P, labels, W[:3])
    with pytest.raises(ParameterError, match="n_clusters"):
        _clustering(n_clusters=1).fit(P, labels, W)
    bad = P.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ZSLError, match="NaN"):
        _clustering().fit(bad, labels, W)
    m = _clustering(epochs=3).fit(P, labels, W)
    np.savez(tmp_path / "m.npz", **m.to_arrays())
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:  # no object arrays: nothing executes on load
        back = PatchClustering.from_arrays({k: z[k] for k in z.files})
    np.testing.assert_array_equal(back.assign(P), m.assign(P))
    with pytest.raises(DataError, match="refit"):
        PatchClustering.from_arrays({"mean": m.mean_})


def test_embedding_matrix_keeps_modelled_rows_and_transfers_the_others():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(6, 5))
    Phi = rng.dirichlet(np.ones(4), size=4).astype(np.float32)
    modelled = np.array([0, 2, 3, 5])
    M, R = embedding_matrix(6, modelled, Phi, W, "qp", alpha=-0.2)
    np.testing.assert_array_equal(M[modelled], Phi)
    np.testing.assert_allclose(M[[1, 4]], R @ Phi, rtol=1e-5, atol=1e-6)
    assert R.shape == (2, 4) and (R >= -0.2 - 1e-9).all()
    np.testing.assert_allclose(R, relation_qp(W[modelled], W[[1, 4]], alpha=-0.2), atol=1e-12)
    # a class outside the seen classes' hull: a negative bound fits its word vector better than alpha=0
    r0 = relation_qp(W[modelled], W[[1]], alpha=0.0)
    rn = relation_qp(W[modelled], W[[1]], alpha=-0.5)
    assert np.linalg.norm(rn @ W[modelled] - W[1]) < np.linalg.norm(r0 @ W[modelled] - W[1]) - 1e-6


def test_choose_alpha_takes_the_best_validation_score_or_the_fixed_value():
    P, labels, W = _synthetic_patches(n_classes=4)
    m = _clustering(epochs=2).fit(P, labels, W)
    ds = zsl.make_synthetic(n_classes=10, n_unseen=2, n_val=2)
    ds.embeddings["glove"] = np.random.default_rng(0).normal(size=(ds.n_classes, 5)).astype(np.float32)
    train = ds.train_classes
    m.class_embeddings_ = np.random.default_rng(1).dirichlet(np.ones(8), size=len(train)).astype(np.float32)
    cands = (0.0, -0.05, -0.2)
    mats = {
        a: embedding_matrix(ds.n_classes, train, m.class_embeddings_, ds.embeddings["glove"], "qp", a)[0] for a in cands
    }
    preferred = -0.05
    scorer = lambda S: 1.0 if np.array_equal(S, mats[preferred]) else 0.5
    alpha, trials = choose_alpha(ds, m, VGSEConfig(alphas=cands), scorer)
    assert alpha == preferred and [t["alpha"] for t in trials] == list(cands)
    assert choose_alpha(ds, m, VGSEConfig(alphas=cands, alpha=-0.2), scorer) == (-0.2, [])


CLASSES = ("cat", "dog", "car", "ship", "horse")


def _image_folder(root, per_class=4, horse_colour=0):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            base = np.zeros((32, 32, 3), np.uint8)
            base[..., (k + (horse_colour if name == "horse" else 0)) % 3] = 200  # class colour
            base[: 8 * (k + 1) % 32] = 40  # class-specific band
            img = np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.jpg")
    return root


SPLIT = dict(unseen_classes=["ship"], val_classes=["horse"], resolution=32, progress=False)
TINY = VGSEConfig(grid=2, resolution=32, n_clusters=6, hidden=8, epochs=3, batch_size=32, alphas=(0.0, -0.1))


def test_two_stage_fit_is_honest_validation_classes_go_through_the_relation_step(tmp_path):
    """The tuning matrix never depends on validation-class photos; unseen photos are never cropped."""
    fits = []
    for colour in (0, 1):  # two datasets that differ only in the validation class's photos
        folder = _image_folder(tmp_path / f"imgs{colour}", horse_colour=colour)
        ds = zsl.load_dataset(f"image-folder:{folder}", **SPLIT)
        cache = tmp_path / f"cache{colour}"
        summary = fit_vgse(
            ds, TINY, scorer=lambda S, ds=ds: float(S[ds.val_classes].min()), cache_dir=cache, progress=False
        )
        require_semantics(ds, "vgse", cache)
        fits.append((ds, summary, cache))
    (ds0, s0, cache0), (ds1, s1, _) = fits
    horse, train = ds0.class_names.index("horse"), ds0.train_classes
    V0, V1 = ds0.validation_embeddings["vgse"], ds1.validation_embeddings["vgse"]
    np.testing.assert_array_equal(V0, V1)  # selection model: train classes only
    assert s0["alpha"] == s1["alpha"] and s0["selection_model"]["classes"] == len(train) == 3
    R = relation_qp(ds0.embeddings["glove"][train], ds0.embeddings["glove"][[horse]], alpha=s0["alpha"])
    np.testing.assert_allclose(V0[horse], (R @ V0[train])[0], rtol=1e-5, atol=1e-6)  # validation class by relation
    # final model: the validation class is seen and described by its own photos
    assert not np.allclose(ds0.embeddings["vgse"][horse], ds1.embeddings["vgse"][horse], atol=1e-4)
    assert s0["final_model"]["classes"] == 4
    # only the 4 seen classes' photos were cropped (one cache entry per class); never the unseen "ship"
    assert len(list((cache0 / "vgse" / "patches").iterdir())) == 4
    assert "ship" not in s0["seen_images"]
    stored = load_clustering(ds0.name, ds0.split, "train", cache0)
    np.testing.assert_allclose(stored.class_embeddings_, V0[train], rtol=1e-6)


def test_semantics_vgse_runs_the_protocol_with_the_validation_stage_matrix(tmp_path):
    from zsl.io import content_digest

    folder = _image_folder(tmp_path / "imgs")
    name = f"image-folder:{folder}"
    ds = zsl.load_dataset(name, **SPLIT)
    with pytest.raises(DataError, match="zsl vgse fit"):
        zsl.run_method("eszsl", require_semantics(ds, None), semantics="vgse", setting="gzsl", selection="none")
    fit_vgse(ds, TINY, progress=False)
    ds2 = zsl.load_dataset(name, **SPLIT)
    assert "vgse" not in ds2.embeddings  # loading never reads learnt embeddings from the cache
    fingerprint = ds2.fingerprint()
    require_semantics(ds2, "vgse")  # asking for them by name does
    assert {"vgse", "vgse-lstsq", "vgse-cosine"} <= set(ds2.embeddings) and set(ds2.validation_embeddings) == set(
        SOURCES_ALL
    )
    assert ds2.fingerprint() == fingerprint  # attaching a source changes no run identity
    np.testing.assert_array_equal(ds2.class_embeddings("glove", stage="val"), ds2.class_embeddings("glove"))
    res = zsl.run_method("eszsl.linear", ds2, semantics="vgse", setting="gzsl")
    assert res.config["semantics_digest"] == content_digest(ds2.embeddings["vgse"])
    assert res.config["semantics_validation_digest"] == content_digest(ds2.validation_embeddings["vgse"])
    assert res.config["semantics_digest"] != res.config["semantics_validation_digest"]
    assert {"H", "H_uncalibrated", "U", "S"} <= set(res.metrics)
    plain = zsl.run_method("eszsl.linear", ds2, semantics="glove", setting="gzsl")
    assert "semantics_validation_digest" not in plain.config
    # a stored fit for another split is not attached
    ds3 = zsl.load_dataset(name, unseen_classes=["cat"], val_classes=["horse"], resolution=32, progress=False)
    with pytest.warns(UserWarning, match="refit"):
        attach_vgse(ds3)
    assert "vgse" not in ds3.embeddings
    # a corrupt store is one error naming the file
    (fit_dir(ds.name, ds.split) / "embeddings.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="embeddings.npz"):
        attach_vgse(zsl.load_dataset(name, **SPLIT))


SOURCES_ALL = ("vgse", "vgse-lstsq", "vgse-cosine")


def test_cli_vgse_fit_then_run_gzsl_json(tmp_path, capsys):
    import json

    from zsl.cli import main

    folder = _image_folder(tmp_path / "imgs", per_class=3)
    ds_args = ["--dataset", f"image-folder:{folder}"]
    assert main(["vgse", "fit", *ds_args, "--clusters", "0", "--quiet"]) == 2
    assert "--clusters" in capsys.readouterr().err
    rc = main(["vgse", "fit", *ds_args, "--grid", "2", "--resolution", "32", "--clusters", "5", "--hidden", "8",
               "--epochs", "2", "--quiet"])
    assert rc == 0
    fit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fit["n_patches"] == fit["n_images"] * 4 and len(fit["alpha_trials"]) == len(VGSEConfig().alphas)
    assert fit["alpha"] in VGSEConfig().alphas
    rc = main(["run", "eszsl.linear", *ds_args, "--semantics", "vgse", "--setting", "gzsl", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["semantics"] == "vgse" and "semantics_validation_digest" in out["config"]
    assert {"H", "H_uncalibrated"} <= set(out["metrics"])


@pytest.mark.realdata
def test_flo_rows_map_to_their_photos(data_root):
    import scipy.io as sio

    if not (data_root / "flo" / "jpg-s128.tar.gz").is_file():
        pytest.skip(f"FLO photos not found under {data_root}/flo")
    ds = zsl.load_dataset("flo", data_root=data_root)
    paths = dataset_image_paths(ds)
    assert len(paths) == len(ds.y) == 8189
    oxford = sio.loadmat(str(data_root / "flo" / "imagelabels.mat"))["labels"].ravel()
    numbers = np.array([int(p.rsplit("_", 1)[1].split(".")[0]) for p in paths])
    np.testing.assert_array_equal(oxford[numbers - 1] - 1, ds.y)  # row i's photo carries row i's label
    from pathlib import Path

    assert all(Path(p).is_file() for p in paths[::400])
