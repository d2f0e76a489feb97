"""Image-folder datasets (folder and .tar.gz), GloVe class-name vectors, and the cifar10 dataset."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsl.data.image_folder import CIFAR10_CLASSES, CIFAR10_UNSEEN, read_image_folder, resolve_image_root
from zsl.errors import DataError
from zsl.semantics.glove import glove_vectors, word_vector

RES = 64
CLASSES = ("cat", "dog", "ship", "truck", "horse")


def _tree(root: Path, classes=CLASSES, per_class=4, corrupt=True) -> Path:
    rng = np.random.default_rng(1)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 80, size=(32, 32, 3), dtype=np.uint8)
            arr[..., k % 3] += 120
            Image.fromarray(arr).save(root / c / f"{i:02d}.jpg")
    if corrupt:
        (root / classes[1] / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0not a jpeg")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp("tree") / "animals")


@pytest.fixture(scope="module")
def archive(folder, tmp_path_factory):
    tar = tmp_path_factory.mktemp("tar") / "animals.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(folder, arcname="animals")  # wrapped in one top folder, as archives usually are
    return tar


# ---------------------------------------------------------------------------------------------
def test_glove_multiword_average_and_missing():
    v, missing = glove_vectors(["grizzly+bear", "polar_bear", "Black-footed Albatross", "qqqzzx wwvvq", "cat"])
    assert v.shape == (5, 50) and v.dtype == np.float32
    np.testing.assert_allclose(v[0], (word_vector("grizzly") + word_vector("bear")) / 2, rtol=1e-6)
    np.testing.assert_allclose(v[1], (word_vector("polar") + word_vector("bear")) / 2, rtol=1e-6)
    np.testing.assert_allclose(
        v[2], (word_vector("black") + word_vector("footed") + word_vector("albatross")) / 3, rtol=1e-6
    )
    np.testing.assert_allclose(v[4], word_vector("cat"))
    assert missing == ["qqqzzx wwvvq"] and not v[3].any()


def test_folder_dataset_drops_corrupt_image_and_builds_splits(folder):
    with pytest.warns(UserWarning, match="zz-broken.jpg"):
        ds = read_image_folder(folder, resolution=RES, unseen_classes=["ship"], val_classes=["cat"],
                               num_workers=0, progress=False)
    assert ds.X.shape == (20, 1280) and ds.class_names == sorted(CLASSES)
    assert len(ds.meta["skipped"]) == 1 and ds.meta["skipped"][0].endswith("zz-broken.jpg")
    assert not any(p.endswith("zz-broken.jpg") for p in ds.meta["paths"])
    ship = ds.class_names.index("ship")
    assert ds.unseen_classes.tolist() == [ship] and ds.val_classes.tolist() == [ds.class_names.index("cat")]
    assert set(ds.y[ds.splits["test_unseen"]]) == {ship}
    assert ship not in set(ds.y[ds.splits["trainval"]]) | set(ds.y[ds.splits["test_seen"]])
    assert not set(ds.splits["trainval"]) & set(ds.splits["test_seen"])
    E = ds.class_embeddings("glove")
    np.testing.assert_allclose(E[ship], word_vector("ship"))


def test_tar_extracted_once_and_features_match_folder(folder, archive):
    root1 = resolve_image_root(archive)
    root2 = resolve_image_root(archive)
    assert root1 == root2 and root1.name == "animals" and (root1 / "cat" / "00.jpg").is_file()
    assert not list(root1.parent.parent.glob(".*partial"))
    with pytest.warns(UserWarning):
        a = read_image_folder(archive, resolution=RES, unseen_classes=["ship"], num_workers=0, progress=False, seed=3)
    with pytest.warns(UserWarning):
        b = read_image_folder(folder, resolution=RES, unseen_classes=["ship"], num_workers=0, progress=False, seed=3)
    np.testing.assert_allclose(a.X, b.X, rtol=1e-5, atol=1e-5)
    assert np.array_equal(a.y, b.y) and a.val_classes.tolist() == b.val_classes.tolist()


def test_recopied_archive_reuses_extraction_and_changed_archive_does_not(archive, tmp_path):
    import os
    import shutil

    cache = tmp_path / "cache"
    first = resolve_image_root(archive, cache)
    copy = tmp_path / "elsewhere" / "animals.tar.gz"  # the data folder copied or re-mounted: new path and mtime
    copy.parent.mkdir()
    shutil.copyfile(archive, copy)
    os.utime(copy, (1e9, 1e9))
    assert resolve_image_root(copy, cache) == first
    with tarfile.open(copy, "w:gz") as tf:  # different content
        tf.add(first, arcname="animals")
        tf.add(first / "cat" / "00.jpg", arcname="animals/cat/99.jpg")
    changed = resolve_image_root(copy, cache)
    assert changed != first and (changed / "cat" / "99.jpg").is_file()


def test_train_test_layout_and_max_per_class(tmp_path):
    for part in ("train", "test"):
        _tree(tmp_path / "data" / part, per_class=5 if part == "train" else 3, corrupt=False)
    ds = read_image_folder(tmp_path / "data", resolution=RES, unseen_classes=["cat", "truck"], num_workers=0,
                           progress=False, max_per_class=2)
    paths = np.asarray(ds.meta["paths"])
    unseen = set(ds.unseen_classes.tolist())
    assert all("/train/" in p for p in paths[ds.splits["trainval"]])
    assert all("/test/" in p for p in paths[ds.splits["test_seen"]]) and all(
        "/test/" in p for p in paths[ds.splits["test_unseen"]]
    )
    assert set(ds.y[ds.splits["test_unseen"]]) == unseen
    assert not any("/train/" in p and y in unseen for p, y in zip(paths, ds.y))  # unseen train images never used
    assert np.bincount(ds.y[ds.splits["trainval"]]).max() == 2
    assert len(ds.splits["test_unseen"]) == 4


def test_unknown_class_name_errors(folder, tmp_path):
    with pytest.raises(DataError, match="'zebra' is not one of the class folders"):
        read_image_folder(folder, unseen_classes=["zebra"], progress=False)
    odd = _tree(tmp_path / "odd", classes=("cat", "dog", "qqxxzzq"), per_class=1, corrupt=False)
    with pytest.raises(DataError, match="class 'qqxxzzq' has no GloVe vector"):
        read_image_folder(odd, progress=False)
    with pytest.raises(DataError, match="not found"):
        read_image_folder(tmp_path / "missing", progress=False)


def test_cifar10_splits_cover_every_class_once():
    unseen = [c for pair in CIFAR10_UNSEEN.values() for c in pair]
    assert sorted(unseen) == sorted(CIFAR10_CLASSES)


@pytest.mark.realdata
def test_cifar10_real_jpegs_decode_and_extract(data_root):
    """A few real CIFAR-10 JPEGs read straight from the archive (no 60k-file extraction)."""
    import zsl.features as F

    tar = data_root / "cifar10-jpg.tar.gz"
    if not tar.is_file():
        pytest.skip(f"cifar10-jpg.tar.gz not found under {data_root}")
    images = []
    with tarfile.open(tar) as tf:
        for member in tf:
            if member.isfile() and member.name.endswith(".jpg"):
                with Image.open(tf.extractfile(member)) as img:
                    images.append(img.convert("RGB"))
            if len(images) == 4:
                break
    assert all(img.size == (32, 32) for img in images)
    feats, logits = F.extract_features(images, resolution=RES, progress=False, with_logits=True)
    assert feats.shape == (4, 1280) and logits.shape == (4, 1000) and np.isfinite(feats).all()


@pytest.mark.realdata
@pytest.mark.slow  # extracts the 60,000-file archive into the test's private cache
def test_cifar10_real(data_root):
    import zsl

    if not (data_root / "cifar10-jpg.tar.gz").is_file():
        pytest.skip(f"cifar10-jpg.tar.gz not found under {data_root}")
    ds = zsl.load_dataset("cifar10", "rot2", data_root=data_root, max_per_class=3, semantics=("glove",), progress=False)
    assert ds.n_classes == 10 and ds.class_names == sorted(CIFAR10_CLASSES)
    assert sorted(ds.class_names[c] for c in ds.unseen_classes) == sorted(CIFAR10_UNSEEN["rot2"])
    assert len(ds.val_classes) == 2 and set(ds.val_classes) <= set(ds.seen_classes)
    assert len(ds.splits["test_unseen"]) == 6 and len(ds.splits["trainval"]) == 24 and len(ds.splits["test_seen"]) == 24
    assert ds.X.shape[1] == 1280 and np.isfinite(ds.X).all()
