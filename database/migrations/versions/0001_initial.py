"""Initial schema: users, api_tokens, predictions, modality_results.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen on purpose: a migration must not change when the code's label list changes.
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _timestamp() -> sa.types.TypeEngine:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _json_text() -> sa.types.TypeEngine:
    return sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def _probabilities() -> list[sa.Column]:
    return [sa.Column(f"p_{emotion}", sa.Double(), nullable=False) for emotion in EMOTIONS]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("consent_given_at", _timestamp(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("last_failed_login_at", _timestamp(), nullable=True),
        sa.Column("locked_until", _timestamp(), nullable=True),
        sa.Column("last_login_at", _timestamp(), nullable=True),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sqlite_autoincrement=True,  # ids of deleted accounts are never issued again
        **TABLE_ARGS,
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("last_used_at", _timestamp(), nullable=True),
        sa.Column("revoked_at", _timestamp(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        **TABLE_ARGS,
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("emotion", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("fusion_strategy", sa.String(32), nullable=True),
        sa.Column("fusion_weights", _json_text(), nullable=True),
        sa.Column("fusion_explanation", _json_text(), nullable=True),
        sa.Column("input_summary", _json_text(), nullable=True),
        *_probabilities(),
        sqlite_autoincrement=True,
        **TABLE_ARGS,
    )
    op.create_index("ix_predictions_user_created", "predictions", ["user_id", "created_at"])
    op.create_index("ix_predictions_user_emotion_created", "predictions", ["user_id", "emotion", "created_at"])
    op.create_index("ix_predictions_user_kind_created", "predictions", ["user_id", "kind", "created_at"])
    op.create_table(
        "modality_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("prediction_id", sa.Integer(), sa.ForeignKey("predictions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("emotion", sa.String(16), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("model_name", sa.String(100), nullable=True),
        sa.Column("model_version", sa.String(50), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("details", _json_text(), nullable=True),
        sa.Column("input_summary", _json_text(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.String(500), nullable=True),
        *_probabilities(),
        **TABLE_ARGS,
    )
    op.create_index("ix_modality_results_prediction_modality", "modality_results", ["prediction_id", "modality"])
    op.create_index(
        "ix_modality_results_modality_status_prediction",
        "modality_results",
        ["modality", "status", "prediction_id"],
    )


def downgrade() -> None:
    op.drop_table("modality_results")
    op.drop_table("predictions")
    op.drop_table("api_tokens")
    op.drop_table("users")
