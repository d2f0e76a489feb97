"""The benchmark: grids, the results store (unique, atomic rows), resume after SIGKILL, report."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import zsl
from zsl.bench.report import README_END, README_START, aggregate, markdown, plot_bars, to_csv, update_readme
from zsl.bench.runner import expand_grid, grid_datasets, grid_methods, load_grid, run_benchmark
from zsl.bench.store import ResultsStore, normalise_url

ZSL = [sys.executable, "-m", "zsl.cli"]

SMALL_GRID = """
name = "resume-test"
methods = ["eszsl.linear", "sae.linear"]
settings = ["zsl", "gzsl"]
seeds = [0, 1, 2]
selection = "val"

[datasets.synthetic]
splits = ["default"]
"""


def _row(**kw):
    base = {"cell_hash": "h1", "grid": "g", "method": "eszsl", "spec": "eszsl.default", "dataset": "synthetic",
            "split": "default", "setting": "zsl", "seed": 0, "status": "ok", "config_json": {"a": 1},
            "metrics_json": {"acc": 0.5}, "acc": 0.5}
    return {**base, **kw}


def test_store_rows_are_unique_per_cell(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.db'}")
    assert store.insert(_row())
    assert not store.insert(_row(acc=0.9))  # same cell: refused, the first row stays
    assert store.count() == 1 and store.rows()[0]["acc"] == 0.5
    assert store.insert(_row(acc=0.7, status="error", error="boom"), replace=True)
    assert store.count() == 1 and store.rows()[0]["status"] == "error"
    assert store.done_hashes(include_errors=False) == set()


def test_store_url_forms(tmp_path):
    assert normalise_url(str(tmp_path / "x.db")).startswith("sqlite:///")
    assert normalise_url("postgresql://u@127.0.0.1:5/db").startswith("postgresql+psycopg://")
    assert normalise_url(None, tmp_path).endswith("results.db")


def test_quick_grid_every_nonretrieval_method_and_synthetic_fallback(tmp_path):
    grid = load_grid("quick")
    sets, notes = grid_datasets(grid, tmp_path / "no-data")
    assert [s[0] for s in sets] == ["synthetic"]
    assert any("ZSL_DATA" in n for n in notes)  # says how to point at real data
    specs = grid_methods(grid, "synthetic")
    assert sorted(s.split(".")[0] for s in specs) == zsl.list_methods(retrieval=False)
    cells = expand_grid(grid, sets)
    assert {c.setting for c in cells} == {"zsl", "gzsl"}
    assert load_grid("full")["seeds"] == [0, 1, 2]


def test_cell_identity_changes_with_config():
    grid = load_grid("quick")
    a, b = expand_grid(grid, [("synthetic", "default", {})])[:2]
    assert a.cell_hash != b.cell_hash
    a2 = expand_grid(grid, [("synthetic", "default", {})])[0]
    assert a.cell_hash == a2.cell_hash
    a2.fingerprint = "other-data"
    assert a.cell_hash != a2.cell_hash


def test_failing_cell_is_stored_as_error_and_benchmark_continues(tmp_path):
    gpath = tmp_path / "g.toml"
    gpath.write_text('name = "err"\nmethods = ["eszsl.linear"]\nsettings = ["zsl"]\n'
                     '[datasets.synthetic]\nsplits = ["default"]\n'
                     '[method_options.eszsl]\noverrides = { kernel = "no-such-kernel" }\n')
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.db'}")
    summary = run_benchmark(load_grid(gpath), store, data_root=tmp_path, log=lambda m: None)
    assert summary["errors"] == 1
    (row,) = store.rows()
    assert row["status"] == "error" and "no-such-kernel" in row["error"]
    assert "| eszsl | error |" in markdown(store.rows())


def test_benchmark_resumes_after_sigkill_without_duplicate_or_partial_rows(tmp_path):
    gpath = tmp_path / "grid.toml"
    gpath.write_text(SMALL_GRID)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    n_cells = len(expand_grid(load_grid(gpath), [("synthetic", "default", {})]))
    assert n_cells == 2 * 2 * 3
    cmd = [*ZSL, "benchmark", "--grid", str(gpath), "--store", url, "--data-root", str(tmp_path / "none")]
    env = {**os.environ, "ZSL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = ResultsStore(url)
    deadline = time.time() + 300
    while store.count() < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = store.count()
    assert 0 < killed_at < n_cells, "the kill must land halfway through the grid"
    for r in store.rows():  # whatever is stored is whole
        assert r["status"] == "ok" and r["metrics"] and r["config"]["cell"]["seed"] == r["seed"]

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert f"{killed_at} already in the store" in out.stdout or f"{killed_at + 1} already in the store" in out.stdout
    rows = store.rows()
    hashes = [r["cell_hash"] for r in rows]
    assert len(rows) == n_cells and len(set(hashes)) == n_cells
    assert all(r["status"] == "ok" for r in rows)
    assert {(r["method"], r["setting"], r["seed"]) for r in rows} == {
        (m, s, seed) for m in ("eszsl", "sae") for s in ("zsl", "gzsl") for seed in (0, 1, 2)}
    # a third start has nothing left to do
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert f"0 cells run (0 errors), {n_cells} already in the store" in again.stdout
    assert "| eszsl |" in again.stdout and "±" in again.stdout  # the table, mean ± std over 3 seeds
    assert store.count() == n_cells


def _fake_rows():
    rows = []
    for seed, acc in enumerate((0.40, 0.50, 0.60)):
        rows.append({"method": "eszsl", "dataset": "awa1", "split": "ps", "setting": "zsl", "seed": seed,
                     "status": "ok", "metrics": {"acc": acc}})
    rows.append({"method": "eszsl", "dataset": "awa1", "split": "ps", "setting": "gzsl", "seed": 0, "status": "ok",
                 "metrics": {"U_uncalibrated": 0.1, "S_uncalibrated": 0.8, "H_uncalibrated": 2 * 0.1 * 0.8 / 0.9,
                             "U": 0.3, "S": 0.5, "H": 0.375}})
    rows.append({"method": "dap", "dataset": "awa1", "split": "ps", "setting": "zsl", "seed": 0, "status": "error",
                 "error": "ValueError: broken", "metrics": {}})
    return rows


def test_report_tables_mean_std_and_published_anchor(tmp_path):
    rows = _fake_rows()
    agg = aggregate(rows)
    mean, std, n = agg[("eszsl", "awa1", "ps", "zsl")]["stats"]["acc"]
    assert (round(mean, 6), round(std, 6), n) == (50.0, round(100 * 0.0816496580927726, 6), 3)
    md = markdown(rows)
    assert "| eszsl | 50.0 ± 8.2 [pub 58.2" in md  # the published anchor, marked
    assert "Xian et al., TPAMI 2018" in md and "ResNet-101" in md
    assert "| dap | error" in md and "ValueError: broken" in md
    # published GZSL numbers are uncalibrated: they sit beside the raw U / S / H, and the calibrated
    # H has its own column with no anchor
    assert "| eszsl | 10.0 [pub 6.6" in md and "17.8 [pub 12.1" in md and "| 37.5 |" in md
    assert "H cal." in md
    csv_text = to_csv(rows)
    assert "eszsl,awa1,ps,zsl,acc,50.0000,8.1650,3,58.2" in csv_text
    pngs = plot_bars(rows, tmp_path / "plots")
    assert [p.name for p in pngs] == ["awa1-ps.png"] and pngs[0].read_bytes()[:4] == b"\x89PNG"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Results\n{README_START}\nold\n{README_END}\n\nmore\n")
    assert update_readme(readme, md, "zsl report")
    text = readme.read_text()
    assert "old" not in text and "50.0 ± 8.2" in text and "`zsl report`" in text and text.endswith("more\n")


def test_report_cli_on_empty_store(tmp_path):
    out = subprocess.run(
        [*ZSL, "report", "--store", f"sqlite:///{tmp_path / 'e.db'}", "--csv", str(tmp_path / "t.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0 and "no results" in out.stdout
    assert (tmp_path / "t.csv").read_text().startswith("method,dataset")


def test_bad_store_url_is_one_line_error(tmp_path):
    out = subprocess.run([*ZSL, "report", "--store", "nosuchdb://x"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("zsl: error:") and "Traceback" not in out.stderr


def test_quick_grid_runs_each_datasets_validated_preset_before_the_budget_preset():
    grid = load_grid("quick")
    assert list(grid["datasets"])[0] == "flo"  # the CNN-feature benchmark first, before the budget runs out
    for dataset in ("flo", "awa1"):
        specs = dict(s.split(".") for s in grid_methods(grid, dataset))
        methods = zsl.list_methods(retrieval=False)
        with_preset = [n for n in methods if dataset in zsl.get_method_class(n).dataset_presets]
        assert {"cpl", "fclswgan", "cvae_clusterable"} <= set(with_preset)
        assert all(specs[n] == dataset for n in with_preset), specs
