"""Ray paths on a real one-node cluster on loopback: extraction and benchmark cells.

The cluster is started with ``ray start --head --num-cpus 2`` on free loopback ports and its own
temp folder (:class:`zsl.distributed.LocalCluster`) and ended by its process group, never with
``ray stop`` (which would end every Ray process on the machine). Images are tiny generated JPEGs
at 32 px, grids use the synthetic dataset, so the default tests stay within a minute; the kill
tests are marked slow.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# before ray is first imported: the cluster and this driver stay on 127.0.0.1 (see zsl.distributed.require_ray)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'zsl[ray]'; make test installs it)")

from zsl import features as F
from zsl.bench.report import markdown
from zsl.bench.runner import expand_grid, load_grid, run_benchmark
from zsl.bench.store import ResultsStore
from zsl.distributed import LocalCluster
from zsl.features.cache import entry_dir

RES = 32  # the smallest resolution extract accepts: the network costs least
ZSL = [sys.executable, "-m", "zsl.cli"]
# float32 features through ~20 conv layers: rounding differences from another torch thread count are
# ~1e-6 of the largest value per layer; 1e-5 relative to the largest feature bounds them with margin
FEATURE_RTOL = 1e-5

GRID = """
name = "ray-test"
methods = ["eszsl.linear", "sae.linear"]
settings = ["zsl", "gzsl"]
seeds = [{seeds}]
selection = "val"
cell_timeout_seconds = 300

[datasets.synthetic]
splits = ["default"]
"""


def make_images(root: Path, n: int, *, corrupt: bool = True) -> list[str]:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = root / f"{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 255, size=(28 + i % 9, 36, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(str(p))
    if corrupt:
        bad = root / "0005-corrupt.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        paths.insert(5, str(bad))
    return paths


def local_reference(paths: list[str]) -> F.Extraction:
    """The local path with one torch thread (what each Ray worker uses), without touching any cache."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.warns(UserWarning, match="could not be decoded"):
            return F.extract(paths, resolution=RES, cache=False, progress=False, num_workers=0)
    finally:
        torch.set_num_threads(threads)


def assert_same_extraction(got: F.Extraction, ref: F.Extraction) -> None:
    assert np.array_equal(got.valid, ref.valid)
    assert got.skipped == ref.skipped and got.skip_reasons == ref.skip_reasons
    assert got.features.shape == ref.features.shape and got.features.dtype == np.float32
    scale = float(np.abs(ref.features).max())
    np.testing.assert_allclose(got.features, ref.features, rtol=0, atol=FEATURE_RTOL * scale)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(num_cpus=2) as c:
        yield c


def _env(cache: Path) -> dict:
    return {**os.environ, "ZSL_CACHE": str(cache)}


# ------------------------------------------------------------------------------------------ no extra
@pytest.mark.parametrize("command", [["extract", "IMAGES", "--out", "OUT"], ["benchmark", "--grid", "GRID"]])
def test_without_the_extra_the_flag_is_a_one_line_error(tmp_path, command):
    images = make_images(tmp_path / "img", 2, corrupt=False)
    (tmp_path / "g.toml").write_text(GRID.format(seeds="0"))
    argv = [
        {"IMAGES": str(Path(images[0]).parent), "OUT": str(tmp_path / "o.npz"), "GRID": str(tmp_path / "g.toml")}.get(
            a, a
        )
        for a in command
    ] + ["--ray-address", "127.0.0.1:1"]
    # ray made unimportable, as on an install without the extra
    code = f"import sys; sys.modules['ray'] = None; from zsl.cli import main; sys.exit(main({argv!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env(tmp_path / "c")
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'zsl[ray]'" in lines[0], out.stderr
    assert not (tmp_path / "o.npz").exists()


def test_unreachable_cluster_is_a_one_line_error(tmp_path):
    import socket

    images = make_images(tmp_path / "img", 2, corrupt=False)
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    out = subprocess.run(
        [*ZSL, "extract", str(Path(images[0]).parent), "--out", str(tmp_path / "o.npz"), "--ray-address", address],
        capture_output=True, text=True, timeout=180, env=_env(tmp_path / "c"),
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"zsl: error: --ray-address {address}: cannot connect to a Ray cluster" in out.stderr
    assert "ray start --head" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o.npz").exists()


# ------------------------------------------------------------------------------------------ extraction
def test_extract_on_ray_equals_local_and_fills_the_same_cache(cluster, tmp_path, monkeypatch):
    paths = make_images(tmp_path / "img", 40)
    ref = local_reference(paths)
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match="0005-corrupt.jpg"):
        got = F.extract(paths, resolution=RES, cache_dir=cache, ray_address=cluster.address, progress=False,
                        batch_size=16)
    assert_same_extraction(got, ref)
    assert F.cached_extraction_exists(paths, resolution=RES, cache_dir=cache)

    # the local path now reads the entry the Ray path wrote: nothing is computed again
    def no_compute(*a, **k):
        raise AssertionError("the local path recomputed features the Ray path had cached")

    monkeypatch.setattr(F, "local_batches", no_compute)
    with pytest.warns(UserWarning, match="could not be decoded"):
        again = F.extract(paths, resolution=RES, cache_dir=cache, progress=False)
    assert np.array_equal(again.features, got.features) and again.skipped == got.skipped


