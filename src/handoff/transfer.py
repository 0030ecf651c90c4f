"""The transfer lifecycle, as one object for the CLI, the flows and the tests to hold.

Each step lives in its own module and class: ``staging`` (a signed request starts a transfer),
``gatekeeper`` (what the gates see, the status they imply), ``decisions`` (signed approvals),
``revalidate``, ``release`` (lease, upload, completion) and ``withdraw``. ``Lifecycle`` only
wires them to one ``Context`` and passes calls through; it decides nothing itself.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from handoff.config import Settings
from handoff.context import Context
from handoff.gates.keeper import Gatekeeper, Outcome
from handoff.state import batch as batches
from handoff.state import watermark
from handoff.state.status import SETTLED

if TYPE_CHECKING:  # each step is imported when first used: `status` never loads the pipeline or GX
    from handoff.release.decisions import Decisions
    from handoff.release.run import Release
    from handoff.release.withdraw import Withdrawal
    from handoff.staging.pipeline import Progress, StageRequest
    from handoff.staging.revalidate import Revalidation
    from handoff.staging.start import Staging

__all__ = ["Lifecycle", "Outcome"]


class Lifecycle:
    """Binds settings, policies, the state database and the audit store for one command or flow run."""

    def __init__(self, settings: Settings) -> None:
        self.ctx = ctx = Context(settings)
        self.settings, self.policies, self.engine = ctx.settings, ctx.policies, ctx.engine
        self.gatekeeper = Gatekeeper(ctx)
        # Reading and deciding, passed straight through.
        self.trust, self.get, self.order_for, self.destination = ctx.trust, ctx.get, ctx.order_for, ctx.destination
        self.refresh = self.gatekeeper.refresh

    @cached_property
    def staging(self) -> Staging:
        from handoff.staging.start import Staging

        return Staging(self.ctx, self.gatekeeper)

    @cached_property
    def decisions(self) -> Decisions:
        from handoff.release.decisions import Decisions

        return Decisions(self.ctx, self.gatekeeper)

    @cached_property
    def revalidation(self) -> Revalidation:
        from handoff.staging.revalidate import Revalidation

        return Revalidation(self.ctx, self.gatekeeper)

    @cached_property
    def withdrawal(self) -> Withdrawal:
        from handoff.release.withdraw import Withdrawal

        return Withdrawal(self.ctx, self.gatekeeper)

    @cached_property
    def releases(self) -> Release:
        from handoff.release.run import Release

        return Release(self.ctx, self.gatekeeper, self.withdrawal)

    def request_statement(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.staging.requests.request_statement(*args, **kwargs)

    def service_request(self, *args: Any, **kwargs: Any) -> Any:
        return self.staging.requests.service_request(*args, **kwargs)

    def decision_statement(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.decisions.statement(*args, **kwargs)

    def decide(self, *args: Any, **kwargs: Any) -> Outcome:
        return self.decisions.decide(*args, **kwargs)

    def revalidation_statement(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.revalidation.statement(*args, **kwargs)

    def revalidate(self, *args: Any, **kwargs: Any) -> Outcome:
        return self.revalidation.revalidate(*args, **kwargs)

    def deliver(self, *args: Any, **kwargs: Any) -> Outcome:
        return self.releases.deliver(*args, **kwargs)

    def release(self, *args: Any, **kwargs: Any) -> list[Outcome]:
        return self.releases.release(*args, **kwargs)

    def transfer(self, request: StageRequest, bucket: str | None, now: dt.datetime, progress: Progress | None = None,
                 partition_rows: int | None = None, runner: Any = None) -> Outcome:  # fmt: skip
        return self.staging.transfer(request, bucket, now, progress, partition_rows, runner)

    def withdraw(self, batch_id: str, reason: str, actor: str, now: dt.datetime) -> Outcome:
        return self.withdrawal.delivered(batch_id, reason, actor, now)

    def statuses(self, now: dt.datetime) -> list[Outcome]:
        """Every batch, oldest first: those the gates still decide re-evaluated now, the settled ones
        (delivered, or in a final status) as recorded, since no gate moves them any more."""
        with self.engine.connect() as conn:
            listed = [batches.get(conn, i) for i in batches.ids(conn)]
        return [Outcome(b) if b.status in SETTLED else self.refresh(b.id, now) for b in listed]

    def since(self, order_ref: str | None, states: list[str]) -> dt.datetime | None:
        """Where an incremental run starts: the delivered watermark of the order and these states."""
        from handoff.staging.pipeline import parse_states

        order = self.policies.current(order_ref)
        with self.engine.connect() as conn:
            return watermark.read(conn, order.order_id,
                                  watermark.jurisdiction_key(order, parse_states(states) if states else None))  # fmt: skip

    def watermark(self, order_id: str, jurisdictions: list[str]) -> dt.datetime | None:
        with self.engine.connect() as conn:
            return watermark.read(conn, order_id, jurisdictions)

    def batch_for_flow_run(self, flow_run_id: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(batches.batches.c.id).where(batches.batches.c.flow_run_id == flow_run_id)
            ).first()
        return row[0] if row else None
