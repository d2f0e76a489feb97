"""``zsl tune``: an Optuna study over a method's search space, on validation classes; several
workers share one study on SQLite and on a real PostgreSQL server started by the test."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

import zsl
from zsl.tune import study_best_params, study_name, suggest, validation_score

ZSL = [sys.executable, "-m", "zsl.cli"]
TRIALS = 6  # the study's total budget, shared by the two workers


def _two_workers(storage: str, tmp_path: Path) -> str:
    """Start two `zsl tune` workers at once on one storage; return the study name."""
    env = {**os.environ, "ZSL_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [
        *ZSL, "tune", "eszsl.linear", "--dataset", "synthetic", "--trials", str(TRIALS), "--storage", storage, "--json",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    return study_name("eszsl.linear", "synthetic", "default", "zsl")


def _check_shared_study(storage_url: str, name: str) -> None:
    study = optuna.load_study(study_name=name, storage=storage_url)
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(TRIALS))  # the budget exactly, every trial once
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert 1 <= len(workers) <= 2 and all(":" in w for w in workers)
    assert all(1e-3 <= t.params["gamma"] <= 1e2 and 1e-3 <= t.params["lambda_"] <= 1e2 for t in trials)
    assert all(0.0 <= t.value <= 1.0 for t in trials)


def test_validation_score_uses_validation_classes_only(synthetic):
    ds = synthetic
    # a copy whose *test* features are destroyed scores identically: test data is never read
    import numpy as np

    broken = zsl.make_synthetic()
    test_rows = np.concatenate([broken.splits["test_unseen"], broken.splits["test_seen"]])
    broken.X[test_rows] = 0.0
    a = validation_score("eszsl.linear", ds, {"gamma": 1.0, "lambda_": 1.0})["score"]
    b = validation_score("eszsl.linear", broken, {"gamma": 1.0, "lambda_": 1.0})["score"]
    assert a == b and 0.0 < a <= 1.0


def test_suggest_covers_every_kind():
    study = optuna.create_study()
    trial = study.ask()
    p = suggest(trial, {"a": ("float", 0.1, 1.0, True), "b": ("int", 1, 4), "c": ("categorical", ["x", "y"])})
    assert 0.1 <= p["a"] <= 1.0 and p["b"] in range(1, 5) and p["c"] in ("x", "y")


def test_two_workers_share_a_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    name = _two_workers(url, tmp_path)
    _check_shared_study(url, name)
    best = study_best_params(name, url)
    assert set(best) == {"gamma", "lambda_"}
    with pytest.raises(zsl.ZSLError, match="no study named"):
        study_best_params(study_name("eszsl.linear", "synthetic", "default", "gzsl"), url)


def test_tune_rejects_unknown_setting(tmp_path):
    out = subprocess.run([*ZSL, "tune", "eszsl", "--dataset", "synthetic", "--setting", "bogus"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "invalid choice" in out.stderr


# ------------------------------------------------------------------------------ PostgreSQL
def _pg_bin() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    for exe in ("initdb", "pg_ctl"):
        if shutil.which(exe) is None:
            return None
    return Path(shutil.which("initdb")).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_share_a_postgresql_study(tmp_path):
    pytest.importorskip("psycopg", reason="psycopg (zsl[bench]) is needed to talk to PostgreSQL")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install -y postgresql); "
                    "initdb/pg_ctl are looked up under /usr/lib/postgresql/*/bin and on PATH")
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run the server as the `postgres` account
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no `postgres` system user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    # a fresh world-traversable folder (pytest's tmp_path is private to root)
    base = Path(tempfile.mkdtemp(prefix="zsl-pg-"))
    os.chmod(base, 0o755)
    pgdata = base / "data"
    if as_user:
        shutil.chown(base, "postgres")
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, timeout=120)
    try:
        r = run(bindir / "initdb", "-D", pgdata, "-U", "zsl", "--auth=trust", "-E", "UTF8")
        assert r.returncode == 0, r.stderr
        r = run(bindir / "pg_ctl", "-D", pgdata, "-l", base / "server.log", "-w", "-t", "60", "start",
                "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1")
        assert r.returncode == 0, r.stderr + (base / "server.log").read_text()
        url = f"postgresql://zsl@127.0.0.1:{port}/postgres"
        name = _two_workers(url, tmp_path)
        _check_shared_study(f"postgresql+psycopg://zsl@127.0.0.1:{port}/postgres", name)
        assert set(study_best_params(name, url)) == {"gamma", "lambda_"}
    finally:
        if pgdata.exists():
            run(bindir / "pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop")
        time.sleep(0.5)
        shutil.rmtree(base, ignore_errors=True)
