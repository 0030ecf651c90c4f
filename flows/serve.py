"""Register the transfer and release flows on schedules and serve them (``handoff serve``).

Transfer: daily per jurisdiction group, incremental (only rows changed since the last
delivered watermark), in the court's time zone. Release: hourly. Stopping ``serve`` pauses
these schedules (a Prefect behaviour): run it under a supervisor, or use ``infra/prefect.yaml``
with a worker for production.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.schedules import Cron

from flows.release import release_flow
from flows.transfer import transfer_flow

COURT_TZ = "America/Los_Angeles"


def deployments(
    db_url: str,
    bucket: str | None,
    groups: dict[str, list[str]],
    transfer_cron: str = "0 2 * * *",
    release_cron: str = "0 * * * *",
    timezone: str = COURT_TZ,
    approval_timeout_s: int = 3600,
) -> list[Any]:
    """Deployment objects: one transfer per jurisdiction group, one release."""
    out = []
    for name, states in groups.items():
        label = ", ".join(states) if states else "every jurisdiction the order allows"
        out.append(
            transfer_flow.to_deployment(
                name=f"transfer-{name}",
                schedules=[Cron(transfer_cron, timezone=timezone)],
                parameters={
                    "db_url": db_url,
                    "bucket": bucket,
                    "states": states,
                    "incremental": True,
                    "approval_timeout_s": approval_timeout_s,
                },
                description=(
                    f"Daily incremental transfer for {label} under the court order in force; "
                    "requested with the deployment's service key; pauses for a signed approval; held batches end "
                    "in state Held."
                ),
                tags=["handoff", "transfer", f"group:{name}"],
            )  # fmt: skip
        )
    out.append(
        release_flow.to_deployment(
            name="release",
            schedules=[Cron(release_cron, timezone=timezone)],
            description="Hourly: deliver every approved batch whose gates are all open now.",
            tags=["handoff", "release"],
        )
    )
    return out


def serve_all(db_url: str, bucket: str | None, groups: dict[str, list[str]], **kwargs: Any) -> None:
    serve(*deployments(db_url, bucket, groups, **kwargs))  # type: ignore[arg-type]
