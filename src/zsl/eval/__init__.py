"""Evaluation: pure metric functions (:mod:`zsl.eval.metrics`) and the protocol (:mod:`zsl.eval.protocol`)."""
from .metrics import (
    ausuc,
    average_precision,
    calibrated_stacking,
    gzsl_accuracies,
    harmonic_mean,
    hit_at_k,
    per_class_accuracy,
    ranked_hit_at_k,
    select_gamma,
)
from .protocol import RunResult, run_method

__all__ = [
    "RunResult",
    "ausuc",
    "average_precision",
    "calibrated_stacking",
    "gzsl_accuracies",
    "harmonic_mean",
    "hit_at_k",
    "ranked_hit_at_k",
    "per_class_accuracy",
    "run_method",
    "select_gamma",
]
