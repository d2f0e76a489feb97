"""Class relations: express an unseen class as a weighting of the seen classes.

Used by VGSE's class relation module (Xu et al., CVPR 2022, "VGSE: Visually-Grounded Semantic
Embeddings for Zero-Shot Learning", section "Class relation module") and reusable by any method
that transfers seen-class quantities to unseen classes.

Given word vectors of the seen classes ``W_s`` (S, d) and of one unseen class ``w_u`` (d,), find
weights ``r`` (S,) and transfer any seen-class matrix ``Phi_s`` (S, k) as ``r^T Phi_s``.

Three solvers, all returning ``R`` (U, S), one row per unseen class:

``qp``      the paper's problem, solved exactly::

                min_r ||w_u - r^T W_s||_2   s.t.  alpha <= r_i <= 1,  sum_i r_i = 1

            (the paper writes strict inequalities; the closed box is the attainable version).
            Minimising the norm and its square give the same r, so this is a convex QP with one
            equality and box constraints. It is solved with SLSQP and then *polished*: the active
            set is read off the SLSQP point and the equality-constrained least squares on the free
            variables is solved from its KKT system in closed form; the polished point is accepted
            only if it is feasible and the multipliers of the active bounds have the right sign
            (i.e. the KKT conditions hold to 1e-9), which certifies global optimality for a convex
            problem. Otherwise the SLSQP point is returned (never observed in tests; recorded in
            ``info``).
``lstsq``   unconstrained least squares ``min_r ||w_u - r^T W_s||^2 (+ ridge ||r||^2)``; the
            minimum-norm solution when ``W_s`` has more rows than its rank.
``cosine``  ``r_i = max(0, cos(w_u, w_s_i))`` normalised to sum to 1 (a convex combination of the
            most similar seen classes; rows with no positive similarity fall back to uniform
            weights and say so in ``info``).
"""
from __future__ import annotations

import numpy as np

from ..errors import ZSLError

RELATIONS = ("qp", "lstsq", "cosine")


