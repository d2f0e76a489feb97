"""VGSE step 0: the image patches of a dataset's photos and their frozen-backbone features theta(x_nt).

Reference: W. Xu, Y. Xian, J. Wang, B. Schiele, Z. Akata, "VGSE: Visually-Grounded Semantic
Embeddings for Zero-Shot Learning", CVPR 2022, section "Patch clustering module": "each image x_n
is cropped into N_t patches {x_nt} that cover different parts of the image".

Patches (``patch_boxes``): a ``grid x grid`` lattice of *square* crops whose side is
``patch_fraction`` of the image's shorter side, evenly spaced so the first and last touch the
image borders (default 3 x 3 crops of half the shorter side). Choice: the paper segments images
with an unsupervised watershed; a fixed overlapping lattice needs no extra dependency, covers every
region, and gives each object part a crop not cut by a quadrant boundary. Square crops because
the backbone's preprocessing centre-crops a square (a non-square crop would lose its ends).
On FLO's 128-px photos (e.g. 171 x 128) the crops are 64 x 64 px with strides 53 / 32.

Features (``extract_patch_features``): EfficientNet-Lite0 (ImageNet-1k, frozen), penultimate
1280-d pooled output, each patch resized to ``resolution`` px (default 64 = the native size of a
FLO patch: no resampling). Cost measured on a loaded 2-core machine: ~1-2 CPU ms per 64-px patch,
~4 CPU ms at 96 px (``benchmarks/results/vgse.md``).

Images of a dataset (``dataset_image_paths``): image-folder datasets carry ``meta["paths"]``;
xlsa17 datasets whose features file names each row's photo (FLO's ``lite0.mat`` ``image_files``)
find the photos in ``jpg*.tar.gz`` (extracted once into the cache, keyed by the archive's digest)
or a ``jpg/`` folder beside it.

Cache: ``<cache root>/vgse/patches/<backbone>-r<R>-g<grid>-p<frac>-sq-<file-list hash>/patches.npy``
(n, N_t, 1280) float16, one entry per list of images (VGSE extracts one class at a time, so every
fit that uses a class -- the train-class selection model and the final seen-class model -- shares
its entry). The file-list hash covers each file's absolute path, size and mtime; the photos live
under an extraction folder named by the archive's content digest, so the key follows the content.
Chunks of images are written atomically as they finish, so an interrupted run resumes.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, ZSLError
from ..features.cache import file_list_hash
from ..io import atomic_write, cache_root

FEATURE_DIM = 1280
BACKBONE = "efficientnet-lite0"
PHOTO_ARCHIVES = ("jpg-s128.tar.gz", "jpg.tar.gz", "jpg.tgz")


def patch_boxes(width: int, height: int, grid: int = 3, patch_fraction: float = 0.5) -> list[tuple[int, int, int, int]]:
    """``grid * grid`` square crops (left, top, right, bottom) of side ``patch_fraction * min(w, h)``, row-major."""
    if grid < 1 or not 0 < patch_fraction <= 1:
        raise ZSLError(f"patch grid must be >= 1 and patch_fraction in (0, 1]; got {grid}, {patch_fraction}")
    side = max(1, round(min(width, height) * patch_fraction))
    xs = [0] if grid == 1 else [round(i * (width - side) / (grid - 1)) for i in range(grid)]
    ys = [0] if grid == 1 else [round(i * (height - side) / (grid - 1)) for i in range(grid)]
    return [(x, y, x + side, y + side) for y in ys for x in xs]


def image_patches(path: str, grid: int = 3, patch_fraction: float = 0.5) -> list[np.ndarray]:
    """The N_t = grid^2 patches of one image file as uint8 HxWx3 arrays; raises DataError if undecodable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            return [np.asarray(img.crop(box), dtype=np.uint8) for box in patch_boxes(*img.size, grid, patch_fraction)]
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot decode image for VGSE patches ({type(exc).__name__}); remove or replace the file"
        ) from None


def patch_cache_dir(paths: Sequence[str], *, grid: int, patch_fraction: float, resolution: int, cache_dir=None) -> Path:
    return (cache_root(cache_dir) / "vgse" / "patches"
            / f"{BACKBONE}-r{resolution}-g{grid}-p{patch_fraction:g}-sq-{file_list_hash(list(paths))}")


