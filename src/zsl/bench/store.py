"""The results store: one row per benchmark cell, in any SQLAlchemy database.

Default: SQLite at ``<cache root>/results.db``; any SQLAlchemy URL is accepted (``postgresql://...``
is routed to the ``psycopg`` v3 driver when that is what is installed).

A row holds the cell's task (``classification``, ``retrieval``, ``labelling``; stores written
before tasks existed get the column on opening, their rows read as ``classification``), its
identity (``cell_hash`` = hash of its resolved config, unique: a cell is stored at most once),
the resolved config and its hash, the code version, the dataset fingerprint, the metrics,
fit/predict/wall seconds and peak memory, or the error that stopped it.
Rows are written in one transaction after the cell finishes, so a crash (even SIGKILL) leaves
either the whole row or nothing; a resumed benchmark skips every hash already stored.

Opening is safe under concurrency: several benchmark processes started together on a new store
all create the schema with ``CREATE TABLE/INDEX IF NOT EXISTS`` (atomic in SQLite, which waits
for the write lock), and a creation that still loses a race (PostgreSQL's catalog can report a
duplicate for concurrent ``IF NOT EXISTS``) is retried after checking what the winner made. An
existing table must have every column zsl writes, or the store is refused before any work.
:meth:`ResultsStore.check_writable` inserts a row in a transaction it rolls back, so a read-only
store is reported before a benchmark computes results it could not keep.
"""
from __future__ import annotations

import datetime as _dt
import json
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ZSLError
from ..io import cache_root

METRIC_COLUMNS = ("acc", "U", "S", "H")


def normalise_url(url: str | None, cache_dir=None) -> str:
    """``None`` -> the default SQLite file; ``postgresql://`` -> the installed psycopg driver; paths -> SQLite."""
    if not url:
        return f"sqlite:///{cache_root(cache_dir) / 'results.db'}"
    if "://" not in url:  # a bare file path
        p = Path(url).expanduser()
        if p.is_dir():
            raise ZSLError(
                f"--store {p}: is a folder; give a database file (e.g. {p / 'results.db'}) or a SQLAlchemy URL"
            )
        _make_parent(p, url)
        return f"sqlite:///{p.resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg2  # noqa: F401 - only whether the driver is installed
        except ImportError:
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///file:"):
        _make_parent(Path(url[len("sqlite:///"):].split("?", 1)[0]).expanduser(), url)
    return url


def _make_parent(path: Path, url: str) -> None:
    from ..io import file_in_the_way

    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise ZSLError(f"database {url!r}: {blocker} is a file, not a folder; choose another place")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZSLError(f"cannot create the folder of results store {url!r}: {exc.strerror or exc}; "
                       "choose a writable place") from None


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
    except Exception as exc:  # noqa: BLE001 - bad URL or missing driver: one line naming the fix
        raise ZSLError(
            f"cannot open results store {url!r}: {exc} (use sqlite:///PATH or postgresql://USER@HOST:PORT/DB)"
        ) from None


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
            sa.Column("task", sa.String(16)),  # NULL in rows stored before tasks existed: classification
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
        self._create_schema()

    def _create_schema(self, attempts: int = 5) -> None:
        """Create the table and its indexes if missing, safely when several processes do it at once."""
        import sqlalchemy as sa
        from sqlalchemy.schema import CreateIndex, CreateTable

        error = None
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    conn.execute(CreateTable(self.table, if_not_exists=True))
                    for index in sorted(self.table.indexes, key=lambda i: i.name or ""):
                        conn.execute(CreateIndex(index, if_not_exists=True))
                error = None
                break
            except sa.exc.SQLAlchemyError as exc:  # lost a race in the catalog, or the store is unusable
                error = exc
                time.sleep(0.05 * (attempt + 1))
        try:
            columns = {c["name"] for c in sa.inspect(self.engine).get_columns("runs")}
        except (sa.exc.SQLAlchemyError, sa.exc.NoSuchTableError) as exc:
            first = str(error or exc).splitlines()[0]
            raise ZSLError(f"cannot open results store {self.url!r}: {first}") from None
        if {c.name for c in self.table.columns} - columns == {"task"}:  # a zsl store from before tasks
            columns = self._add_task_column()
        missing = [c.name for c in self.table.columns if c.name not in columns]
        if missing:
            raise ZSLError(
                f"results store {self.url!r} has a table 'runs' that is not a zsl results table (missing columns: "
                f"{', '.join(missing[:6])}); use another --store"
            )

    def _add_task_column(self) -> set[str]:
        """Upgrade a store written before tasks existed (``ALTER TABLE ... ADD COLUMN``, old rows NULL =
        classification); a concurrent opener may have added it first, which is fine."""
        import sqlalchemy as sa

        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE runs ADD COLUMN task VARCHAR(16)"))
        except sa.exc.SQLAlchemyError:
            pass  # added by another process, or not a zsl table: the column check below says which
        return {c["name"] for c in sa.inspect(self.engine).get_columns("runs")}

    def check_writable(self) -> None:
        """Raise a one-line error unless a row can be inserted (tried in a transaction that is rolled back)."""
        import sqlalchemy as sa

        probe = {
            "cell_hash": f"probe-{uuid.uuid4().hex[:24]}", "method": "-", "spec": "-", "dataset": "-", "split": "-",
            "setting": "-", "seed": 0, "status": "probe", "config_json": "{}",
        }
        try:
            with self.engine.connect() as conn:
                trans = conn.begin()
                try:
                    conn.execute(sa.insert(self.table).values(**probe))
                finally:
                    trans.rollback()
        except sa.exc.SQLAlchemyError as exc:
            raise ZSLError(
                f"results store {self.url!r} cannot be written "
                f"({str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}); "
                "check the file's permissions or pass --store with a writable place"
            ) from None

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
        row.setdefault("created_at", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
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
             datasets: Iterable[str] | None = None, grid: str | None = None,
             task: str | None = None) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        t = self.table
        q = sa.select(t).order_by(t.c.id)
        if task == "classification":
            q = q.where(sa.or_(t.c.task == task, t.c.task.is_(None)))
        elif task:
            q = q.where(t.c.task == task)
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
            try:
                r["metrics"] = json.loads(r["metrics_json"]) if r.get("metrics_json") else {}
                r["config"] = json.loads(r["config_json"]) if r.get("config_json") else {}
            except (TypeError, ValueError) as exc:
                raise ZSLError(
                    f"results store {self.url!r}: row {r.get('id')} holds malformed JSON ({exc}); the store was "
                    "edited or is damaged -- delete that row or use another --store"
                ) from None
        return out

    def count(self) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one())
