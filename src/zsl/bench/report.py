"""Tables and charts from the results store: the papers' tables, mean +- std over seeds.

One report for the three tasks of the store (``task_markdown``): classification (below),
retrieval (``retrieval_markdown``: per dataset/split and metric, methods x code lengths) and
labelling (``labelling_markdown``: label spaces x datasets, hit@1 / hit@5 / flagged far).

Classification:

* ZSL table: one row per method, one column per dataset/split, per-class top-1 (%).
* GZSL table: per dataset/split, U / S / H (%) of the raw scores -- the number the papers report,
  H = 2US/(U+S) -- and H with calibrated stacking (gamma chosen on validation classes), side by side.
* Each cell is ``mean +- std (n seeds)``; a published number (``anchors.toml``) is shown beside it
  as ``[pub 58.2^r]`` with a footnote giving the source and the features the paper used; published
  GZSL numbers are uncalibrated, so they sit beside the uncalibrated columns (like with like).
* Errored cells show ``error`` (the message is in the store); cells not run show ``-``.
Outputs: markdown (printed / README), CSV (long format, one line per method x dataset x metric),
PNG bar charts (one per dataset/split, error bars = std over seeds).
"""
from __future__ import annotations

import csv
import io
import math
import tomllib
from collections import defaultdict
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

METRICS = {"zsl": ("acc",), "gzsl": ("U_uncalibrated", "S_uncalibrated", "H_uncalibrated", "U", "S", "H")}
# GZSL columns of the table: (metric in the store, header, the anchor's key or None)
GZSL_COLUMNS = (("U_uncalibrated", "U", "U"), ("S_uncalibrated", "S", "S"), ("H_uncalibrated", "H", "H"),
                ("H", "H cal.", None))
README_START = "<!-- zsl-report:start -->"
README_END = "<!-- zsl-report:end -->"


def load_anchors() -> list[dict[str, Any]]:
    text = resources.files("zsl.bench").joinpath("anchors.toml").read_text()
    return tomllib.loads(text).get("anchor", [])


def aggregate(rows: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """(method, dataset, split, setting) -> {metric: (mean, std, n)}, ``errors``: [messages], ``seeds``."""
    groups: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: {"values": defaultdict(list), "errors": [], "seeds": set()}
    )
    for r in rows:
        key = (r["method"], r["dataset"], r["split"], r["setting"])
        g = groups[key]
        if r["status"] != "ok":
            g["errors"].append(r.get("error") or "error")
            continue
        g["seeds"].add(r["seed"])
        for m in METRICS[r["setting"]]:
            v = (r.get("metrics") or {}).get(m, r.get(m))
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                g["values"][m].append(100.0 * float(v))
    out = {}
    for key, g in groups.items():
        stats = {m: (float(np.mean(v)), float(np.std(v)), len(v)) for m, v in g["values"].items()}
        out[key] = {"stats": stats, "errors": g["errors"], "seeds": sorted(g["seeds"])}
    return out


def _columns(agg) -> list[tuple[str, str]]:
    order = {"flo": 0, "awa1": 1, "cifar10": 2, "synthetic": 9}
    cols = sorted({(k[1], k[2]) for k in agg}, key=lambda c: (order.get(c[0], 5), c[0], c[1]))
    return cols


def _fmt(stat) -> str:
    mean, std, n = stat
    return f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"


class _Anchors:
    def __init__(self, anchors):
        self.by_key = {(a["method"], a["dataset"], a["split"], a["setting"]): a for a in anchors}
        self.used: list[dict] = []

    def mark(self, key, metric) -> str:
        a = self.by_key.get(key)
        if a is None or metric not in a:
            return ""
        if a not in self.used:
            self.used.append(a)
        return f" [pub {a[metric]:.1f}{_sup(self.used.index(a) + 1)}]"

    def footnotes(self) -> str:
        return "\n".join(
            f"{_sup(i + 1)} published: {a['method']} on {a['dataset']}/{a['split']} {a['setting'].upper()}, "
            f"{a['source']}; features: {a['features']}"
            for i, a in enumerate(self.used)
        )


def _sup(i: int) -> str:
    return "".join("⁰¹²³⁴⁵⁶⁷⁸⁹"[int(d)] for d in str(i))


