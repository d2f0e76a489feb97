"""The binary-code index: exact faiss search equals NumPy popcount, approximate kinds work, the
folder round-trips, and mismatched queries / tampered folders are refused with clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

import zsl
from zsl.methods._hashing import hamming_distances

faiss = pytest.importorskip("faiss")

from zsl.index import IndexMismatchError, build_index, feature_extractor_of, load_index, make_binary_index  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    ds = zsl.make_synthetic(seed=0)
    Xtr, ytr = ds.subset("trainval")
    method = zsl.create_method("itq.tiny").fit(Xtr, ytr, ds.class_embeddings(), ds.seen_classes)
    return ds, method


def _build(tmp_path, ds, method, kind="flat", **params):
    codes = method.encode(ds.X)
    return build_index(method, codes, tmp_path / f"idx-{kind}", method_spec="itq.tiny",
                       feature_extractor=feature_extractor_of(ds),
                       dataset_info={"name": ds.name, "split": ds.split, "fingerprint": ds.fingerprint()},
                       database={"label": ds.y, "class_names": np.asarray(ds.class_names)}, kind=kind, **params)


def test_flat_search_equals_numpy_popcount():
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, (2000, 8), dtype=np.uint8)
    q = rng.integers(0, 256, (20, 8), dtype=np.uint8)
    D, I = make_binary_index(db, 64, "flat").search(q, 10)
    ref = np.sort(hamming_distances(q, db), axis=1)[:, :10]
    np.testing.assert_array_equal(D, ref)
    np.testing.assert_array_equal(np.take_along_axis(hamming_distances(q, db), I, axis=1), D)


@pytest.mark.parametrize("kind,params", [("hnsw", {"hnsw_m": 16, "ef_search": 256}), ("ivf", {"nlist": 16, "nprobe": 16})])
def test_approximate_indexes_find_true_neighbours(kind, params):
    rng = np.random.default_rng(1)
    centres = rng.integers(0, 256, (20, 4), dtype=np.uint8)
    flips = np.packbits(rng.random((3000, 32)) < 0.05, axis=1)
    db = centres[rng.integers(0, 20, 3000)] ^ flips  # clustered codes, like a trained hash
    q = db[:50]
    D_exact, _ = make_binary_index(db, 32, "flat").search(q, 10)
    D, I = make_binary_index(db, 32, kind, **params).search(q, 10)
    assert (I >= 0).all()
    assert np.mean(D <= D_exact[:, -1:]) > 0.9  # tie-aware recall@10
    assert (D[:, 0] == 0).all()  # every query is in the database


def test_index_folder_round_trip_and_manifest(tmp_path, fitted):
    ds, method = fitted
    out = _build(tmp_path, ds, method, "hnsw", hnsw_m=8, ef_search=32)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "itq" and manifest["n_bits"] == 16 and manifest["index"]["kind"] == "hnsw"
    assert manifest["feature_extractor"]["dim"] == ds.X.shape[1]
    idx = load_index(out)
    assert idx.index.hnsw.efSearch == 32
    D, I = idx.search(ds.X[:5], k=3)
    assert D.shape == (5, 3) and (D[:, 0] == 0).all()  # database images find themselves (distance 0)
    np.testing.assert_array_equal(idx.encode(ds.X[:5]), method.encode(ds.X[:5]))


def test_mismatched_queries_are_refused(tmp_path, fitted):
    ds, method = fitted
    idx = load_index(_build(tmp_path, ds, method))
    with pytest.raises(IndexMismatchError, match="64-d features"):
        idx.search(ds.X[:2, :32])
    with pytest.raises(IndexMismatchError, match="name"):
        idx.search(ds.X[:2], extractor={"name": "efficientnet-lite0", "resolution": 128})
    with pytest.raises(IndexMismatchError, match="16-bit"):
        idx.search_codes(np.zeros((1, 4), np.uint8))


def test_tampered_or_incomplete_folder_is_refused(tmp_path, fitted):
    ds, method = fitted
    out = _build(tmp_path, ds, method)
    other = zsl.create_method("lsh", n_bits=16).fit(ds.X[:100], ds.y[:100] * 0 + ds.seen_classes[0],
                                                   ds.class_embeddings(), ds.seen_classes)
    other.save(out / "model.pkl")  # swap the model behind the manifest's back
    with pytest.raises(zsl.ZSLError, match="checksum"):
        load_index(out)
    (out / "manifest.json").unlink()
    with pytest.raises(zsl.ZSLError, match="not a zsl index"):
        load_index(out)


def test_cli_build_and_search(tmp_path, capsys, fitted):
    from zsl.cli import main

    ds, _ = fitted
    out = tmp_path / "cli-idx"
    assert main(["index", "build", "--method", "lsh.tiny", "--dataset", "synthetic", "--bits", "16", "--kind", "ivf",
                 "--nlist", "8", "--out", str(out)]) == 0
    q = tmp_path / "q.npz"
    np.savez(q, X=ds.X[:2])
    capsys.readouterr()
    assert main(["index", "search", str(out), str(q), "--k", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_bits"] == 16 and len(res["results"]) == 2 and len(res["results"][0]) == 4
    assert all(h["label"] in ds.class_names for h in res["results"][0])
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=ds.X[:2, :10])
    assert main(["index", "search", str(out), str(bad)]) == 2
    img = tmp_path / "photo.jpg"
    img.write_bytes(b"not really an image")
    assert main(["index", "search", str(out), str(img)]) == 2  # built on synthetic features: no image queries
    err = capsys.readouterr().err
    assert "64-d features" in err and "cannot be computed from an image" in err