def test_extract_cli_on_ray_writes_the_local_commands_file(cluster, tmp_path):
    root = tmp_path / "img"
    paths = [p for c in ("cat", "dog") for p in make_images(root / c, 6, corrupt=c == "dog")]
    ref = local_reference(paths)
    out = tmp_path / "ray.npz"
    b = subprocess.run([*ZSL, "extract", str(root), "--resolution", str(RES), "--out", str(out), "--ray-address",
                        cluster.address, "--ray-workers", "2"], capture_output=True, text=True, timeout=300,
                       env=_env(tmp_path / "cache"))
    assert b.returncode == 0, b.stderr
    assert "0 of 13 images already in the feature cache; computing 13 on the Ray cluster with 2 workers" in b.stderr
    assert "zsl: warning: skipped 1 of 13 images that could not be decoded" in b.stderr
    with np.load(out) as z:
        kept = [p for p, v in zip(paths, ref.valid) if v]
        assert list(z["paths"]) == kept and list(z["labels"]) == [0] * 6 + [1] * 6
        assert list(z["skipped"]) == ref.skipped and list(z["skip_reasons"]) == ref.skip_reasons
        np.testing.assert_allclose(
            z["features"], ref.features, rtol=0, atol=FEATURE_RTOL * float(np.abs(ref.features).max())
        )


def test_bad_ray_arguments_are_one_line_errors(tmp_path):
    paths = make_images(tmp_path / "img", 2, corrupt=False)
    from zsl.errors import DataError

    with pytest.raises(DataError, match="ray_workers must be an integer >= 1"):
        F.extract(paths, ray_address="127.0.0.1:1", ray_workers=0)
    with pytest.raises(DataError, match="pass file paths"):
        F.extract([np.zeros((8, 8, 3), np.uint8)], ray_address="127.0.0.1:1")
    out = subprocess.run(
        [*ZSL, "extract", str(tmp_path / "img"), "--out", str(tmp_path / "o.npz"), "--ray-workers", "2"],
        capture_output=True, text=True, timeout=120, env=_env(tmp_path / "c"),
    )
    assert out.returncode == 2 and "--ray-workers needs --ray-address" in out.stderr


