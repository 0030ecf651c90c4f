"""Batch records in the state database: what was extracted, validated and staged, and where it stands.

Statuses and the transitions between them live in ``status``; ``set_status`` is the only way a
status changes, and it refuses what the state machine does not allow.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from handoff.errors import NotFound
from handoff.extract.stage import StagedFile
from handoff.state.schema import batch_files, batches, iso, lock_for_decision
from handoff.state.status import Lease, Status, check


@dataclass
class Batch:
    id: str
    order_ref: str
    order_id: str
    order_version: int
    policy_hash: str
    suite_hash: str
    status: str
    status_reason: str | None
    initiator: str
    created_at: str
    updated_at: str
    jurisdictions: list[str]
    source_url: str
    source_tables: list[str]
    query_sql: str
    query_hash: str
    snapshot_at: str
    since: str | None
    watermark: str | None
    rows_extracted: int
    rows_quarantined: int
    rows_staged: int
    excluded: dict[str, Any]
    quarantined_by_rule: dict[str, int]
    validation: dict[str, Any]
    content_hash: str | None
    staging_path: str | None
    flow_run_id: str | None
    bucket: str | None = None
    initiator_key: str | None = None
    request_statement: str | None = None
    request_signature: str | None = None
    lease_owner: str | None = None
    lease_until: str | None = None
    files: list[StagedFile] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "files"}
        d["files"] = [f.as_dict() for f in self.files]
        return d


def insert(conn: sa.Connection, record: dict[str, Any], files: list[StagedFile]) -> None:
    conn.execute(batches.insert().values(**record))
    if files:
        conn.execute(batch_files.insert(), [{"batch_id": record["id"], **f.as_dict()} for f in files])


def get(conn: sa.Connection, batch_id: str) -> Batch:
    row = conn.execute(sa.select(batches).where(batches.c.id == batch_id)).mappings().first()
    if row is None:
        raise NotFound(f"no batch {batch_id!r}; `handoff status` lists batches")
    files = [
        StagedFile(r.name, r.rows, r.bytes, r.sha256)
        for r in conn.execute(
            sa.select(batch_files).where(batch_files.c.batch_id == batch_id).order_by(batch_files.c.name)
        )
    ]
    return Batch(**dict(row), files=files)


def find(conn: sa.Connection, prefix: str) -> Batch:
    """Accept a full batch id or an unambiguous prefix of one."""
    ids = conn.execute(sa.select(batches.c.id).where(batches.c.id.like(f"{prefix}%"))).scalars().all()
    if len(ids) > 1 and prefix not in ids:
        raise NotFound(f"batch prefix {prefix!r} is ambiguous: {', '.join(sorted(ids)[:5])}")
    return get(conn, prefix if prefix in ids else (ids[0] if ids else prefix))


def ids(conn: sa.Connection, statuses: list[str] | None = None) -> list[str]:
    """Batch ids, oldest first, optionally only those in ``statuses``."""
    stmt = sa.select(batches.c.id).order_by(batches.c.created_at)
    if statuses:
        stmt = stmt.where(batches.c.status.in_(statuses))
    return list(conn.execute(stmt).scalars())


def set_status(conn: sa.Connection, batch_id: str, status: Status, reason: str | None, now: dt.datetime,
               lease: Lease | None = None) -> None:  # fmt: skip
    """Move a batch to ``status`` if the state machine allows it from where it is (``StateError`` if not).

    Takes the ledger lock first: every writer locks in the same order (ledger, then batch row).
    """
    lock_for_decision(conn)
    current = conn.execute(sa.select(batches.c.status).where(batches.c.id == batch_id)).scalar()
    if current is None:
        raise NotFound(f"no batch {batch_id!r}; `handoff status` lists batches")
    check(batch_id, current, Status(status))
    keep = lease if status == Status.DELIVERING else Lease(None, None)
    conn.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(
            status=str(status),
            status_reason=reason,
            updated_at=iso(now),
            lease_owner=keep.owner if keep else None,
            lease_until=iso(keep.until) if keep and keep.until else None,
        )  # fmt: skip
    )


def lease(batch: Batch) -> Lease:
    return Lease(batch.lease_owner, dt.datetime.fromisoformat(batch.lease_until) if batch.lease_until else None)


def renew(conn: sa.Connection, batch_id: str, lease: Lease) -> bool:
    """Extend the lease while this owner still holds it; False when another process took it over."""
    res = conn.execute(
        batches.update()
        .where(
            batches.c.id == batch_id, batches.c.lease_owner == lease.owner, batches.c.status == str(Status.DELIVERING)
        )  # fmt: skip
        .values(lease_until=iso(lease.until) if lease.until else None)
    )
    return bool(res.rowcount)
