"""The binary-code index: exact faiss search equals NumPy popcount, approximate kinds work, the
folder round-trips, and mismatched queries / tampered folders are refused with clear errors."""
from __future__ import annotations

import hashlib
import json
import os
import pickle

import numpy as np
import pytest

import zsl
from zsl.codes import hamming_distances

faiss = pytest.importorskip("faiss")

from zsl.index import IndexMismatchError, build_index, feature_extractor_of, load_index, make_binary_index


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
                       database={"label": ds.y, "class_names": np.asarray(ds.class_names),
                                 "path": np.asarray([f"img/{i}.jpg" for i in range(len(ds.y))])}, kind=kind, **params)


def test_flat_search_equals_numpy_popcount():
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, (2000, 8), dtype=np.uint8)
    q = rng.integers(0, 256, (20, 8), dtype=np.uint8)
    D, I = make_binary_index(db, 64, "flat").search(q, 10)
    ref = np.sort(hamming_distances(q, db), axis=1)[:, :10]
    np.testing.assert_array_equal(D, ref)
    np.testing.assert_array_equal(np.take_along_axis(hamming_distances(q, db), I, axis=1), D)


@pytest.mark.parametrize(
    "kind,params", [("hnsw", {"hnsw_m": 16, "ef_search": 256}), ("ivf", {"nlist": 16, "nprobe": 16})]
)
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
    assert idx.database["path"][7] == "img/7.jpg"
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
    other.save(out / "model.npz")  # swap the model behind the manifest's back
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


# -- hostile index folders: whoever writes the folder can rewrite the manifest's checksums too ----
class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _live_pickle(tmp_path) -> tuple[bytes, object]:
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists(), "the crafted pickle must really run code, or the tests below prove nothing"
    marker = tmp_path / "MARKER"
    return pickle.dumps(_Payload(marker)), marker


def _reseal(folder, **manifest_changes):
    """Rewrite the manifest's checksums (and fields) to match the folder, as a tamperer would."""
    m = json.loads((folder / "manifest.json").read_text())
    m.update(manifest_changes)
    m["files"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in m["files"]}
    (folder / "manifest.json").write_text(json.dumps(m))


def test_replaced_model_file_is_refused_never_executed(tmp_path, fitted):
    ds, method = fitted
    out = _build(tmp_path, ds, method)
    blob, marker = _live_pickle(tmp_path)
    (out / "model.npz").write_bytes(blob)
    _reseal(out)
    with pytest.raises(zsl.ZSLError, match="Python pickle") as err:
        load_index(out)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_old_format_folder_with_pickled_model_is_refused(tmp_path, fitted):
    ds, method = fitted
    out = _build(tmp_path, ds, method)
    blob, marker = _live_pickle(tmp_path)
    (out / "model.pkl").write_bytes(blob)
    m = json.loads((out / "manifest.json").read_text())
    m["format_version"] = 1
    m["files"] = {"model.pkl": hashlib.sha256(blob).hexdigest()}
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(zsl.ZSLError, match="format 1 held a pickled model"):
        load_index(out)
    assert not marker.exists()


def test_cli_search_on_a_tampered_folder_is_one_line_and_never_executes(tmp_path, fitted, capsys):
    from zsl.cli import main

    ds, method = fitted
    out = _build(tmp_path, ds, method)
    blob, marker = _live_pickle(tmp_path)
    (out / "database.npz").write_bytes(blob)
    _reseal(out)
    q = tmp_path / "q.npy"
    np.save(q, ds.X[:1])
    assert main(["index", "search", str(out), str(q)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zsl: error:") and err.count("\n") == 1 and "pickle" in err
    assert not marker.exists()


@pytest.mark.parametrize("kind,params,key,value", [
    ("hnsw", {"hnsw_m": 8, "ef_search": 16}, "neighbors", 10**6),  # a link far outside the database
    ("hnsw", {"hnsw_m": 8, "ef_search": 16}, "entry_point", -5),
    ("hnsw", {"hnsw_m": 8, "ef_search": 16}, "offsets", 3),
    ("ivf", {"nlist": 8}, "list_ids", 10**6),
])
def test_crafted_index_structure_is_refused_before_faiss_sees_it(tmp_path, fitted, kind, params, key, value):
    from zsl.persist import load_npz, save_npz

    ds, method = fitted
    out = _build(tmp_path, ds, method, kind, **params)
    arrays = load_npz(out / "structure.npz")
    a = arrays[key].copy()
    if a.ndim == 0:
        a = np.asarray(value, a.dtype)
    else:
        a[len(a) // 2] = value
    arrays[key] = a
    save_npz(out / "structure.npz", **arrays)
    _reseal(out)
    with pytest.raises(zsl.ZSLError, match="damaged or was tampered with"):
        load_index(out)


def test_rebuilt_approximate_index_equals_the_built_one(tmp_path, fitted):
    ds, method = fitted
    codes = method.encode(ds.X)
    for kind, params in (("hnsw", {"hnsw_m": 8, "ef_search": 16}), ("ivf", {"nlist": 8, "nprobe": 3})):
        idx = load_index(_build(tmp_path, ds, method, kind, **params))
        ref = make_binary_index(codes, 16, kind, **params)
        D1, I1 = ref.search(codes[::5], 10)
        D2, I2 = idx.search_codes(codes[::5], 10)
        np.testing.assert_array_equal(I1, I2)
        np.testing.assert_array_equal(D1, D2)
    assert sorted(p.name for p in (tmp_path / "idx-ivf").iterdir()) == [
        "database.npz", "manifest.json", "model.npz", "structure.npz",
    ]


def test_build_refuses_a_folder_of_other_files_before_fitting(tmp_path, capsys):
    from zsl.cli import main

    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    assert (
        main(["index", "build", "--method", "lsh.tiny", "--dataset", "synthetic", "--bits", "16", "--out", str(home)])
        == 2
    )
    assert "holds other files (thesis.tex)" in capsys.readouterr().err
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]
    partial = tmp_path / "partial"  # a build cut short: index files but no manifest yet
    partial.mkdir()
    (partial / "model.npz").write_bytes(b"half")
    assert (
        main(
            ["index", "build", "--method", "lsh.tiny", "--dataset", "synthetic", "--bits", "16", "--out", str(partial)]
        )
        == 0
    )


def test_malformed_manifest_values_are_one_line(tmp_path, fitted):
    ds, method = fitted
    out = _build(tmp_path, ds, method)
    m = json.loads((out / "manifest.json").read_text())
    m["feature_extractor"]["resolution"] = "abc"
    m["files"]["../../etc/passwd"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(zsl.ZSLError, match="malformed manifest") as err:
        load_index(out)
    assert "files must list exactly" in str(err.value) and "resolution 'abc'" in str(err.value)
