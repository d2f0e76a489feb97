"""``zsl label IMAGE_OR_DIR... [--vocabulary FILE|imagenet21k] [--top-k 5] [--exclude-seen] [--json]``.

Zero-shot labelling with ConSE over the ImageNet-1k EfficientNet-Lite0 classifier (see
:mod:`zsl.labelling`). Unreadable images are reported on stderr and skipped; vocabulary labels with
no word vector are reported on stderr and the others are still ranked. Exit code 0 when at least
one image was labelled, 2 when none could be.
"""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("label", help="zero-shot label images against any vocabulary (ConSE over the ImageNet-1k classifier)")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (searched recursively)")
    p.add_argument("--vocabulary", default="imagenet21k",
                   help="'imagenet21k' (default: the 21k ImageNet synsets) or a text file with one label per line "
                        "('a, b' on a line are synonyms of one label)")
    p.add_argument("--top-k", type=int, default=5, help="labels printed per image (default 5)")
    p.add_argument("--exclude-seen", action="store_true", help="drop labels that are ImageNet-1k classes (truly zero-shot answers)")
    p.add_argument("-T", "--T", dest="T", type=int, default=10, help="ConSE: number of top classifier labels combined (default 10; 0 = all)")
    p.add_argument("--resolution", type=int, default=224, help="input resolution of the classifier in pixels (default 224)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image (JSON lines) on stdout")
    p.add_argument("--cache-dir", default=None, help="where the vocabulary embeddings are cached (default: $ZSL_CACHE)")
    p.set_defaults(func=_cmd_label)


def _cmd_label(args) -> int:
    from ..errors import ZSLError
    from ..labelling import ZeroShotLabeller, expand_images

    if args.top_k < 1:
        raise ZSLError(f"--top-k must be >= 1, got {args.top_k}")
    if args.T < 0:
        raise ZSLError(f"-T must be >= 0 (0 = all classes), got {args.T}")
    paths, problems = expand_images(args.images)
    for msg in problems:
        print(f"zsl: warning: {msg}", file=sys.stderr)
    if not paths:
        raise ZSLError("no images to label: " + "; ".join(problems))
    labeller = ZeroShotLabeller(args.vocabulary, T=args.T or None, exclude_seen=args.exclude_seen,
                                resolution=args.resolution, cache_dir=args.cache_dir)
    if labeller.missing:
        shown = ", ".join(repr(m) for m in labeller.missing[:10])
        more = f" and {len(labeller.missing) - 10} more" if len(labeller.missing) > 10 else ""
        print(f"zsl: warning: {len(labeller.missing)} vocabulary label(s) have no GloVe vector and cannot be ranked: "
              f"{shown}{more}", file=sys.stderr)
    if args.exclude_seen:
        print(f"zsl: {labeller.excluded} ImageNet-1k label(s) excluded; ranking {len(labeller.vocabulary)} labels",
              file=sys.stderr)
    results, skipped = labeller.label(paths, args.top_k, progress=not args.json and len(paths) > 8)
    for s in skipped:
        print(f"zsl: warning: {s}: not a readable image, skipped", file=sys.stderr)
    for r in results:
        if args.json:
            print(json.dumps(r.to_json()))
        else:
            print(f"{r.image}  (confidence {r.confidence:.2f})")
            for name, score, _ in r.labels:
                print(f"  {score:.3f}  {name}")
    if not results:
        raise ZSLError(f"none of the {len(paths)} image(s) could be read")
    return 0
