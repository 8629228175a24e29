"""Batch jobs remember whether their recordings and clips are transcribed (``transcribe=true``).

The flag is kept on the job row so a job restarted by the worker transcribes as asked.

Revision ID: 0007_job_transcribe
Revises: 0006_transcripts
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_job_transcribe"
down_revision: str | None = "0006_transcripts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("transcribe", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("jobs", "transcribe")
