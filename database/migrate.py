"""Run Alembic migrations from code (app start, tests) as well as from the ``alembic`` CLI."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from database.session import normalise_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations; the URL travels as an attribute (no %-escaping)."""
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.is_file() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.attributes["database_url"] = normalise_url(url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (creates every table on an empty database)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Take the database at ``url`` down to ``revision`` (``base`` drops our tables)."""
    command.downgrade(alembic_config(url), revision)
