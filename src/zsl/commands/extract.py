"""``zsl extract IMAGE_DIR_OR_TAR --out FILE.npz``: EfficientNet-Lite0 features of an image folder.

Writes (atomically) ``features`` (n, 1280) float32, ``labels`` (n,) int64 class ids, ``class_names``
(C,) str (sorted folder names), ``paths`` (n,) str, ``resolution`` and ``backbone``; with ``--logits``
also ``logits`` (n, 1000). For a ``root/train/<class>`` + ``root/test/<class>`` tree, ``parts`` (n,)
says which part each row comes from. Images that fail to decode are left out (a warning names them)
and listed in ``skipped``. Features are cached (see :mod:`zsl.features`), so a rerun is instant and
an interrupted run resumes.
"""
from __future__ import annotations

import numpy as np


def register(subparsers) -> None:
    from ..cli import add_data_args
    from ..features import DEFAULT_RESOLUTION

    p = subparsers.add_parser("extract", help="extract EfficientNet-Lite0 features of an image folder or .tar.gz",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("images", help="folder of class subfolders (root/<class>/*.jpg) or a .tar.gz of one")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION, help=f"input size in pixels (default {DEFAULT_RESOLUTION})")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=None, help="decoding processes (default: one per spare core)")
    p.add_argument("--logits", action="store_true", help="also store the ImageNet-1k logits")
    p.add_argument("--no-progress", action="store_true")
    add_data_args(p)
    p.set_defaults(func=_cmd_extract)


def _cmd_extract(args) -> int:
    import sys
    from pathlib import Path

    from ..data.image_folder import resolve_image_root, scan_image_folder
    from ..errors import ZSLError
    from ..features import BACKBONE, extract
    from ..io import atomic_save_npz

    out = Path(args.out)
    if out.suffix != ".npz":
        raise ZSLError(f"--out {out}: the output must be a .npz file")
    if out.exists() and out.is_dir():
        raise ZSLError(f"--out {out}: is a folder; give a file name ending in .npz")
    root = resolve_image_root(args.images, args.cache_dir)
    names, parts = scan_image_folder(root)
    rows = [(part, path, cid) for part, items in parts.items() for path, cid in items]
    ext = extract([r[1] for r in rows], resolution=args.resolution, batch_size=args.batch_size,
                  num_workers=args.num_workers, cache_dir=args.cache_dir, progress=not args.no_progress,
                  with_logits=args.logits)
    kept = [r for r, v in zip(rows, ext.valid) if v]
    arrays = dict(
        features=ext.features,
        labels=np.asarray([r[2] for r in kept], np.int64),
        class_names=np.asarray(names),
        paths=np.asarray([r[1] for r in kept]),
        skipped=np.asarray(ext.skipped, dtype=str),
        resolution=np.int64(args.resolution),
        backbone=np.asarray(BACKBONE),
    )
    if "all" not in parts:
        arrays["parts"] = np.asarray([r[0] for r in kept])
    if args.logits:
        arrays["logits"] = ext.logits
    atomic_save_npz(out, **arrays)
    print(f"wrote {out}: {len(kept)} images x {ext.features.shape[1]} features, {len(names)} classes"
          f"{f', {len(ext.skipped)} skipped' if ext.skipped else ''}", file=sys.stderr)
    return 0
