"""VGSE on FLO: validation ablations, the evaluation table against class-name vectors, and speed.

``ablate`` (validation only): the selection model (train classes' photos) with one setting changed at a
time from the base config (D_v, lambda_sem, lambda_bal, projection head width, class-name vectors);
for each, every alpha candidate of the QP relation and the least-squares / cosine relations; scored
by the validation score of ``zsl vgse fit`` (linear ESZSL, best over its grid, ZSL per-class top-1 on
the 20 validation classes) plus the calibrated validation H of the same fits. Rows go to a JSONL file
as they finish (resumable); ``table`` prints the markdown.

    ZSL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_vgse.py ablate --jsonl /tmp/vgse-ablate.jsonl \\
        --grid-name dv --values 16 32 64 128 256

``compare`` (the evaluation table): for each seed, VGSE is fitted with that seed (selection model +
alpha on validation + final model, nothing stored), then every method x source x setting runs the
protocol (validation-selected hyperparameters; the VGSE sources tune with their validation-stage
matrix) with that seed; ZSL and GZSL share fits through one FitCache per (method, source, seed).

    ZSL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_vgse.py compare --jsonl /tmp/vgse-compare.jsonl \\
        --methods eszsl sae --seeds 0 1 2

``speed``: patch-feature throughput (patches/s) against whole-image throughput at 128 px in the same
process, and the clustering fit time, with the load average (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

SOURCES = ("attributes", "glove", "minilm", "vgse", "vgse-lstsq", "vgse-cosine")
ABLATIONS = {  # name -> VGSEConfig field
    "dv": "n_clusters", "lambda_sem": "lambda_sem", "lambda_bal": "lambda_bal", "hidden": "hidden",
    "word_vectors": "word_vectors", "epochs": "epochs",
}


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _base_config(args):
    from zsl.semantics.vgse import VGSEConfig

    base = json.loads(args.base) if args.base else {}
    return VGSEConfig(**base)


def _done(jsonl: Path, key_fields) -> set:
    done = set()
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done.add(tuple(json.dumps(r.get(k)) for k in key_fields))
    return done


def ablate(args) -> int:
    import zsl
    from zsl.commands.vgse import validation_scores
    from zsl.semantics.relation import RELATIONS
    from zsl.semantics.vgse import embedding_matrix, fit_stage, load_patch_bank, word_vectors

    ds = zsl.load_dataset(args.dataset)
    base = _base_config(args)
    jsonl = Path(args.jsonl)
    keys = ("ablation", "value", "seed")
    done = _done(jsonl, keys)
    bank = load_patch_bank(ds, ds.seen_classes, base, progress=not args.quiet)
    field = ABLATIONS[args.grid_name]
    for raw in args.values:
        value = raw if field == "word_vectors" else (float(raw) if "lambda" in field else int(raw))
        for seed in args.seeds:
            if tuple(json.dumps(v) for v in (args.grid_name, value, seed)) in done:
                continue
            cfg = replace(base, **{field: value}, seed=seed)
            c0, t0 = time.process_time(), time.perf_counter()
            model = fit_stage(ds, bank, ds.train_classes, cfg, progress=False)
            fit_cpu, fit_wall = time.process_time() - c0, time.perf_counter() - t0
            W = word_vectors(ds, cfg.word_vectors)
            scores = {}
            for rel in RELATIONS:
                alphas = cfg.alphas if rel == "qp" else (None,)
                for a in alphas:
                    S_val, _ = embedding_matrix(
                        ds.n_classes, ds.train_classes, model.class_embeddings_, W, rel, a or 0.0
                    )
                    name = f"qp{a:g}" if rel == "qp" else rel
                    scores[name] = {spec: validation_scores(ds, S_val, spec) for spec in args.scorers}
            row = {"ablation": args.grid_name, "value": value, "seed": seed, "config": cfg.__dict__,
                   "scores": scores, "final_epoch": model.history_[-1], "clusters_used": model.clusters_used_,
                   "fit_cpu_seconds": fit_cpu, "fit_wall_seconds": fit_wall, "load": _loadavg()}
            with open(jsonl, "a") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
            main_scorer = args.scorers[0]
            best = max(scores.items(), key=lambda kv: kv[1][main_scorer]["zsl"])
            print(
                f"{args.grid_name}={value} seed={seed}: best {best[0]} {main_scorer} ZSL "
                f"{best[1][main_scorer]['zsl']:.3f} "
                f"H {best[1][main_scorer]['H']:.3f}; all {json.dumps(scores)}; fit {fit_cpu:.0f} CPU s",
                flush=True,
            )
    print(ablation_table(jsonl))
    return 0


def ablation_table(jsonl: Path) -> str:
    """Per ablation value (mean over seeds): validation ZSL T1 of every relation for each scorer; the
    QP alpha ``zsl vgse fit`` would take (best ESZSL selection score) with its ZSL T1 and calibrated H
    for each scorer; and the selection score (mean over scorers of (ZSL T1 + H) / 2 at that alpha),
    by which D_v and the loss weights are chosen."""
    from zsl.commands.vgse import selection_score

    rows = [json.loads(line) for line in Path(jsonl).read_text().splitlines() if line.strip()]
    groups: dict = defaultdict(list)
    for r in rows:
        groups[(r["ablation"], json.dumps(r["value"]))].append(r)
    rels = list(rows[0]["scores"])
    scorers = list(rows[0]["scores"][rels[0]])
    head = "| ablation | value | D_v | seeds | " + " | ".join(f"{sc} ZSL {rel}" for sc in scorers for rel in rels)
    head += (
        " | chosen alpha | "
        + " | ".join(f"{sc} ZSL / H at it" for sc in scorers)
        + " | **selection score** | clusters used | fit CPU s |"
    )
    lines = [head, "|" + "---|" * (4 + len(scorers) * (len(rels) + 1) + 4)]
    mean = lambda v: f"{np.mean(v):.1f}" + (f" ± {np.std(v):.1f}" if len(v) > 1 else "")
    for (abl, val), rs in groups.items():
        cells = [mean([100 * r["scores"][rel][sc]["zsl"] for r in rs]) for sc in scorers for rel in rels]
        qp = [rel for rel in rels if rel.startswith("qp")]
        chosen = max(qp, key=lambda rel: np.mean([selection_score(r["scores"][rel][scorers[0]]) for r in rs]))
        cells.append(chosen)
        for sc in scorers:
            cells.append(mean([100 * r["scores"][chosen][sc]["zsl"] for r in rs]) + " / "
                         + mean([100 * r["scores"][chosen][sc]["H"] for r in rs]))
        sel = np.mean([selection_score(r["scores"][chosen][sc]) for r in rs for sc in scorers])
        lines.append(
            f"| {abl} | {json.loads(val)} | {rs[0]['config']['n_clusters']} | {len(rs)} | "
            + " | ".join(cells)
            + f" | **{100 * sel:.1f}**"
            + f" | {np.mean([r['clusters_used'] for r in rs]):.0f} | {np.mean([r['fit_cpu_seconds'] for r in rs]):.0f} "
            + "|"
        )
    return "\n".join(lines)


def references(args) -> int:
    """The same validation scores for the fixed sources (class-name vectors, FLO's att)."""
    import zsl
    from zsl.commands.vgse import validation_scores

    ds = zsl.load_dataset(args.dataset)
    print("| source | " + " | ".join(f"{sc} val ZSL T1 | {sc} val H | {sc} val H uncal." for sc in args.scorers) + " |")
    print("|" + "---|" * (1 + 3 * len(args.scorers)))
    for src in args.semantics:
        cells = []
        for sc in args.scorers:
            v = validation_scores(ds, ds.class_embeddings(src), sc)
            cells += [f"{100 * v['zsl']:.1f}", f"{100 * v['H']:.1f}", f"{100 * v['H_uncalibrated']:.1f}"]
        print(f"| {src} | " + " | ".join(cells) + " |", flush=True)
    return 0


def compare(args) -> int:
    import zsl
    from zsl.commands.vgse import validation_scorer
    from zsl.eval.protocol import FitCache
    from zsl.semantics.vgse import fit_vgse

    ds = zsl.load_dataset(args.dataset)
    base = _base_config(args)
    jsonl = Path(args.jsonl)
    keys = ("method", "seed", "semantics", "setting")
    done = _done(jsonl, keys)
    for seed in args.seeds:
        todo = [(m, s, st) for m in args.methods for s in args.semantics for st in args.settings
                if tuple(json.dumps(v) for v in (m, seed, s, st)) not in done]
        if not todo:
            continue
        vg = {}
        if any(s.startswith("vgse") for _, s, _ in todo):
            t0 = time.perf_counter()
            summary = fit_vgse(
                ds, replace(base, seed=seed), scorer=validation_scorer(ds), progress=not args.quiet, store=False
            )
            for src in summary["test_matrices"]:
                ds.embeddings[src] = summary["test_matrices"][src]
                ds.validation_embeddings[src] = summary["val_matrices"][src]
            vg = {"vgse_alpha": summary["alpha"], "vgse_alpha_trials": summary["alpha_trials"],
                  "vgse_fit_seconds": time.perf_counter() - t0, "vgse_config": summary["config"]}
            print(f"seed {seed}: VGSE alpha {summary['alpha']} ({summary['alpha_trials']})", flush=True)
        for method in args.methods:
            for sem in args.semantics:
                cache = FitCache()
                for setting in args.settings:
                    if (method, sem, setting) not in todo:
                        continue
                    t0 = time.perf_counter()
                    res = zsl.run_method(method, ds, setting=setting, semantics=sem, seed=seed, fit_cache=cache)
                    row = {"method": method, "seed": seed, "semantics": sem, "setting": setting,
                           **{k: res.metrics.get(k) for k in ("acc", "H", "U", "S", "H_uncalibrated", "U_uncalibrated",
                                                              "S_uncalibrated", "AUSUC")},
                           "selected": res.config["selected"], "seconds": time.perf_counter() - t0,
                           "load": _loadavg(), **(vg if sem.startswith("vgse") else {})}
                    with open(jsonl, "a") as fh:
                        fh.write(json.dumps(row, default=str) + "\n")
                    print(
                        json.dumps(
                            {
                                k: row[k]
                                for k in ("method", "seed", "semantics", "setting", "acc", "H", "H_uncalibrated")
                            }
                        ),
                        flush=True,
                    )
    print(compare_table([jsonl]))
    return 0


def _compare_values(jsonls) -> tuple[dict, list]:
    """{(method, source, "T1" | "H" | "Hu"): [percent per seed]} and the methods in file order."""
    rows = [json.loads(line) for f in jsonls for line in Path(f).read_text().splitlines() if line.strip()]
    vals: dict = defaultdict(list)
    for r in rows:
        if r["setting"] == "zsl":
            vals[(r["method"], r["semantics"], "T1")].append(100 * r["acc"])
        else:
            vals[(r["method"], r["semantics"], "H")].append(100 * r["H"])
            vals[(r["method"], r["semantics"], "Hu")].append(100 * r["H_uncalibrated"])
    return vals, list(dict.fromkeys(r["method"] for r in rows))


def compare_table(jsonls: list, sources=SOURCES) -> str:
    """Mean +- std over seeds of every (method, source): ZSL T1, GZSL H uncalibrated and calibrated."""
    vals, methods = _compare_values(jsonls)
    present = [s for s in sources if any(k[1] == s for k in vals)]
    lines = [
        "| method | source | seeds | ZSL T1 | GZSL H (uncalibrated) | GZSL H (calibrated) |",
        "|---|---|---|---|---|---|",
    ]

    def cell(v):
        return f"{np.mean(v):.1f} ± {np.std(v):.1f}" if v else "–"

    for m in methods:
        for s in present:
            t1, hu, h = vals.get((m, s, "T1"), []), vals.get((m, s, "Hu"), []), vals.get((m, s, "H"), [])
            if t1 or h:
                lines.append(f"| {m} | {s} | {max(len(t1), len(h))} | {cell(t1)} | {cell(hu)} | {cell(h)} |")
    return "\n".join(lines)


def goal_table(jsonls, names=("glove", "minilm"), learnt="vgse", margin=5.0) -> str:
    """The issue's test: VGSE minus the better class-name vector (by the same column's mean), per method."""
    vals, methods = _compare_values(jsonls)
    lines = [
        f"| method | ZSL T1: {learnt} - best name | H uncal.: {learnt} - best name | H cal.: {learnt} - best name "
        f"| H >= best name + {margin:g}? (uncal. / cal.) |",
        "|---|---|---|---|---|",
    ]
    for m in methods:
        cells, ok = [], {}
        for col in ("T1", "Hu", "H"):
            named = {n: np.mean(vals[(m, n, col)]) for n in names if vals.get((m, n, col))}
            mine = vals.get((m, learnt, col))
            if not named or not mine:
                cells.append("–")
                continue
            best = max(named, key=named.get)
            diff = np.mean(mine) - named[best]
            cells.append(f"{diff:+.1f} (vs {best})")
            if col in ("Hu", "H"):
                ok[col] = "yes" if diff >= margin else "no"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {ok.get('Hu', '–')} / {ok.get('H', '–')} |")
    return "\n".join(lines)


def speed(args) -> int:
    import torch

    import zsl
    from zsl.features.efficientnet import load_efficientnet_lite0, normalise_batch, penultimate, preprocess_pil
    from zsl.semantics.vgse import VGSEConfig, fit_stage, load_patch_bank
    from zsl.semantics.vgse_patches import dataset_image_paths, image_patches

    torch.set_num_threads(args.threads)
    ds = zsl.load_dataset(args.dataset)
    paths = dataset_image_paths(ds)
    tv = ds.splits["trainval"]
    sample = [paths[i] for i in tv[:: max(1, len(tv) // args.n)][: args.n]]
    model = load_efficientnet_lite0()
    from PIL import Image

    def run(arrs):
        with torch.inference_mode():
            for s in range(0, len(arrs), 192):
                penultimate(model, normalise_batch(torch.from_numpy(np.stack(arrs[s:s + 192]))))

    run([preprocess_pil(Image.open(sample[0]), 128)] * 8)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    whole = []
    for p in sample:
        with Image.open(p) as im:
            whole.append(preprocess_pil(im, 128))
    run(whole)
    w_wall, w_cpu = time.perf_counter() - t0, time.process_time() - c0
    cfg = VGSEConfig()
    t0, c0 = time.perf_counter(), time.process_time()
    patches = [
        preprocess_pil(Image.fromarray(a), cfg.resolution)
        for p in sample
        for a in image_patches(p, cfg.grid, cfg.patch_fraction)
    ]
    run(patches)
    p_wall, p_cpu = time.perf_counter() - t0, time.process_time() - c0
    n_img = len(tv)
    nt = cfg.grid ** 2
    lines = [
        f"load average {_loadavg()}; torch threads {args.threads}; {len(sample)} FLO trainval photos",
        f"whole photos at 128 px: {len(sample) / w_wall:.1f} img/s wall, {1000 * w_cpu / len(sample):.1f} CPU ms/img",
        f"patches ({nt}/photo) at {cfg.resolution} px: {len(patches) / p_wall:.1f} patch/s wall, "
        f"{1000 * p_cpu / len(patches):.2f} CPU ms/patch",
        f"ratio (patches of one photo) / (one whole photo), wall: {p_wall / w_wall:.2f}",
        f"projected for FLO's {n_img} seen trainval photos at this load: {n_img / len(sample) * p_wall / 60:.1f} min; "
        f"on a free machine (whole photos 90 img/s at 128 px, data/README.md): "
        f"{n_img * (p_wall / w_wall) / 90 / 60:.1f} min",
    ]
    if args.fit:
        bank = load_patch_bank(ds, ds.seen_classes, cfg, progress=False)
        c0, t0 = time.process_time(), time.perf_counter()
        m = fit_stage(ds, bank, ds.seen_classes, cfg)
        lines.append(
            f"clustering fit on the {len(ds.seen_classes)} seen classes "
            f"({sum(len(v) for v in bank.features.values()) * nt} "
            f"patches, {cfg.epochs} epochs, 1 thread): {time.perf_counter() - t0:.0f} s wall, "
            f"{time.process_time() - c0:.0f} CPU s (final patch acc {m.history_[-1]['acc']:.3f})"
        )
    print("\n".join(lines))
    return 0


def _print_table(args) -> int:
    if args.kind == "ablate":
        print(ablation_table(Path(args.jsonl[0])))
    elif args.kind == "goal":
        print(goal_table(args.jsonl))
    else:
        print(compare_table(args.jsonl))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ablate")
    a.add_argument("--dataset", default="flo")
    a.add_argument("--grid-name", choices=sorted(ABLATIONS), required=True)
    a.add_argument("--values", nargs="+", required=True)
    a.add_argument("--seeds", nargs="+", type=int, default=[0])
    a.add_argument(
        "--scorers", nargs="+", default=["eszsl", "sae"], help="methods (default presets) scoring each matrix"
    )
    a.add_argument("--base", default=None, help="JSON of VGSEConfig fields the ablation starts from")
    a.add_argument("--jsonl", required=True)
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=ablate)
    c = sub.add_parser("compare")
    c.add_argument("--dataset", default="flo")
    c.add_argument("--methods", nargs="+", default=["eszsl", "sae"])
    c.add_argument("--semantics", nargs="+", default=list(SOURCES))
    c.add_argument("--settings", nargs="+", default=["zsl", "gzsl"])
    c.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    c.add_argument("--base", default=None, help="JSON of VGSEConfig fields (default: the command's defaults)")
    c.add_argument("--jsonl", required=True)
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=compare)
    t = sub.add_parser("table")
    t.add_argument("--jsonl", nargs="+", required=True, help="one or more JSONL files (compare: merged)")
    t.add_argument("--kind", choices=("ablate", "compare", "goal"), default="compare")
    t.set_defaults(func=_print_table)
    r = sub.add_parser("references", help="validation scores of the fixed sources, as the ablation scores VGSE")
    r.add_argument("--dataset", default="flo")
    r.add_argument("--semantics", nargs="+", default=["glove", "minilm", "attributes"])
    r.add_argument("--scorers", nargs="+", default=["eszsl", "sae"])
    r.set_defaults(func=references)
    s = sub.add_parser("speed")
    s.add_argument("--dataset", default="flo")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument(
        "--fit", action="store_true", help="also time one clustering fit on the seen classes (needs the patch cache)"
    )
    s.set_defaults(func=speed)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