def markdown(rows: list[dict[str, Any]], *, anchors: list[dict] | None = None, title_suffix: str = "") -> str:
    """The ZSL and GZSL tables as markdown (numbers in %, mean ± std over seeds)."""
    agg = aggregate(rows)
    if not agg:
        return "_(no results in the store yet: run `zsl benchmark --quick`)_\n"
    anchors_ = _Anchors(load_anchors() if anchors is None else anchors)
    cols = _columns(agg)
    methods = sorted({k[0] for k in agg})
    n_seeds = max((len(v["seeds"]) for v in agg.values()), default=0)
    parts = []
    zcols = [c for c in cols if any((m, *c, "zsl") in agg for m in methods)]
    if zcols:
        parts.append(f"**ZSL: per-class top-1 accuracy on unseen classes (%)**{title_suffix}\n")
        parts.append("| method | " + " | ".join(f"{d}/{s}" for d, s in zcols) + " |")
        parts.append("|---|" + "---|" * len(zcols))
        for m in methods:
            cells = []
            for d, s in zcols:
                key = (m, d, s, "zsl")
                cells.append(_cell(agg.get(key), "acc") + (anchors_.mark(key, "acc") if key in agg else ""))
            parts.append(f"| {m} | " + " | ".join(cells) + " |")
        parts.append("")
    gcols = [c for c in cols if any((m, *c, "gzsl") in agg for m in methods)]
    if gcols:
        parts.append(f"**GZSL (%): U / S / H of the raw scores (the papers' number) and H with calibrated stacking "
                     f"(gamma chosen on validation classes)**{title_suffix}\n")
        parts.append(
            "| method | " + " | ".join(f"{d}/{s} {head}" for d, s in gcols for _, head, _ in GZSL_COLUMNS) + " |"
        )
        parts.append("|---|" + "---|" * (len(GZSL_COLUMNS) * len(gcols)))
        for m in methods:
            cells = []
            for d, s in gcols:
                key = (m, d, s, "gzsl")
                for metric, _, anchor in GZSL_COLUMNS:
                    mark = anchors_.mark(key, anchor) if key in agg and anchor else ""
                    cells.append(_cell(agg.get(key), metric) + mark)
            parts.append(f"| {m} | " + " | ".join(cells) + " |")
        parts.append("")
    parts.append(("Mean ± std over " + f"{n_seeds} seeds. " if n_seeds > 1 else "One seed. ")
                 + "Hyperparameters selected on validation classes (or the method's preset where the grid says "
                 "`selection = \"none\"`); test classes are never used for selection.")
    notes = anchors_.footnotes()
    if notes:
        parts.append("\n" + notes.replace("\n", "  \n"))
    errs = [(k, v["errors"][0]) for k, v in sorted(agg.items()) if v["errors"]]
    if errs:
        parts.append("\nErrors (full messages in the store):  ")
        parts.extend(f"- {k[0]} on {k[1]}/{k[2]} {k[3].upper()}: {msg.splitlines()[0][:160]}" for k, msg in errs)
    return "\n".join(parts) + "\n"


def _cell(entry, metric) -> str:
    if entry is None:
        return "-"
    if metric in entry["stats"]:
        return _fmt(entry["stats"][metric])
    return "error" if entry["errors"] else "-"


def to_csv(rows: list[dict[str, Any]]) -> str:
    agg = aggregate(rows)
    anchors = {(a["method"], a["dataset"], a["split"], a["setting"]): a for a in load_anchors()}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "dataset", "split", "setting", "metric", "mean_pct", "std_pct", "n_seeds", "published_pct",
                "published_source", "n_errors"])
    for key in sorted(agg):
        entry = agg[key]
        a = anchors.get(key, {})
        for metric in METRICS[key[3]]:
            mean, std, n = entry["stats"].get(metric, (float("nan"), float("nan"), 0))
            anchor = (
                metric.removesuffix("_uncalibrated") if metric.endswith("_uncalibrated") or key[3] == "zsl" else None
            )
            w.writerow([*key, metric, f"{mean:.4f}", f"{std:.4f}", n, a.get(anchor, "") if anchor else "",
                        a.get("source", "") if anchor in a else "", len(entry["errors"])])
    return buf.getvalue()


