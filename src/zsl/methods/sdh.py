"""SDH -- supervised discrete hashing (Shen, Shen, Liu, Shen, CVPR 2015), the supervised baseline of ZSH.

    min_{B,W,P}  ||Y - B W||^2 + lambda ||W||^2 + nu ||B - Phi P||^2 + epsilon ||P||^2,
    B in {-1, +1}^(n x r)

Y (n, c) one-hot labels over the seen classes, Phi (n, m+1) RBF kernel features on m anchors plus
a constant column, W (r, c) linear classifier on the codes, P (m+1, r) the hash projection.
Alternation (paper section 3): P-step ridge regression, B-step discrete cyclic coordinate descent
(bit by bit, closed form), W-step ridge regression. Hash function h(x) = sign(phi(x) P).

This is exactly :class:`zsl.methods.zsh.ZSH` with ``rotation="none"``, no graph term (beta = 0)
and ``label_embedding="onehot"``, so SDH and ZSH share one solver and differ only in what the
paper changes. Defaults: the ZSH authors' SDH run (1000 anchors, nu = 1e-5, epsilon = 1e-2,
lambda = 1e-2, 10,000 training samples), with 5 iterations (their script uses 3 for SDH; the
objective has flattened by then). ``param_grid`` holds the same nu values as ZSH's, so both get
the same validation search of the parameters they share. Class embeddings are
ignored: SDH has no code for an unseen class, so ``decision_function`` raises.
"""
from __future__ import annotations

from .._registry import register_method
from ..params import Interval
from .zsh import ZSH


@register_method
class SDH(ZSH):
    name = "sdh"
    tags = {"family": "hashing", "supports_gzsl": False, "retrieval": True, "stochastic": True}
    presets = {
        "default": {},
        "tiny": {"n_bits": 16, "n_anchors": 100, "n_iter": 3, "max_train": 2000},
    }
    param_grid = {
        "nu": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    }  # ZSH's nu values (lambda barely matters: benchmarks/results/hashing.md)
    search_space = {"lambda_": ("float", 1e-4, 1.0, True), "nu": ("float", 1e-6, 1e-1, True)}

    parameter_constraints = {
        "n_bits": [Interval(int, 8, None)],
        "n_anchors": [Interval(int, 1, None)],
        "lambda_": [Interval(float, 0, None)],
        "nu": [Interval(float, 0, None, closed="neither")],
        "epsilon": [Interval(float, 0, None)],
        "n_iter": [Interval(int, 1, None)],
        "max_train": [None, Interval(int, 2, None)],
        "random_state": [None, Interval(int, 0, None)],
    }

    def __init__(self, *, n_bits: int = 64, n_anchors: int = 1000, lambda_: float = 1e-2, nu: float = 1e-5,
                 epsilon: float = 1e-2, n_iter: int = 5, max_train: int | None = 10000, random_state: int = 0):
        self.n_bits = n_bits
        self.n_anchors = n_anchors
        self.lambda_ = lambda_
        self.nu = nu
        self.epsilon = epsilon
        self.n_iter = n_iter
        self.max_train = max_train
        self.random_state = random_state

    # fixed ZSH settings that make this SDH (read by ZSH.fit; not constructor parameters)
    delta = 0.0
    beta = 0.0
    gamma = 0.0
    n_neighbors = 5
    rotation = "none"
    label_embedding = "onehot"
