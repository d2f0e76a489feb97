"""Size of the source tree: total lines under a directory and its longest functions.

Used for the structure notes in ``benchmarks/results/structure.md`` (issue 19). A function's length is
counted from its ``def`` line (decorators excluded) to its last line, as ``ast`` reports them; nested
functions are listed on their own and also count inside their parent.

    python benchmarks/code_stats.py [ROOT] [--top N]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def count_lines(root: Path) -> tuple[int, int]:
    """(number of .py files, total number of lines) under ``root``."""
    files = sorted(root.rglob("*.py"))
    return len(files), sum(len(path.read_text(encoding="utf-8").splitlines()) for path in files)


def function_lengths(root: Path) -> list[tuple[int, str]]:
    """(length in lines, ``path:qualified.name``) of every function and method under ``root``."""
    found: list[tuple[int, str]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _collect(tree, [], path.relative_to(root.parent).as_posix(), found)
    return found


def _collect(node: ast.AST, scope: list[str], where: str, found: list[tuple[int, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = ".".join([*scope, child.name])
            found.append((child.end_lineno - child.lineno + 1, f"{where}:{name}"))
            _collect(child, [*scope, child.name], where, found)
        elif isinstance(child, ast.ClassDef):
            _collect(child, [*scope, child.name], where, found)
        else:
            _collect(child, scope, where, found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="src/zsl", type=Path)
    parser.add_argument("--top", type=int, default=10, help="how many of the longest functions to list")
    args = parser.parse_args()
    n_files, n_lines = count_lines(args.root)
    print(f"{args.root}: {n_lines} lines in {n_files} files")
    print(f"longest {args.top} functions:")
    for length, name in sorted(function_lengths(args.root), reverse=True)[: args.top]:
        print(f"{length:5d}  {name}")


if __name__ == "__main__":
    main()
