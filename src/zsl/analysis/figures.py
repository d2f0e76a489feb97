"""Figure and table helpers shared by the analyses (matplotlib on the Agg backend, atomic writes)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_write


def pyplot():
    from ..errors import require_extra

    require_extra("matplotlib", "plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_markdown(path: Path, text: str) -> Path:
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
