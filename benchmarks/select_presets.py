"""Choose a method's dataset preset on validation classes: score candidate settings, print the table.

Every candidate is a set of parameter values; each is run through the evaluation protocol's own
selection step (``zsl.eval.protocol.select_on_validation``, the method's validation grid) -- fit on
the train classes, ZSL per-class top-1 (or the method's GZSL objective) over the validation
classes. Test data is never touched here. The winning
candidate becomes the method's preset named after the dataset (``eszsl.flo``), and this script's
output goes to ``benchmarks/results/`` as the record of why.

    python benchmarks/select_presets.py --dataset flo --method eszsl \\
        --candidate kernel=linear --candidate kernel=rbf
    python benchmarks/select_presets.py --dataset flo --method sae --setting zsl \\
        --candidate kernel=linear,space=visual --candidate kernel=rbf,space=visual
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def parse_candidate(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv=None) -> int:
    import zsl
    from zsl.eval.protocol import select_on_validation

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default=None)
    ap.add_argument("--method", required=True, help="method name (its default preset is the base)")
    ap.add_argument(
        "--candidate", action="append", required=True, metavar="K=V[,K=V]", help="a candidate setting (repeat)"
    )
    ap.add_argument("--setting", choices=("zsl", "gzsl"), default="zsl")
    ap.add_argument("--semantics", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--jsonl", default=None, help="append one JSON line per candidate and seed")
    args = ap.parse_args(argv)

    ds = zsl.load_dataset(args.dataset, args.split)
    rows = []
    for cand in map(parse_candidate, args.candidate):
        for seed in args.seeds:
            t0 = time.perf_counter()
            v = select_on_validation(
                f"{args.method}.default", ds, setting=args.setting, semantics=args.semantics, seed=seed, overrides=cand
            )
            row = {"dataset": ds.name, "split": ds.split, "method": args.method, "candidate": cand, "seed": seed,
                   "setting": args.setting, "objective": v.get("objective", "acc"), "validation": v.get("best_score"),
                   "grid_choice": v.get("best_params"), "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print(f"| {args.method} candidate on {ds.name}/{ds.split} ({args.setting}) | seeds | validation | grid choice |")
    print("|---|---|---|---|")
    for cand in map(parse_candidate, args.candidate):
        mine = [r for r in rows if r["candidate"] == cand]
        mean = sum(r["validation"] for r in mine) / len(mine)
        print(f"| {cand} | {len(mine)} | {mean:.4f} | {mine[0]['grid_choice']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
