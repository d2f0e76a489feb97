"""The RBF anchor map of the closed-form baselines and hashing; it lives in :mod:`zsl.preprocessing`."""
from ..preprocessing import RBFAnchors, sq_dists

__all__ = ["RBFAnchors", "sq_dists"]
