"""CLI smoke tests, run as subprocesses exactly as a user would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import zsl
from zsl.data.xlsa17 import write_xlsa17


def zsl_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "zsl.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("zsl: error:"), proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_methods_lists_the_registry():
    proc = zsl_cli("methods")
    assert proc.returncode == 0, proc.stderr
    for name in zsl.list_methods():
        assert name in proc.stdout


def test_datasets_lists_synthetic(tmp_path):
    proc = zsl_cli("datasets", "--data-root", tmp_path)
    assert proc.returncode == 0
    assert "synthetic" in proc.stdout


@pytest.mark.parametrize("setting,keys", [("zsl", {"acc"}), ("gzsl", {"U", "S", "H", "H_uncalibrated", "gamma"})])
def test_run_json_prints_exactly_one_object(setting, keys, tmp_path):
    proc = zsl_cli("run", "eszsl", "--dataset", "synthetic", "--setting", setting, "--json", "--seed", "1",
                   "--cache-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # the whole stdout is one JSON object
    assert {"method", "dataset", "split", "setting", "seed", "metrics", "fit_seconds", "predict_seconds",
            "peak_rss_mb", "config"} <= set(out)
    assert keys <= set(out["metrics"])
    assert out["seed"] == 1 and out["setting"] == setting and out["selection"] == "val"
    for k in keys - {"gamma"}:
        assert 0.0 <= out["metrics"][k] <= 1.0
    run_dir = Path(out["run_dir"])
    assert run_dir.is_relative_to(tmp_path)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved == out["config"]


def test_oracle_selection_is_labelled(tmp_path):
    proc = zsl_cli("run", "eszsl", "--dataset", "synthetic", "--selection", "oracle", "--cache-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ORACLE" in proc.stdout


def test_unknown_method_lists_valid_names():
    assert_clean_error(zsl_cli("run", "nope", "--dataset", "synthetic"), "unknown method 'nope'", "eszsl")


def test_unknown_dataset_lists_valid_names(tmp_path):
    assert_clean_error(
        zsl_cli("run", "eszsl", "--dataset", "nope", "--data-root", tmp_path), "unknown dataset 'nope'", "synthetic"
    )


def test_missing_data_root(tmp_path):
    assert_clean_error(
        zsl_cli("run", "eszsl", "--dataset", "awa1", "--data-root", tmp_path / "absent"), "does not exist"
    )


def test_corrupt_mat_file_names_the_file(tmp_path):
    folder = tmp_path / "xlsa17" / "BROKEN"
    write_xlsa17(zsl.make_synthetic(), folder)
    (folder / "res101.mat").write_bytes((folder / "res101.mat").read_bytes()[:200])
    assert_clean_error(zsl_cli("run", "eszsl", "--dataset", "broken", "--data-root", tmp_path), "res101.mat")


def test_bad_override_is_a_clear_error():
    assert_clean_error(
        zsl_cli("run", "eszsl", "--dataset", "synthetic", "--set", "no_such_param=1"), "unknown parameter"
    )


def test_set_reads_booleans_in_json_and_python_spelling():
    from zsl.cli import parse_overrides

    assert parse_overrides(["a=False", "b=true", "c=None", "d=0.5", "e=linear", "f=[1, 2]"]) == {
        "a": False, "b": True, "c": None, "d": 0.5, "e": "linear", "f": [1, 2]
    }
