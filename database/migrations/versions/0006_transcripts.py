"""Transcripts: the words of a recording, stored with its prediction (one row per prediction).

Personal data like a typed text: deleted with the prediction (ON DELETE CASCADE, and the
services delete it explicitly) and with the account.

Revision ID: 0006_transcripts
Revises: 0005_video_and_jobs
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006_transcripts"
down_revision: str | None = "0005_video_and_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    json_text = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("prediction_id", sa.Integer(), sa.ForeignKey("predictions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("language_probability", sa.Double(), nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.Column("segments", json_text, nullable=True),
        sa.Column("used_as_text", sa.Boolean(), nullable=False),
        sa.Column("model_name", sa.String(100), nullable=True),
        sa.Column("model_version", sa.String(100), nullable=True),
        sa.UniqueConstraint("prediction_id", name="uq_transcripts_prediction_id"),
        **MYSQL_TABLE_ARGS,
    )


def downgrade() -> None:
    op.drop_table("transcripts")
