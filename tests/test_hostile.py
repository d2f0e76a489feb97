"""Careless and hostile input on the command line: one-line errors before any long work, no silent
nonsense, no stale state, ordinary folders accepted, stores safe under concurrency.

(Crafted model and index files are in ``test_persist.py`` and ``test_index.py``.)
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zsl
from zsl.cli import main
from zsl.errors import ZSLError

RES = 32


def _images(root: Path, classes=("cat", "dog", "ship"), per_class=3, loose=0) -> Path:
    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 80, (RES, RES, 3), dtype=np.uint8)
            a[..., k % 3] += 120
            Image.fromarray(a).save(root / c / f"{i}.jpg")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(loose):
        Image.fromarray(rng.integers(0, 255, (RES, RES, 3), dtype=np.uint8)).save(root / f"loose{i}.jpg")
    return root


def _err(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("zsl: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# -- a place that cannot be written, also when the tests run as root ----------------------------
@pytest.fixture
def unprivileged():
    """(base folder, context manager) for code that must meet real permission errors.

    Root ignores file permissions, so as root the context switches the *effective* user to
    ``nobody`` (the real user stays root, which switches back); as any other user it does nothing.
    The base folder (under /tmp, open to everyone) holds what the test makes; modules the code
    imports lazily must be imported before entering the context (``nobody`` may not read them).
    """
    base = Path(tempfile.mkdtemp(prefix="zsl-unpriv-", dir="/tmp"))
    os.chmod(base, 0o777)

    @contextlib.contextmanager
    def as_user():
        if os.geteuid() != 0:
            yield
            return
        os.setegid(65534)
        os.seteuid(65534)
        try:
            yield
        finally:
            os.seteuid(0)
            os.setegid(0)

    yield base, as_user
    for p in [base, *base.rglob("*")]:
        with contextlib.suppress(OSError):
            os.chmod(p, 0o777 if p.is_dir() else 0o666)
    shutil.rmtree(base, ignore_errors=True)


def _open_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.rglob("*")]:
        os.chmod(p, 0o777 if p.is_dir() else 0o666)
    return path


def _read_only_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o555)
    return path


# -- 4. tracebacks -> one-line errors, paths checked before long work -----------------------------
def test_cache_under_a_regular_file_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("ZSL_CACHE", str(blocker / "cache"))
    assert main(["run", "eszsl", "--dataset", "synthetic"]) == 2
    line = _err(capsys)
    assert str(blocker) in line and "is a file, not a folder" in line and "ZSL_CACHE" in line
    assert capsys.readouterr().out == ""  # no result was computed


def test_read_only_cache_is_refused_before_the_fit(unprivileged, monkeypatch, capsys):
    base, as_user = unprivileged
    cache = _read_only_dir(base / "ro-cache")
    monkeypatch.setenv("ZSL_CACHE", str(_open_dir(base / "warm")))
    assert main(["run", "eszsl", "--dataset", "synthetic", "--selection", "none"]) == 0  # imports everything it needs
    capsys.readouterr()
    monkeypatch.setenv("ZSL_CACHE", str(cache))
    with as_user():
        rc = main(["run", "eszsl", "--dataset", "synthetic", "--selection", "none"])
    assert rc == 2
    line = _err(capsys)
    assert line.startswith("zsl: error: cache folder") and "not writable" in line and "ZSL_CACHE" in line
    assert capsys.readouterr().out == ""  # refused before the fit: no result line
    assert not any(cache.iterdir())


def test_extract_out_into_unwritable_place_is_refused_before_extracting(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZSL_CACHE", str(tmp_path / "cache"))
    images = _images(tmp_path / "imgs")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["extract", str(images), "--out", str(blocker / "feats.npz"), "--no-progress"]) == 2
    assert "is a file, not a folder" in _err(capsys)
    assert not (Path(os.environ["ZSL_CACHE"]) / "features").exists(), "the extraction must not have started"


def test_extract_out_into_read_only_folder_is_refused_before_extracting(unprivileged, monkeypatch, capsys):
    base, as_user = unprivileged
    images = _open_dir(_images(base / "imgs"))
    out_dir = _read_only_dir(base / "ro-out")
    cache = _open_dir(base / "cache")
    monkeypatch.setenv("ZSL_CACHE", str(cache))
    with as_user():
        rc = main(["extract", str(images), "--out", str(out_dir / "f.npz"), "--no-progress"])
    assert rc == 2
    assert "cannot write in" in _err(capsys)
    assert not (cache / "features").exists(), "the extraction must not have started"


def test_checkpoint_dir_under_a_file_is_refused_before_the_data(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["run", "fclswgan.tiny", "--dataset", "synthetic", "--set", f"checkpoint_dir={blocker}/ck"]) == 2
    assert "checkpoint_dir" in _err(capsys)


def test_read_only_results_store_is_refused_before_any_cell(tmp_path, capsys):
    from zsl.bench.store import ResultsStore

    db = tmp_path / "r.db"
    ResultsStore(str(db))  # an existing store, opened read-only below
    assert main(["benchmark", "--store", f"sqlite:///file:{db}?mode=ro&uri=true", "--methods", "eszsl"]) == 2
    assert "cannot be written" in _err(capsys)
    assert ResultsStore(str(db)).count() == 0


@pytest.mark.parametrize("argv", [
    ["run", "eszsl", "--dataset", "synthetic", "--seed", "-1"],
    ["index", "build", "--method", "lsh.tiny", "--dataset", "synthetic", "--seed", "-1", "--out", "IDX"],
    ["hashing", "--dataset", "synthetic", "--seeds", "0", "-3"],
    ["run", "eszsl", "--dataset", "synthetic", "--seed", str(2**40)],
])
def test_bad_seed_on_every_command_is_one_line(argv, tmp_path, capsys):
    argv = [str(tmp_path / "idx") if a == "IDX" else a for a in argv]
    assert main(argv) == 2
    assert "must be an integer" in _err(capsys)


@pytest.mark.parametrize("argv,needle", [
    (["cpl", "ablation", "--dataset", "synthetic", "--set", "lambda_rec=NaN"], "lambda_rec=nan"),
    (["cpl", "ablation", "--dataset", "synthetic", "--set", "nosuch=1"], "unknown parameter"),
    (["ablation", "--dataset", "synthetic", "--set", "hidden=-3"], "hidden=-3"),
    (["run", "eszsl", "--dataset", "synthetic", "--set", "lambda_=abc"], "lambda_='abc'"),
])
def test_bad_set_on_other_commands_is_one_line(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in _err(capsys)


def test_multi_line_library_errors_become_one_line(tmp_path, capsys):
    bad = tmp_path / "photos.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 20)  # tarfile's error here spans several lines
    assert main(["extract", str(bad), "--out", str(tmp_path / "f.npz")]) == 2
    assert "not a readable tar archive" in _err(capsys)


def test_path_traversal_archive_writes_nothing_outside(tmp_path, capsys):
    import io

    evil = tmp_path / "evil.tar.gz"
    target = tmp_path / "OUTSIDE"
    with tarfile.open(evil, "w:gz") as tf:
        data = b"owned"
        info = tarfile.TarInfo(f"../../../../../../..{target}")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert main(["extract", str(evil), "--out", str(tmp_path / "f.npz")]) == 2
    assert "not a readable tar archive" in _err(capsys)
    assert not target.exists()


def test_damaged_feature_cache_entry_is_recomputed(tmp_path):
    from zsl.features import extract
    from zsl.features.cache import entry_dir

    images = _images(tmp_path / "imgs", per_class=2)
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    first = extract(paths, resolution=RES, num_workers=0, progress=False).features
    merged = entry_dir(paths, "efficientnet-lite0", RES) / "features.npz"
    merged.write_bytes(merged.read_bytes()[:200])  # truncated (a full disk, a killed copy)
    with pytest.warns(UserWarning, match="damaged"):
        again = extract(paths, resolution=RES, num_workers=0, progress=False).features
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-5)


# -- 3. stores created safely under concurrency ----------------------------------------------------
def _open_store_and_insert(url, barrier, k, queue):  # pragma: no cover - runs in child processes
    try:
        from zsl.bench.store import ResultsStore

        barrier.wait(timeout=60)
        store = ResultsStore(url)
        store.insert(
            {
                "cell_hash": f"h{k}", "method": "m", "spec": "m.d", "dataset": "d", "split": "s", "setting": "zsl",
                "seed": 0, "status": "ok", "config_json": {},
            }
        )
        queue.put("ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_store_together_all_succeed(tmp_path):
    """Before the fix, 13 of 20 such starts died with 'table runs already exists'."""
    from zsl.bench.store import ResultsStore

    ctx = mp.get_context("fork")
    n, rounds = 6, 3
    for r in range(rounds):
        url = f"sqlite:///{tmp_path / f'race{r}.db'}"
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_open_store_and_insert, args=(url, barrier, k, queue)) for k in range(n)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert results == ["ok"] * n, results
        assert ResultsStore(url).count() == n


def test_foreign_runs_table_is_refused(tmp_path):
    import sqlite3

    from zsl.bench.store import ResultsStore

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as con:
        con.execute("create table runs (x int)")
    with pytest.raises(ZSLError, match="not a zsl results table"):
        ResultsStore(str(db))


# -- 5. silent nonsense -----------------------------------------------------------------------------
def test_one_unseen_class_is_refused_for_zsl_not_for_gzsl(tmp_path, capsys):
    folder = _images(tmp_path / "three")  # 3 classes -> 1 unseen
    ds_arg = f"image-folder:{folder}"
    assert main(["run", "eszsl", "--dataset", ds_arg, "--set", "kernel=linear"]) == 2
    assert "single candidate" in _err(capsys)
    assert main(["run", "eszsl", "--dataset", ds_arg, "--setting", "gzsl", "--json"]) == 0


def test_image_folders_hold_out_two_classes_from_five_on():
    from zsl.data.image_folder import default_unseen_count, default_val_count

    assert [default_unseen_count(c) for c in (3, 4, 5, 8, 10, 20)] == [1, 1, 2, 2, 2, 4]
    assert [default_val_count(s) for s in (2, 4, 5, 8, 16)] == [1, 1, 2, 2, 3]


def test_zsl_selection_on_one_validation_class_is_refused(tmp_path, capsys):
    folder = _images(tmp_path / "five", classes=("cat", "dog", "ship", "truck", "horse"), per_class=3)
    ds_arg = f"image-folder:{folder}"  # 5 classes: 2 unseen, 3 seen -> 1 validation class
    assert main(["run", "eszsl", "--dataset", ds_arg]) == 2
    assert "--selection none" in _err(capsys)
    assert main(["run", "eszsl", "--dataset", ds_arg, "--selection", "none", "--json"]) == 0


def test_unknown_split_of_an_image_folder_is_an_error(tmp_path, capsys):
    folder = _images(tmp_path / "three")
    assert main(["run", "eszsl", "--dataset", f"image-folder:{folder}", "--split", "nosuch"]) == 2
    assert "Valid splits: default" in _err(capsys)
    assert main(["run", "eszsl", "--dataset", "image-folder:"]) == 2
    assert "needs a path" in _err(capsys)


@pytest.mark.parametrize("argv,needle", [
    (["--methods", "nosuch"], "valid methods: conse"),
    (["--methods", "zsh"], "not in grid 'quick'"),
    (["--datasets", "nosuch"], "has no such dataset"),
    (["--methods", "eszsl.nosuchpreset"], "unknown preset"),
])
def test_benchmark_filters_matching_nothing_are_errors(argv, needle, tmp_path, capsys):
    assert main(["benchmark", "--store", str(tmp_path / "r.db"), *argv]) == 2
    assert needle in _err(capsys)


def test_benchmark_preset_the_grid_does_not_pick_is_an_error_not_zero_cells(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\nmethods = ["eszsl"]\npresets = ["linear"]\nsettings = ["zsl"]\n'
                    '[datasets.synthetic]\nsplits = ["default"]\n')
    assert (
        main(["benchmark", "--grid", str(grid), "--store", str(tmp_path / "r.db"), "--methods", "eszsl.default"]) == 2
    )
    assert "no cell of grid 'g' matches" in _err(capsys)


@pytest.mark.parametrize("text,needle", [
    ('seeds = ["a"]\nmethods = ["eszsl"]', "'seeds' must be integers"),
    ('methods = "eszsl"', "'methods' must be"),
])
def test_malformed_grid_values_are_one_line(text, needle, tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(f'name = "g"\n{text}\n[datasets.synthetic]\nsplits = ["default"]\n')
    assert main(["benchmark", "--grid", str(grid), "--store", str(tmp_path / "r.db")]) == 2
    assert needle in _err(capsys)


# -- 6. stale state: failures keyed by content, and the reason said ---------------------------------
def test_repaired_image_is_retried_even_with_size_and_mtime_kept(tmp_path):
    from zsl.features import extract

    images = _images(tmp_path / "imgs", classes=("cat",), per_class=3)
    target = images / "cat" / "1.jpg"
    good = target.read_bytes()
    st = target.stat()
    target.write_bytes(b"\0" * 4 + good[4:])  # a damaged header, same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: the entry key cannot see a repair
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    with pytest.warns(UserWarning, match=r"1\.jpg \(UnidentifiedImageError: cannot identify image file\)"):
        first = extract(paths, resolution=RES, num_workers=0, progress=False)
    assert first.valid.tolist() == [True, False, True] and "UnidentifiedImageError" in first.skip_reasons[0]
    target.write_bytes(good)  # repaired in place (e.g. restored from a backup with its timestamp)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no skip warning any more
        second = extract(paths, resolution=RES, num_workers=0, progress=False)
    assert second.valid.all() and second.features.shape == (3, 1280)
    np.testing.assert_array_equal(second.features[[0, 2]], first.features)  # the others come from the cache
    third = extract(paths, resolution=RES, num_workers=0, progress=False)  # and the repair was stored
    np.testing.assert_array_equal(third.features, second.features)


def test_image_made_readable_is_retried_and_the_warning_says_why(unprivileged, monkeypatch):
    from zsl.features import extract

    base, as_user = unprivileged
    images = _open_dir(_images(base / "imgs", classes=("cat", "dog"), per_class=2))
    monkeypatch.setenv("ZSL_CACHE", str(_open_dir(base / "cache")))
    paths = sorted(str(p) for p in images.rglob("*.jpg"))
    extract(paths[:1], resolution=RES, num_workers=0, progress=False, cache=False)  # decoder imports, as root
    locked = Path(paths[2])
    os.chmod(locked, 0o000)
    with as_user():
        with pytest.warns(UserWarning, match=r"0\.jpg \(PermissionError: Permission denied\)"):
            first = extract(paths, resolution=RES, num_workers=0, progress=False)
    assert first.valid.tolist() == [True, True, False, True]
    os.chmod(locked, 0o644)  # chmod changes neither size nor mtime: the entry key is the same
    with as_user():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            second = extract(paths, resolution=RES, num_workers=0, progress=False)
    assert second.valid.all() and second.features.shape == (4, 1280)


# -- 7. any folder of images ------------------------------------------------------------------------
@pytest.mark.parametrize("layout,n,classes,labels,said", [
    ("loose", 3, [], [-1, -1, -1], "3 images outside class folders"),
    ("one", 3, ["cats"], [0, 0, 0], "1 class folder (cats (3))"),
    ("two", 6, ["cats", "dogs"], [0, 0, 0, 1, 1, 1], "2 class folders (cats (3), dogs (3))"),
    ("mixed", 5, ["cats"], [-1, -1, 0, 0, 0], "1 class folder (cats (3)); 2 images outside class folders"),
    ("single", 1, [], [-1], "found 1 image"),
])
def test_extract_accepts_any_folder_of_images_and_says_what_it_found(
    layout, n, classes, labels, said, tmp_path, capsys
):
    root = tmp_path / "photos"
    if layout == "loose":
        _images(root, classes=(), loose=3)
    elif layout == "one":
        _images(root, classes=("cats",))
    elif layout == "two":
        _images(root, classes=("cats", "dogs"))
        (root / "notes.txt").write_text("not an image")
    elif layout == "mixed":
        _images(root, classes=("cats",), loose=2)
    else:
        _images(root, classes=(), loose=1)
        root = root / "loose0.jpg"
    out = tmp_path / "f.npz"
    assert (
        main(["extract", str(root), "--out", str(out), "--no-progress", "--num-workers", "0", "--resolution", str(RES)])
        == 0
    )
    err = capsys.readouterr().err
    assert said in err, err
    with np.load(out) as z:
        assert z["features"].shape == (n, 1280)
        assert z["class_names"].tolist() == classes and z["labels"].tolist() == labels
    if layout == "two":
        assert "1 non-image file ignored" in err


def test_extract_on_a_folder_without_images_is_one_line(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    assert main(["extract", str(tmp_path / "docs"), "--out", str(tmp_path / "f.npz")]) == 2
    assert "no images found" in _err(capsys)


def test_image_folder_dataset_with_one_class_folder_per_wrapper(tmp_path):
    from zsl.data.image_folder import resolve_image_root

    _images(tmp_path / "wrap" / "animals")  # one wrapper folder holding the class folders
    assert resolve_image_root(tmp_path / "wrap") == tmp_path / "wrap" / "animals"
    _images(tmp_path / "single", classes=("cats",))  # one folder of images is a class, not a wrapper
    assert resolve_image_root(tmp_path / "single") == tmp_path / "single"


def test_errors_name_the_file_for_a_real_model_round_trip_via_cli_json(tmp_path):
    # the public API a user reaches for: save then load by path, refusing a folder
    ds = zsl.make_synthetic(seed=0)
    Xtr, ytr = ds.subset("trainval")
    m = zsl.create_method("eszsl.linear").fit(Xtr, ytr, ds.class_embeddings(), ds.seen_classes)
    with pytest.raises(ZSLError, match="is a folder"):
        zsl.ZSLMethod.load(m.save(tmp_path / "m.npz").parent)


# -- 9. more of what a probe finds ------------------------------------------------------------------
def test_file_names_that_are_not_utf8_are_extracted_and_reported(tmp_path, capsys):
    root = _images(tmp_path / "photos", classes=("cats",), per_class=2)
    (root / "cats" / "0.jpg").rename(os.fsdecode(bytes(root / "cats") + b"/ok\xffname.jpg"))
    Path(os.fsdecode(bytes(root / "cats") + b"/bad\xfe.jpg")).write_bytes(b"not an image")
    out = tmp_path / "f.npz"
    assert (
        main(["extract", str(root), "--out", str(out), "--no-progress", "--num-workers", "0", "--resolution", str(RES)])
        == 0
    )
    err = capsys.readouterr().err
    assert "bad\\udcfe.jpg (UnidentifiedImageError" in err and "Traceback" not in err
    with np.load(out) as z:
        assert len(z["features"]) == 2 and any("ok\udcffname" in p for p in z["paths"].tolist())


def test_results_store_row_with_malformed_json_is_one_line(tmp_path, capsys):
    import sqlite3

    from zsl.bench.store import ResultsStore

    db = tmp_path / "r.db"
    store = ResultsStore(str(db))
    store.insert({"cell_hash": "h", "method": "m", "spec": "m.d", "dataset": "d", "split": "s", "setting": "zsl",
                  "seed": 0, "status": "ok", "config_json": {}})
    with sqlite3.connect(db) as con:
        con.execute("update runs set config_json = '{not json'")
    assert main(["report", "--store", str(db)]) == 2
    assert "malformed JSON" in _err(capsys)
