"""Hashing methods and retrieval metrics: packed codes, Hamming distances, tie-exact AP against
brute-force averaging over tie orders, the authors' AP, precision within a radius, PR curves, the
discrete solvers and graph term, ZSH's reductions, the protocols (test / validation / FLO) and CLI."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import average_precision_score

import zsl
from zsl.codes import hamming_distances, pack_codes, unpack_codes
from zsl.eval.retrieval import (
    authors_average_precisions,
    distance_histograms,
    evaluate_hashing,
    expected_average_precisions,
    mean_average_precision,
    precision_at_n,
    precision_recall_curve,
    precision_within_radius,
    ranking_precision_recall,
    recall_at_n,
    retrieval_data,
    retrieval_metrics,
    select_hashing_params,
)
from zsl.methods._hashing import CodeGraph, dcc_update, greedy_colouring, knn_graph, normalised_adjacency


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


# -- tie-exact metrics ---------------------------------------------------------------------------
def _ap_of_order(rel: np.ndarray, k: int | None = None) -> float:
    """AP of one fixed ranking (AP@k: over the top k, divided by the relevant items in the top k)."""
    n = len(rel) if k is None else min(k, len(rel))
    hits = np.cumsum(rel[:n])
    num = sum(hits[i] / (i + 1) for i in range(n) if rel[i])
    den = hits[-1] if k is not None else rel.sum()
    return num / den if den > 0 else 0.0


def _all_tie_orders(dist: np.ndarray):
    """Every ranking that sorts ``dist`` ascending: the product of the permutations of each tie group."""
    groups = [np.flatnonzero(dist == v) for v in np.unique(dist)]
    for perms in itertools.product(*[itertools.permutations(g) for g in groups]):
        yield np.concatenate([np.asarray(p, int) for p in perms])


def _random_tied_case(rng, n_max=8, n_dist=3):
    n = int(rng.integers(1, n_max + 1))
    dist = rng.integers(0, n_dist, n)
    rel = rng.integers(0, 2, n)
    total = np.bincount(dist, minlength=n_dist)[None]
    relevant = np.bincount(dist, weights=rel, minlength=n_dist).astype(np.int64)[None]
    return dist, rel, total, relevant


def test_tie_exact_ap_equals_brute_force_average_over_tie_orders():
    rng = np.random.default_rng(0)
    for _ in range(60):
        dist, rel, total, relevant = _random_tied_case(rng)
        orders = list(_all_tie_orders(dist))
        for k in [None, *range(1, len(dist) + 1)]:
            brute = np.mean([_ap_of_order(rel[o], k) for o in orders])
            assert expected_average_precisions(total, relevant, k)[0] == pytest.approx(brute, abs=1e-12), (dist, rel, k)
            if k is not None:
                p_brute = np.mean([rel[o][:k].mean() for o in orders])
                r_brute = np.mean([rel[o][:k].sum() / max(rel.sum(), 1) for o in orders])
                assert precision_at_n(total, relevant, k)[0] == pytest.approx(p_brute, abs=1e-12)
                assert recall_at_n(total, relevant, k)[0] == pytest.approx(r_brute, abs=1e-12)


def test_tie_exact_ap_equals_sklearn_without_ties():
    rng = np.random.default_rng(1)
    rel = rng.integers(0, 2, 40)
    rel[0] = 1
    total = np.ones((1, 40), np.int64)  # every item at its own distance: one ranking, no tie
    assert expected_average_precisions(total, rel[None].astype(np.int64))[0] == pytest.approx(
        average_precision_score(rel, -np.arange(40.0)), abs=1e-12)


def test_tie_exact_ap_does_not_depend_on_database_order():
    """The issue's case: 4,000 irrelevant and 5,000 relevant items tied at one distance."""
    dc = np.zeros((9000, 1), np.uint8)
    dy = np.r_[np.zeros(4000, int), np.ones(5000, int)]
    q, qy = np.zeros((1, 1), np.uint8), np.array([1])
    perm = np.random.default_rng(0).permutation(9000)
    ours = mean_average_precision(q, qy, dc, dy)
    assert mean_average_precision(q, qy, dc[perm], dy[perm]) == pytest.approx(ours, abs=1e-12)
    # the expectation over orders of a single tie group is the fraction relevant, up to O(log n / n)
    assert ours == pytest.approx(5000 / 9000, abs=2e-3)
    # the authors' definition follows the stored order: relevant items stored last lose every tie
    authors_last = authors_average_precisions(q, qy, dc, dy)[0]
    authors_first = authors_average_precisions(q, qy, dc[::-1], dy[::-1])[0]
    assert authors_last < 0.5 < ours < authors_first == pytest.approx(1.0)


