"""The results store: one row per benchmark cell, in any SQLAlchemy database.

Default: SQLite at ``<cache root>/results.db``; any SQLAlchemy URL is accepted (``postgresql://...``
is routed to the ``psycopg`` v3 driver when that is what is installed).

A row holds the cell's identity (``cell_hash`` = hash of its resolved config, unique: a cell is
stored at most once), the resolved config and its hash, the code version, the dataset
fingerprint, the metrics, fit/predict/wall seconds and peak memory, or the error that stopped it.
Rows are written in one transaction after the cell finishes, so a crash (even SIGKILL) leaves
either the whole row or nothing; a resumed benchmark skips every hash already stored.
"""
from __future__ import annotations

import datetime as _dt
import json
import socket
from pathlib import Path
from typing import Any, Iterable

from ..errors import ZSLError
from ..io import cache_root

METRIC_COLUMNS = ("acc", "U", "S", "H")


def normalise_url(url: str | None, cache_dir=None) -> str:
    """``None`` -> the default SQLite file; ``postgresql://`` -> the installed psycopg driver; paths -> SQLite."""
    if not url:
        return f"sqlite:///{cache_root(cache_dir) / 'results.db'}"
    if "://" not in url:  # a bare file path
        p = Path(url).expanduser()
        p.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{p.resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url


def make_engine(url: str):
    """A SQLAlchemy engine; SQLite waits for locks instead of failing (several writers share a file)."""
    from ..errors import require_extra

    sa = require_extra("sqlalchemy", "bench")
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 60}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        return sa.create_engine(url, **kwargs)
    except Exception as exc:  # bad URL or missing driver: one line naming the fix
        raise ZSLError(f"cannot open results store {url!r}: {exc} (use sqlite:///PATH or postgresql://USER@HOST:PORT/DB)") from None


class ResultsStore:
    """``ResultsStore(url)``: ``done_hashes()``, ``insert(row)``, ``rows(...)``."""

    def __init__(self, url: str | None = None, *, cache_dir=None):
        import sqlalchemy as sa

        self.url = normalise_url(url, cache_dir)
        self.engine = make_engine(self.url)
        md = sa.MetaData()
        self.table = sa.Table(
            "runs",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("cell_hash", sa.String(32), nullable=False, unique=True),
            sa.Column("grid", sa.String(64)),
            sa.Column("method", sa.String(64), nullable=False, index=True),
            sa.Column("spec", sa.String(128), nullable=False),
            sa.Column("dataset", sa.String(64), nullable=False, index=True),
            sa.Column("split", sa.String(64), nullable=False),
            sa.Column("setting", sa.String(8), nullable=False),
            sa.Column("seed", sa.Integer, nullable=False),
            sa.Column("semantics", sa.String(64)),
            sa.Column("selection", sa.String(32)),
            sa.Column("status", sa.String(8), nullable=False),  # "ok" | "error"
            sa.Column("error", sa.Text),
            sa.Column("config_json", sa.Text, nullable=False),
            sa.Column("config_hash", sa.String(32)),
            sa.Column("code_version", sa.String(64)),
            sa.Column("dataset_fingerprint", sa.String(32)),
            sa.Column("metrics_json", sa.Text),
            *[sa.Column(m, sa.Float) for m in METRIC_COLUMNS],
            sa.Column("fit_seconds", sa.Float),
            sa.Column("predict_seconds", sa.Float),
            sa.Column("wall_seconds", sa.Float),
            sa.Column("peak_rss_mb", sa.Float),
            sa.Column("host", sa.String(128)),
            sa.Column("created_at", sa.String(32)),
        )
        try:
            md.create_all(self.engine)
        except Exception as exc:
            raise ZSLError(f"cannot open results store {self.url!r}: {str(exc).splitlines()[0]}") from None

    # ------------------------------------------------------------------------------------
    def done_hashes(self, *, include_errors: bool = True) -> set[str]:
        import sqlalchemy as sa

        q = sa.select(self.table.c.cell_hash)
        if not include_errors:
            q = q.where(self.table.c.status == "ok")
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(q)}

    def insert(self, row: dict[str, Any], *, replace: bool = False) -> bool:
        """Insert one finished cell in a single transaction; False when the hash is already stored
        (another worker finished it first). ``replace`` swaps an existing row (used to retry errors)."""
        import sqlalchemy as sa

        row = dict(row)
        row.setdefault("host", socket.gethostname())
        row.setdefault("created_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        for key in ("config_json", "metrics_json"):
            if key in row and not isinstance(row[key], str):
                row[key] = json.dumps(row[key], sort_keys=True, default=str)
        try:
            with self.engine.begin() as conn:  # one transaction: the whole row or nothing
                if replace:
                    conn.execute(sa.delete(self.table).where(self.table.c.cell_hash == row["cell_hash"]))
                conn.execute(sa.insert(self.table).values(**row))
        except sa.exc.IntegrityError:
            return False
        return True

    def rows(self, *, status: str | None = None, methods: Iterable[str] | None = None,
             datasets: Iterable[str] | None = None, grid: str | None = None) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        t = self.table
        q = sa.select(t).order_by(t.c.id)
        if status:
            q = q.where(t.c.status == status)
        if methods:
            q = q.where(t.c.method.in_(list(methods)))
        if datasets:
            q = q.where(t.c.dataset.in_(list(datasets)))
        if grid:
            q = q.where(t.c.grid == grid)
        with self.engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(q)]
        for r in out:
            r["metrics"] = json.loads(r["metrics_json"]) if r.get("metrics_json") else {}
            r["config"] = json.loads(r["config_json"]) if r.get("config_json") else {}
        return out

    def count(self) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one())
