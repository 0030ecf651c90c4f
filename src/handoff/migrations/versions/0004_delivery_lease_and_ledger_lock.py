"""A delivery lease on each batch, and one lock row that serialises ledger appends.

``delivering`` meant both "in flight" and "crashed, resume me"; the lease (owner, until) tells
them apart. ``ledger_lock`` holds one row that every append locks (SELECT ... FOR UPDATE), so two
writers on PostgreSQL or MariaDB never read the same head and collide on the next sequence number.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(120)))
        batch.add_column(sa.Column("lease_until", sa.String(40)))
    lock = op.create_table("ledger_lock", sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False))
    op.bulk_insert(lock, [{"id": 1}])


def downgrade() -> None:
    op.drop_table("ledger_lock")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
