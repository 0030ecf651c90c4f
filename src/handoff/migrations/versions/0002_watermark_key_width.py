"""Widen watermarks.jurisdiction: the key joins every jurisdiction of a batch.

A full transfer covers all 50 states and DC, a 152-character key; VARCHAR(8) made PostgreSQL
and MariaDB state databases refuse to record any delivery of more than three jurisdictions.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("watermarks") as batch:
        batch.alter_column("jurisdiction", existing_type=sa.String(8), type_=sa.String(255),
                           existing_nullable=False)  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("watermarks") as batch:
        batch.alter_column("jurisdiction", existing_type=sa.String(255), type_=sa.String(8),
                           existing_nullable=False)  # fmt: skip
