"""Signed decisions: who started a batch, who approved it, who recorded an outcome or cleared a stop.

Authority moved from typed names to SSH signatures checked against the trust file. A batch keeps
the signed transfer request that started it; an approval row keeps the exact statement and
signature (the ledger entry beside it is what the gates read). The single ``controls`` row, a
switch anyone could flip back, goes: stops and their signed clearing live in the ledger.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("initiator_key", sa.String(64)))
        batch.add_column(sa.Column("request_statement", sa.Text()))
        batch.add_column(sa.Column("request_signature", sa.Text()))
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("key_fingerprint", sa.String(64)))
        batch.add_column(sa.Column("statement", sa.Text()))
        batch.add_column(sa.Column("signature", sa.Text()))
        batch.add_column(sa.Column("expires_at", sa.String(40)))
    op.drop_table("controls")


def downgrade() -> None:
    op.create_table(
        "controls",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(120), nullable=False),
        sa.Column("set_at", sa.String(40), nullable=False),
    )
    for table, cols in (("approvals", ("key_fingerprint", "statement", "signature", "expires_at")),
                        ("batches", ("initiator_key", "request_statement", "request_signature"))):  # fmt: skip
        with op.batch_alter_table(table) as batch:
            for c in cols:
                batch.drop_column(c)
