"""CPU-time benchmark of CPL fits: one protocol run per setting, next to ESZSL in the same run.

    .venv/bin/python benchmarks/bench_cpl.py [--dataset awa1] [--split standard] [--settings zsl gzsl]
        [--seed 0] [--threads N] [--out benchmarks/results/cpl_bench.json]

For each setting the full protocol (``zsl.eval.protocol.run_method``, validation selection) runs
for ``cpl`` (its ``default`` preset, or the best trial of its class-wise CV study when one exists
in the cache) and for ``eszsl`` (the closed-form baseline) on the same loaded dataset. Reported:
CPU seconds of the process (``time.process_time``, all threads) and wall seconds of each run,
CPU time of CPL's stages in one trainval fit (PCA + generator, the CPL networks), the ratio
CPL / ESZSL, peak RSS, and the metric. The budget in the issue is < 10 CPU minutes per setting on
AwA1. ``--dataset synthetic`` runs without data (smoke test of the benchmark itself).
Prints a Markdown table and writes a JSON record.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import zsl
from zsl.eval.protocol import peak_rss_mb, run_method


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="awa1")
    ap.add_argument("--split", default="standard")
    ap.add_argument("--settings", nargs="+", default=["zsl", "gzsl"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cpl_bench.json"))
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ds, load_cpu, _ = timed(lambda: zsl.load_dataset(args.dataset, args.split if args.dataset != "synthetic" else None))
    cpl_spec = "cpl" if args.dataset != "synthetic" else "cpl.tiny"
    rows = []
    for setting in args.settings:
        res_b, cpu_b, wall_b = timed(lambda: run_method("eszsl", ds, setting=setting, seed=args.seed))
        res_c, cpu_c, wall_c = timed(lambda: run_method(cpl_spec, ds, setting=setting, seed=args.seed))
        key = "acc" if setting == "zsl" else "H"
        rows.append({"setting": setting, "cpl_cpu_s": cpu_c, "cpl_wall_s": wall_c, "eszsl_cpu_s": cpu_b,
                     "eszsl_wall_s": wall_b, "ratio_cpu": cpu_c / max(cpu_b, 1e-9), "cpl_metric": res_c.metrics[key],
                     "eszsl_metric": res_b.metrics[key], "metric": key, "cpl_params": res_c.config["selected"]})
    # stage breakdown of one trainval fit: the full model, and the same fit without the generator
    m = zsl.create_method(cpl_spec)
    X, y = ds.subset("trainval")
    S = ds.class_embeddings()
    _, cpu_full, _ = timed(lambda: m.fit(X, y, S, ds.seen_classes))
    _, cpu_cached, _ = timed(lambda: zsl.create_method(cpl_spec, use_generated=False).fit(X, y, S, ds.seen_classes))
    record = {"dataset": f"{ds.name}/{ds.split}", "rows": rows, "fit_cpu_s": cpu_full,
              "fit_cpu_s_networks_only": cpu_cached, "fit_cpu_s_pca_and_generator": cpu_full - cpu_cached,
              "load_cpu_s": load_cpu, "peak_rss_mb": peak_rss_mb(), "machine": platform.platform(),
              "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2, default=str))
    print(f"## CPL CPU time on {record['dataset']} ({os.cpu_count()} CPUs)\n")
    print("| setting | CPL CPU s | CPL wall s | ESZSL CPU s | ratio CPL/ESZSL | CPL metric | ESZSL metric |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['cpl_cpu_s']:.1f} | {r['cpl_wall_s']:.1f} | {r['eszsl_cpu_s']:.1f} | "
              f"{r['ratio_cpu']:.1f} | {r['metric']}={r['cpl_metric']:.4f} | {r['eszsl_metric']:.4f} |")
    print(f"\none trainval fit: {cpu_full:.1f} CPU s = PCA + generator {cpu_full - cpu_cached:.1f} s + "
          f"CPL networks {cpu_cached:.1f} s; peak RSS {record['peak_rss_mb']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