def test_tie_exact_map_at_k_cut_inside_a_large_tie_group():
    # 3 relevant at distance 0, then 500 items (100 relevant) tied at distance 1, k = 50
    total = np.array([[3, 500, 0]])
    relevant = np.array([[3, 100, 0]])
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(3000):  # Monte Carlo over tie orders, against the closed form
        rel = np.r_[np.ones(3), rng.permutation(np.r_[np.ones(100), np.zeros(400)])]
        samples.append(_ap_of_order(rel, 50))
    se = np.std(samples) / np.sqrt(len(samples))
    assert expected_average_precisions(total, relevant, 50)[0] == pytest.approx(np.mean(samples), abs=5 * se)


def test_authors_ap_is_stable_index_order_cut_at_top_n():
    rng = np.random.default_rng(0)
    qc, qy = rng.integers(0, 256, (6, 2), dtype=np.uint8), rng.integers(0, 3, 6)
    dc, dy = rng.integers(0, 256, (300, 2), dtype=np.uint8), rng.integers(0, 3, 300)
    D = hamming_distances(qc, dc)
    full = authors_average_precisions(qc, qy, dc, dy)
    top = authors_average_precisions(qc, qy, dc, dy, top_n=50)
    for i in range(len(qc)):
        order = np.argsort(D[i] + np.arange(300) * 1e-6)  # lower database index first among equal distances
        rel = (dy == qy[i])[order]
        assert full[i] == pytest.approx(
            average_precision_score(dy == qy[i], -(D[i] + np.arange(300) * 1e-6)), abs=1e-12
        )
        assert top[i] == pytest.approx(_ap_of_order(rel, 50), abs=1e-12)


def test_retrieval_metrics_agree_with_the_single_metric_functions():
    rng = np.random.default_rng(2)
    qc, qy = rng.integers(0, 256, (9, 2), dtype=np.uint8), rng.integers(0, 3, 9)
    dc, dy = rng.integers(0, 256, (400, 2), dtype=np.uint8), rng.integers(0, 3, 400)
    m = retrieval_metrics(qc, qy, dc, dy, top_k=30, block=4)
    assert m["mAP"] == pytest.approx(mean_average_precision(qc, qy, dc, dy), abs=1e-12)
    assert m["mAP@30"] == pytest.approx(mean_average_precision(qc, qy, dc, dy, top_k=30), abs=1e-12)
    assert m["mAP_authors"] == pytest.approx(authors_average_precisions(qc, qy, dc, dy).mean(), abs=1e-12)
    assert m["P@r2"] == pytest.approx(precision_within_radius(qc, qy, dc, dy, radius=2), abs=1e-12)
    pr = m["pr_ranking"]
    assert pr["n"][-1] == 400 and pr["recall"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(pr["recall"]) >= -1e-12)
    total, relevant = distance_histograms(qc, qy, dc, dy)
    assert ranking_precision_recall(total, relevant) == pr
    assert np.all(total.sum(1) == 400) and np.all(relevant.sum(1) == [(dy == c).sum() for c in qy])


def test_map_at_k_hand_computed():
    # distances 0,1,2,3 to items with relevance 0,1,0,1 (no ties) -> top-2 AP = (1/2)/1
    dc = np.packbits(np.array([[0] * 8, [1] + [0] * 7, [1, 1] + [0] * 6, [1, 1, 1] + [0] * 5], np.uint8), axis=1)
    dy = np.array([0, 1, 0, 1])
    q = np.zeros((1, 1), np.uint8)
    assert mean_average_precision(q, [1], dc, dy, top_k=2) == pytest.approx(0.5)
    assert mean_average_precision(q, [1], dc, dy, top_k=1) == 0.0  # nothing relevant in the top 1
    assert mean_average_precision(q, [1], dc, dy) == pytest.approx((1 / 2 + 2 / 4) / 2)
    # all four tied: expected AP over the 4! orders
    tied = np.zeros((4, 1), np.uint8)
    brute = np.mean([_ap_of_order(dy[list(o)] == 1) for o in itertools.permutations(range(4))])
    assert mean_average_precision(q, [1], tied, dy) == pytest.approx(brute, abs=1e-12)


