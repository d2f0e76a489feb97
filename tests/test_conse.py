"""ConSE and DeViSE beyond the contract suite, and the WordNet hierarchy tools."""
from __future__ import annotations

import numpy as np
import pytest

import zsl
from zsl.eval.hierarchy import HypernymGraph, correct_set, hierarchical_precision_at_k, imagenet_hop_sets
from zsl.eval.metrics import ranked_hit_at_k
from zsl.labelling import label_of_wnid
from zsl.methods.conse import (
    ConSE,
    average_synonyms,
    best_over_synonyms,
    convex_combination,
    cosine_scores,
    softmax,
    top_t_weights,
)
from zsl.semantics import wordnet


# -- ConSE equations -----------------------------------------------------------------------------
def test_top_t_weights_keep_t_largest_and_renormalise():
    P = np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])
    W = top_t_weights(P, 2)
    np.testing.assert_allclose(W, [[0.625, 0.375, 0, 0], [0, 0, 3 / 7, 4 / 7]])
    np.testing.assert_allclose(top_t_weights(P, 1), [[1, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(top_t_weights(P, None), P / P.sum(1, keepdims=True))


def test_convex_combination_and_confidence_norm():
    E = np.eye(3, dtype=np.float32)  # three orthogonal unit label vectors
    F = convex_combination(np.array([[1.0, 0, 0], [0.5, 0.5, 0]]), E, T=3)
    np.testing.assert_allclose(F, [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-6)
    # one dominant label -> confidence 1; two semantically distant labels -> 1/sqrt(2)
    np.testing.assert_allclose(np.linalg.norm(F, axis=1), [1.0, 1 / np.sqrt(2)], atol=1e-6)
    S = cosine_scores(F, np.array([[1, 1, 0], [0, 0, 1]], np.float32))
    np.testing.assert_allclose(S, [[1 / np.sqrt(2), 0], [1, 0]], atol=1e-6)


def test_average_synonyms_skips_words_without_vectors():
    V = np.array([[1, 0], [3, 2], [0, 0], [0, 0]], np.float32)
    E = average_synonyms(V, np.array([0, 0, 1, 2]), 3)
    np.testing.assert_allclose(E, [[2, 1], [0, 0], [0, 0]])


def test_best_over_synonyms_takes_each_labels_best_entry():
    scores = np.array([[0.1, 0.9, 0.3, 0.2], [0.5, 0.4, -0.2, 0.8]], np.float32)
    owner = np.array([1, 0, 1, 0])  # entries of a label need not be contiguous
    out = best_over_synonyms(scores, owner, 3)
    np.testing.assert_allclose(out[:, :2], [[0.9, 0.3], [0.8, 0.5]])
    assert np.isneginf(out[:, 2]).all()  # a label without entries can never be ranked first


def test_softmax_is_stable():
    P = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(P, [[0.5, 0.5, 0.0]])


# -- ConSE estimator -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth():
    ds = zsl.make_synthetic(seed=1)
    return ds, *ds.subset("trainval"), ds.class_embeddings()


def test_conse_t1_on_seen_candidates_is_the_classifier(synth):
    ds, X, y, S = synth
    m = ConSE(T=1).fit(X, y, S, ds.seen_classes)
    Xq = ds.X[ds.splits["test_seen"]]
    # with T=1, f(x) is the top label's own embedding, cosine 1 with itself
    np.testing.assert_array_equal(m.predict(Xq, ds.seen_classes), m.model_.predict(Xq))
    np.testing.assert_allclose(m.confidence(Xq), 1.0, atol=1e-5)


def test_conse_confidence_in_unit_interval_and_t_changes_scores(synth):
    ds, X, y, S = synth
    Xq = ds.X[ds.splits["test_unseen"]]
    m10 = ConSE(T=10).fit(X, y, S, ds.seen_classes)
    mall = ConSE(T=None).fit(X, y, S, ds.seen_classes)
    c = m10.confidence(Xq)
    assert (c > 0).all() and (c <= 1 + 1e-6).all()
    assert not np.allclose(m10.decision_function(Xq, ds.unseen_classes), mall.decision_function(Xq, ds.unseen_classes))


def test_conse_accepts_a_pretrained_probability_model(synth):
    ds, X, y, S = synth
    trained = ConSE(T=5).fit(X, y, S, ds.seen_classes)
    reuse = ConSE(T=5, seen_model=trained.model_).fit(X[:3], y[:3], S, ds.seen_classes)  # nothing trained
    as_fn = ConSE(T=5, seen_model=trained.model_.predict_proba, seen_model_classes=trained.seen_classes_).fit(
        X[:3], y[:3], S, ds.seen_classes)
    Xq = ds.X[ds.splits["test_unseen"]]
    ref = trained.decision_function(Xq, ds.unseen_classes)
    np.testing.assert_allclose(reuse.decision_function(Xq, ds.unseen_classes), ref, atol=1e-6)
    np.testing.assert_allclose(as_fn.decision_function(Xq, ds.unseen_classes), ref, atol=1e-6)
    with pytest.raises(zsl.DataError, match="seen_model_classes"):
        ConSE(seen_model=trained.model_.predict_proba).fit(X, y, S, ds.seen_classes)


def test_conse_runs_the_gzsl_protocol(synth):
    r = zsl.run_method("conse.tiny", synth[0], setting="gzsl", selection="none")
    assert 0 <= r.metrics["U"] <= 1 and 0 <= r.metrics["S"] <= 1
    assert r.metrics["H"] > 0.2, r.metrics


def test_devise_loss_learns_the_seen_classes(synth):
    ds, X, y, S = synth
    m = zsl.create_method("devise.tiny", epochs=3).fit(X[::2], y[::2], S, ds.seen_classes)
    acc = np.mean(m.predict(X[1::2], ds.seen_classes) == y[1::2])
    assert acc > 0.6, acc


# -- hierarchy on a hand-made WordNet-format graph ---------------------------------------------------
def _data_noun(tmp_path):
    # entity <- animal <- {dog, cat}; dog <- puppy; entity <- tool <- hammer
    rows = {
        "00000001": ("entity", []),
        "00000002": ("animal", ["00000001"]),
        "00000003": ("dog", ["00000002"]),
        "00000004": ("cat", ["00000002"]),
        "00000005": ("puppy", ["00000003"]),
        "00000006": ("tool", ["00000001"]),
        "00000007": ("hammer", ["00000006"]),
    }
    lines = ["  1 This header mimics the WordNet licence lines\n"]
    for off, (word, hypers) in rows.items():
        ptrs = " ".join(f"@ {h} n 0000" for h in hypers)
        lines.append(f"{off} 03 n 01 {word} 0 {len(hypers):03d} {ptrs} | gloss\n")
    path = tmp_path / "data.noun"
    path.write_text("".join(lines))
    return HypernymGraph(path)


def test_hop_distances_and_hop_sets(tmp_path):
    g = _data_noun(tmp_path)
    assert g.hop_distance("n00000003", "n00000004") == 2  # siblings
    assert g.hop_distance("n00000005", "n00000007") == 5
    hops = imagenet_hop_sets(["n00000003"], ["n00000002", "n00000004", "n00000005", "n00000007"], 2, graph=g)
    assert hops[1] == ["n00000002", "n00000005"]
    assert hops[2] == ["n00000002", "n00000004", "n00000005"]


def test_hierarchical_precision_grows_the_correct_set_ring_by_ring(tmp_path):
    g = _data_noun(tmp_path)
    valid = {"n00000003", "n00000004", "n00000005", "n00000007"}
    # truth dog: R=0 {dog}, R=1 adds puppy -> 2 labels >= k=2
    assert correct_set("n00000003", 2, valid, g) == {"n00000003", "n00000005"}
    ranked = [["n00000005", "n00000004", "n00000003"], ["n00000007", "n00000004", "n00000003"]]
    true = ["n00000003", "n00000003"]
    assert hierarchical_precision_at_k(ranked, true, 2, valid, g) == pytest.approx((1 / 2 + 0) / 2)
    assert ranked_hit_at_k(ranked, true, 2) == 0.0
    assert ranked_hit_at_k(ranked, true, 3) == 1.0


def test_merged_labels_count_once_and_match_any_of_their_ids(tmp_path):
    g = _data_noun(tmp_path)
    valid = {"n00000003", "n00000004", "n00000005", "n00000007"}
    ranked = [[("n00000007", "n00000005"), "n00000004"]]  # a label merging hammer and puppy, then cat
    # hit@k on label indices: the merged label (index 0) holds puppy, so it is hit at 1
    true = label_of_wnid([["n00000007", "n00000005"], ["n00000004"]], ["n00000005", "n00000004", "n00000009"])
    assert true.tolist() == [0, 1, -1]
    assert ranked_hit_at_k([[0, 1]] * 3, true, 1) == pytest.approx(1 / 3)
    assert ranked_hit_at_k([[0, 1]] * 3, true, 2) == pytest.approx(2 / 3)
    assert hierarchical_precision_at_k(ranked, ["n00000003"], 2, valid, g) == pytest.approx(1 / 2)


# -- the noun database and the hierarchy label space on a hand-made WordNet ---------------------------
def _toy_wordnet(tmp_path):
    """entity <- animal <- {dog, cat}; dog <- puppy; entity <- tool <- hammer; 'dog' also names a tool
    sense (rarer); 'puppies' only through the -ies detachment rule."""
    rows = {
        "00000001": (["entity"], []), "00000002": (["animal", "beast"], ["00000001"]),
        "00000003": (["dog", "domestic_dog"], ["00000002"]), "00000004": (["cat"], ["00000002"]),
        "00000005": (["puppy"], ["00000003"]), "00000006": (["tool"], ["00000001"]),
        "00000007": (["hammer"], ["00000006"]), "00000008": (["dog"], ["00000006"]),
    }
    data, index = ["  1 licence header\n"], {}
    for off, (words, hypers) in rows.items():
        ptrs = " ".join(f"@ {h} n 0000" for h in hypers)
        data.append(f"{off} 03 n {len(words):02x} " + " ".join(f"{w} 0" for w in words)
                    + f" {len(hypers):03d} {ptrs} | the gloss of {words[0]}\n")
        for w in words:
            index.setdefault(w.lower(), []).append(off)
    (tmp_path / "data.noun").write_text("".join(data))
    (tmp_path / "index.noun").write_text("  1 licence header\n" + "".join(
        f"{w} n {len(offs)} 1 @ {len(offs)} 0 {' '.join(offs)}\n" for w, offs in sorted(index.items())))
    (tmp_path / "noun.exc").write_text("")
    return wordnet.NounDatabase(tmp_path)


def test_noun_database_senses_closure_and_resolution(tmp_path):
    db = _toy_wordnet(tmp_path)
    assert len(db) == 8 and db.lemmas[db.row["n00000003"]] == ["dog", "domestic dog"]
    assert db.glosses[db.row["n00000007"]] == "the gloss of hammer"
    assert db.noun_senses("Dogs") == ["n00000003", "n00000008"]  # plural, most frequent sense first
    assert db.noun_senses("puppies") == ["n00000005"]
    assert db.resolve("dog") == ("n00000003", "exact")
    assert db.resolve("dog", prefer={"n00000008"}) == ("n00000008", "exact")  # a preferred (picturable) sense wins
    assert db.resolve("big hairy domestic dog") == ("n00000003", "head")
    assert db.resolve("hammer of thor") == (None, "unknown")  # no back-off across "of"
    assert sorted(db.ancestors("n00000005")) == ["n00000001", "n00000002", "n00000003", "n00000005"]
    assert db.is_under("n00000005", "n00000002") and not db.is_under("n00000004", "n00000003")
    np.testing.assert_array_equal(db.descendant_counts()[[0, 1, 2]], [8, 4, 2])


def test_hierarchy_vectors_share_information_content(tmp_path):
    from zsl.semantics.label_spaces import hierarchy_rows, information_content

    db = _toy_wordnet(tmp_path)
    ic = information_content(db)
    np.testing.assert_allclose(ic[:3], np.log(8 / np.array([8, 4, 2])))  # entity carries none
    H = hierarchy_rows(db, ["n00000005", "n00000004", "n00000007", None]).toarray()
    cos = H @ H.T
    # puppy ~ cat: they share animal (and entity, IC 0)
    A_p, A_c = ic[[0, 1, 2, 4]].sum(), ic[[0, 1, 3]].sum()
    np.testing.assert_allclose(cos[0, 1], ic[1] / np.sqrt(A_p * A_c), rtol=1e-5)
    np.testing.assert_allclose(cos[0, 2], 0.0, atol=1e-7)  # puppy ~ hammer share only entity
    np.testing.assert_allclose(np.linalg.norm(H[:3], axis=1), 1.0, rtol=1e-5)
    assert not H[3].any()  # unresolved: no row (the label space fills it through the text fallback)
    U = hierarchy_rows(db, ["n00000005", "n00000004"], weighting="uniform").toarray()
    np.testing.assert_allclose(U[0] @ U[1], 2 / np.sqrt(4 * 3), rtol=1e-5)  # |shared| / sqrt(|A||B|)


# -- WordNet 3.0 through nltk (needs Debian's wordnet-base) ------------------------------------------
def test_lexnames_file_has_the_45_lexicographer_files():
    lines = wordnet.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[5] == "05\tnoun.animal\t1" and lines[44] == "44\tadj.ppl\t3"


def test_missing_wordnet_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSL_WORDNET_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(zsl.ZSLError, match="apt-get install wordnet-base"):
        wordnet.nltk_data_root()


needs_wordnet = pytest.mark.skipif(not wordnet.wordnet_available(),
                                   reason="WordNet 3.0 not installed: apt-get install wordnet-base")


@needs_wordnet
def test_real_wordnet_hops():
    g = HypernymGraph()
    assert len(g.adjacency) == 82115  # WordNet 3.0 noun synsets
    assert g.hop_distance("n02084071", "n02121620") == 3  # dog - domestic_animal - domestic_cat - cat


@needs_wordnet
@pytest.mark.slow
def test_real_wordnet_through_nltk():
    wn = wordnet.load_wordnet()
    assert wordnet.wnid(wn.synset("dog.n.01")) == "n02084071"
    assert wordnet.lemma_names("n02084071")[:2] == ["dog", "domestic dog"]
    with pytest.raises(zsl.ZSLError, match="not a WordNet noun id"):
        wordnet.synset_of("dog")
