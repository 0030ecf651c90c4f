"""What every step of a batch's life reads: settings, order versions, state database, trust file, audit store.

``write()`` is the one way lifecycle code changes the state database: the transaction commits,
then the ledger head is anchored in the write-once audit bucket. It never decides anything.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from handoff.config import Settings
from handoff.errors import HandoffError, StateError
from handoff.policy.order import Order, PolicySet
from handoff.signing.trust import Trust, load_trust, trust_path
from handoff.state import batch as batches
from handoff.state import ledger
from handoff.state.schema import open_state
from handoff.state.status import owner_id
from handoff.storage import write_once
from handoff.storage.deliver import Destination, Target, endpoint_for

log = logging.getLogger(__name__)


class Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policies = PolicySet(settings.policy_dir)
        self.engine = open_state(settings.resolved_state_url)
        self.store = write_once.store_for(settings.audit_bucket, settings.audit_retention_days, settings.region)
        self.owner = owner_id()
        self._anchored: ledger.Head | None = None  # the last head this process anchored

    def trust(self) -> Trust:
        """The trust file as it is on disk now: a key removed a second ago no longer counts."""
        return load_trust(trust_path(self.settings.policy_dir))

    @contextmanager
    def write(self, anchor_required: bool = False) -> Iterator[sa.Connection]:
        """A state transaction; after it commits, the ledger head is anchored in the audit bucket."""
        with self.engine.begin() as conn:
            yield conn
        self.anchor(required=anchor_required)

    def anchor(self, required: bool = False, now: dt.datetime | None = None) -> None:
        if self.store is None:
            if required:
                write_once.require(None)
            return
        with self.engine.connect() as conn:
            head = ledger.head(conn)
            name = ledger.ledger_id(conn)
        if head == self._anchored or name is None:
            return  # nothing appended since (a status refresh that changed nothing), or nothing ever
        try:
            self.store.anchor(name, head, now or dt.datetime.now(dt.UTC))
            self._anchored = head
        except StateError:
            if required:
                raise
            log.warning(
                "ledger entry %s is committed but not anchored yet; `handoff audit verify` reports it", head.seq
            )

    def get(self, batch_id: str) -> batches.Batch:
        with self.engine.connect() as conn:
            return batches.find(conn, batch_id)

    def order_for(self, batch: batches.Batch) -> Order:
        """The order version in force for the batch's order (the newest, not the batch's own)."""
        return self.policies.current(batch.order_id)

    def target(self, batch: batches.Batch) -> Target:
        bucket = batch.bucket or self.settings.bucket
        if not bucket:
            raise HandoffError(f"batch {batch.id} has no bucket; set HANDOFF_BUCKET")
        s = self.settings
        return Target(bucket, s.prefix, s.kms_key_id, s.region, s.multipart_threshold_mb * 1024 * 1024,
                      endpoint_for(s.region), s.audit_bucket)  # fmt: skip

    def destination(self, batch: batches.Batch) -> Destination | None:
        """Where this batch would be written now (bucket recorded with it, prefix and key configured)."""
        if not (batch.bucket or self.settings.bucket):
            return None
        return self.target(batch).destination(batch.order_id, batch.order_version, batch.id)
