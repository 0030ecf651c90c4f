"""The README's main command: the whole story on embedded defaults, start to finish.

Seeds a SQLite source, starts a local S3-compatible endpoint with a KMS key on loopback, runs a
transfer that is held (hearing pending), records the outcome as demo counsel, approves as a
configured DEMO approver, delivers, then prints counts, the manifest, the lineage walk and the
ledger check. Everything lives under ``HANDOFF_HOME/demo`` and is recreated on each run.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import boto3
from rich.console import Console
from rich.panel import Panel

from handoff import emulator
from handoff.config import Settings, load_settings
from handoff.extract import open_source
from handoff.ledger import verify
from handoff.pipeline import StageRequest
from handoff.report import gate_table
from handoff.seed import seed_database
from handoff.transfer import Lifecycle
from handoff.walk import walk

DEMO_APPROVER = "Demo Approver (DEMO ONLY)"
DEMO_COUNSEL = "Demo Counsel (DEMO ONLY)"
DEMO_INITIATOR = "demo-scheduler"
BUCKET = "handoff-demo-recipient"


def run_demo(base: Settings, rows: int, console: Console) -> None:
    home = base.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    source = f"sqlite:///{(home / 'source.db').resolve()}"
    step = _stepper(console)

    step("Seed a synthetic SQLite source", f"{rows:,} enrollees, every T-MSIS column incl. denied ones")
    seed_database(open_source(source, must_exist=False), rows, seed=42, replace=True)

    local = emulator.start()
    try:
        key = emulator.create_bucket(local, BUCKET)
        step("Start a local S3 endpoint with KMS", f"{local.endpoint}, bucket {BUCKET}, key {key}")
        settings = load_settings(home=home, policy_dir=base.policy_dir, state_url=None, bucket=BUCKET,
                                 kms_key_id=key, approvers=[DEMO_APPROVER], chunk_rows=base.chunk_rows)  # fmt: skip
        life = Lifecycle(settings)
        now = dt.datetime.now(dt.UTC)

        step("Transfer", "extract only permitted columns and people, validate, stage, evaluate gates")
        first = life.transfer(StageRequest(source, initiator=DEMO_INITIATOR), BUCKET, now)
        _outcome(console, first)
        with life.engine.connect() as conn:
            hearing = next(h for h in life.view(conn, None).hearings if not h.outcome)

        step("Counsel records the hearing outcome", f"{hearing.id}: upheld (recorded as {DEMO_COUNSEL})")
        from handoff.court import record_outcome

        with life.engine.begin() as conn:
            record_outcome(conn, life.policies, hearing.id, "upheld", DEMO_COUNSEL, now)
        _outcome(console, life.refresh(first.batch.id, now))

        step("A configured approver approves this exact content", f"as {DEMO_APPROVER}")
        life.decide(first.batch.id, "approve", DEMO_APPROVER, "demo approval", now)

        step("Release", "gates re-checked in the transaction that starts the upload")
        released = life.release(now)
        for r in released:
            _outcome(console, r)

        delivered = [r for r in released if r.batch.status == "delivered"]
        if not delivered:
            console.print("[red]nothing was delivered; see the gates above[/]")
            raise SystemExit(1)
        d = delivered[0]
        s3 = boto3.client("s3", region_name=settings.region)
        body = s3.get_object(Bucket=BUCKET, Key=d.manifest_key)["Body"].read()
        manifest = json.loads(body)
        step("Manifest (written last, the commit marker)", f"s3://{BUCKET}/{d.manifest_key}")
        slim = {k: manifest[k] for k in ("batch_id", "order", "content_hash", "counts", "approval", "files")}
        slim["order"] = {k: manifest["order"][k] for k in ("ref", "effective_at", "policy_hash")}
        console.print_json(json.dumps(slim, default=str))

        step("Lineage walk", "from S3 objects back to the source query and policy")
        doc = walk(life, d.batch.id)
        for o in doc["objects"]:
            console.print(f"  s3://{doc['bucket']}/{o['key']}  sha256 {o['sha256'][:16]}…")
        console.print(f"  ← approved by {doc['approval']['approver']} at {doc['approval']['at']}")
        console.print(f"  ← validated: {doc['validation']['result']}, suite sha256 {doc['suite']['hash'][:16]}…")
        console.print(f"  ← policy {doc['policy']['order_ref']} ({doc['policy']['file']})")
        console.print(f"  ← query sha256 {doc['source']['query_hash'][:16]}… on {doc['source']['url']}")

        step("Audit", "recompute the ledger's hash chain")
        with life.engine.connect() as conn:
            v = verify(conn)
        console.print(f"  ledger {'intact' if v.ok else 'BROKEN'}: {v.checked} entries")
        again = life.release(now)
        console.print(f"  re-running release delivers nothing new: {len([r for r in again if r.objects])} batches")
        console.print(f"\n[bold green]Done.[/] State, staging and lineage events are under {home}/")
    finally:
        local.stop()


def _stepper(console: Console):  # type: ignore[no-untyped-def]
    counter = {"n": 0}

    def step(title: str, detail: str) -> None:
        counter["n"] += 1
        console.print(Panel(detail, title=f"{counter['n']}. {title}", title_align="left", expand=False))

    return step


def _outcome(console: Console, o) -> None:  # type: ignore[no-untyped-def]
    b = o.batch
    console.print(f"  batch {b.id}: [bold]{b.status}[/]  extracted {b.rows_extracted:,}, "
                  f"row-quarantined {b.rows_quarantined:,}, staged {b.rows_staged:,}")  # fmt: skip
    if o.gates:
        console.print(gate_table(o.gates, show_header=False, box=None, padding=(0, 1)))