def test_precision_within_radius_and_empty_ball():
    dc = np.packbits(np.array([[0] * 8, [1] + [0] * 7, [1, 1, 1] + [0] * 5], np.uint8), axis=1)
    dy = np.array([1, 0, 1])
    q = np.zeros((1, 1), np.uint8)
    assert precision_within_radius(q, [1], dc, dy, radius=2) == pytest.approx(0.5)
    assert precision_within_radius(q, [1], dc, dy, radius=0) == pytest.approx(1.0)
    far = np.full((1, 1), 255, np.uint8)  # distances 8, 7, 5: nothing within radius 2 scores 0
    assert precision_within_radius(far, [1], dc, dy, radius=2) == 0.0


def test_pr_curve_recall_reaches_one_and_is_monotone():
    rng = np.random.default_rng(3)
    qc, qy = rng.integers(0, 256, (6, 2), dtype=np.uint8), rng.integers(0, 3, 6)
    dc, dy = rng.integers(0, 256, (300, 2), dtype=np.uint8), rng.integers(0, 3, 300)
    pr = precision_recall_curve(qc, qy, dc, dy)
    assert len(pr["radius"]) == 17
    assert np.all(np.diff(pr["recall"]) >= -1e-12)
    assert pr["recall"][-1] == pytest.approx(1.0)
    # at the full radius every item is retrieved: precision = fraction relevant
    expect = np.mean([np.mean(dy == c) for c in qy])
    assert pr["precision"][-1] == pytest.approx(expect)


# -- solvers and the graph term -----------------------------------------------------------------
def _bit_objective(B, Y, W, F, nu, An=None, beta=0.0):
    val = np.sum((Y - B @ W) ** 2) + nu * np.sum((B - F) ** 2)
    if An is not None:
        val += beta * (np.sum(B * B) - np.sum(B * (An @ B)))
    return val


def test_dcc_update_never_increases_objective():
    rng = np.random.default_rng(0)
    n, r, c = 200, 16, 5
    Y, F, W = rng.normal(size=(n, c)), rng.normal(size=(n, r)), rng.normal(size=(r, c))
    nu = 0.5
    B = np.where(rng.normal(size=(n, r)) > 0, 1.0, -1.0)
    before = _bit_objective(B, Y, W, F, nu)
    B2 = dcc_update(B, Y @ W.T + nu * F, W, n_sweeps=2)
    assert set(np.unique(B2)) <= {-1.0, 1.0}
    assert _bit_objective(B2, Y, W, F, nu) <= before + 1e-9
    assert _bit_objective(B2, Y, W, F, nu) < before  # random codes are far from optimal


@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0])
def test_dcc_update_with_graph_term_never_increases_objective(beta):
    rng = np.random.default_rng(1)
    n, r, c = 150, 8, 4
    X = rng.normal(size=(n, 3)).astype(np.float32)
    An = normalised_adjacency(knn_graph(X, 5))
    graph = CodeGraph(An)
    Y, F, W = rng.normal(size=(n, c)), rng.normal(size=(n, r)), rng.normal(size=(r, c))
    nu = 0.3
    B = np.where(rng.normal(size=(n, r)) > 0, 1.0, -1.0)
    values = [_bit_objective(B, Y, W, F, nu, An, beta)]
    for _ in range(4):
        B = dcc_update(B, Y @ W.T + nu * F, W, graph=graph, beta=beta)
        values.append(_bit_objective(B, Y, W, F, nu, An, beta))
    assert np.all(np.diff(values) <= 1e-9 * abs(values[0]))
    assert values[-1] < values[0]
    # a strong graph term makes neighbouring codes agree more than the plain B-step does
    plain = dcc_update(B, Y @ W.T + nu * F, W, n_sweeps=3)
    assert graph.smoothness(B) < graph.smoothness(plain) or beta < 1.0


