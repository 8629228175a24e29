"""Engine and session management: one engine per app, one session per request.

Services take a :class:`~sqlalchemy.orm.Session` argument so they run anywhere (tests,
scripts); inside a request ``get_session()`` gives the request's session, closed (and rolled
back if uncommitted) when the request ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

EXTENSION_KEY = "moodlens_db"
log = logging.getLogger("moodlens.db")

#: Engine options read from the app config (config.py), with their defaults.
ENGINE_OPTIONS: dict[str, int] = {
    "DATABASE_CONNECT_TIMEOUT": 5,
    "DATABASE_READ_TIMEOUT": 30,
    "DATABASE_WRITE_TIMEOUT": 30,
    "DATABASE_POOL_SIZE": 5,
    "DATABASE_POOL_TIMEOUT": 10,
}

#: MySQL error numbers that mean "the server is gone or unreachable", not "your query is wrong".
MYSQL_OUTAGE_ERRORS = frozenset({2002, 2003, 2005, 2006, 2011, 2013, 2014, 2045, 2055, 1040, 1053, 1205, 1213})


def is_outage(error: BaseException) -> bool:
    """True when ``error`` says the database cannot answer now (down, unreachable, timed out,
    pool exhausted, lock wait), so the client should retry later: 503, not 500."""
    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        original = error.orig
        args = getattr(original, "args", ())
        if args and isinstance(args[0], int) and args[0] in MYSQL_OUTAGE_ERRORS:
            return True
        # SQLite: another writer holds the file past the busy timeout.
        return isinstance(error, exc.OperationalError) and "database is locked" in str(original)
    return False


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


def make_engine(url: str, *, echo: bool = False, options: Mapping[str, Any] | None = None) -> Engine:
    """An engine with the per-backend settings we rely on (SQLite foreign keys; MySQL pool
    recycle, pre-ping and connect/read/write timeouts from ``options``, see ENGINE_OPTIONS)."""
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    settings = {key: int((options or {}).get(key) or default) for key, default in ENGINE_OPTIONS.items()}
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if backend == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_size=settings["DATABASE_POOL_SIZE"],
            max_overflow=settings["DATABASE_POOL_SIZE"],
            pool_timeout=settings["DATABASE_POOL_TIMEOUT"],
        )
        if backend in {"mysql", "mariadb"}:
            kwargs["connect_args"] = {
                "connect_timeout": settings["DATABASE_CONNECT_TIMEOUT"],
                "read_timeout": settings["DATABASE_READ_TIMEOUT"],
                "write_timeout": settings["DATABASE_WRITE_TIMEOUT"],
            }
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

    def __init__(self, url: str, *, echo: bool = False, options: Mapping[str, Any] | None = None) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, echo=echo, options=options)
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
            except exc.DBAPIError as error:  # the connection died with the request; the pool drops it
                log.warning("event=session_rollback_failed error=%s", type(error).__name__)
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
