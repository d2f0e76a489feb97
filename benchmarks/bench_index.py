"""Scale benchmark of the binary-code index (``zsl.index``): faiss vs NumPy in the same run.

    .venv/bin/python benchmarks/bench_index.py [--sizes 1000000 10000000] [--queries 1000] [--k 10]
        [--numpy-queries 100] [--approx hnsw ivf] [--threads 2] [--out benchmarks/results/index.json]

For every database size N (random uniform 64-bit codes, seeded), with ``--queries`` random query
codes and top-k:
* exact search: faiss ``IndexBinaryFlat`` (all queries) and a NumPy brute force (XOR of uint64
  words + ``np.bitwise_count`` + ``argpartition``) over ``--numpy-queries`` of the same queries
  (its cost per query does not depend on how many are run, so the ratio is of queries/s); the two
  must return the same top-k distances (checked);
* approximate search: ``IndexBinaryHNSW`` and/or ``IndexBinaryIVF`` queries/s and recall@k against
  the exact result. Random codes have many Hamming ties, so recall is tie-aware: a returned item
  counts when its distance is <= the exact k-th distance (``recall_ids`` is the strict id overlap);
  random codes are also the worst case for approximate indexes (no cluster structure);
* peak RSS of the process after each phase, and the machine's bound: streaming read bandwidth
  measured with a NumPy reduction over a 512 MiB array, next to the bytes of codes the exact
  search scans per second (N * 8 bytes * queries / time; above the bound means the query batch
  reuses database blocks from cache).
Writes a JSON record (``--out``) and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zsl.codes import as_words
from zsl.index import make_binary_index


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_bandwidth(n_bytes: int = 512 << 20, repeats: int = 3) -> float:
    """Bytes per second of a streaming NumPy reduction (the machine's scan bound, one thread)."""
    a = np.ones(n_bytes // 8, np.uint64)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t)
    del a
    return n_bytes / best


def numpy_topk(queries: np.ndarray, database: np.ndarray, k: int, block: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Exact Hamming top-k by NumPy popcount, one query at a time (the baseline)."""
    dw = as_words(database)
    qw = as_words(queries)
    D = np.empty((len(qw), k), np.int32)
    I = np.empty((len(qw), k), np.int64)
    for i in range(len(qw)):
        d = np.bitwise_count(np.bitwise_xor(dw, qw[i])).sum(axis=1, dtype=np.int32) if dw.shape[1] > 1 else \
            np.bitwise_count(np.bitwise_xor(dw[:, 0], qw[i, 0])).astype(np.int32)
        part = np.argpartition(d, k)[:k]
        order = np.lexsort((part, d[part]))
        I[i], D[i] = part[order], d[part[order]]
    return D, I


def tie_aware_recall(D_approx, D_exact) -> float:
    kth = D_exact[:, -1:]
    ok = (D_approx <= kth) & (D_approx >= 0)
    return float(ok.sum() / D_exact.size)


def id_recall(I_approx, I_exact) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(I_approx, I_exact)]))


def bench_size(n: int, args, rng) -> dict:
    n_bytes = args.bits // 8
    db = rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    q = rng.integers(0, 256, (args.queries, n_bytes), dtype=np.uint8)
    rec: dict = {"n_database": n, "n_queries": args.queries, "k": args.k, "bits": args.bits}

    t = time.perf_counter()
    flat = make_binary_index(db, args.bits, "flat")
    rec["flat_build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    D_exact, I_exact = flat.search(q, args.k)
    dt = time.perf_counter() - t
    rec["flat_qps"] = args.queries / dt
    rec["flat_scan_bytes_per_s"] = n * n_bytes * args.queries / dt
    rec["peak_rss_mb_after_flat"] = peak_rss_mb()
    print(f"[{n:,}] faiss flat: {rec['flat_qps']:.1f} q/s", file=sys.stderr, flush=True)

    nq_np = min(args.numpy_queries, args.queries)
    t = time.perf_counter()
    D_np, _ = numpy_topk(q[:nq_np], db, args.k)
    dt = time.perf_counter() - t
    rec["numpy_queries"] = nq_np
    rec["numpy_qps"] = nq_np / dt
    rec["numpy_scan_bytes_per_s"] = n * n_bytes * nq_np / dt
    rec["numpy_matches_faiss"] = bool(np.array_equal(D_np, D_exact[:nq_np]))
    rec["faiss_over_numpy"] = rec["flat_qps"] / rec["numpy_qps"]
    rec["peak_rss_mb_after_numpy"] = peak_rss_mb()
    print(
        f"[{n:,}] numpy: {rec['numpy_qps']:.2f} q/s (faiss x{rec['faiss_over_numpy']:.0f})", file=sys.stderr, flush=True
    )
    del flat

    for kind in args.approx:
        if kind == "hnsw" and n > args.hnsw_max:
            rec["hnsw_skipped"] = f"build of {n:,} codes exceeds --hnsw-max {args.hnsw_max:,} (time budget)"
            continue
        params = (
            {"hnsw_m": args.hnsw_m, "ef_search": args.ef_search}
            if kind == "hnsw"
            else {"nprobe": args.nprobe, "nlist": args.nlist}
        )
        t = time.perf_counter()
        index = make_binary_index(db, args.bits, kind, **params)
        rec[f"{kind}_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        D_a, I_a = index.search(q, args.k)
        dt = time.perf_counter() - t
        rec[f"{kind}_params"] = params
        rec[f"{kind}_qps"] = args.queries / dt
        rec[f"{kind}_speedup_vs_flat"] = rec[f"{kind}_qps"] / rec["flat_qps"]
        rec[f"{kind}_recall"] = tie_aware_recall(D_a, D_exact)
        rec[f"{kind}_recall_ids"] = id_recall(I_a, I_exact)
        rec[f"peak_rss_mb_after_{kind}"] = peak_rss_mb()
        print(f"[{n:,}] {kind}: {rec[f'{kind}_qps']:.1f} q/s recall {rec[f'{kind}_recall']:.3f} "
              f"(build {rec[f'{kind}_build_s']:.0f}s)", file=sys.stderr, flush=True)
        del index
    return rec


def main(argv=None) -> int:
    import faiss

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--numpy-queries", type=int, default=100)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--approx", nargs="*", default=["ivf"], choices=["hnsw", "ivf"])
    p.add_argument("--hnsw-m", type=int, default=16)
    p.add_argument("--ef-search", type=int, default=128)
    p.add_argument("--hnsw-max", type=int, default=2_000_000, help="skip HNSW above this many codes (build time)")
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--nlist", type=int, default=1024, help="IVF lists")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "index.json"))
    args = p.parse_args(argv)

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    bound = read_bandwidth()
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "faiss": faiss.__version__, "numpy": np.__version__,
           "faiss_threads": args.threads, "read_bandwidth_bytes_per_s": bound,
           "loadavg_at_start": os.getloadavg()}
    records = [bench_size(n, args, rng) for n in args.sizes]
    out = {"env": env, "results": records, "command": " ".join(["benchmarks/bench_index.py"] + (argv or sys.argv[1:]))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))

    print(f"machine read bound (NumPy sum, 1 thread): {bound / 1e9:.2f} GB/s; faiss threads {args.threads}; "
          f"load average at start {env['loadavg_at_start'][0]:.1f}")
    print(
        "| N | faiss flat q/s | NumPy q/s | ratio | flat scan GB/s | approx | approx q/s | x flat | recall@10 (ties / "
        "ids) | build s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        base = (f"| {r['n_database']:,} | {r['flat_qps']:.0f} | {r['numpy_qps']:.2f} | {r['faiss_over_numpy']:.0f}x | "
                f"{r['flat_scan_bytes_per_s'] / 1e9:.1f} |")
        kinds = [k for k in args.approx if f"{k}_qps" in r] or ["-"]
        for kind in kinds:
            if kind == "-":
                print(base + " - | - | - | - | - | " + f"{r['peak_rss_mb_after_numpy']:.0f} |")
                continue
            print(base + f" {kind} | {r[f'{kind}_qps']:.0f} | {r[f'{kind}_speedup_vs_flat']:.1f}x | "
                  f"{r[f'{kind}_recall']:.3f} / {r[f'{kind}_recall_ids']:.3f} | {r[f'{kind}_build_s']:.0f} | "
                  f"{r[f'peak_rss_mb_after_{kind}']:.0f} |")
        if not r["numpy_matches_faiss"]:
            print(f"WARNING: NumPy and faiss top-{r['k']} distances differ at N={r['n_database']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
