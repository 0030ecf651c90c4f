"""Initial state schema: every table as of handoff 0.1.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from handoff.state import metadata

revision = "0001"
down_revision = None

# The first revision creates the tables as declared in handoff.state at 0.1. Later schema
# changes get their own revision with explicit op.* calls, never an edit here.
_TABLES = (
    "batches",
    "batch_files",
    "row_quarantine",
    "ledger",
    "hearings",
    "controls",
    "approvals",
    "deliveries",
    "watermarks",
)


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables[t] for t in _TABLES])


def downgrade() -> None:
    bind = op.get_bind()
    metadata.drop_all(bind, tables=[metadata.tables[t] for t in reversed(_TABLES)])