def _check(W_seen: np.ndarray, W_unseen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    W_seen = np.asarray(W_seen, dtype=np.float64)
    W_unseen = np.atleast_2d(np.asarray(W_unseen, dtype=np.float64))
    if W_seen.ndim != 2 or W_unseen.shape[1] != W_seen.shape[1]:
        raise ZSLError(
            f"relation: seen vectors {W_seen.shape} and unseen vectors {W_unseen.shape} must share their dimension"
        )
    if not (np.isfinite(W_seen).all() and np.isfinite(W_unseen).all()):
        raise ZSLError("relation: word vectors contain NaN/inf")
    return W_seen, W_unseen


def _kkt_polish(A: np.ndarray, b: np.ndarray, r0: np.ndarray, alpha: float, tol: float = 1e-9) -> np.ndarray | None:
    """Exact solution of min ||A r - b||^2, alpha<=r<=1, 1^T r = 1 on the active set guessed from ``r0``.

    A: (d, S), b: (d,). Returns r if the KKT conditions hold, else None.
    """
    span = 1.0 - alpha
    at_low = r0 <= alpha + 1e-7 * max(1.0, span)
    at_high = (r0 >= 1.0 - 1e-7 * max(1.0, span)) & ~at_low
    free = ~(at_low | at_high)
    r = np.where(at_low, alpha, np.where(at_high, 1.0, 0.0))
    G = A.T @ A
    c = A.T @ b
    nf = int(free.sum())
    if nf:
        # stationarity on the free set: G_ff r_f + G_fa r_a - c_f + nu/2 * 1 = 0 (nu absorbs the 2);
        # plus 1^T r_f = 1 - sum r_a. Solve the (nf+1) x (nf+1) KKT system.
        fixed = r.copy()
        K = np.zeros((nf + 1, nf + 1))
        K[:nf, :nf] = G[np.ix_(free, free)]
        K[:nf, nf] = 1.0
        K[nf, :nf] = 1.0
        rhs = np.concatenate([c[free] - G[np.ix_(free, ~free)] @ fixed[~free], [1.0 - fixed[~free].sum()]])
        sol, *_ = np.linalg.lstsq(K, rhs, rcond=None)
        if not np.allclose(K @ sol, rhs, atol=1e-9 * max(1.0, np.abs(rhs).max())):
            return None
        r[free] = sol[:nf]
        nu = sol[nf]
    else:
        if abs(r.sum() - 1.0) > tol:
            return None
        # any nu that makes the multipliers sign-correct; pick the midpoint of the feasible range below
        nu = None
    grad = G @ r - c  # half-gradient of the objective
    if nu is None:
        # multipliers: low-bound mu_i = grad_i + nu >= 0, high-bound  -(grad_i + nu) >= 0
        lo = -grad[at_low].min() if at_low.any() else -np.inf  # nu >= -grad_i on low
        hi = -grad[at_high].max() if at_high.any() else np.inf  # nu <= -grad_i on high
        if lo > hi + tol:
            return None
        nu = lo if np.isfinite(lo) else hi
    mult = grad + nu
    scale = max(1.0, np.abs(c).max(), np.abs(G).max())
    if (r < alpha - tol).any() or (r > 1.0 + tol).any() or abs(r.sum() - 1.0) > tol:
        return None
    if at_low.any() and (mult[at_low] < -tol * scale).any():
        return None
    if at_high.any() and (mult[at_high] > tol * scale).any():
        return None
    if free.any() and (np.abs(mult[free]) > 1e-7 * scale).any():
        return None
    return np.clip(r, alpha, 1.0)


def relation_qp(W_seen, W_unseen, *, alpha: float = 0.0, return_info: bool = False):
    """(S, d) seen and (U, d) unseen word vectors -> R (U, S) of the constrained problem above."""
    from scipy.optimize import minimize

    W_seen, W_unseen = _check(W_seen, W_unseen)
    S = W_seen.shape[0]
    if not (alpha * S <= 1.0 + 1e-12 and alpha < 1.0):
        raise ZSLError(f"relation qp: alpha={alpha} is infeasible with {S} seen classes (need alpha <= 1/{S})")
    A = W_seen.T  # (d, S)
    R = np.zeros((len(W_unseen), S))
    info = []
    for u, b in enumerate(W_unseen):
        G, c = A.T @ A, A.T @ b
        def fun(r, G=G, c=c):  # same minimiser as the norm
            return 0.5 * r @ G @ r - c @ r

        def jac(r, G=G, c=c):
            return G @ r - c

        x0 = np.full(S, 1.0 / S)
        res = minimize(fun, x0, jac=jac, method="SLSQP", bounds=[(alpha, 1.0)] * S,
                       constraints=[{"type": "eq", "fun": lambda r: r.sum() - 1.0, "jac": lambda r: np.ones_like(r)}],
                       options={"ftol": 1e-15, "maxiter": 1000})
        polished = _kkt_polish(A, b, np.asarray(res.x), alpha)
        if polished is not None:
            R[u] = polished
            info.append({"exact": True, "slsqp_success": bool(res.success)})
        else:
            R[u] = np.clip(res.x, alpha, 1.0)
            info.append({"exact": False, "slsqp_success": bool(res.success), "message": str(res.message)})
    return (R, info) if return_info else R


def relation_lstsq(W_seen, W_unseen, *, ridge: float = 0.0):
    """Unconstrained (ridge) least squares weights: R (U, S) with R W_seen ~= W_unseen."""
    W_seen, W_unseen = _check(W_seen, W_unseen)
    A = W_seen.T  # (d, S)
    if ridge > 0:
        S = A.shape[1]
        return np.linalg.solve(A.T @ A + ridge * np.eye(S), A.T @ W_unseen.T).T
    sol, *_ = np.linalg.lstsq(A, W_unseen.T, rcond=None)
    return sol.T


def relation_cosine(W_seen, W_unseen, *, return_info: bool = False):
    """Positive cosine similarities normalised to sum 1: R (U, S)."""
    W_seen, W_unseen = _check(W_seen, W_unseen)
    ns = W_seen / np.maximum(np.linalg.norm(W_seen, axis=1, keepdims=True), 1e-12)
    nu = W_unseen / np.maximum(np.linalg.norm(W_unseen, axis=1, keepdims=True), 1e-12)
    R = np.maximum(nu @ ns.T, 0.0)
    sums = R.sum(1, keepdims=True)
    uniform = (sums[:, 0] <= 0)
    R[uniform] = 1.0
    R = R / R.sum(1, keepdims=True)
    info = [{"uniform_fallback": bool(f)} for f in uniform]
    return (R, info) if return_info else R


def class_relation(W_seen, W_unseen, method: str = "qp", **kw) -> np.ndarray:
    """Dispatch to ``relation_qp`` / ``relation_lstsq`` / ``relation_cosine``: R (U, S)."""
    if method == "qp":
        return relation_qp(W_seen, W_unseen, **kw)
    if method == "lstsq":
        return relation_lstsq(W_seen, W_unseen, **kw)
    if method == "cosine":
        return relation_cosine(W_seen, W_unseen, **kw)
    raise ZSLError(f"unknown relation {method!r}; valid: {', '.join(RELATIONS)}")


__all__ = ["RELATIONS", "class_relation", "relation_cosine", "relation_lstsq", "relation_qp"]
