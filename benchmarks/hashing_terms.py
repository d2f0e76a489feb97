"""Per-term analysis of ZSH against SDH on the *validation* classes (never the unseen ones).

    ZSL_DATA=... .venv/bin/python benchmarks/hashing_terms.py --dataset flo --bits 16 32 64 128 \
        --seeds 0 1 2 [--out benchmarks/results/hashing_terms.json]

Starting from SDH (one-hot labels, no rotation, no graph term), the terms of ZSH are added one at
a time; every row is fitted on the train classes and scored by tie-exact mAP with half of each
validation class's images as queries (``retrieval_data(role="validation")``), for each seed (the
seed draws the validation queries and seeds the method). Each row is reported at its best nu of
``--nu`` (mean over seeds), so no term is judged at a setting that suits another one:

    sdh                 one-hot labels                                 (the baseline)
    +embed:<source>     labels embedded in the class-embedding space   (rotation none, beta 0)
    +rotation:<source>  + the published orthogonal R (Procrustes)      (beta 0; provably = +embed)
    +graph:<source>     + the code-side graph term beta tr(B^T L B)    (best beta of --beta)
    identity_pull       the non-paper R pulled toward I (delta, gamma defaults), no graph term
    itq, lsh            unsupervised references

Prints a Markdown table and writes every fit's figures to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import zsl
from zsl.eval.retrieval import evaluate_hashing, retrieval_data


def rows_for(sources: list[str], betas: list[float]) -> list[tuple[str, str, dict, str | None]]:
    """(row name, spec, fixed overrides, semantics) of every configuration; nu is added per run."""
    rows = [("sdh", "sdh", {}, None)]
    for s in sources:
        rows.append((f"+embed:{s}", "zsh", {"rotation": "none", "beta": 0.0}, s))
        rows.append((f"+rotation:{s}", "zsh", {"rotation": "orthogonal", "beta": 0.0}, s))
        for b in betas:
            rows.append((f"+graph:{s}@beta={b:g}", "zsh", {"rotation": "orthogonal", "beta": b}, s))
        rows.append((f"identity_pull:{s}", "zsh", {"rotation": "identity_pull", "beta": 0.0}, s))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="flo")
    p.add_argument("--split", default=None)
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64, 128])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--nu", nargs="+", type=float, default=[1e-4, 1e-3, 1e-2, 1e-1])
    p.add_argument("--beta", nargs="+", type=float, default=[0.03, 0.3])
    p.add_argument("--sources", nargs="+", default=None, help="class-embedding sources (default: all of the dataset)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "hashing_terms.json"))
    args = p.parse_args(argv)

    ds = zsl.load_dataset(args.dataset, args.split)
    sources = args.sources or sorted(ds.embeddings)
    vals = {s: retrieval_data(ds, role="validation", seed=s) for s in args.seeds}
    records = []
    t_start = time.perf_counter()

    def run(name, spec, overrides, semantics, n_bits):
        for seed in args.seeds:
            r = evaluate_hashing(spec, ds, n_bits=n_bits, seed=seed, semantics=semantics, role="validation",
                                 overrides=overrides, data=vals[seed])
            records.append({"row": name, "spec": spec, "overrides": overrides, "semantics": semantics, "n_bits": n_bits,
                            "seed": seed, "mAP": r.metrics["mAP"], "mAP_authors": r.metrics["mAP_authors"],
                            "P@r2": r.metrics["P@r2"], "fit_seconds": r.fit_seconds})
        print(f"{n_bits}b {name} {overrides}: {np.mean([x['mAP'] for x in records[-len(args.seeds):]]):.4f}",
              file=sys.stderr, flush=True)

    for n_bits in args.bits:
        for name in ("lsh", "itq"):
            run(name, name, {}, None, n_bits)
        for name, spec, fixed, sem in rows_for(sources, args.beta):
            for nu in args.nu:
                run(name, spec, {**fixed, "nu": nu}, sem, n_bits)

    out = {
        "dataset": ds.name, "split": ds.split, "bits": args.bits, "seeds": args.seeds, "nu": args.nu, "beta": args.beta,
        "records": records, "wall_seconds": time.perf_counter() - t_start,
        "command": " ".join(["benchmarks/hashing_terms.py"] + (argv if argv is not None else sys.argv[1:])),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(format_terms(out))
    return 0


def format_terms(out: dict) -> str:
    """Markdown: per row and code length, validation mAP (mean ± std over seeds) at the row's best nu."""
    recs = out["records"]
    names = list(dict.fromkeys(r["row"] for r in recs))
    # merge the beta variants of one source into one "+graph" row at the best beta
    lines = ["| row (validation classes) | " + " | ".join(f"{b} bits" for b in out["bits"]) + " |",
             "|---|" + "---|" * len(out["bits"])]
    collapsed: dict[str, list[str]] = {}
    for n in names:
        collapsed.setdefault(n.split("@")[0], []).append(n)
    for label, members in collapsed.items():
        cells = []
        for b in out["bits"]:
            best = None
            for n in members:
                for key in {
                    json.dumps(r["overrides"], sort_keys=True) for r in recs if r["row"] == n and r["n_bits"] == b
                }:
                    vals = [r["mAP"] for r in recs if r["row"] == n and r["n_bits"] == b
                            and json.dumps(r["overrides"], sort_keys=True) == key]
                    if best is None or np.mean(vals) > best[0]:
                        best = (float(np.mean(vals)), float(np.std(vals)), json.loads(key))
            setting = ", ".join(f"{k}={v:g}" for k, v in best[2].items() if k in ("nu", "beta")) if best[2] else ""
            cells.append(f"{best[0]:.4f} ±{best[1]:.3f}" + (f" ({setting})" if setting else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
