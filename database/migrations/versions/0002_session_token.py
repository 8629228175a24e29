"""Login sessions carry a per-account token: users.session_token.

Every existing account gets its own random token, so nothing is lost on upgrade; sessions
issued before it (which named only the account id) have to log in again once.

New SQLite databases create users and predictions with AUTOINCREMENT (0001), so a deleted
account's id is never reused. Existing SQLite tables are left as they are: rebuilding them
would delete the rows that reference them (SQLite runs ON DELETE CASCADE when a table is
dropped), and the session token already stops an old session from opening a newer account
that got the same id.

Revision ID: 0002_session_token
Revises: 0001_initial
Create Date: 2026-11-22
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_session_token"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_token", sa.String(64), nullable=False, server_default=""))
    users = sa.table("users", sa.column("id", sa.Integer()), sa.column("session_token", sa.String(64)))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id).where(users.c.session_token == "")).all():
        connection.execute(users.update().where(users.c.id == user_id).values(session_token=secrets.token_urlsafe(24)))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table rebuild, so no cascades.
    op.drop_column("users", "session_token")