def extract_patch_features(
    paths: Sequence[str],
    *,
    grid: int = 3,
    patch_fraction: float = 0.5,
    resolution: int = 64,
    chunk_size: int = 64,
    cache_dir=None,
    progress: bool = True,
    desc: str = "VGSE patches",
    model=None,
) -> np.ndarray:
    """(n, N_t, 1280) float16 patch features of the images ``paths``, cached in resumable chunks.

    ``model``: an already loaded backbone (``zsl.features.load_efficientnet_lite0()``) to share
    between calls; loaded here when None.
    """
    import torch
    from tqdm.auto import tqdm

    from ..features.efficientnet import load_efficientnet_lite0, normalise_batch, penultimate, preprocess_pil

    paths = [str(p) for p in paths]
    if not paths:
        raise DataError("VGSE patches: empty image list")
    folder = patch_cache_dir(
        paths, grid=grid, patch_fraction=patch_fraction, resolution=resolution, cache_dir=cache_dir
    )
    merged = folder / "patches.npy"
    nt = grid * grid
    if merged.is_file():
        out = np.load(merged, allow_pickle=False)
        if out.shape == (len(paths), nt, FEATURE_DIM):
            return out
    folder.mkdir(parents=True, exist_ok=True)
    n = len(paths)
    n_chunks = (n + chunk_size - 1) // chunk_size
    shard = lambda i: folder / f"shard-{i:05d}.npy"
    todo = [i for i in range(n_chunks) if not shard(i).is_file()]
    done_images = n - sum(min(chunk_size, n - i * chunk_size) for i in todo)
    if todo:
        from PIL import Image

        model = model or load_efficientnet_lite0()
        bar = tqdm(total=n, initial=done_images, disable=not progress, file=sys.stderr, unit="img", desc=desc,
                   dynamic_ncols=True, mininterval=2.0)
        for i in todo:
            chunk = paths[i * chunk_size:(i + 1) * chunk_size]
            arrs = [
                preprocess_pil(Image.fromarray(p), resolution)
                for path in chunk
                for p in image_patches(path, grid, patch_fraction)
            ]
            feats = []
            with torch.inference_mode():
                for s in range(0, len(arrs), 192):
                    feats.append(
                        penultimate(model, normalise_batch(torch.from_numpy(np.stack(arrs[s : s + 192])))).numpy()
                    )
            with atomic_write(shard(i), "wb") as fh:
                np.save(fh, np.concatenate(feats).reshape(len(chunk), nt, -1).astype(np.float16))
            bar.update(len(chunk))
        bar.close()
    out = np.concatenate([np.load(shard(i), allow_pickle=False) for i in range(n_chunks)], axis=0)
    with atomic_write(merged, "wb") as fh:
        np.save(fh, out)
    for i in range(n_chunks):
        shard(i).unlink(missing_ok=True)
    return out


def _xlsa17_photo_root(folder: Path, cache_dir=None) -> Path:
    for name in PHOTO_ARCHIVES:
        if (folder / name).is_file():
            from ..data.image_folder import extract_tar_once

            return extract_tar_once(folder / name, cache_dir)
    if (folder / "jpg").is_dir():
        return folder
    raise DataError(f"{folder}: no photos for VGSE (expected one of {', '.join(PHOTO_ARCHIVES)} or a jpg/ folder)")


def dataset_image_paths(dataset, cache_dir=None) -> list[str]:
    """The photo file of every row of ``dataset.X`` (image-folder datasets, or xlsa17 with ``image_files``)."""
    paths = dataset.meta.get("paths")
    if paths is not None:
        if len(paths) != len(dataset.y):
            raise DataError(f"dataset {dataset.name!r}: {len(paths)} image paths for {len(dataset.y)} rows")
        return [str(p) for p in paths]
    if dataset.meta.get("format") == "xlsa17":
        import scipy.io as sio

        folder = Path(dataset.meta["source"])
        feats = folder / dataset.meta.get("features_file", "res101.mat")
        try:
            files = sio.loadmat(str(feats), variable_names=["image_files"]).get("image_files")
        except Exception as exc:  # noqa: BLE001 - unreadable file: one line naming it
            raise DataError(f"{feats}: cannot read image_files ({type(exc).__name__})") from None
        if files is None:
            raise DataError(f"{feats}: has no 'image_files' naming each row's photo; VGSE needs the photos "
                            "(FLO's lite0.mat has them)")
        names = [str(np.asarray(f).ravel()[0]) for f in np.asarray(files).ravel()]
        if len(names) != len(dataset.y):
            raise DataError(f"{feats}: image_files has {len(names)} entries for {len(dataset.y)} feature rows")
        root = _xlsa17_photo_root(folder, cache_dir)
        out = [str(root / n) for n in names]
        missing = [p for p in out[:: max(1, len(out) // 50)] if not Path(p).is_file()]
        if missing:
            raise DataError(f"{missing[0]}: photo named by {feats.name} is missing from {root}")
        return out
    raise DataError(f"dataset {dataset.name!r} has no image paths; VGSE needs photos (an image-folder dataset, "
                    "or an xlsa17 folder with image_files and a jpg archive, like flo)")


__all__ = ["BACKBONE", "FEATURE_DIM", "dataset_image_paths", "extract_patch_features", "image_patches",
           "patch_boxes", "patch_cache_dir"]