# ------------------------------------------------------------------------------------------ benchmark
def test_benchmark_on_ray_stores_the_local_rows_and_report(cluster, tmp_path):
    gpath = tmp_path / "grid.toml"
    gpath.write_text(GRID.format(seeds="0, 1"))
    grid = load_grid(gpath)
    local = ResultsStore(f"sqlite:///{tmp_path / 'local.db'}")
    run_benchmark(grid, local, data_root=tmp_path / "none", log=lambda m: None)

    url = f"sqlite:///{tmp_path / 'ray.db'}"
    cmd = [*ZSL, "benchmark", "--grid", str(gpath), "--store", url, "--data-root", str(tmp_path / "none"),
           "--ray-address", cluster.address]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr[-3000:]
    n = len(expand_grid(grid, [("synthetic", "default", {})]))
    assert f"{n} cells run (0 errors), 0 already in the store" in out.stdout
    ray_rows, local_rows = ResultsStore(url).rows(), local.rows()
    assert len(ray_rows) == n and len({r["cell_hash"] for r in ray_rows}) == n
    by_hash = {r["cell_hash"]: r for r in local_rows}
    assert set(by_hash) == {r["cell_hash"] for r in ray_rows}
    for r in ray_rows:
        ref = by_hash[r["cell_hash"]]
        assert r["status"] == ref["status"] == "ok"
        assert r["config"]["cell"] == ref["config"]["cell"]
        assert r["metrics"].keys() == ref["metrics"].keys()
        for k, v in ref["metrics"].items():  # float64 metrics over a few hundred test images
            assert r["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert markdown(ray_rows) == markdown(local_rows)
    assert (
        markdown(local_rows, title_suffix=" — grid `ray-test`") in out.stdout
    )  # the printed tables are the local run's

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env(tmp_path / "cache"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"0 cells run (0 errors), {n} already in the store" in again.stdout
    assert ResultsStore(url).count() == n


# ------------------------------------------------------------------------------------------ failures
def _wait_for(predicate, proc, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_extract_survives_a_killed_worker_and_resumes_after_a_killed_driver(cluster, tmp_path):
    res, chunk = 128, 32  # 128 px so the run lasts long enough to be killed halfway
    paths = make_images(tmp_path / "img", 300)
    assert paths == sorted(paths)  # the order in which the command lists the folder
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.warns(UserWarning, match="could not be decoded"):
            ref = F.extract(paths, resolution=res, cache=False, progress=False, num_workers=0)
    finally:
        torch.set_num_threads(threads)
    out, cache = tmp_path / "feats.npz", tmp_path / "cache"
    # small cache chunks, so a run has many shards to resume from (the default is 1024 images)
    code = (f"import sys, zsl.features as F; F.CHUNK_SIZE = {chunk}; from zsl.cli import main; "
            f"sys.exit(main(['extract', {str(tmp_path / 'img')!r}, '--out', {str(out)!r}, '--resolution', '{res}', "
            f"'--batch-size', '8', '--ray-address', {cluster.address!r}]))")
    entry = entry_dir(paths, F.BACKBONE, res, cache)

    def shards() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in entry.glob("shard-*.npz")} if entry.is_dir() else {}

    # 1. a model worker is killed mid-run: Ray restarts the actor and retries its batches
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", code], env=_env(cache), stdout=subprocess.DEVNULL, stderr=fh)
    _wait_for(lambda: len(shards()) >= 1 and cluster.worker_pids("LiteFeatures"), proc, 300, "the first shard")
    os.kill(cluster.worker_pids("LiteFeatures")[0], signal.SIGKILL)
    # 2. the run goes on past the kill; then the driver is killed while shards are still missing
    _wait_for(lambda: len(shards()) >= 4, proc, 300, "four shards")
    proc.kill()
    proc.wait()
    kept = shards()
    n_chunks = -(-len(paths) // chunk)
    assert 4 <= len(kept) < n_chunks, "the driver must die with part of the list done"
    assert not out.exists()

    # 3. a restart computes only the missing chunks: the kept shards are not rewritten
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", code], env=_env(cache), stdout=subprocess.DEVNULL, stderr=fh)
    rewritten = set()
    while proc.poll() is None:
        rewritten |= {name for name, stamp in shards().items() if name in kept and stamp != kept[name]}
        time.sleep(0.05)
    err = log.read_text()
    assert proc.returncode == 0, err[-3000:]
    assert not rewritten
    n_cached = sum(min(chunk, len(paths) - chunk * int(name[6:11])) for name in kept)
    assert f"{n_cached} of {len(paths)} images already in the feature cache; computing {len(paths) - n_cached}" in err
    with np.load(out) as z:
        np.testing.assert_allclose(
            z["features"], ref.features, rtol=0, atol=FEATURE_RTOL * float(np.abs(ref.features).max())
        )
        assert list(z["skipped"]) == ref.skipped and list(z["paths"]) == [p for p, v in zip(paths, ref.valid) if v]


@pytest.mark.slow
def test_benchmark_killed_worker_and_driver_resume_without_duplicate_or_missing_rows(cluster, tmp_path):
    gpath = tmp_path / "grid.toml"
    gpath.write_text(GRID.format(seeds="0, 1, 2, 3"))
    grid = load_grid(gpath)
    n = len(expand_grid(grid, [("synthetic", "default", {})]))
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    cmd = [*ZSL, "benchmark", "--grid", str(gpath), "--store", url, "--data-root", str(tmp_path / "none"),
           "--ray-address", cluster.address]
    store = ResultsStore(url)
    proc = subprocess.Popen(cmd, env=_env(tmp_path / "cache"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # a task's worker process is killed mid-run (Ray reruns the task), then the driver itself
    _wait_for(lambda: store.count() >= 1 and cluster.worker_pids("run_fit_group"), proc, 300, "the first row")
    os.kill(cluster.worker_pids("run_fit_group")[0], signal.SIGKILL)
    _wait_for(lambda: store.count() >= n // 2, proc, 300, "half of the rows")
    proc.kill()
    proc.wait()
    killed_at = store.count()
    assert killed_at < n, "the driver must die with part of the grid done"
    rows = store.rows()
    assert len({r["cell_hash"] for r in rows}) == len(rows) and all(r["status"] == "ok" for r in rows)

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{n - killed_at} cells run (0 errors), {killed_at} already in the store" in out.stdout
    rows = store.rows()
    assert len(rows) == n and len({r["cell_hash"] for r in rows}) == n
    local = ResultsStore(f"sqlite:///{tmp_path / 'local.db'}")
    run_benchmark(grid, local, data_root=tmp_path / "none", log=lambda m: None)
    ref = {r["cell_hash"]: r["metrics"] for r in local.rows()}
    assert set(ref) == {r["cell_hash"] for r in rows}
    for r in rows:
        assert r["metrics"] == pytest.approx(ref[r["cell_hash"]], rel=1e-9, abs=1e-12)
    assert markdown(rows) == markdown(local.rows())
