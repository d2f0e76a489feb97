"""Hashing methods and retrieval metrics: packed codes, Hamming distances, AP against sklearn,
precision within a radius, PR curves, the discrete solvers, ZSH's reductions, the protocol and CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

import zsl
from zsl.eval.retrieval import (
    average_precisions,
    evaluate_hashing,
    mean_average_precision,
    precision_recall_curve,
    precision_within_radius,
    retrieval_data,
)
from zsl.methods._hashing import dcc_update, hamming_distances, knn_laplacian, pack_codes, unpack_codes


@pytest.fixture(scope="module")
def synth():
    ds = zsl.make_synthetic(seed=0)
    Xtr, ytr = ds.subset("trainval")
    return ds, Xtr, ytr, ds.class_embeddings()


# -- codes and distances --------------------------------------------------------------------------
def test_pack_bit_order_is_msb_first():
    H = np.zeros((1, 16))
    H[0, 0] = 1.0  # bit 0 -> most significant bit of byte 0
    H[0, 15] = 1.0  # bit 15 -> least significant bit of byte 1
    assert pack_codes(H).tolist() == [[128, 1]]
    np.testing.assert_array_equal(unpack_codes(pack_codes(H)), np.where(H > 0, 1.0, -1.0))


def test_pack_rejects_bits_not_multiple_of_8():
    with pytest.raises(zsl.DataError, match="multiple of 8"):
        pack_codes(np.ones((2, 12)))


@pytest.mark.parametrize("n_bytes", [1, 2, 8, 9, 16])
def test_hamming_matches_unpacked_bits(n_bytes):
    rng = np.random.default_rng(n_bytes)
    q = rng.integers(0, 256, (7, n_bytes), dtype=np.uint8)
    d = rng.integers(0, 256, (50, n_bytes), dtype=np.uint8)
    bq, bd = np.unpackbits(q, axis=1), np.unpackbits(d, axis=1)
    expect = (bq[:, None, :] != bd[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming_distances(q, d), expect)
    np.testing.assert_array_equal(hamming_distances(q, d, block_bytes=64), expect)  # many blocks


# -- metrics -------------------------------------------------------------------------------------
def _random_retrieval(seed=0, nq=6, nd=300, n_bytes=2, n_classes=3):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (nq, n_bytes), dtype=np.uint8), rng.integers(0, n_classes, nq),
            rng.integers(0, 256, (nd, n_bytes), dtype=np.uint8), rng.integers(0, n_classes, nd))


def test_average_precision_matches_sklearn_with_index_tie_break():
    qc, qy, dc, dy = _random_retrieval()
    D = hamming_distances(qc, dc)
    ours = average_precisions(qc, qy, dc, dy)
    for i in range(len(qc)):
        # lower database index first among equal distances == a tiny index-increasing penalty
        ref = average_precision_score(dy == qy[i], -(D[i] + np.arange(len(dc)) * 1e-6))
        assert ours[i] == pytest.approx(ref, abs=1e-12)
    assert 0 < mean_average_precision(qc, qy, dc, dy) < 1


def test_ap_ties_are_deterministic_and_by_index():
    dc = np.zeros((4, 1), np.uint8)  # every item at distance 0: order = database index
    dy = np.array([1, 0, 0, 1])
    ap = average_precisions(np.zeros((1, 1), np.uint8), np.array([1]), dc, dy)[0]
    assert ap == pytest.approx((1 / 1 + 2 / 4) / 2)


def test_map_at_k_hand_computed():
    # distances 0,1,2,3 to items with relevance 0,1,0,1 -> top-2 AP = (1/2)/1
    dc = np.packbits(np.array([[0] * 8, [1] + [0] * 7, [1, 1] + [0] * 6, [1, 1, 1] + [0] * 5], np.uint8), axis=1)
    dy = np.array([0, 1, 0, 1])
    q = np.zeros((1, 1), np.uint8)
    assert mean_average_precision(q, [1], dc, dy, top_k=2) == pytest.approx(0.5)
    assert mean_average_precision(q, [1], dc, dy, top_k=1) == 0.0  # nothing relevant in the top 1
    assert mean_average_precision(q, [1], dc, dy) == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_precision_within_radius_and_empty_ball():
    dc = np.packbits(np.array([[0] * 8, [1] + [0] * 7, [1, 1, 1] + [0] * 5], np.uint8), axis=1)
    dy = np.array([1, 0, 1])
    q = np.zeros((1, 1), np.uint8)
    assert precision_within_radius(q, [1], dc, dy, radius=2) == pytest.approx(0.5)
    assert precision_within_radius(q, [1], dc, dy, radius=0) == pytest.approx(1.0)
    far = np.full((1, 1), 255, np.uint8)  # distances 8, 7, 5: nothing within radius 2 scores 0
    assert precision_within_radius(far, [1], dc, dy, radius=2) == 0.0


def test_pr_curve_recall_reaches_one_and_is_monotone():
    qc, qy, dc, dy = _random_retrieval(seed=3)
    pr = precision_recall_curve(qc, qy, dc, dy)
    assert len(pr["radius"]) == 17
    assert np.all(np.diff(pr["recall"]) >= -1e-12)
    assert pr["recall"][-1] == pytest.approx(1.0)
    # at the full radius every item is retrieved: precision = fraction relevant
    expect = np.mean([np.mean(dy == c) for c in qy])
    assert pr["precision"][-1] == pytest.approx(expect)


# -- solvers -------------------------------------------------------------------------------------
def test_dcc_update_never_increases_objective():
    rng = np.random.default_rng(0)
    n, r, c = 200, 16, 5
    Y = rng.normal(size=(n, c))
    F = rng.normal(size=(n, r))
    W = rng.normal(size=(r, c))
    nu = 0.5
    B = np.where(rng.normal(size=(n, r)) > 0, 1.0, -1.0)

    def obj(B):
        return np.sum((Y - B @ W) ** 2) + nu * np.sum((B - F) ** 2)

    before = obj(B)
    B2 = dcc_update(B, Y @ W.T + nu * F, W, n_sweeps=2)
    assert set(np.unique(B2)) <= {-1.0, 1.0}
    assert obj(B2) <= before + 1e-9
    assert obj(B2) < before  # random codes are far from optimal


def test_knn_laplacian_is_symmetric_with_zero_row_sums():
    X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    L = knn_laplacian(X, k=4).toarray()
    np.testing.assert_allclose(L, L.T)
    np.testing.assert_allclose(L.sum(1), 0, atol=1e-12)
    assert (np.diag(L) >= 4).all()


def test_itq_quantisation_loss_decreases(synth):
    ds, Xtr, ytr, S = synth
    m = zsl.create_method("itq", n_bits=16, n_iter=30).fit(Xtr, ytr, S, ds.seen_classes)
    loss = np.array(m.quantisation_loss_)
    assert loss[-1] < loss[0]
    assert np.all(np.diff(loss) <= 1e-6 * loss[0])


def test_zsh_without_rotation_and_with_onehot_labels_is_sdh(synth):
    ds, Xtr, ytr, S = synth
    kw = dict(n_bits=16, n_anchors=100, n_iter=3, random_state=1)
    sdh = zsl.create_method("sdh", **kw).fit(Xtr, ytr, S, ds.seen_classes)
    zsh = zsl.create_method("zsh", rotate=False, label_embedding="onehot", **kw).fit(Xtr, ytr, S, ds.seen_classes)
    np.testing.assert_array_equal(sdh.encode(ds.X), zsh.encode(ds.X))


def test_orthogonal_rotation_leaves_codes_unchanged(synth):
    """The invariance the ZSH docstring states: an orthogonal R is absorbed by W."""
    ds, Xtr, ytr, S = synth
    kw = dict(n_bits=16, n_anchors=100, n_iter=4, random_state=2)
    plain = zsl.create_method("zsh", rotate=False, **kw).fit(Xtr, ytr, S, ds.seen_classes)
    orth = zsl.create_method("zsh", rotation="orthogonal", **kw).fit(Xtr, ytr, S, ds.seen_classes)
    assert np.mean(unpack_codes(plain.encode(ds.X)) == unpack_codes(orth.encode(ds.X))) > 0.999
    lin = zsl.create_method("zsh", rotation="linear", delta=1.0, **kw).fit(Xtr, ytr, S, ds.seen_classes)
    assert not np.array_equal(plain.encode(ds.X), lin.encode(ds.X))  # the linear alignment does act


def test_zsh_class_codes_classify_unseen_above_chance(synth):
    ds, Xtr, ytr, S = synth
    m = zsl.create_method("zsh", n_bits=32, n_anchors=200, random_state=0).fit(Xtr, ytr, S, ds.seen_classes)
    idx = ds.splits["test_unseen"]
    scores = m.decision_function(ds.X[idx], ds.unseen_classes)
    assert scores.shape == (len(idx), len(ds.unseen_classes))
    acc = zsl.eval.per_class_accuracy(ds.y[idx], m.predict(ds.X[idx], ds.unseen_classes))
    assert acc > 1.5 / len(ds.unseen_classes)
    with pytest.raises(NotImplementedError):
        zsl.create_method("sdh.tiny").fit(Xtr, ytr, S, ds.seen_classes).decision_function(ds.X[:3], ds.unseen_classes)


def test_bad_n_bits_and_dimension_mismatch(synth):
    ds, Xtr, ytr, S = synth
    with pytest.raises(ValueError, match="multiple of 8"):
        zsl.create_method("lsh", n_bits=12).fit(Xtr, ytr, S, ds.seen_classes)
    m = zsl.create_method("lsh.tiny").fit(Xtr, ytr, S, ds.seen_classes)
    with pytest.raises(zsl.DataError, match="features"):
        m.encode(ds.X[:3, :10])
    with pytest.raises(zsl.DataError, match="ITQ"):
        zsl.create_method("itq", n_bits=128).fit(Xtr, ytr, S, ds.seen_classes)


# -- protocol and CLI ----------------------------------------------------------------------------
def test_retrieval_data_keeps_unseen_out_of_training(synth):
    ds, *_ = synth
    data = retrieval_data(ds, n_queries=100, seed=0)
    assert not np.isin(data.y_train, ds.unseen_classes).any()
    assert np.isin(data.y_query, ds.unseen_classes).all()
    assert len(data.y_database) + len(data.y_query) == len(ds.y)
    assert np.isin(ds.unseen_classes, data.y_database).all()  # relevant items exist for every query


def test_evaluate_hashing_supervised_beats_lsh_at_short_codes(synth):
    ds, *_ = synth
    lsh = evaluate_hashing("lsh", ds, n_bits=8, n_queries=150)
    sdh = evaluate_hashing("sdh.tiny", ds, n_bits=16, n_queries=150)
    for r in (lsh, sdh):
        assert 0 <= r.metrics["mAP"] <= 1 and 0 <= r.metrics["P@r2"] <= 1
        assert r.n_query == 150
    chance = 1 / len(ds.class_names)
    assert sdh.metrics["mAP"] > 2 * chance


def test_cli_hashing_writes_table_and_plot(tmp_path, capsys):
    from zsl.cli import main

    out = tmp_path / "h"
    rc = main(["hashing", "--dataset", "synthetic", "--bits", "8", "16", "--methods", "lsh", "itq.tiny",
               "--queries", "100", "--pr-bits", "16", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "P@r2" in text and "itq.tiny" in text
    res = json.loads((out / "results.json").read_text())
    assert set(res["table"]) == {"lsh", "itq.tiny"} and set(res["table"]["lsh"]) == {"8", "16"}
    png = (out / "pr_16bits.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_hashing_rejects_classifier_and_bad_bits(capsys):
    from zsl.cli import main

    assert main(["hashing", "--dataset", "synthetic", "--methods", "eszsl"]) == 2
    assert main(["hashing", "--dataset", "synthetic", "--bits", "12", "--methods", "lsh"]) == 2
    err = capsys.readouterr().err
    assert "not a hashing" in err and "multiples of 8" in err
