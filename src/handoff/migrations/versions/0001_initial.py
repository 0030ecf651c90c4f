"""Initial state schema: every table as of handoff 0.1.

Revision ID: 0001
Revises:

Frozen: later schema changes get their own revision; this file never changes, so a database
created by it and one upgraded through later revisions end up identical.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("order_ref", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(120), nullable=False),
        sa.Column("order_version", sa.Integer(), nullable=False),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("suite_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text()),
        sa.Column("initiator", sa.String(120), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("jurisdictions", sa.JSON(), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("source_tables", sa.JSON(), nullable=False),
        sa.Column("query_sql", sa.Text(), nullable=False),
        sa.Column("query_hash", sa.String(64), nullable=False),
        sa.Column("snapshot_at", sa.String(40), nullable=False),
        sa.Column("since", sa.String(40)),
        sa.Column("watermark", sa.String(40)),
        sa.Column("rows_extracted", sa.BigInteger(), nullable=False),
        sa.Column("rows_quarantined", sa.BigInteger(), nullable=False),
        sa.Column("rows_staged", sa.BigInteger(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("quarantined_by_rule", sa.JSON(), nullable=False),
        sa.Column("validation", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("staging_path", sa.Text()),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("bucket", sa.String(63)),
    )
    op.create_table(
        "batch_files",
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "row_quarantine",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("medicaid_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(120), nullable=False),
    )
    op.create_index("ix_row_quarantine_batch_id", "row_quarantine", ["batch_id"])
    op.create_table(
        "ledger",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("batch_id", sa.String(64)),
        sa.Column("order_ref", sa.String(128)),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_ledger_batch_id", "ledger", ["batch_id"])
    op.create_table(
        "hearings",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("order_id", sa.String(120), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(120), nullable=False),
        sa.Column("added_at", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(20)),
        sa.Column("outcome_by", sa.String(120)),
        sa.Column("outcome_at", sa.String(40)),
        sa.Column("outcome_order_ref", sa.String(128)),
    )
    op.create_table(
        "controls",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(120), nullable=False),
        sa.Column("set_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("approver", sa.String(120), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("order_ref", sa.String(128), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_approvals_batch_id", "approvals", ["batch_id"])
    op.create_table(
        "deliveries",
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.id"), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("completed_at", sa.String(40)),
        sa.Column("manifest_key", sa.Text()),
        sa.Column("objects", sa.JSON()),
    )
    op.create_table(
        "watermarks",
        sa.Column("order_id", sa.String(120), primary_key=True),
        sa.Column("jurisdiction", sa.String(8), primary_key=True),
        sa.Column("watermark", sa.String(40), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for name in [
        "watermarks",
        "deliveries",
        "approvals",
        "controls",
        "hearings",
        "ledger",
        "row_quarantine",
        "batch_files",
        "batches",
    ]:
        op.drop_table(name)
