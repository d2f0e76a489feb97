"""``zsl extract IMAGES --out FILE.npz``: EfficientNet-Lite0 features of any folder of images.

IMAGES is a folder (class subfolders optional: ``root/<class>/*.jpg``, loose photos, or both, or a
``root/train/<class>`` + ``root/test/<class>`` tree), a ``.tar.gz`` of one, or a single image. The
command first says what it found, checks that ``--out`` can be written, then extracts.

Writes (atomically) ``features`` (n, 1280) float32, ``labels`` (n,) int64 class ids (-1 for images
outside a class folder), ``class_names`` (C,) str (sorted folder names; empty when there are none),
``paths`` (n,) str, ``resolution`` and ``backbone``; with ``--logits`` also ``logits`` (n, 1000).
For a train/test tree, ``parts`` (n,) says which part each row comes from. Images that fail to
decode are left out (a warning names them and says why) and listed in ``skipped`` with
``skip_reasons``. Features are cached (see :mod:`zsl.features`), so a rerun is instant, an
interrupted run resumes, and a repaired image is tried again.

``--ray-address ADDR`` computes the missing features on a Ray cluster (Ray Data, one model per
worker; :mod:`zsl.features.ray_extract`) into the same cache, so the output file is the same and
the local and Ray paths resume each other's runs. The images must be readable under the same paths
on every node.
"""
from __future__ import annotations

import numpy as np


def register(subparsers) -> None:
    from ..cli import add_data_args
    from ..features import DEFAULT_RESOLUTION

    p = subparsers.add_parser("extract", help="extract EfficientNet-Lite0 features of an image folder or .tar.gz",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("images", help="folder of images (class subfolders optional), a .tar.gz of one, or one image")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument(
        "--resolution", type=int, default=DEFAULT_RESOLUTION,
        help=f"input size in pixels (default {DEFAULT_RESOLUTION})",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=None, help="decoding processes (default: one per spare core)")
    p.add_argument("--logits", action="store_true", help="also store the ImageNet-1k logits")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="compute on this Ray cluster (auto, HOST:PORT, or local) into the same feature cache; "
                        "needs pip install 'zsl[ray]'")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="with --ray-address: model workers (default: one per cluster CPU)")
    add_data_args(p)
    p.set_defaults(func=_cmd_extract)


def _cmd_extract(args) -> int:
    import sys
    from pathlib import Path

    from ..data.image_folder import scan_images
    from ..errors import ZSLError
    from ..features import BACKBONE, extract
    from ..io import check_writable
    from ..persist import save_npz

    out = Path(args.out).expanduser()
    if out.suffix != ".npz":
        raise ZSLError(f"--out {out}: the output must be a .npz file")
    check_writable(out, what="--out", kind="file")  # before the extraction, whose result would be lost
    if args.ray_address is not None:
        from ..distributed import check_address, require_ray

        check_address(args.ray_address)
        require_ray(args.ray_address)  # a missing extra is one line, before scanning a large folder
    elif args.ray_workers is not None:
        raise ZSLError("--ray-workers needs --ray-address (the cluster to run the workers on)")
    for flag, value, lo in (("--batch-size", args.batch_size, 1), ("--num-workers", args.num_workers, 0),
                            ("--ray-workers", args.ray_workers, 1)):
        if value is not None and value < lo:
            raise ZSLError(f"{flag} must be >= {lo}, got {value}")
    if not 32 <= args.resolution <= 1024:
        raise ZSLError(f"--resolution must be in [32, 1024] pixels, got {args.resolution}")
    scan = scan_images(args.images, args.cache_dir)
    print(f"zsl extract: {scan.describe()}", file=sys.stderr, flush=True)
    rows = scan.rows
    ext = extract([r[1] for r in rows], resolution=args.resolution, batch_size=args.batch_size,
                  num_workers=args.num_workers, cache_dir=args.cache_dir, progress=not args.no_progress,
                  with_logits=args.logits, ray_address=args.ray_address, ray_workers=args.ray_workers)
    kept = [r for r, v in zip(rows, ext.valid) if v]
    if not kept:
        raise ZSLError(f"{args.images}: none of the {len(rows)} images could be decoded (first: {ext.skipped[0]}: "
                       f"{ext.skip_reasons[0]}); nothing written")
    arrays = dict(
        features=ext.features,
        labels=np.asarray([r[2] for r in kept], np.int64),
        class_names=np.asarray(scan.class_names, dtype=str),
        paths=np.asarray([r[1] for r in kept], dtype=str),
        skipped=np.asarray(ext.skipped, dtype=str),
        skip_reasons=np.asarray(ext.skip_reasons, dtype=str),
        resolution=np.int64(args.resolution),
        backbone=np.asarray(BACKBONE),
    )
    if any(r[0] != "all" for r in rows):
        arrays["parts"] = np.asarray([r[0] for r in kept], dtype=str)
    if args.logits:
        arrays["logits"] = ext.logits
    save_npz(out, **arrays)
    n_classes = len(scan.class_names)
    print(
        f"wrote {out}: {len(kept)} images x {ext.features.shape[1]} features, {n_classes} "
        f"class{'es' * (n_classes != 1)}"
        f"{f', {len(ext.skipped)} skipped' if ext.skipped else ''}",
        file=sys.stderr,
    )
    return 0
