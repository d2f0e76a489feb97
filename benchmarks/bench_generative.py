"""Benchmark: the generative methods' fit time, and their training loop against a plain PyTorch loop.

For each method (f-CLSWGAN, the clusterable CVAE, CPL) on a dataset (FLO by default), in the same
process and on the same preprocessed training data:

* ``fit``   -- the method's full ``fit`` with its dataset preset (input map, generator training,
               synthesis, final classifiers), wall and CPU seconds, then ZSL top-1 on the test
               unseen classes (reported for orientation; nothing is chosen with it);
* ``step``  -- seconds per generator step of the method's own training loop, measured as the
               difference between two fits that differ only in the number of steps (so the fixed
               costs -- input map, classifiers -- cancel), against
* ``plain`` -- a hand-written loop over the same networks, batch size and step count with nothing
               else (no private RNG plumbing, no progress bar, no checkpoint hooks).
Reported: the ratio step/plain (the library's overhead per generator step).

    .venv/bin/python benchmarks/bench_generative.py --dataset flo \
        [--methods fclswgan cvae_clusterable cpl] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - t0


def fit(spec, ds, **over):
    import zsl
    from zsl.eval.protocol import resolve_spec

    X, y = ds.subset("trainval")
    method = zsl.create_method(resolve_spec(spec, ds.name), progress=False, **over)  # the dataset preset
    return method.fit(X, y, ds.class_embeddings(), ds.seen_classes)


def plain_wgan_steps(m, Z, y, A, seen, steps):
    """The f-CLSWGAN training loop with nothing but the networks (same sizes as the fitted method)."""
    import torch
    from torch import nn

    G = nn.Sequential(
        nn.Linear(2 * A.shape[1], m.hidden), nn.LeakyReLU(0.2), nn.Linear(m.hidden, Z.shape[1]), nn.ReLU()
    )
    D = nn.Sequential(nn.Linear(Z.shape[1] + A.shape[1], m.critic_hidden or m.hidden), nn.LeakyReLU(0.2),
                      nn.Linear(m.critic_hidden or m.hidden, 1))
    C = nn.Linear(Z.shape[1], len(seen))
    og, od = (
        torch.optim.Adam(G.parameters(), m.lr, betas=(0.5, 0.999)),
        torch.optim.Adam(D.parameters(), m.lr, betas=(0.5, 0.999)),
    )
    Zt, At, yt = torch.as_tensor(Z), torch.as_tensor(A), torch.as_tensor(y)
    yl = torch.as_tensor(np.searchsorted(seen, y))
    bs, k = m.batch_size, A.shape[1]
    t0 = time.perf_counter()
    for _ in range(steps):
        for _ in range(m.critic_iters):
            idx = torch.randint(len(Zt), (bs,))
            real, a = Zt[idx], At[yt[idx]]
            fake = G(torch.cat([a, torch.randn(bs, k)], 1)).detach()
            t = torch.rand(bs, 1)
            inter = (t * real + (1 - t) * fake).requires_grad_(True)
            grad = torch.autograd.grad(D(torch.cat([inter, a], 1)).sum(), inter, create_graph=True)[0]
            loss = D(torch.cat([fake, a], 1)).mean() - D(torch.cat([real, a], 1)).mean() + \
                m.gp_lambda * ((grad.norm(2, dim=1) - 1) ** 2).mean()
            od.zero_grad()
            loss.backward()
            od.step()
        idx = torch.randint(len(Zt), (bs,))
        a = At[yt[idx]]
        fake = G(torch.cat([a, torch.randn(bs, k)], 1))
        loss = -D(torch.cat([fake, a], 1)).mean() + m.cls_weight * nn.functional.cross_entropy(C(fake), yl[idx])
        og.zero_grad()
        loss.backward()
        og.step()
    return time.perf_counter() - t0


def plain_cvae_steps(m, H, y, A, seen, steps):
    """The clusterable CVAE's step (M, C, E, G and their losses) with nothing but the networks."""
    import torch
    from torch import nn

    d, k = H.shape[1], A.shape[1]
    M = nn.Sequential(nn.Linear(d, m.map_dim), nn.Sigmoid())
    C = nn.Linear(m.map_dim, len(seen))
    E = nn.Linear(m.map_dim + k, m.hidden)
    mu, lv = nn.Linear(m.hidden, k), nn.Linear(m.hidden, k)
    G = nn.Sequential(nn.Linear(2 * k, m.hidden), nn.LeakyReLU(0.2), nn.Linear(m.hidden, m.map_dim))
    opt = torch.optim.Adam([p for net in (M, C, E, mu, lv, G) for p in net.parameters()], m.lr)
    Ht, At, yt = torch.as_tensor(H), torch.as_tensor(A), torch.as_tensor(y)
    yl = torch.as_tensor(np.searchsorted(seen, y))
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(Ht), (m.batch_size,))
        xp = M(Ht[idx])
        tgt = xp.detach() + m.noise_alpha * xp.detach().std(0).pow(2).mean().sqrt() * torch.randn_like(xp)
        a = At[yt[idx]]
        h = nn.functional.leaky_relu(E(torch.cat([tgt, a], 1)), 0.2)
        m_, l_ = mu(h), lv(h)
        z = m_ + torch.exp(0.5 * l_) * torch.randn_like(m_)
        rec = G(torch.cat([z, a], 1))
        loss = (rec - tgt).pow(2).sum(1).mean() + (-0.5 * (1 + l_ - m_.pow(2) - l_.exp()).sum(1)).mean() + \
            nn.functional.cross_entropy(C(xp), yl[idx]) + 0.1 * nn.functional.cross_entropy(C(rec), yl[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def bench(spec, ds, short: int, long: int) -> dict:
    import zsl
    from zsl.eval.metrics import per_class_accuracy
    from zsl.eval.protocol import resolve_spec

    name = spec.split(".")[0]
    steps_key = {"fclswgan": "gan_steps", "cpl": "gan_steps", "cvae_clusterable": "epochs"}[name]
    m, cpu, wall = timed(lambda: fit(spec, ds))
    Xu, yu = ds.subset("test_unseen")
    acc = per_class_accuracy(yu, m.predict(Xu, ds.unseen_classes))
    out = {"spec": resolve_spec(spec, ds.name), "fit_cpu_s": cpu, "fit_wall_s": wall, "test_zsl_for_orientation": acc}
    if name == "cpl" and not m.use_generated:  # the preset trains no generator: nothing to time per step
        return {**out, "steps": 0, "library_s_per_step": float("nan"), "plain_s_per_step": float("nan"),
                "ratio": float("nan")}
    # short, long, long, short: a drift of the machine's load hits both lengths alike
    walls = {short: [], long: []}
    for n in (short, long, long, short):
        walls[n].append(timed(lambda n=n: fit(spec, ds, **{steps_key: n}))[2])
    w_short, w_long = np.mean(walls[short]), np.mean(walls[long])
    X, y = ds.subset("trainval")
    Z = m.preprocessor_.transform(X)
    A = m.conditions_  # the conditions the fitted generator saw
    if name == "cvae_clusterable":
        n_steps = (long - short) * -(-len(X) // m.batch_size)
        H = Z if m.finetune_ is None else m.finetune_(__import__("torch").as_tensor(Z)).detach().numpy()

        def plain_loop():
            return plain_cvae_steps(m, H, y, A, ds.seen_classes, n_steps)
    else:
        n_steps = long - short
        gm = m if name == "fclswgan" else zsl.create_method(
            "fclswgan", hidden=m.gan_hidden, lr=m.gan_lr, batch_size=m.gan_batch_size, critic_iters=m.gan_critic_iters,
            gp_lambda=m.gan_gp_lambda, cls_weight=m.gan_cls_weight)

        def plain_loop():
            return plain_wgan_steps(gm, Z, y, A, ds.seen_classes, n_steps)
    plain = 0.5 * (plain_loop() + plain_loop())  # twice, like the library's two lengths
    per_step = (w_long - w_short) / n_steps
    out.update(steps=n_steps, library_s_per_step=per_step, plain_s_per_step=plain / n_steps,
               ratio=per_step / (plain / n_steps))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="flo")
    ap.add_argument("--methods", nargs="+", default=["fclswgan", "cvae_clusterable", "cpl"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the records to this file")
    args = ap.parse_args(argv)
    import torch

    import zsl

    torch.set_num_threads(args.threads)
    ds = zsl.load_dataset(args.dataset)
    rows = []
    for spec in args.methods:
        name = spec.split(".")[0]
        short, long = (2, 6) if name == "cvae_clusterable" else (100, 300)
        rows.append(bench(spec, ds, short, long))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"## Generative methods on {ds.name}/{ds.split} ({args.threads} torch threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()})\n")
    print("| method | fit wall s | fit CPU s | s / generator step | plain loop s / step | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['spec']} | {r['fit_wall_s']:.0f} | {r['fit_cpu_s']:.0f} | {r['library_s_per_step']:.4f} | "
              f"{r['plain_s_per_step']:.4f} | {r['ratio']:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