def test_knn_graph_and_colouring():
    X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    A = knn_graph(X, k=4)
    np.testing.assert_allclose(A.toarray(), A.T.toarray())
    assert A.diagonal().max() == 0 and A.data.min() > 0 and A.data.max() <= 1
    assert (np.asarray((A > 0).sum(1)).ravel() >= 4).all()
    An = normalised_adjacency(A)
    assert np.linalg.eigvalsh(An.toarray()).min() >= -1 - 1e-9  # A_n + I is PSD (the B-step relies on it)
    colour = greedy_colouring(A)
    rows, cols = A.nonzero()
    assert np.all(colour[rows] != colour[cols])
    with pytest.raises(ValueError, match="self-loops"):
        CodeGraph(sp.eye(5, format="csr"))


def test_itq_quantisation_loss_decreases(synth):
    ds, Xtr, ytr, S = synth
    m = zsl.create_method("itq", n_bits=16, n_iter=30).fit(Xtr, ytr, S, ds.seen_classes)
    loss = np.array(m.quantisation_loss_)
    assert loss[-1] < loss[0]
    assert np.all(np.diff(loss) <= 1e-6 * loss[0])


# -- ZSH -----------------------------------------------------------------------------------------
def test_zsh_without_rotation_graph_and_with_onehot_labels_is_sdh(synth):
    ds, Xtr, ytr, S = synth
    kw = dict(n_bits=16, n_anchors=100, n_iter=3, random_state=1)
    sdh = zsl.create_method("sdh", **kw).fit(Xtr, ytr, S, ds.seen_classes)
    zsh = zsl.create_method("zsh", rotation="none", beta=0.0, label_embedding="onehot", **kw).fit(
        Xtr, ytr, S, ds.seen_classes
    )
    np.testing.assert_array_equal(sdh.encode(ds.X), zsh.encode(ds.X))


def test_published_orthogonal_rotation_leaves_codes_unchanged(synth):
    """The invariance the ZSH docstring proves: an orthogonal R is absorbed by W."""
    ds, Xtr, ytr, S = synth
    kw = dict(n_bits=16, n_anchors=100, n_iter=4, random_state=2, beta=0.1)
    plain = zsl.create_method("zsh", rotation="none", **kw).fit(Xtr, ytr, S, ds.seen_classes)
    orth = zsl.create_method("zsh", rotation="orthogonal", **kw).fit(Xtr, ytr, S, ds.seen_classes)
    assert np.mean(unpack_codes(plain.encode(ds.X)) == unpack_codes(orth.encode(ds.X))) > 0.999
    R = orth.rotation_.astype(np.float64)
    np.testing.assert_allclose(R.T @ R, np.eye(len(R)), atol=1e-5)
    pull = zsl.create_method("zsh.identity_pull", **{**kw, "delta": 1.0, "gamma": 0.1}).fit(
        Xtr, ytr, S, ds.seen_classes
    )
    assert pull.rotation == "identity_pull"
    assert not np.array_equal(plain.encode(ds.X), pull.encode(ds.X))  # the non-paper preset does act


def test_zsh_default_is_the_paper_rotation_and_the_graph_term_acts(synth):
    ds, Xtr, ytr, S = synth
    assert zsl.create_method("zsh").rotation == "orthogonal"
    kw = dict(n_bits=16, n_anchors=100, n_iter=4, random_state=3, nu=1e-3)
    no_graph = zsl.create_method("zsh", beta=0.0, **kw).fit(Xtr, ytr, S, ds.seen_classes)
    graph = zsl.create_method("zsh", beta=1.0, **kw).fit(Xtr, ytr, S, ds.seen_classes)
    assert not np.array_equal(no_graph.encode(ds.X), graph.encode(ds.X))


