"""Benchmark: f-CLSWGAN and clusterable-CVAE training against a plain-PyTorch loop of the same networks.

For each method the script times, in separate child processes (so each peak RSS is its own):
  * ``zsl``   -- the method's full ``fit`` (preprocessing, generator training with per-epoch
                 checkpoints and RNG plumbing, synthesis, final classifiers), then ZSL top-1;
  * ``plain`` -- a hand-written PyTorch loop over the same networks, the same batch size, the same
                 number of optimisation steps and the same preprocessed inputs, with nothing else
                 (no checkpoints, no private RNG, no progress bars, no synthesis/classifiers).
Both use one torch thread. Reported: wall seconds, training samples/s (epochs x n / seconds),
peak RSS (MiB), and the ratio zsl/plain measured in the same run.

    .venv/bin/python benchmarks/bench_generative.py --dataset awa1 [--epochs 3] [--out benchmarks/results/generative.md]
    .venv/bin/python benchmarks/bench_generative.py --dataset synthetic
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _load(name):
    import zsl

    if name == "synthetic":
        return zsl.make_synthetic(n_per_class=300)
    return zsl.load_dataset(name, "standard", data_root=os.environ.get("ZSL_DATA", "/work/shared/data"))


def _preset(method, dataset, epochs):
    common = {"progress": False, "checkpoint": True}
    if dataset == "synthetic":
        common["pca_dim"] = None
    if epochs:
        common["epochs"] = epochs
    return common


def child(method: str, impl: str, dataset: str, epochs: int | None) -> dict:
    import tempfile

    import torch

    # a fresh cache per child: checkpoints are written (their cost is measured) but never resumed from
    os.environ["ZSL_CACHE"] = tempfile.mkdtemp(prefix="zsl-bench-generative-")

    import zsl
    from zsl.eval.metrics import per_class_accuracy
    from zsl.methods._torch_utils import FeaturePreprocessor, l2_normalize_rows

    ds = _load(dataset)
    X, y = ds.subset("trainval")
    S = ds.class_embeddings()
    m = zsl.create_method(method, **_preset(method, dataset, epochs))
    torch.set_num_threads(1)
    if impl == "zsl":
        t0 = time.perf_counter()
        m.fit(X, y, S, ds.seen_classes)
        secs = time.perf_counter() - t0
        iu = ds.splits["test_unseen"]
        acc = per_class_accuracy(ds.y[iu], m.predict(ds.X[iu], ds.unseen_classes))
    else:
        Z = FeaturePreprocessor(m.pca_dim, random_state=0, rbf_anchors=m.rbf_anchors).fit(X).transform(X)
        A = l2_normalize_rows(S)
        t0 = time.perf_counter()
        (plain_fclswgan if method.startswith("fclswgan") else plain_cvae)(m, Z, y, A, ds.seen_classes)
        secs = time.perf_counter() - t0
        acc = float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"method": method, "impl": impl, "seconds": secs, "samples_per_s": m.epochs * len(X) / secs, "peak_rss_mb": rss,
            "zsl_acc": acc, "n_train": len(X), "epochs": m.epochs}


def plain_fclswgan(m, Z, y, A, seen):
    """The f-CLSWGAN training loop with nothing but torch: same nets, batch, steps, losses."""
    import math

    import torch
    from torch import nn

    torch.manual_seed(0)
    Xt, At, yt = torch.as_tensor(Z), torch.as_tensor(A), torch.as_tensor(y)
    yl = torch.as_tensor(np.searchsorted(seen, y))
    k, d, nz = A.shape[1], Z.shape[1], m.noise_dim or A.shape[1]
    G = nn.Sequential(nn.Linear(k + nz, m.hidden), nn.LeakyReLU(0.2), nn.Linear(m.hidden, d))
    D = nn.Sequential(nn.Linear(d + k, m.hidden), nn.LeakyReLU(0.2), nn.Linear(m.hidden, 1))
    C = nn.Linear(d, len(seen))
    oc = torch.optim.Adam(C.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(20):  # the pre-trained seen classifier, same epochs as train_conditional_wgan's default
        for idx in torch.randperm(len(Xt)).split(m.batch_size):
            loss = nn.functional.cross_entropy(C(Xt[idx]), yl[idx])
            oc.zero_grad()
            loss.backward()
            oc.step()
    og = torch.optim.Adam(G.parameters(), lr=m.lr, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), lr=m.lr, betas=(0.5, 0.999))
    n, b = len(Xt), m.batch_size
    for _ in range(m.epochs):
        for _ in range(math.ceil(n / b)):
            for _ in range(m.critic_iters):
                idx = torch.randint(n, (b,))
                real, a = Xt[idx], At[yt[idx]]
                fake = G(torch.cat([a, torch.randn(b, nz)], 1)).detach()
                t = torch.rand(b, 1)
                inter = (t * real + (1 - t) * fake).requires_grad_(True)
                grad = torch.autograd.grad(D(torch.cat([inter, a], 1)).sum(), inter, create_graph=True)[0]
                loss = D(torch.cat([fake, a], 1)).mean() - D(torch.cat([real, a], 1)).mean() + m.gp_lambda * ((grad.norm(2, dim=1) - 1) ** 2).mean()
                od.zero_grad()
                loss.backward()
                od.step()
            idx = torch.randint(n, (b,))
            a = At[yt[idx]]
            fake = G(torch.cat([a, torch.randn(b, nz)], 1))
            loss = -D(torch.cat([fake, a], 1)).mean() + m.cls_weight * nn.functional.cross_entropy(C(fake), yl[idx])
            og.zero_grad()
            loss.backward()
            og.step()


def plain_cvae(m, Z, y, A, seen):
    """The clusterable-CVAE loops (F fine-tuning, then M + C + CVAE) with nothing but torch."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    Xt, At, yt = torch.as_tensor(Z), torch.as_tensor(A), torch.as_tensor(y)
    yl = torch.as_tensor(np.searchsorted(seen, y))
    b, k = m.batch_size, A.shape[1]
    H = Xt
    if m.use_gaussian:
        F = nn.Sequential(nn.Linear(Z.shape[1], m.gaussian_dim), nn.Sigmoid())
        W = nn.Parameter(torch.rand(len(seen), m.gaussian_dim))
        of = torch.optim.Adam(list(F.parameters()) + [W], lr=m.lr)
        for _ in range(m.finetune_epochs):
            for idx in torch.randperm(len(Xt)).split(b):
                loss = nn.functional.cross_entropy(-m.gamma * torch.cdist(F(Xt[idx]), W).pow(2), yl[idx])
                of.zero_grad()
                loss.backward()
                of.step()
        with torch.no_grad():
            H = F(Xt)
    M = nn.Sequential(nn.Linear(H.shape[1], m.map_dim), nn.Sigmoid())
    C = nn.Linear(m.map_dim, len(seen))
    lat = m.latent_dim or k
    E = nn.Sequential(nn.Linear(m.map_dim, m.hidden), nn.LeakyReLU(0.2), nn.Linear(m.hidden, 2 * lat))
    G = nn.Sequential(nn.Linear(lat + k, m.hidden), nn.LeakyReLU(0.2), nn.Linear(m.hidden, m.map_dim))
    opt = torch.optim.Adam([p for mod in (M, C, E, G) for p in mod.parameters()], lr=m.lr)
    for _ in range(m.epochs):
        for idx in torch.randperm(len(H)).split(b):
            xp = M(H[idx])
            target = xp.detach() + m.noise_alpha * torch.randn_like(xp)
            mu, logvar = E(target).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            rec = G(torch.cat([z, At[yt[idx]]], 1))
            loss = (rec - target).pow(2).sum(1).mean() + (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
            loss = loss + m.cls_weight * nn.functional.cross_entropy(C(xp), yl[idx]) + m.cls_recon_weight * nn.functional.cross_entropy(C(rec), yl[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="awa1", choices=("awa1", "synthetic"))
    ap.add_argument("--methods", nargs="+", default=["fclswgan", "cvae_clusterable"])
    ap.add_argument("--epochs", type=int, default=None, help="override epochs (default: the preset's)")
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.dataset, args.epochs)))
        return 0
    rows = []
    for method in args.methods:
        for impl in ("zsl", "plain"):
            cmd = [sys.executable, __file__, "--dataset", args.dataset, "--child", method, impl]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(f"  {method} {impl}: {rows[-1]['seconds']:.1f}s", file=sys.stderr, flush=True)
    lines = [f"# Generative ZSL training benchmark ({args.dataset}, 1 torch thread)", "",
             "| method | impl | wall s | train samples/s | peak RSS MiB | ZSL top-1 | zsl/plain time |", "|---|---|---|---|---|---|---|"]
    for method in args.methods:
        z = next(r for r in rows if r["method"] == method and r["impl"] == "zsl")
        p = next(r for r in rows if r["method"] == method and r["impl"] == "plain")
        for r in (z, p):
            ratio = f"{z['seconds'] / p['seconds']:.2f}" if r is z else "1.00"
            acc = "" if r["impl"] == "plain" else f"{r['zsl_acc']:.4f}"
            lines.append(f"| {method} | {r['impl']} | {r['seconds']:.1f} | {r['samples_per_s']:.0f} | {r['peak_rss_mb']:.0f} | {acc} | {ratio} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n\n`zsl` = full fit (preprocessing, checkpointed training, synthesis, final ZSL+GZSL classifiers); "
                     "`plain` = bare torch loop of the same networks/steps on the same preprocessed inputs.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
