"""The Ray paths against the local ones on one machine, same run: extraction and benchmark cells.

1. Extraction: ``zsl extract FOLDER --out F`` (local: DataLoader decoding worker + the network in
   the main process) against ``zsl extract FOLDER --out F --ray-address ADDR`` on a one-node Ray
   cluster started here (``ray start --head --num-cpus <cores>`` on loopback), on the same N FLO
   photos (``$ZSL_DATA/flo/jpg-s128.tar.gz``, the first N in name order, unpacked to a temp folder).
   Each run is a fresh command-line process with an empty cache (so it pays what a user pays:
   imports, model load, for Ray the actors' start), in the order local, ray, ray, local (ABBA, so a
   drift in the machine's load hits both alike). Reported: img/s of each run, the ratio
   Ray/local of the means, the Ray run's own split into start-up and steady state (from its log
   line), and the max |difference| between the two feature files. One more local run with
   ``OMP_NUM_THREADS=1`` (one torch thread, as each Ray worker has) helps read the ratio; it is
   not part of it.
2. Benchmark cells: ``zsl benchmark --grid quick`` run locally and with ``--ray-address`` into fresh
   stores, on the datasets given (default: the quick grid on its built-in synthetic fallback, every
   registered method with its ``tiny`` preset). Reported: wall time of each, ratio local/ray (time),
   whether the two stores hold the same cells with the same metrics and print the same tables, and
   one Ray run with a task per cell (``group_fits=False``) for the cost of not sharing fits.

    ZSL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_ray.py [--n 2000] [--reps 2] \\
        [--bench-data-root /nonexistent] [--skip-extract] [--skip-bench]

Prints a markdown fragment on stdout (progress on stderr); ``ZSL_BENCH_QUICK=1`` runs 200 photos,
one repetition. The machine's load average is printed with the numbers: on a shared machine wall
times move with other people's jobs, ratios of interleaved runs much less.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ZSL = [sys.executable, "-m", "zsl.cli"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def unpack_flo(n: int, dest: Path) -> Path:
    from zsl.io import data_root

    tar = data_root() / "flo" / "jpg-s128.tar.gz"
    if not tar.is_file():
        sys.exit(f"{tar} not found: set ZSL_DATA to the shared data folder")
    folder = dest / f"flo{n}"
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar) as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)[
            :n
        ]
        for m in members:
            with tf.extractfile(m) as src:
                (folder / Path(m.name).name).write_bytes(src.read())
    return folder


def timed(cmd: list[str], env: dict) -> tuple[float, str, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[2:6])} ... failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return wall, out.stdout, out.stderr


def bench_extract(args, cluster, work: Path) -> str:
    folder = unpack_flo(args.n, work)
    n = len(list(folder.glob("*.jpg")))
    order = ["local", "ray", "ray", "local"] if args.reps >= 2 else ["local", "ray"]
    rows, times, ray_split = [], {"local": [], "ray": []}, []
    outs = {}
    for i, kind in enumerate(order):
        out = work / f"extract-{kind}-{i}.npz"
        cmd = [*ZSL, "extract", str(folder), "--out", str(out), "--resolution", str(args.resolution),
               "--batch-size", str(args.batch_size)]
        if kind == "ray":
            cmd += ["--ray-address", cluster.address]
        env = {**os.environ, "ZSL_CACHE": str(work / f"cache-extract-{i}")}
        load = loadavg()
        log(f"[extract {i + 1}/{len(order)}] {kind} on {n} photos (load {load}) ...")
        wall, _, err = timed(cmd, env)
        times[kind].append(wall)
        outs.setdefault(kind, out)
        note = ""
        m = re.search(r"(\d+) images computed on the Ray cluster in ([\d.]+) s \(([\d.]+) s until the first", err)
        if m:
            total, first = float(m.group(2)), float(m.group(3))
            ray_split.append((total, first))
            note = f"cluster part {total:.1f} s, of which {first:.1f} s before the first results"
        rows.append(f"| {i + 1} | {kind} | {wall:.1f} | {n / wall:.1f} | {load} | {note} |")
        log(f"    {wall:.1f} s, {n / wall:.1f} img/s {note}")
    if args.diagnose_threads:
        # diagnosis, not part of the ratio: the local path with one torch thread (as each Ray worker has)
        out = work / "extract-local-1thread.npz"
        cmd = [*ZSL, "extract", str(folder), "--out", str(out), "--resolution", str(args.resolution),
               "--batch-size", str(args.batch_size)]
        env = {**os.environ, "ZSL_CACHE": str(work / "cache-extract-1thread"), "OMP_NUM_THREADS": "1"}
        load = loadavg()
        log(f"[extract diagnosis] local with OMP_NUM_THREADS=1 (load {load}) ...")
        wall, _, _ = timed(cmd, env)
        rows.append(f"| {len(order) + 1} | local, OMP_NUM_THREADS=1 (diagnosis, not in the ratio) | {wall:.1f} | "
                    f"{n / wall:.1f} | {load} | |")
    with np.load(outs["local"]) as a, np.load(outs["ray"]) as b:
        same_rows = list(a["paths"]) == list(b["paths"])
        diff = float(np.abs(a["features"] - b["features"]).max()) if same_rows else float("nan")
        scale = float(np.abs(a["features"]).max())
    local_rate = n / np.mean(times["local"])
    ray_rate = n / np.mean(times["ray"])
    steady = [f"{(n / (t - f)):.1f}" for t, f in ray_split if t > f]
    import torch

    lines = [
        "## Ray: feature extraction, one-node cluster vs local",
        "",
        f"{n} FLO photos (`flo/jpg-s128.tar.gz`, first {n} by name), resolution {args.resolution}, batch "
        f"{args.batch_size}; one-node cluster with {args.cpus} CPUs (one model worker per CPU, 1 torch thread "
        f"each); local = `zsl extract` defaults (torch {torch.get_num_threads()} threads in the main process, "
        "decoding worker processes). Every run is a fresh `zsl extract` process with an empty cache.",
        "",
        "| run | path | wall s | img/s | load avg (1/5/15 min) | Ray's own log |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Ray / local throughput: {ray_rate / local_rate:.2f}** (means of the runs above: local {local_rate:.1f} "
        f"img/s, Ray {ray_rate:.1f} img/s). Ray's steady state after its start-up: {', '.join(steady) or 'n/a'} img/s "
        "(images / time after the first results came back).",
        f"Features: same rows in both files: {same_rows}; max |local - Ray| = {diff:.2e} "
        f"(largest feature {scale:.2f}; the two paths use different "
        "torch thread counts, so they agree to float32 rounding).",
        "",
    ]
    return "\n".join(lines)


def bench_cells(args, cluster, work: Path) -> str:
    from zsl.bench.report import markdown
    from zsl.bench.store import ResultsStore

    base = [*ZSL, "benchmark", "--grid", args.grid, "--data-root", args.bench_data_root]
    if args.datasets:
        base += ["--datasets", *args.datasets]
    if args.methods:
        base += ["--methods", *args.methods]
    order = ["local", "ray", "ray", "local"] if args.reps >= 2 else ["local", "ray"]
    times = {"local": [], "ray": []}
    rows, stores = [], {}
    for i, kind in enumerate(order):
        url = f"sqlite:///{work / f'bench-{kind}-{i}.db'}"
        cmd = [*base, "--store", url] + (["--ray-address", cluster.address] if kind == "ray" else [])
        env = {**os.environ, "ZSL_CACHE": str(work / f"cache-bench-{i}")}
        load = loadavg()
        log(f"[bench {i + 1}/{len(order)}] {kind} (load {load}) ...")
        wall, out, _ = timed(cmd, env)
        times[kind].append(wall)
        stores.setdefault(kind, url)
        m = re.search(r"(\d+) cells run \((\d+) errors\)", out)
        rows.append(
            f"| {i + 1} | {kind} | {wall:.1f} | {m.group(1) if m else '?'} | {m.group(2) if m else '?'} | {load} |"
        )
        log(f"    {wall:.1f} s")
    # one Ray run with a task per cell: the cost of not sharing fits between a method's ZSL and GZSL cells
    url = f"sqlite:///{work / 'bench-ray-per-cell.db'}"
    code = (
        "import sys; from zsl.bench.runner import load_grid; from zsl.bench.store import ResultsStore; "
        "from zsl.bench.ray_runner import run_benchmark_ray; "
        f"s = run_benchmark_ray(load_grid({args.grid!r}), ResultsStore({url!r}), address={cluster.address!r}, "
        f"data_root={args.bench_data_root!r}, datasets={args.datasets or None!r}, methods={args.methods or None!r}, "
        "group_fits=False); print(s['ran'], s['errors'])"
    )
    load = loadavg()
    log(f"[bench] ray, a task per cell (load {load}) ...")
    per_cell, out, _ = timed([sys.executable, "-c", code], {**os.environ, "ZSL_CACHE": str(work / "cache-bench-pc")})
    ran, errors = out.split()[-2:]
    rows.append(f"| {len(order) + 1} | ray, task per cell | {per_cell:.1f} | {ran} | {errors} | {load} |")

    local_rows, ray_rows = ResultsStore(stores["local"]).rows(), ResultsStore(stores["ray"]).rows()
    a = {r["cell_hash"]: r["metrics"] for r in local_rows}
    b = {r["cell_hash"]: r["metrics"] for r in ray_rows}
    same_cells = set(a) == set(b)
    max_diff = max((abs(a[h][k] - b[h][k]) for h in a if h in b for k in a[h]
                    if isinstance(a[h][k], (int, float)) and isinstance(b[h].get(k), (int, float))), default=0.0)
    same_report = markdown(local_rows) == markdown(ray_rows)
    statuses = json.dumps(
        {k: sum(r["status"] == "ok" for r in v) for k, v in (("local", local_rows), ("ray", ray_rows))}
    )
    local_t, ray_t = np.mean(times["local"]), np.mean(times["ray"])
    where = (
        f"`--data-root {args.bench_data_root}`"
        + (f" `--datasets {' '.join(args.datasets)}`" if args.datasets else "")
        + (f" `--methods {' '.join(args.methods)}`" if args.methods else "")
    )
    lines = [
        "## Ray: benchmark cells, one-node cluster vs local",
        "",
        f"`zsl benchmark --grid {args.grid}` {where}, fresh store and cache per run; Ray: one task per fit group "
        f"(a method's ZSL and GZSL cells), one CPU and one thread per task, {args.cpus} CPUs.",
        "",
        "| run | path | wall s | cells run | errors | load avg (1/5/15 min) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Ray / local speed (local time / Ray time): {local_t / ray_t:.2f}** (means: local {local_t:.1f} s, Ray "
        f"{ray_t:.1f} s); a task per cell: {local_t / per_cell:.2f}.",
        f"Same cells in both stores: {same_cells}; ok rows {statuses}; max |metric difference| {max_diff:.2e}; "
        f"identical report tables: {same_report}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    quick = os.environ.get("ZSL_BENCH_QUICK") == "1"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200 if quick else 2000, help="FLO photos to extract")
    p.add_argument("--reps", type=int, default=1 if quick else 2, help="1: local, ray; 2: local, ray, ray, local")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the one-node cluster")
    p.add_argument("--grid", default="quick")
    p.add_argument("--bench-data-root", default="/nonexistent",
                   help="data root for the benchmark part (default: none, so the quick grid's synthetic fallback)")
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--no-diagnose-threads", dest="diagnose_threads", action="store_false",
                   help="skip the extra local extraction run with one torch thread")
    p.add_argument("--skip-extract", action="store_true")
    p.add_argument("--skip-bench", action="store_true")
    args = p.parse_args()

    from zsl.distributed import LOOPBACK_ENV, LocalCluster

    os.environ.setdefault(LOOPBACK_ENV, "0")  # the cluster and the drivers stay on 127.0.0.1
    parts = []
    with tempfile.TemporaryDirectory(prefix="zsl-bench-ray-") as tmp, LocalCluster(num_cpus=args.cpus) as cluster:
        work = Path(tmp)
        log(f"one-node Ray cluster at {cluster.address} ({args.cpus} CPUs); load {loadavg()}")
        if not args.skip_extract:
            parts.append(bench_extract(args, cluster, work))
        if not args.skip_bench:
            parts.append(bench_cells(args, cluster, work))
    print("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
