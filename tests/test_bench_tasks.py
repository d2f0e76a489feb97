"""One benchmark for three tasks: retrieval and labelling cells in the same store and report as the
classification cells, and image folders as benchmark datasets (generated data only)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsl.bench.report import labelling_markdown, retrieval_markdown
from zsl.bench.runner import expand_grid, grid_datasets, load_grid, run_benchmark, stored_dataset_name
from zsl.bench.store import ResultsStore
from zsl.cli import main

ZSL = [sys.executable, "-m", "zsl.cli"]

RETRIEVAL_GRID = """
task = "retrieval"
name = "retrieval-test"
methods = ["lsh", "sdh"]
bits = [16, 32]
seeds = [0, 1]
queries = 100
[datasets.synthetic]
splits = ["default"]
presets = ["tiny"]
"""


def _images(root: Path, classes=("cat", "dog", "ship", "truck", "horse", "bird", "frog", "deer"), per_class=4) -> Path:
    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            a[..., k % 3] += 120
            Image.fromarray(a).save(root / c / f"{i}.jpg")
    return root


def _cli(*args, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZSL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*ZSL, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def _err(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zsl: error:")]
    assert len(errors) == 1
    return errors[0]


# -- retrieval ---------------------------------------------------------------------------------------
def test_retrieval_cli_stores_each_cell_once_and_prints_its_table(tmp_path):
    grid = tmp_path / "r.toml"
    grid.write_text(RETRIEVAL_GRID)
    store_path = tmp_path / "results.db"
    args = ["benchmark", "--task", "retrieval", "--grid", grid, "--store", store_path,
            "--data-root", tmp_path / "none"]
    first = _cli(*args, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    n_cells = 2 * 2 * 2  # methods x bits x seeds
    rows = ResultsStore(str(store_path)).rows()
    assert len(rows) == n_cells and len({r["cell_hash"] for r in rows}) == n_cells
    assert {r["task"] for r in rows} == {"retrieval"} and {r["status"] for r in rows} == {"ok"}
    assert {(r["method"], r["setting"], r["seed"]) for r in rows} == {
        (m, f"{b}b", s) for m in ("lsh", "sdh") for b in (16, 32) for s in (0, 1)}
    for r in rows:
        assert {"mAP", "mAP_authors", "mAP@1000", "P@r2"} <= set(r["metrics"])
    # the printed tables come from those rows: mean ± std over the two seeds of sdh at 16 bits
    sdh16 = [r["metrics"]["mAP"] for r in rows if r["method"] == "sdh" and r["setting"] == "16b"]
    assert f"| sdh | {np.mean(sdh16):.4f} ± {np.std(sdh16):.4f} |" in first.stdout
    assert "mAP_authors" in first.stdout and "P@r2" in first.stdout
    assert "Chosen on the validation classes" in first.stdout
    # one validation choice per method and code length, shared by both seeds
    chosen = {(r["setting"], r["seed"]): r["config"]["selected"]["overrides"] for r in rows if r["method"] == "sdh"}
    assert chosen[("16b", 0)] == chosen[("16b", 1)] and "nu" in chosen[("16b", 0)]
    again = _cli(*args, tmp_path=tmp_path)
    assert again.returncode == 0 and f"0 cells run (0 errors), {n_cells} already in the store" in again.stdout
    assert ResultsStore(str(store_path)).count() == n_cells
    report = _cli("report", "--task", "retrieval", "--store", store_path, tmp_path=tmp_path)
    assert report.returncode == 0 and f"| sdh | {np.mean(sdh16):.4f} ± {np.std(sdh16):.4f} |" in report.stdout
    classification = _cli("report", "--store", store_path, tmp_path=tmp_path)
    assert classification.returncode == 0 and "no results" in classification.stdout  # tasks do not mix


def test_retrieval_cells_give_the_numbers_of_zsl_hashing(tmp_path):
    """The benchmark cell and `zsl hashing`'s table run the same library: equal metrics per run."""
    from zsl.bench.hashing import run_hashing_table

    grid_path = tmp_path / "r.toml"
    grid_path.write_text(RETRIEVAL_GRID.replace('["lsh", "sdh"]', '["sdh"]').replace("[16, 32]", "[16]"))
    store = ResultsStore(str(tmp_path / "r.db"))
    summary = run_benchmark(load_grid(grid_path, "retrieval"), store, data_root=tmp_path / "none",
                            log=lambda m: None)
    assert summary["ran"] == 2 and summary["errors"] == 0
    table = run_hashing_table("synthetic", splits=["default"], methods=["sdh.tiny"], bits=[16], seeds=[0, 1],
                              n_queries=100, data_root=tmp_path / "none", progress=False)
    by_seed = {r["seed"]: r["metrics"] for r in store.rows(task="retrieval")}
    for run in table["runs"]:
        for key in ("mAP", "mAP_authors", "mAP@1000", "P@r2"):
            assert by_seed[run["seed"]][key] == pytest.approx(run["metrics"][key], rel=1e-9, abs=1e-12)