def test_zsh_objective_never_increases(synth):
    ds, Xtr, ytr, S = synth
    m = zsl.create_method("zsh", n_bits=16, n_anchors=100, n_iter=6, beta=0.3, nu=1e-2, random_state=0)
    m.fit(Xtr, ytr, S, ds.seen_classes)
    obj = np.array(m.objective_)
    # every step (P, B, R, W) is an exact or majorise-minimise step; float32 kernel products
    assert np.all(np.diff(obj) <= 1e-5 * obj[0])


def test_zsh_targets_live_in_the_seen_span(synth):
    ds, Xtr, ytr, S = synth
    m = zsl.create_method("zsh.tiny").fit(Xtr, ytr, S, ds.seen_classes)
    assert m.semantic_.shape == (len(S), min(S.shape[1], len(ds.seen_classes) - 1))
    np.testing.assert_allclose(m.semantic_[ds.seen_classes].mean(0), 0, atol=1e-9)


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


def test_bad_parameters_and_dimension_mismatch(synth):
    ds, Xtr, ytr, S = synth
    with pytest.raises(ValueError, match="multiple of 8"):
        zsl.create_method("lsh", n_bits=12).fit(Xtr, ytr, S, ds.seen_classes)
    m = zsl.create_method("lsh.tiny").fit(Xtr, ytr, S, ds.seen_classes)
    with pytest.raises(zsl.DataError, match="features"):
        m.encode(ds.X[:3, :10])
    with pytest.raises(zsl.DataError, match="ITQ"):
        zsl.create_method("itq", n_bits=128).fit(Xtr, ytr, S, ds.seen_classes)
    with pytest.raises(zsl.ZSLError, match="rotation"):
        zsl.create_method("zsh", rotation="linear").fit(Xtr, ytr, S, ds.seen_classes)
    with pytest.raises(zsl.ZSLError, match="nu"):
        zsl.create_method("zsh", nu=0.0).fit(Xtr, ytr, S, ds.seen_classes)


# -- protocol and CLI ----------------------------------------------------------------------------
def test_retrieval_data_keeps_unseen_out_of_training(synth):
    ds, *_ = synth
    data = retrieval_data(ds, n_queries=100, seed=0)
    assert not np.isin(data.y_train, ds.unseen_classes).any()
    assert np.isin(data.y_query, ds.unseen_classes).all()
    assert len(data.y_database) + len(data.y_query) == len(ds.y)
    assert np.isin(ds.unseen_classes, data.y_database).all()  # relevant items exist for every query