def plot_bars(rows: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per dataset/split: ZSL top-1 and GZSL H per method, error bars = std over seeds."""
    from ..errors import require_extra

    require_extra("matplotlib", "plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_write

    agg = aggregate(rows)
    anchors = {(a["method"], a["dataset"], a["split"], a["setting"]): a for a in load_anchors()}
    out_dir = Path(out_dir)
    paths = []
    for d, s in _columns(agg):
        methods = sorted({k[0] for k in agg if k[1:3] == (d, s)})
        fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.2 * len(methods) + 2) * 1.6, 3.6))
        for ax, (setting, metric, label) in zip(axes, (("zsl", "acc", "ZSL top-1 (%)"),
                                                       ("gzsl", "H_uncalibrated", "GZSL H, uncalibrated (%)"))):
            vals = [agg.get((m, d, s, setting), {"stats": {}})["stats"].get(metric, (np.nan, 0, 0)) for m in methods]
            x = np.arange(len(methods))
            ax.bar(x, [v[0] for v in vals], yerr=[v[1] for v in vals], capsize=3, color="#4c72b0", label="this run")
            pub = [
                anchors.get((m, d, s, setting), {}).get(metric.removesuffix("_uncalibrated"), np.nan) for m in methods
            ]
            if np.isfinite(pub).any():
                ax.scatter(x, pub, marker="_", s=400, color="#c44e52", zorder=3, label="published")
                ax.legend(fontsize=8)
            ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(label)
            ax.set_ylim(0, 100)
            ax.set_title(f"{d}/{s}")
        fig.tight_layout()
        path = out_dir / f"{d}-{s}.png"
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def update_readme(readme: str | Path, table_md: str, command: str) -> bool:
    """Replace the text between the report markers in ``readme`` with the tables and the command."""
    from ..errors import ZSLError
    from ..io import atomic_write

    path = Path(readme)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise ZSLError(f"{path}: add the lines {README_START} and {README_END} where the results section goes")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = f"{README_START}\nGenerated by `{command}`:\n\n{table_md.strip()}\n{README_END}"
    new = head + body + tail
    if new == text:
        return False
    with atomic_write(path, "w") as fh:
        fh.write(new)
    return True


# ---------------------------------------------------------------------------------------- other tasks
RETRIEVAL_METRICS = (("mAP", "mAP (tie-exact)"), ("mAP_authors", "mAP_authors (the ZSH authors' cat_apcal)"),
                     ("mAP@", "mAP@{k} (tie-exact)"), ("P@r2", "P@r2 (precision within Hamming radius 2)"))
LABELLING_METRICS = ("hit@1", "hit@5", "far")


def _stat(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    mean, std = float(np.mean(values)), float(np.std(values))
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def _errors(rows) -> list[str]:
    errs = [r for r in rows if r["status"] != "ok"]
    if not errs:
        return []
    return ["\nErrors (full messages in the store):  "] + [
        f"- {r['spec']} on {r['dataset']}/{r['split']} {r['setting']} seed {r['seed']}: "
        f"{(r.get('error') or 'error').splitlines()[0][:160]}" for r in errs]


def retrieval_markdown(rows: list[dict[str, Any]], *, title_suffix: str = "") -> str:
    """Per dataset/split, one table per metric: a row per hashing method, a column per code length,
    mean ± std over seeds (fractions, as in the ZSH paper); then the settings chosen on validation."""
    from .hashing import describe_choice

    if not rows:
        return "_(no retrieval results in the store yet: run `zsl benchmark --task retrieval --quick`)_\n"
    parts: list[str] = []
    seeds: set = set()
    for d, s in sorted({(r["dataset"], r["split"]) for r in rows}):
        group = [r for r in rows if (r["dataset"], r["split"]) == (d, s)]
        ok = [r for r in group if r["status"] == "ok"]
        methods = sorted({r["method"] for r in group}, key=lambda m: ("lsh", "itq", "sdh", "zsh").index(m)
                         if m in ("lsh", "itq", "sdh", "zsh") else 9)
        bits = sorted({int(r["setting"].rstrip("b")) for r in group})
        top_k = next((k for r in ok for k in r["metrics"] if k.startswith("mAP@")), "mAP@1000")
        for key, head in RETRIEVAL_METRICS:
            metric = top_k if key == "mAP@" else key
            parts.append(f"**Zero-shot retrieval on {d}/{s}: {head.format(k=top_k[4:])}**{title_suffix}\n")
            parts.append("| method | " + " | ".join(f"{b} bits" for b in bits) + " |")
            parts.append("|---|" + "---|" * len(bits))
            for m in methods:
                cells = []
                for b in bits:
                    here = [r for r in group if r["method"] == m and r["setting"] == f"{b}b"]
                    vals = [float(r["metrics"][metric]) for r in here if r["status"] == "ok" and metric in r["metrics"]]
                    seeds.update(r["seed"] for r in here if r["status"] == "ok")
                    cells.append(_stat(vals, 4) if vals else ("error" if here else "-"))
                parts.append(f"| {m} | " + " | ".join(cells) + " |")
            parts.append("")
        chosen = sorted({(r["method"], int(r["setting"].rstrip("b")), describe_choice(r["config"]["selected"]))
                         for r in ok if r.get("config", {}).get("selected")})
        chosen = [c for c in chosen if c[2] != "preset"]
        if chosen:
            parts.append(f"Chosen on the validation classes of {d}/{s}: "
                         + "; ".join(f"{m} {b} bits: {desc}" for m, b, desc in chosen) + ".\n")
    parts.append(("Mean ± std over " + f"{len(seeds)} seeds. " if len(seeds) > 1 else "One seed. ")
                 + "Hash functions learnt on seen classes only; queries are unseen-class images "
                   "(`zsl hashing --help`).")
    parts += _errors(rows)
    return "\n".join(parts) + "\n"


def labelling_markdown(rows: list[dict[str, Any]], *, title_suffix: str = "") -> str:
    """One table: a row per (label space, T), a column per dataset/split holding hit@1 / hit@5 /
    flagged far (%), then the images and names each column ranked."""
    if not rows:
        return "_(no labelling results in the store yet: run `zsl benchmark --task labelling --quick`)_\n"
    cols = sorted({(r["dataset"], r["split"]) for r in rows})
    keys = sorted({(r["spec"].split(".", 1)[1], r["setting"]) for r in rows})
    parts = [f"**Zero-shot labelling (`zsl label`: ConSE over the ImageNet-1k classifier), each split's test images "
             f"against the dataset's class names: hit@1 / hit@5 / flagged far (%)**{title_suffix}\n",
             "| label space | T | " + " | ".join(f"{d}/{s}" for d, s in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for space, setting in keys:
        cells = []
        for d, s in cols:
            here = [r for r in rows
                    if (r["dataset"], r["split"], r["spec"].split(".", 1)[1], r["setting"]) == (d, s, space, setting)]
            if not here:
                cells.append("-")
            elif here[0]["status"] != "ok":
                cells.append("error")
            else:
                m = here[0]["metrics"]
                cells.append(" / ".join(f"{100 * m[k]:.1f}" for k in LABELLING_METRICS))
        parts.append(f"| {space} | {setting[1:]} | " + " | ".join(cells) + " |")
    described = {}
    for r in rows:
        if r["status"] == "ok":
            c = r["config"]
            described[(r["dataset"], r["split"])] = (f"{r['dataset']}/{r['split']}: {c['n_images']} images "
                                                     f"({c['images']}) against {c['n_names']} names")
    parts.append("\n" + "; ".join(described[c] for c in cols if c in described) + ". Chance hit@1 = 1 / names.")
    parts += _errors(rows)
    return "\n".join(parts) + "\n"


def task_markdown(task: str, rows: list[dict[str, Any]], *, title_suffix: str = "") -> str:
    """The table of ``task`` (``classification``, ``retrieval``, ``labelling``) from its store rows."""
    if task == "retrieval":
        return retrieval_markdown(rows, title_suffix=title_suffix)
    if task == "labelling":
        return labelling_markdown(rows, title_suffix=title_suffix)
    return markdown(rows, title_suffix=title_suffix)
