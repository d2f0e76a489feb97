"""zsl: zero-shot recognition, labelling and retrieval on one scikit-learn-style contract."""
from ._registry import create_method, get_method_class, list_methods, register_method
from .base import ZSLMethod
from .data import ZSLDataset, list_datasets, load_dataset, make_synthetic
from .errors import DataError, NotFittedError, ZSLError
from .eval import run_method

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "NotFittedError",
    "ZSLDataset",
    "ZSLError",
    "ZSLMethod",
    "create_method",
    "get_method_class",
    "list_datasets",
    "list_methods",
    "load_dataset",
    "make_synthetic",
    "register_method",
    "run_method",
    "__version__",
]
