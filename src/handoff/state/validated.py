"""What validation recorded: the content a batch may deliver, read from the ledger, never from its row.

When a batch passes its checks, its ``staged`` (or ``revalidated``) ledger entry records the
content hash, the row count and every file's name, rows and SHA-256, in the transaction that
wrote the batch. The ``batches`` and ``batch_files`` rows are a view an insider can edit; the
ledger entry is chained and anchored in write-once storage. ``differs`` is the pure comparison
the ``validated_content`` gate and the approval check run: a batch whose files, rows or content
hash are not the ones validation recorded is never approved or delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from handoff.extract.stage import StagedFile, content_hash
from handoff.state import ledger

KINDS = ("staged", "revalidated")


def files_payload(files: list[StagedFile]) -> list[dict[str, Any]]:
    """The files as the ledger records them (name, rows, bytes, SHA-256), sorted by name."""
    return [f.as_dict() for f in sorted(files, key=lambda f: f.name)]


@dataclass(frozen=True)
class Validated:
    """The ledger entry that recorded a batch's validated content."""

    seq: int
    entry_hash: str
    content_hash: str | None
    rows: int | None
    files: list[dict[str, Any]] | None  # None in entries written before files were recorded

    def as_dict(self) -> dict[str, Any]:
        return {"ledger_seq": self.seq, "entry_hash": self.entry_hash, "content_hash": self.content_hash,
                "rows": self.rows, "files": self.files}  # fmt: skip


def record_for(conn: sa.Connection, batch_id: str) -> Validated | None:
    """The newest ``staged``/``revalidated`` entry the ledger holds for ``batch_id`` (None: never validated)."""
    found = ledger.entries(conn, batch_id=batch_id, kinds=list(KINDS))
    if not found:
        return None
    e = found[-1]
    p = e.payload
    rows = p.get("rows_staged")
    files = p.get("files")
    return Validated(e.seq, e.hash, p.get("content_hash"), int(rows) if isinstance(rows, int) else None,
                     list(files) if isinstance(files, list) else None)  # fmt: skip


def differs(files: list[StagedFile], batch_hash: str | None, rows: int, record: Validated | None) -> str | None:
    """Pure: why the batch's content is not what validation recorded (None when it is)."""
    if record is None:
        return "the ledger holds no validation entry for this batch (it was not staged by handoff)"
    where = f"ledger entry {record.seq}"
    if not record.content_hash:
        return f"{where} recorded no validated content (the batch failed its checks)"
    if record.files is not None:
        recorded = {str(f.get("name")): f for f in record.files if isinstance(f, dict)}
        now = {f.name: f for f in files}
        for name in sorted(set(recorded) | set(now)):
            r, f = recorded.get(name), now.get(name)
            if r is None:
                return f"{name} was not among the files validation recorded in {where}"
            if f is None:
                return f"{name}, recorded by validation in {where}, is missing from the batch"
            if (r.get("sha256"), r.get("rows")) != (f.sha256, f.rows):
                return f"{name} differs from the file validation recorded in {where}"
    if content_hash(files) != record.content_hash or batch_hash != record.content_hash:
        return f"the content hash differs from the one validation recorded in {where}"
    if record.rows is not None and rows != record.rows:
        return f"{rows} rows, but validation recorded {record.rows} in {where}"
    return None