def test_retrieval_grid_errors_are_one_line(tmp_path, capsys):
    bad_bits = tmp_path / "b.toml"
    bad_bits.write_text(RETRIEVAL_GRID.replace("[16, 32]", "[12]"))
    assert main(["benchmark", "--task", "retrieval", "--grid", str(bad_bits), "--store", str(tmp_path / "r.db")]) == 2
    assert "multiples of 8" in _err(capsys)
    classifier = tmp_path / "c.toml"
    classifier.write_text(RETRIEVAL_GRID.replace('["lsh", "sdh"]', '["eszsl"]'))
    assert main(["benchmark", "--task", "retrieval", "--grid", str(classifier), "--store", str(tmp_path / "r.db")]) == 2
    assert "not a hashing" in _err(capsys)
    # a retrieval grid run as the default (classification) task
    ok = tmp_path / "ok.toml"
    ok.write_text(RETRIEVAL_GRID)
    assert main(["benchmark", "--grid", str(ok), "--store", str(tmp_path / "r.db")]) == 2
    assert "is a retrieval grid" in _err(capsys)


def test_classification_cell_hashes_do_not_change_with_tasks():
    """Stores written before tasks existed keep their cells: a classification identity has no task key."""
    cell = expand_grid(load_grid("quick"), [("synthetic", "default", {})])[0]
    assert cell.task == "classification" and "task" not in cell.identity() and "params" not in cell.identity()
    r_cells = expand_grid(load_grid("quick", "retrieval"), [("synthetic", "default", {})])
    assert {c.task for c in r_cells} == {"retrieval"} and len({c.cell_hash for c in r_cells}) == len(r_cells)


def test_store_from_before_tasks_gains_the_column_and_reads_as_classification(tmp_path):
    db = tmp_path / "old.db"
    store = ResultsStore(str(db))
    store.insert({"cell_hash": "old", "method": "eszsl", "spec": "eszsl.default", "dataset": "synthetic",
                  "split": "default", "setting": "zsl", "seed": 0, "status": "ok", "config_json": {},
                  "metrics_json": {"acc": 0.5}})
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE runs DROP COLUMN task")  # what a store of the previous version looks like
    upgraded = ResultsStore(str(db))
    (row,) = upgraded.rows(task="classification")
    assert row["cell_hash"] == "old" and row["task"] is None
    assert upgraded.rows(task="retrieval") == []


