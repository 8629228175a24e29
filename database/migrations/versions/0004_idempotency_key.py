"""Throughput: idempotent prediction POSTs, an index in newest-first order, per-user daily tallies.

* ``predictions.idempotency_key`` with a unique index on (user_id, idempotency_key): a retried
  POST that carries the same ``Idempotency-Key`` returns the stored prediction instead of
  storing a second one. NULLs never collide, so requests without a key are unaffected.
* ``ix_predictions_user_created_id`` (user_id, created_at, id) replaces (user_id, created_at):
  a history page is read in index order, newest first, ties broken by id.
* ``user_daily_tallies``: counts per user, UTC day, kind and emotion (with the confidence sum
  and how many used each modality), filled here from the existing rows and kept in step on
  every insert and delete, so statistics and history totals read O(days) rows, not O(rows).

Only plain ALTER TABLE ADD COLUMN and CREATE/DROP INDEX: no SQLite table rebuild, no cascades.

Revision ID: 0004_idempotency_key
Revises: 0003_login_sessions
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_idempotency_key"
down_revision: str | None = "0003_login_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _used(modality: str) -> str:
    return (
        f"SUM(CASE WHEN EXISTS (SELECT 1 FROM modality_results m WHERE m.prediction_id = p.id"
        f" AND m.modality = '{modality}' AND m.status = 'used') THEN 1 ELSE 0 END)"
    )


def upgrade() -> None:
    op.add_column("predictions", sa.Column("idempotency_key", sa.String(64), nullable=True))
    op.create_index("uq_predictions_user_idempotency_key", "predictions", ["user_id", "idempotency_key"], unique=True)
    op.create_index("ix_predictions_user_created_id", "predictions", ["user_id", "created_at", "id"])
    op.drop_index("ix_predictions_user_created", table_name="predictions")
    op.create_table(
        "user_daily_tallies",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("emotion", sa.String(16), primary_key=True),
        sa.Column("predictions", sa.Integer(), nullable=False),
        sa.Column("confidence_sum", sa.Double(), nullable=False),
        sa.Column("face_used", sa.Integer(), nullable=False),
        sa.Column("speech_used", sa.Integer(), nullable=False),
        sa.Column("text_used", sa.Integer(), nullable=False),
        **TABLE_ARGS,
    )
    op.execute(
        "INSERT INTO user_daily_tallies (user_id, day, kind, emotion, predictions, confidence_sum,"
        " face_used, speech_used, text_used)"
        " SELECT p.user_id, DATE(p.created_at), p.kind, p.emotion, COUNT(*), SUM(p.confidence),"
        f" {_used('face')}, {_used('speech')}, {_used('text')}"
        " FROM predictions p GROUP BY p.user_id, DATE(p.created_at), p.kind, p.emotion"
    )


def downgrade() -> None:
    op.drop_table("user_daily_tallies")
    op.create_index("ix_predictions_user_created", "predictions", ["user_id", "created_at"])
    op.drop_index("ix_predictions_user_created_id", table_name="predictions")
    op.drop_index("uq_predictions_user_idempotency_key", table_name="predictions")
    op.drop_column("predictions", "idempotency_key")