def test_validation_split_uses_seen_classes_only(synth):
    ds, *_ = synth
    val = retrieval_data(ds, role="validation", seed=0)
    assert set(np.unique(val.y_query)) == set(ds.val_classes.tolist())
    assert set(np.unique(val.y_train)) == set(ds.train_classes.tolist())
    assert not np.isin(val.y_database, ds.unseen_classes).any()
    assert np.array_equal(val.train_classes, ds.train_classes)
    n_val = np.isin(ds.y[ds.splits["trainval"]], ds.val_classes).sum()
    assert (
        len(val.y_query) == sum(np.sum(ds.y[ds.splits["val_unseen"]] == c) // 2 for c in ds.val_classes) <= n_val // 2
    )
    with pytest.raises(ValueError, match="role"):
        retrieval_data(ds, role="unseen")


def test_selection_scores_on_validation_and_takes_the_best(synth, monkeypatch):
    ds, *_ = synth
    import zsl.eval.retrieval as retrieval

    roles = []
    real = retrieval.evaluate_hashing

    def spy(*a, **kw):
        roles.append(kw.get("role"))
        return real(*a, **kw)

    monkeypatch.setattr(retrieval, "evaluate_hashing", spy)
    out = select_hashing_params("zsh.tiny", ds, n_bits=16, grid={"beta": [0.0, 1.0], "nu": [1e-3]},
                                semantics_options=["attributes", None])
    assert len(out["trials"]) == 4 and set(roles) == {"validation"}
    assert out["val_mAP"] == max(t["mAP"] for t in out["trials"])
    best = next(t for t in out["trials"] if t["mAP"] == out["val_mAP"])
    assert out["overrides"] == best["overrides"] and out["semantics"] == best["semantics"]


def test_evaluate_hashing_supervised_beats_lsh_at_short_codes(synth):
    ds, *_ = synth
    lsh = evaluate_hashing("lsh", ds, n_bits=8, n_queries=150)
    sdh = evaluate_hashing("sdh.tiny", ds, n_bits=16, n_queries=150)
    for r in (lsh, sdh):
        assert 0 <= r.metrics["mAP"] <= 1 and 0 <= r.metrics["P@r2"] <= 1 and 0 <= r.metrics["mAP_authors"] <= 1
        assert r.n_query == 150 and r.role == "test"
    chance = 1 / len(ds.class_names)
    assert sdh.metrics["mAP"] > 2 * chance


@pytest.mark.realdata
def test_flo_protocol_queries_oxford_test_images_of_unseen_classes(data_root):
    if not (data_root / "flo" / "setid.mat").is_file():
        pytest.skip(f"FLO not found under {data_root}/flo")
    ds = zsl.load_dataset("flo", data_root=data_root)
    data = retrieval_data(ds)
    assert len(data.y_query) == 755 and len(data.y_database) == 7434 and len(data.y_train) == 5631
    assert set(np.unique(data.y_query)) == set(ds.unseen_classes.tolist())
    assert np.array_equal(data.train_classes, ds.seen_classes) and len(ds.seen_classes) == 82
    assert not np.isin(data.y_train, ds.unseen_classes).any()
    assert np.bincount(data.y_database, minlength=102)[ds.unseen_classes].tolist() == [20] * 20  # Oxford trn + val


def test_cli_hashing_writes_table_and_plot(tmp_path, capsys):
    from zsl.cli import main

    out = tmp_path / "h"
    rc = main(["hashing", "--dataset", "synthetic", "--bits", "8", "16", "--methods", "lsh", "itq.tiny",
               "--queries", "100", "--pr-bits", "16", "--seeds", "0", "1", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "P@r2" in text and "itq.tiny" in text and "mAP_authors" in text
    res = json.loads((out / "results.json").read_text())
    assert set(res["table"]) == {"lsh", "itq.tiny"} and set(res["table"]["lsh"]) == {"8", "16"}
    assert res["table"]["lsh"]["8"]["n_runs"] == 2 and len(res["runs"]) == 8
    png = (out / "pr_16bits.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_hashing_json_selects_on_validation(tmp_path, capsys, monkeypatch):
    from zsl.cli import main
    from zsl.methods.zsh import ZSH

    monkeypatch.setattr(ZSH, "param_grid", {"beta": [0.0, 0.3]})  # a small grid keeps the test fast
    rc = main(["hashing", "--dataset", "synthetic", "--bits", "16", "--methods", "sdh.tiny", "zsh.tiny",
               "--queries", "100", "--json", "--out", str(tmp_path / "j")])
    assert rc == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    obj = json.loads(lines[0])
    for m in ("sdh.tiny", "zsh.tiny"):
        cell = obj["table"][m]["16"]
        assert 0 <= cell["mAP"] <= 1 and 0 <= cell["mAP_authors"] <= 1 and cell["fit_ratio"] > 0
    res = json.loads((tmp_path / "j" / "results.json").read_text())
    zsh_sel = [s for s in res["selection"] if s["method"] == "zsh.tiny"]
    # ZSH chooses beta and the class-embedding source on validation classes
    assert len(zsh_sel) == 1 and len(zsh_sel[0]["trials"]) == 2 * len(zsl.make_synthetic().embeddings)


def test_cli_hashing_rejects_classifier_and_bad_bits(capsys):
    from zsl.cli import main

    assert main(["hashing", "--dataset", "synthetic", "--methods", "eszsl"]) == 2
    assert main(["hashing", "--dataset", "synthetic", "--bits", "12", "--methods", "lsh"]) == 2
    err = capsys.readouterr().err
    assert "not a hashing" in err and "multiples of 8" in err


def test_cli_hashing_help_documents_the_protocol(capsys):
    from zsl.cli import main

    with pytest.raises(SystemExit):
        main(["hashing", "--help"])
    text = capsys.readouterr().out
    for phrase in ("seen classes only", "tstid", "every other image", "tie-exact", "cat_apcal", "validation classes"):
        assert phrase in text, phrase
