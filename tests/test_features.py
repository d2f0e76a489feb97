"""Feature extraction: decoding, skipping corrupt files, cache hits, resume after an interrupt, CLI.

Images are tiny synthetic JPEGs and the resolution is small (64 px) so the default run stays fast.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsl import features as F
from zsl.features.cache import FeatureCache, entry_dir

RES = 64


def make_tree(root: Path, classes=("cat", "dog", "ship"), per_class=3, corrupt: bool = True) -> list[Path]:
    """root/<class>/NN.jpg with class-dependent colours; plus one corrupt .jpg in the first class."""
    rng = np.random.default_rng(0)
    paths = []
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 60, size=(24 + 4 * i, 32, 3), dtype=np.uint8)
            arr[..., k % 3] += 150  # a class-specific dominant channel
            p = root / c / f"{i:02d}.jpg"
            Image.fromarray(arr).save(p, quality=90)
            paths.append(p)
    if corrupt:
        bad = root / classes[0] / "99-corrupt.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        paths.append(bad)
    return paths


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    paths = make_tree(root)
    return root, [str(p) for p in paths]


def test_preprocess_resizes_shorter_side_and_centre_crops():
    img = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    out = F.preprocess_pil(img, 64)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8


def test_model_head_matches_forward():
    import torch

    m = F.load_efficientnet_lite0(with_classifier=True)
    assert not m.training
    x = torch.zeros(2, 3, RES, RES).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        feats = F.efficientnet.penultimate(m, x).numpy()
        logits = m(x).numpy()
    assert feats.shape == (2, 1280)
    np.testing.assert_allclose(F.logits_from_features(feats, m), logits, rtol=1e-4, atol=1e-4)


def test_corrupt_file_skipped_counted_and_named(tree):
    _, paths = tree
    with pytest.warns(UserWarning, match=r"skipped 1 of 10 images.*99-corrupt\.jpg"):
        ext = F.extract(paths, resolution=RES, num_workers=0, progress=False, with_logits=True)
    assert ext.valid.tolist() == [True] * 9 + [False]
    assert ext.skipped == [paths[-1]]
    assert ext.features.shape == (9, 1280) and ext.logits.shape == (9, 1000)
    assert np.isfinite(ext.features).all() and (ext.features >= 0).all()
    # different images give different features; the same image in memory gives the same features
    assert np.abs(ext.features[0] - ext.features[3]).max() > 1e-3
    mem = F.extract_features([Image.open(p) for p in paths[:2]] + [np.asarray(Image.open(paths[2]))],
                             resolution=RES, progress=False)
    np.testing.assert_allclose(mem, ext.features[:3], rtol=1e-5, atol=1e-5)


def test_cache_hit_returns_identical_arrays_and_workers_agree(tree):
    _, paths = tree
    good = paths[:-1]
    first = F.extract_features(good, resolution=RES, num_workers=1, progress=False)
    folder = entry_dir(good, F.BACKBONE, RES)
    assert (folder / "features.npz").is_file() and not list(folder.glob("shard-*.npz"))
    mtime = (folder / "features.npz").stat().st_mtime_ns
    second = F.extract_features(good, resolution=RES, num_workers=0, progress=False)
    assert np.array_equal(first, second)
    assert (folder / "features.npz").stat().st_mtime_ns == mtime  # read, not recomputed
    uncached = F.extract_features(good, resolution=RES, num_workers=0, progress=False, cache=False)
    np.testing.assert_allclose(uncached, first, rtol=1e-5, atol=1e-5)


def test_touching_a_file_changes_the_cache_key(tree, tmp_path):
    _, paths = tree
    copy = tmp_path / "x.jpg"
    copy.write_bytes(Path(paths[0]).read_bytes())
    k1 = entry_dir([str(copy)], F.BACKBONE, RES)
    os.utime(copy, ns=(1, 1))
    assert entry_dir([str(copy)], F.BACKBONE, RES) != k1


def test_resume_reuses_completed_shards(tree, monkeypatch, tmp_path):
    _, paths = tree
    good = paths[:-1]
    monkeypatch.setattr(F, "CHUNK_SIZE", 4)  # 9 images -> chunks of 4, 4, 1
    expected = F.extract_features(good, resolution=RES, num_workers=0, progress=False, cache=False, batch_size=4)
    folder = entry_dir(good, F.BACKBONE, RES, cache_dir=tmp_path)
    # simulate a run killed after the first chunk: one completed shard holding marker values
    store = FeatureCache(folder, len(good), 4, {"backbone": F.BACKBONE, "resolution": RES})
    store.prepare()
    marker = np.full((4, 1280), 7.0, np.float32)
    store.write_chunk(0, marker, np.ones(4, bool))
    (folder / ".shard-00001.npz.123.tmp").write_bytes(b"half a file")  # a torn temp file is ignored
    assert store.done_chunks() == {0}
    resumed = F.extract_features(good, resolution=RES, num_workers=0, progress=False, batch_size=4, cache_dir=tmp_path)
    assert np.array_equal(resumed[:4], marker)  # chunk 0 was reused, not recomputed
    np.testing.assert_allclose(resumed[4:], expected[4:], rtol=1e-5, atol=1e-5)
    assert store.is_complete() and not list(folder.glob("shard-*.npz"))


def test_bad_arguments_raise_data_error(tree):
    from zsl.errors import DataError

    _, paths = tree
    with pytest.raises(DataError, match="resolution"):
        F.extract_features(paths[:1], resolution=8, progress=False)
    with pytest.raises(DataError, match="not a mix"):
        F.extract_features([paths[0], Image.open(paths[1])], resolution=RES, progress=False)


def test_extract_cli_writes_npz(tree, tmp_path):
    root, _ = tree
    out = tmp_path / "feats.npz"
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    cmd = [sys.executable, "-m", "zsl.cli", "extract", str(root), "--out", str(out), "--resolution", str(RES),
           "--no-progress", "--num-workers", "0", "--logits"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as z:
        assert z["features"].shape == (9, 1280) and z["logits"].shape == (9, 1000)
        assert z["class_names"].tolist() == ["cat", "dog", "ship"]
        assert z["labels"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert len(z["skipped"]) == 1 and z["skipped"][0].endswith("99-corrupt.jpg")
    assert "99-corrupt.jpg" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "zsl.cli", "extract", str(tmp_path / "nope"), "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "zsl: error:" in bad.stderr and "Traceback" not in bad.stderr
