"""ZSH training time against SDH, measured in the same process (ratio), on one dataset's seen classes.

    ZSL_DATA=... .venv/bin/python benchmarks/bench_hashing_fit.py --dataset flo --bits 16 32 64 128 --repeats 3

Both fit the test protocol's training set (``retrieval_data(role="test")``: FLO = the 5,631
trainval images of the 82 seen classes). SDH and ZSH runs are interleaved (SDH, ZSH, SDH, ...)
so that load changes on a shared machine hit both alike; the median of ``--repeats`` fits is
reported, with the ratio ZSH / SDH per code length. ZSH runs with its default preset (published
orthogonal rotation, code-side graph term on, beta = 0.03, attributes) at SDH's nu, so the ratio
is the price of ZSH's terms (k-NN graph, colouring, graph-aware B-step, R-step), not of a different nu.
One BLAS thread (the alternation pins itself to one; the kernel map follows OMP_NUM_THREADS).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import zsl
from zsl.eval.retrieval import retrieval_data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="flo")
    p.add_argument("--split", default=None)
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64, 128])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--nu", type=float, default=1e-3, help="nu of both methods")
    args = p.parse_args(argv)

    ds = zsl.load_dataset(args.dataset, args.split)
    data = retrieval_data(ds, role="test")
    S = ds.class_embeddings()
    rows = []
    for n_bits in args.bits:
        times: dict[str, list[float]] = {"sdh": [], "zsh": []}
        for rep in range(args.repeats):
            for spec in ("sdh", "zsh"):
                m = zsl.create_method(spec, n_bits=n_bits, nu=args.nu, random_state=rep)
                t = time.perf_counter()
                m.fit(data.X_train, data.y_train, S, data.train_classes)
                times[spec].append(time.perf_counter() - t)
        med = {k: float(np.median(v)) for k, v in times.items()}
        rows.append({"n_bits": n_bits, "sdh_s": med["sdh"], "zsh_s": med["zsh"], "ratio": med["zsh"] / med["sdh"],
                     "all": times})
        print(f"{n_bits}b: sdh {med['sdh']:.2f}s zsh {med['zsh']:.2f}s ratio {med['zsh'] / med['sdh']:.2f}",
              file=sys.stderr, flush=True)
    print(f"{ds.name}: {len(data.y_train)} training images x {data.X_train.shape[1]} features; "
          f"load average {os.getloadavg()[0]:.1f}; median of {args.repeats}")
    print("| bits | SDH fit s | ZSH fit s | ZSH / SDH |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_bits']} | {r['sdh_s']:.2f} | {r['zsh_s']:.2f} | {r['ratio']:.2f} |")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
