"""Engine and session management: one engine per app, one session per request.

Services take a :class:`~sqlalchemy.orm.Session` argument so they run anywhere (tests,
scripts); inside a request ``get_session()`` gives the request's session, closed (and rolled
back if uncommitted) when the request ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

EXTENSION_KEY = "moodlens_db"


def normalise_url(url: str) -> str:
    """Make MySQL URLs use PyMySQL with utf8mb4 (so emoji survive) and create SQLite's folder."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in {"mysql", "mariadb"}:
        if parsed.drivername in {"mysql", "mariadb"}:
            parsed = parsed.set(drivername=f"{backend}+pymysql")
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    elif backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the per-backend settings we rely on (SQLite foreign keys, MySQL pool recycle)."""
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if backend == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_recycle=1800, pool_size=5, max_overflow=10)
    engine = create_engine(url, **kwargs)
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE needs it
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


class Database:
    """Holds the engine and session factory of one app."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, echo=echo)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False, future=True)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query (used by /readyz)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session outside a request (scripts, streaming, tests); rolled back on error."""
        session = self.session_factory()
        try:
            yield session
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def init_app(app: Flask, database: Database) -> None:
    """Attach ``database`` to ``app`` and close the request session when each request ends."""
    app.extensions[EXTENSION_KEY] = database

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            try:
                session.rollback()
            finally:
                session.close()


def get_database(app: Flask | None = None) -> Database:
    """The app's :class:`Database` (the current app when none is given)."""
    return (app or current_app).extensions[EXTENSION_KEY]


def get_session() -> Session:
    """The current request's session (created on first use, closed at teardown)."""
    session: Session | None = g.get("db_session")
    if session is None:
        session = get_database().session_factory()
        g.db_session = session
    return session