# -- labelling ---------------------------------------------------------------------------------------
def test_labelling_cells_rank_test_images_against_class_names(tmp_path):
    """A labelling cell on an image folder: `zsl label`'s ranking of the split's test images, scored
    against the folder's class names; its hit@k agrees with the labeller run directly."""
    import zsl
    from zsl.features import logits_from_features
    from zsl.labelling import ZeroShotLabeller, names_hit_at_k

    folder = _images(tmp_path / "pets")
    grid = tmp_path / "l.toml"
    grid.write_text('task = "labelling"\nname = "lab"\nspaces = ["glove"]\nT = [10, 0]\n')
    store_path = tmp_path / "results.db"
    proc = _cli("benchmark", "--task", "labelling", "--grid", grid, "--store", store_path,
                "--datasets", f"image-folder:{folder}", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = ResultsStore(str(store_path)).rows(task="labelling")
    assert {r["setting"] for r in rows} == {"T10", "Tall"} and {r["status"] for r in rows} == {"ok"}
    name = f"image-folder:{folder.resolve()}"
    assert rows[0]["dataset"] == stored_dataset_name(name) and rows[0]["config"]["cell"]["dataset"] == name
    ds = zsl.load_dataset(f"image-folder:{folder}", cache_dir=tmp_path / "cache")
    test_rows = np.sort(np.concatenate([ds.splits["test_seen"], ds.splits["test_unseen"]]))
    row = next(r for r in rows if r["setting"] == "T10")
    assert row["config"]["n_images"] == len(test_rows) and row["config"]["n_names"] == 8
    labeller = ZeroShotLabeller(list(ds.class_names), space="glove", T=10, cache_dir=tmp_path / "cache")
    hits = names_hit_at_k(labeller.rank(logits_from_features(ds.X[test_rows]), 5), labeller.vocabulary,
                          list(ds.class_names), ds.y[test_rows], (1, 2, 5))
    assert row["metrics"]["hit@1"] == pytest.approx(hits[1]) and row["metrics"]["hit@5"] == pytest.approx(hits[5])
    assert row["metrics"]["hit@1"] <= row["metrics"]["hit@2"] <= row["metrics"]["hit@5"]
    assert "| glove | 10 | " in proc.stdout and "| glove | all | " in proc.stdout and "against 8 names" in proc.stdout


def test_labelling_refuses_features_the_classifier_cannot_read(tmp_path):
    grid = tmp_path / "l.toml"
    grid.write_text('task = "labelling"\nname = "lab"\nspaces = ["glove"]\n'
                    '[datasets.synthetic]\nsplits = ["default"]\n')
    store = ResultsStore(str(tmp_path / "r.db"))
    summary = run_benchmark(load_grid(grid, "labelling"), store, data_root=tmp_path, log=lambda m: None)
    (row,) = store.rows()
    assert summary["errors"] == 1 and "not EfficientNet-Lite0's" in row["error"]


def test_labelling_grid_with_an_unknown_space_is_one_line(tmp_path, capsys):
    grid = tmp_path / "l.toml"
    grid.write_text('task = "labelling"\nspaces = ["nosuch"]\n')
    assert main(["benchmark", "--task", "labelling", "--grid", str(grid), "--store", str(tmp_path / "r.db")]) == 2
    assert "unknown label space 'nosuch'" in _err(capsys)


def test_report_tables_of_the_other_tasks():
    rows = [{"status": "ok", "method": "itq", "spec": "itq", "dataset": "flo", "split": "ps", "setting": "32b",
             "seed": s, "metrics": {"mAP": v, "mAP_authors": v, "mAP@1000": v, "P@r2": v},
             "config": {"selected": {"overrides": {}}}} for s, v in ((0, 0.1), (1, 0.3))]
    rows.append({"status": "error", "method": "zsh", "spec": "zsh", "dataset": "flo", "split": "ps", "setting": "32b",
                 "seed": 0, "error": "ValueError: broken", "metrics": {}, "config": {}})
    md = retrieval_markdown(rows)
    assert "| itq | 0.2000 ± 0.1000 |" in md and "| zsh | error |" in md and "ValueError: broken" in md
    lab = [{"status": "ok", "method": "conse", "spec": "conse.glove", "dataset": "flo", "split": "ps", "setting": "T10",
            "seed": 0, "metrics": {"hit@1": 0.012, "hit@2": 0.03, "hit@5": 0.06, "far": 0.5},
            "config": {"n_images": 10, "images": "test", "n_names": 102}}]
    assert "| glove | 10 | 1.2 / 6.0 / 50.0 |" in labelling_markdown(lab)


# -- image folders and dataset names ---------------------------------------------------------------
def test_benchmark_runs_on_an_image_folder(tmp_path):
    folder = _images(tmp_path / "animals")
    store_path = tmp_path / "results.db"
    proc = _cli("benchmark", "--datasets", f"image-folder:{folder}", "--methods", "eszsl", "--store", store_path,
                tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = ResultsStore(str(store_path)).rows(task="classification")
    name = f"image-folder:{folder.resolve()}"
    assert {(r["dataset"], r["config"]["cell"]["dataset"], r["setting"], r["status"]) for r in rows} == {
        (stored_dataset_name(name), name, s, "ok") for s in ("zsl", "gzsl")}
    assert 0.0 <= rows[0]["metrics"]["acc"] <= 1.0
    assert f"{stored_dataset_name(name)}/default" in proc.stdout  # the table's column


def test_unknown_dataset_names_the_valid_ones(tmp_path, capsys):
    for task in ("classification", "retrieval"):
        assert main(["benchmark", "--task", task, "--datasets", "nosuch", "--data-root", str(tmp_path),
                     "--store", str(tmp_path / "r.db")]) == 2
        err = _err(capsys)
        assert "--datasets nosuch" in err and "synthetic" in err and "image-folder:PATH" in err
    absent = f"image-folder:{tmp_path / 'absent'}"
    assert main(["benchmark", "--datasets", absent, "--store", str(tmp_path / "r.db")]) == 2
    assert "no such folder" in _err(capsys)


def test_long_image_folder_names_fit_the_dataset_column():
    from zsl.bench.runner import stored_dataset_name

    name = "image-folder:/" + "x" * 100 + "/photos"
    short = stored_dataset_name(name)
    assert len(short) == 64 and short.startswith("image-folder:...") and short.endswith("/photos")
    assert stored_dataset_name("image-folder:/data/pets") == "image-folder:/data/pets"


def test_requested_datasets_are_exactly_the_ones_run(tmp_path):
    grid = load_grid("quick", "retrieval")
    sets, _ = grid_datasets(grid, tmp_path, ["synthetic"])
    assert sets == [("synthetic", "default", {})]
    folder = _images(tmp_path / "f", per_class=1)
    sets, _ = grid_datasets(grid, tmp_path, [f"image-folder:{folder}"])
    assert sets == [(f"image-folder:{folder.resolve()}", "default", {})]
