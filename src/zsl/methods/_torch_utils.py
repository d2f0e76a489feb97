"""Compatibility names: the torch helpers moved to :mod:`zsl.nn`, the feature maps to :mod:`zsl.preprocessing`."""
from ..nn import (  # noqa: F401
    Checkpointer,
    batches,
    init_default_,
    init_normal_,
    l2_normalize_rows,
    predict_log_proba,
    progress_bar,
    torch_generator,
    torch_threads,
    train_softmax,
)
from ..preprocessing import FeaturePreprocessor  # noqa: F401
