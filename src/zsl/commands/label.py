"""``zsl label IMAGE_OR_DIR... [--vocabulary FILE|imagenet21k] [--space NAME] [--top-k 5] [--exclude-seen] [--json]``.

Zero-shot labelling with ConSE over the ImageNet-1k EfficientNet-Lite0 classifier (see
:mod:`zsl.labelling`). On stderr: unreadable images (skipped), vocabulary labels with no vector
(the others are still ranked), merged duplicate names, excluded ImageNet-1k labels, words WordNet
does not know. Per image, a note (text) or ``far_from_classifier`` (JSON) says when nothing in the
vocabulary is close to what the classifier saw. Exit code 0 when at least one image was labelled,
2 when none could be.
"""
from __future__ import annotations

import json
import sys


def _shown(items, n: int = 10) -> str:
    items = list(items)
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(repr(x) for x in items[:n]) + more


def register(subparsers) -> None:
    from ..labelling import DEFAULT_SPACE
    from ..semantics.label_spaces import SPACES

    p = subparsers.add_parser(
        "label", help="zero-shot label images against any vocabulary (ConSE over the ImageNet-1k classifier)"
    )
    p.add_argument(
        "images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (searched recursively)"
    )
    p.add_argument("--vocabulary", default="imagenet21k",
                   help="'imagenet21k' (default: the 21k ImageNet synsets) or a text file with one label per line "
                        "('a, b' on a line are synonyms of one label)")
    p.add_argument("--space", default=DEFAULT_SPACE, metavar="NAME",
                   help=f"label space the classes and labels are compared in: {', '.join(SPACES)} "
                        f"(default {DEFAULT_SPACE}, chosen on a development set)")
    p.add_argument("--top-k", type=int, default=5, help="labels printed per image (default 5)")
    p.add_argument(
        "--exclude-seen", action="store_true", help="drop labels that are ImageNet-1k classes (truly zero-shot answers)"
    )
    p.add_argument(
        "-T", "--T", dest="T", type=int, default=10,
        help="ConSE: number of top classifier labels combined (default 10; 0 = all)",
    )
    p.add_argument(
        "--resolution", type=int, default=224, help="input resolution of the classifier in pixels (default 224)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per image (JSON lines) on stdout")
    p.add_argument(
        "--cache-dir", default=None, help="where the label-space embeddings are cached (default: $ZSL_CACHE)"
    )
    p.set_defaults(func=_cmd_label)


def _cmd_label(args) -> int:
    from ..errors import ZSLError
    from ..labelling import ZeroShotLabeller, expand_images
    from ..semantics.label_spaces import parse_space

    if args.top_k < 1:
        raise ZSLError(f"--top-k must be >= 1, got {args.top_k}")
    if args.T < 0:
        raise ZSLError(f"-T must be >= 0 (0 = all classes), got {args.T}")
    parse_space(args.space)
    paths, problems = expand_images(args.images)
    for msg in problems:
        print(f"zsl: warning: {msg}", file=sys.stderr)
    if not paths:
        raise ZSLError("no images to label: " + "; ".join(problems))
    labeller = ZeroShotLabeller(args.vocabulary, space=args.space, T=args.T or None, exclude_seen=args.exclude_seen,
                                resolution=args.resolution, cache_dir=args.cache_dir, progress=not args.json)
    V = labeller.vocabulary
    if labeller.missing:
        print(f"zsl: warning: {len(labeller.missing)} vocabulary label(s) have no vector in space {args.space!r} and "
              f"cannot be ranked: {_shown(labeller.missing)}", file=sys.stderr)
    if V.duplicates:
        print(f"zsl: {len(V.duplicates)} label name(s) occur more than once and were merged into one label each: "
              f"{_shown(f'{n} (x{c})' for n, c in V.duplicates.items())}", file=sys.stderr)
    fallback = sorted({V.names[o] for o, h in zip(V.vectors.owner.tolist(), V.vectors.how) if h == "fallback"})
    if fallback:
        print(f"zsl: {len(fallback)} label(s) have words WordNet does not know; placed by their nearest ImageNet-1k "
              f"classes in MiniLM: {_shown(fallback)}", file=sys.stderr)
    if args.exclude_seen:
        print(f"zsl: {labeller.excluded} ImageNet-1k label(s) excluded; ranking {len(V)} labels", file=sys.stderr)
    results, skipped = labeller.label(paths, args.top_k, progress=not args.json and len(paths) > 8)
    for s in skipped:
        print(f"zsl: warning: {s}: not a readable image, skipped", file=sys.stderr)
    for r in results:
        if args.json:
            print(json.dumps(r.to_json()))
        else:
            print(f"{r.image}  (confidence {r.confidence:.2f})")
            if r.far_reason == "label":
                print(
                    f"  note: far from what the classifier knows -- its nearest class to {r.labels[0][0]!r} is "
                    f"{r.nearest_class!r} (known {r.known:.2f} < "
                    f"{labeller.far_threshold:.2f}); treat these labels as guesses"
                )
            elif r.far_reason == "image":
                print(f"  note: no label is close to what the classifier sees (best score {r.labels[0][1]:.2f} < "
                      f"{labeller.score_threshold:.2f}); treat these labels as guesses")
            for name, score, _ in r.labels:
                print(f"  {score:.3f}  {name}")
    n_far = sum(r.far for r in results)
    if n_far:
        print(f"zsl: note: {n_far} of {len(results)} image(s) flagged: their best label is far from every class the "
              "ImageNet-1k classifier knows, or nothing in the vocabulary is close to what it sees", file=sys.stderr)
    if not results:
        raise ZSLError(f"none of the {len(paths)} image(s) could be read")
    return 0
