"""Dataset readers: synthetic, xlsa17 (real split files), AwA1, and clear errors on bad input."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

import zsl
from zsl.data import load_dataset, split_by_classes
from zsl.data.synthetic import synthetic_res101_for
from zsl.data.xlsa17 import read_att_splits, read_xlsa17, write_xlsa17
from zsl.errors import DataError, ZSLError

XLSA17 = ["APY", "AWA1", "AWA2", "CUB", "SUN", "FLO"]


def test_synthetic_is_seeded_and_consistent():
    a, b, c = zsl.make_synthetic(seed=1), zsl.make_synthetic(seed=1), zsl.make_synthetic(seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert set(a.val_classes) <= set(a.seen_classes)
    assert not set(a.seen_classes) & set(a.unseen_classes)
    assert set(a.y[a.splits["test_unseen"]]) == set(a.unseen_classes)
    assert not set(a.splits["trainval"]) & set(a.splits["test_seen"])
    assert not set(a.splits["train"]) & set(a.splits["val_seen"])
    assert set(a.y[a.splits["val_unseen"]]) == set(a.val_classes)


def test_split_by_classes_holds_out_a_fraction_of_every_seen_class():
    y = np.repeat(np.arange(6), 50)
    s = split_by_classes(y, [0, 1, 2, 3], [4, 5], [3], test_seen_fraction=0.2, seed=0)
    for c in range(4):
        assert np.sum(y[s["test_seen"]] == c) == 10
    assert set(y[s["train"]]) == {0, 1, 2}
    assert set(y[s["val_unseen"]]) == {3}


def test_xlsa17_round_trip_gives_identical_arrays(tmp_path):
    # val_seen is not stored in xlsa17 files: the reader re-derives it with the same seeded rule
    ds = zsl.make_synthetic(seed=3)
    write_xlsa17(ds, tmp_path / "SYN")
    back = read_xlsa17(tmp_path / "SYN", name="synthetic", seed=3)
    np.testing.assert_array_equal(back.X, ds.X)
    np.testing.assert_array_equal(back.y, ds.y)
    np.testing.assert_array_equal(back.class_embeddings(), ds.class_embeddings())
    assert back.class_names == ds.class_names
    for key in ds.splits:
        np.testing.assert_array_equal(back.splits[key], ds.splits[key], err_msg=key)
    for key in ("seen_classes", "unseen_classes", "val_classes", "train_classes"):
        np.testing.assert_array_equal(getattr(back, key), getattr(ds, key), err_msg=key)


def test_load_dataset_finds_xlsa17_folders_by_name(tmp_path):
    write_xlsa17(zsl.make_synthetic(), tmp_path / "xlsa17" / "MYSET")
    assert "myset" in zsl.list_datasets(tmp_path)
    ds = load_dataset("myset", data_root=tmp_path)
    assert ds.name == "myset" and len(ds.X) == 1200


@pytest.mark.realdata
@pytest.mark.parametrize("name", XLSA17)
def test_reads_every_real_att_splits_file(name, data_root, tmp_path):
    path = data_root / "xlsa17-splits" / name / "att_splits.mat"
    info = read_att_splits(path)
    C = info["attributes"].shape[0]
    assert C == {"APY": 32, "AWA1": 50, "AWA2": 50, "CUB": 200, "SUN": 717, "FLO": 102}[name]
    assert np.allclose(np.linalg.norm(info["attributes"], axis=1), 1.0, atol=1e-3)  # unit-L2 columns in the file
    assert min(info["trainval_loc"].min(), info["test_unseen_loc"].min()) >= 0  # converted to 0-based
    # paired with a res101.mat written in the same format, the whole reader works
    ds = read_xlsa17(synthetic_res101_for(path, tmp_path / name), name=name.lower())
    assert ds.n_classes == C
    assert len(ds.splits["test_unseen"]) == len(info["test_unseen_loc"])
    assert set(ds.val_classes) < set(ds.seen_classes)
    assert not set(ds.seen_classes) & set(ds.unseen_classes)


@pytest.mark.realdata
def test_awa1_standard_and_ps_splits(awa1, data_root):
    assert awa1.X.shape == (30475, 6252)
    assert len(awa1.seen_classes) == 40 and len(awa1.unseen_classes) == 10
    assert "chimpanzee" in [awa1.class_names[c] for c in awa1.unseen_classes]
    assert awa1.class_embeddings().shape == (50, 85)
    assert 0 <= awa1.class_embeddings().min() and awa1.class_embeddings().max() <= 1
    # Hellinger blocks are unit-L2
    np.testing.assert_allclose(np.linalg.norm(awa1.X[:5, :2000], axis=1), 1.0, rtol=1e-4)
    n_seen_imgs = np.isin(awa1.y, awa1.seen_classes).sum()
    assert abs(len(awa1.splits["test_seen"]) - 0.2 * n_seen_imgs) < 40
    ps = load_dataset("awa1", "ps", data_root=data_root)
    assert len(ps.seen_classes) == 40 and len(ps.unseen_classes) == 10
    assert set(ps.val_classes) < set(ps.seen_classes)
    assert set(ps.unseen_classes) != set(awa1.unseen_classes)


@pytest.mark.realdata
def test_flo_is_the_exact_xlsa17_split_with_the_strict_protocol(data_root):
    if not (data_root / "flo" / "att_splits.mat").is_file():
        pytest.skip(f"FLO not found under {data_root}/flo")
    assert "flo" in zsl.list_datasets(data_root)
    ds = load_dataset("flo", data_root=data_root)
    assert ds.X.shape == (8189, 1280) and ds.meta["features_file"] in ("res101.mat", "lite0.mat")
    assert len(ds.seen_classes) == 82 and len(ds.unseen_classes) == 20
    # Oxford classes 1-20 unseen, 21-40 validation, 41-102 train (0-based ids here)
    np.testing.assert_array_equal(ds.unseen_classes, np.arange(0, 20))
    np.testing.assert_array_equal(ds.val_classes, np.arange(20, 40))
    np.testing.assert_array_equal(ds.train_classes, np.arange(40, 102))
    assert ds.class_names[0] == "pink primrose"
    tuning = np.concatenate([ds.splits[k] for k in ("train", "val_seen", "val_unseen")])
    assert not np.isin(tuning, ds.splits["test_seen"]).any()  # nothing measured as S is used for selection
    assert not np.isin(tuning, ds.splits["test_unseen"]).any()
    assert len(ds.splits["test_unseen"]) == 1155 and len(ds.splits["test_seen"]) == 1403
    assert ds.class_embeddings("attributes").shape == (102, 1024)
    assert ds.class_embeddings("glove").shape == (102, 50)
    assert any("gazania" in n for n in ds.meta["notes"])  # the GloVe fallback is stated, not hidden


# -- bad input: one clear error naming the file ------------------------------------------------
@pytest.fixture
def xlsa_folder(tmp_path):
    folder = tmp_path / "BAD"
    write_xlsa17(zsl.make_synthetic(), folder)
    return folder


def test_truncated_mat_file(xlsa_folder):
    raw = (xlsa_folder / "res101.mat").read_bytes()
    (xlsa_folder / "res101.mat").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match="res101.mat"):
        read_xlsa17(xlsa_folder)


def test_not_a_mat_file(xlsa_folder):
    (xlsa_folder / "att_splits.mat").write_text("this is not matlab\n")
    with pytest.raises(DataError, match="att_splits.mat.*not a readable"):
        read_xlsa17(xlsa_folder)


def test_missing_file(xlsa_folder):
    (xlsa_folder / "res101.mat").unlink()
    with pytest.raises(DataError, match="res101.mat: file not found"):
        read_xlsa17(xlsa_folder)


def test_features_labels_length_mismatch(xlsa_folder):
    m = sio.loadmat(xlsa_folder / "res101.mat")
    sio.savemat(xlsa_folder / "res101.mat", {"features": m["features"], "labels": m["labels"][:-7]})
    with pytest.raises(DataError, match="must match"):
        read_xlsa17(xlsa_folder)


def test_loc_index_out_of_range(xlsa_folder):
    m = {k: v for k, v in sio.loadmat(xlsa_folder / "att_splits.mat").items() if not k.startswith("__")}
    m["test_unseen_loc"] = np.vstack([m["test_unseen_loc"], [[99999]]])
    sio.savemat(xlsa_folder / "att_splits.mat", m)
    with pytest.raises(DataError, match="test_unseen_loc.*outside"):
        read_xlsa17(xlsa_folder)


def test_nan_features(xlsa_folder):
    m = sio.loadmat(xlsa_folder / "res101.mat")
    m["features"][3, 10] = np.nan
    sio.savemat(xlsa_folder / "res101.mat", {"features": m["features"], "labels": m["labels"]})
    with pytest.raises(DataError, match="NaN"):
        read_xlsa17(xlsa_folder)


def test_class_without_description(xlsa_folder):
    m = {k: v for k, v in sio.loadmat(xlsa_folder / "att_splits.mat").items() if not k.startswith("__")}
    m["att"][:, 2] = 0.0
    sio.savemat(xlsa_folder / "att_splits.mat", m)
    with pytest.raises(DataError, match="class02.*no attributes description"):
        read_xlsa17(xlsa_folder)


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ZSLError, match="unknown dataset 'nope'.*synthetic"):
        load_dataset("nope", data_root=tmp_path)


def test_missing_data_root(tmp_path):
    with pytest.raises(DataError, match="does not exist.*ZSL_DATA"):
        load_dataset("awa1", data_root=tmp_path / "missing")


def test_unknown_split():
    with pytest.raises(DataError, match="valid splits: standard, ps"):
        load_dataset("awa1", "weird")
