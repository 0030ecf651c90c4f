"""Plain-text views of a batch for people: the markdown shown as a Prefect artifact.

Counts, exclusions by reason, gate table, validation summary, S3 keys and the lineage command.
Never a record value: only counts, rule names, hashes and keys.
"""

from __future__ import annotations

from typing import Any

from handoff.gates.decide import GateDecision
from handoff.state.batch import Batch


def gate_table(gates: list[GateDecision], **table_options: Any) -> Any:
    """A rich table of gates (open in green, held in yellow) with their reasons, for the terminal."""
    from rich.table import Table

    from handoff.terminal import plain, styled

    table = Table("gate", "state", "reason", **table_options)
    for g in gates:
        table.add_row(g.gate, styled("open", "green") if g.open else styled("held", "yellow"), plain(g.reason))
    return table


def batch_markdown(batch: Batch, gates: list[GateDecision], objects: list[str] | None = None) -> str:
    excl = batch.excluded.get("totals", {})
    lines = [
        f"# Batch `{batch.id}` — **{batch.status}**",
        "",
        f"Order **{batch.order_ref}**, jurisdictions {', '.join(batch.jurisdictions)}; started by {batch.initiator}.",
        "",
        "| rows | count |",
        "|---|---:|",
        f"| extracted (in population) | {batch.rows_extracted:,} |",
        f"| row-quarantined | {batch.rows_quarantined:,} |",
        f"| staged for delivery | {batch.rows_staged:,} |",
        *(f"| excluded: {k} | {v:,} |" for k, v in sorted(excl.items())),
        "",
    ]
    if batch.status_reason:
        lines += [f"**Why:** {batch.status_reason}", ""]
    if gates:
        lines += ["| gate | state | reason |", "|---|---|---|"]
        lines += [f"| {g.gate} | {'✅ open' if g.open else '⏸ held'} | {g.reason} |" for g in gates]
        lines.append("")
    v = batch.validation
    lines += [
        f"**Validation:** {v.get('result')} — {v.get('expectations_evaluated')} expectations over "
        f"{v.get('chunks')} chunk(s); suite sha256 `{batch.suite_hash[:16]}…`",
    ]
    if batch.quarantined_by_rule:
        lines.append("Row quarantine by rule: " + ", ".join(f"`{k}` {n}" for k, n in batch.quarantined_by_rule.items()))
    for f in v.get("failed_expectations", []):
        lines.append(f"- failed `{f.get('rule')}` ({f.get('expectation')}): {f.get('unexpected_count')} rows")
    if objects:
        lines += ["", "**Delivered objects:**", *(f"- `{k}`" for k in objects)]
    lines += ["", f"Lineage: `handoff lineage {batch.id}`; content hash `{batch.content_hash}`"]
    return "\n".join(lines)


def sign_command(statement: str, namespace: str = "handoff-approve") -> str:
    """One shell command that signs ``statement`` (exact bytes plus newline) and prints the signature."""
    quoted = statement.strip().replace("'", "'\\''")
    return f"printf '%s\\n' '{quoted}' | ssh-keygen -Y sign -n {namespace} -f ~/.ssh/id_ed25519"


def approval_description(batch: Batch, gates: list[GateDecision], statement: str, refused: str | None = None) -> str:
    head = f"**Refused:** {refused}\n\n" if refused else ""
    return (
        head + "Approve exactly this content, under this order version, to this destination, by signing the "
        "statement below with your SSH key (it must hold `handoff-approve` in the trust file; the person who "
        "started the transfer cannot approve it). Run this, then paste the signature it prints into **Signature**:"
        f"\n\n```\n{sign_command(statement)}\n```\n\nThe statement:\n\n```json\n{statement.strip()}\n```\n\n"
        "To reject, sign what `handoff reject BATCH --note WHY --statement` prints and paste that statement too."
        "\n\n" + batch_markdown(batch, gates)
    )


def disclosure_rows(rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {"kind": r.kind, "at": r.at, "batch": r.batch_id, "order": r.order_ref, "recipient": r.recipient,
         "records": r.records, "approver": r.approver or "", "initiator": r.initiator or ""}
        for r in rows
    ]  # fmt: skip
