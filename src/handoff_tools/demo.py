"""The README's main command: the whole story on embedded defaults, start to finish.

Generates throwaway keys and a trust file (DEMO ONLY), seeds a SQLite source, starts a local
S3-compatible endpoint with a KMS key on loopback, runs a transfer requested by the demo
operator's signature that is held (hearing pending), records the outcome signed by demo counsel,
approves with the demo approver's signature, delivers, then prints counts, the manifest, the
lineage walk, the ledger check and the recipient's ``handoff verify`` against the published trust
file; then an insider swaps counsel's key on the sender's host and sends a second batch, which the
same recipient check refuses, naming the broken links. Everything lives under
``HANDOFF_HOME/demo`` and is recreated on each run. With ``keep`` the S3 endpoint stays up after the
story (as `handoff local up` does, stopped by Ctrl-C or `handoff local down`), and the environment
it prints makes every command shown re-runnable against the demo's state and buckets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from typing import Any

import boto3
from rich.console import Console
from rich.panel import Panel

from handoff.authority.court import calendar, outcome_statement, record_outcome
from handoff.authority.signoff import sign_file
from handoff.config import Settings, load_settings
from handoff.errors import ConfigError
from handoff.evidence import audit
from handoff.evidence.walk import walk
from handoff.extract.reader import open_source
from handoff.release.report import gate_table
from handoff.release.verify import verify_prefix
from handoff.signing.trust import COUNSEL, load_trust, trust_path
from handoff.staging.pipeline import StageRequest
from handoff.terminal import moment, plain
from handoff.transfer import Lifecycle
from handoff_tools import demokeys, emulator, local_stack
from handoff_tools.seed import seed_database

BUCKET = "handoff-demo-recipient"
AUDIT_BUCKET = "handoff-demo-audit"


def run_demo(base: Settings, rows: int, console: Console, keep: bool = False) -> None:
    if keep and local_stack.running(base.home):
        raise ConfigError(f"a local stack already runs under {base.home} (pid {local_stack.running(base.home)}); "
                          "`handoff local down` stops it, then run the demo again")  # fmt: skip
    home = base.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    source = f"sqlite:///{(home / 'source.db').resolve()}"
    step = _stepper(console)

    keys = demokeys.make_keyring(home / "keys")
    policy_dir = demokeys.signed_policy_dir(base.policy_dir, home / "policy", keys)
    published = home / "published_allowed_signers"  # what the agency publishes; the recipient checks against it
    shutil.copyfile(trust_path(policy_dir), published)
    step("Throwaway keys and a trust file (DEMO ONLY)",
         f"{len(keys.people)} ed25519 keys in {keys.folder}; trust file {policy_dir / 'trust' / 'allowed_signers'} "
         f"(published as {published}); order files signed by {keys.principal('counsel')}")  # fmt: skip

    step("Seed a synthetic SQLite source", f"{rows:,} enrollees, every T-MSIS column incl. denied ones")
    seed_database(open_source(source, must_exist=False), rows, seed=42, replace=True)

    local = emulator.start()
    try:
        key = emulator.create_bucket(local, BUCKET)
        emulator.create_bucket(local, AUDIT_BUCKET, object_lock=True)
        step("Start a local S3 endpoint with KMS", f"{local.endpoint}, bucket {BUCKET} (key {key}), "
             f"audit bucket {AUDIT_BUCKET} (Object Lock, COMPLIANCE) for ledger anchors and stop markers")  # fmt: skip
        settings = load_settings(home=home, policy_dir=policy_dir, state_url=None, bucket=BUCKET, kms_key_id=key,
                                 audit_bucket=AUDIT_BUCKET, audit_retention_days=1, chunk_rows=base.chunk_rows)  # fmt: skip
        life = Lifecycle(settings)
        now = dt.datetime.now(dt.UTC)
        first = _story(console, step, life, keys, source, now)
        _recipient(console, step, first, published, expect_ok=True)
        second = _insider(console, step, life, keys, source, now)
        _recipient(console, step, second, published, expect_ok=False)
        life.engine.dispose()
    except BaseException:
        local.stop()
        raise
    console.print(f"\n[bold green]Done.[/] State, staging, keys and lineage events are under {home}/ "
                  f"(HANDOFF_HOME={home}, HANDOFF_POLICY_DIR={policy_dir}).")  # fmt: skip
    again = ["handoff status", f"handoff verify {first} --trust {published}",
             f"handoff audit verify --trust {published}",
             "handoff audit disclosures"]  # fmt: skip
    if not keep:
        local.stop()
        console.print(f"Look at the state with `HANDOFF_HOME={home} HANDOFF_POLICY_DIR={policy_dir} handoff status`; "
                      "run `handoff demo --keep` to keep the S3 endpoint up, so every command above can be re-run.",
                      highlight=False)  # fmt: skip
        return
    env = {**local_stack.aws_env(local), "HANDOFF_HOME": str(home), "HANDOFF_POLICY_DIR": str(policy_dir),
           "HANDOFF_BUCKET": BUCKET, "HANDOFF_AUDIT_BUCKET": AUDIT_BUCKET, "HANDOFF_KMS_KEY_ID": key}  # fmt: skip
    say = lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    local_stack.serve(local, env, base.home, say, then="try: " + "; ".join(again))


def _story(console: Console, step: Any, life: Lifecycle, keys: demokeys.Keyring, source: str,
           now: dt.datetime) -> str:  # fmt: skip
    """The honest path; returns the delivered prefix's address."""
    step("Transfer, requested by the demo operator's signature",
         "extract only permitted columns and people, validate, stage, evaluate gates")  # fmt: skip
    request = StageRequest(source, bucket=BUCKET)
    request = dataclasses.replace(request, signed=keys.sign("operator", life.request_statement(request, BUCKET, now)))
    first = life.transfer(request, BUCKET, now)
    _outcome(console, first)
    with life.engine.connect() as conn:
        hearing = next(h for h in calendar(conn, life.policies, life.trust(), now) if not h.outcome)

    step("Counsel signs the hearing outcome", f"{hearing.id}: upheld, signed by {keys.principal('counsel')}")
    with life.ctx.write() as conn:
        record_outcome(conn, life.policies, life.trust(),
                       keys.sign("counsel", outcome_statement(hearing, "upheld", None, now)), now)  # fmt: skip
    _outcome(console, life.refresh(first.batch.id, now))

    statement = life.decision_statement(first.batch.id, "approve", "demo approval", now)
    step("An approver signs this exact content, order and destination",
         f"signed by {keys.principal('approver')}: {statement['content_hash'][:16]}… → "
         f"s3://{statement['destination']['bucket']}/{statement['destination']['prefix']}")  # fmt: skip
    life.decide(first.batch.id, keys.sign("approver", statement), now)

    step("Release", "gates and every signature re-checked in the transaction that starts the upload")
    released = life.release(now)
    for r in released:
        _outcome(console, r)
    delivered = [r for r in released if r.batch.status == "delivered"]
    if not delivered:
        console.print("[red]nothing was delivered; see the gates above[/]")
        raise SystemExit(1)
    _evidence(console, step, life, delivered[0], now)
    return f"s3://{BUCKET}/{str(delivered[0].manifest_key).rsplit('/', 1)[0]}/"


def _insider(console: Console, step: Any, life: Lifecycle, keys: demokeys.Keyring, source: str,
             now: dt.datetime) -> str:  # fmt: skip
    """An insider on the sender's host swaps counsel's key, then drives a second batch out; returns its address."""
    counsel = keys.principal("counsel")
    insider = demokeys.make_keyring(keys.folder.parent / "insider-keys", {"insider": (counsel, (COUNSEL,))})
    path = trust_path(life.settings.policy_dir)
    lines = [x for x in path.read_text().splitlines(keepends=True) if not x.startswith(f'"{counsel}"')]
    path.write_text("".join(lines) + insider.trust_line("insider"))
    for order_file in sorted((life.settings.policy_dir / "orders").glob("*.yaml")):
        sign_file(order_file, insider.key("insider"))
    step("An insider swaps counsel's key on the sender's host",
         f"{path} now lists the insider's key under {counsel!r}; the insider re-signs the order and the hearing "
         "outcome, then a real operator and approver send a second batch")  # fmt: skip
    request = StageRequest(source, bucket=BUCKET)
    request = dataclasses.replace(request, signed=keys.sign("operator", life.request_statement(request, BUCKET, now)))
    second = life.transfer(request, BUCKET, now)
    with life.engine.connect() as conn:
        hearing = next(h for h in calendar(conn, life.policies, life.trust(), now) if not h.outcome)
    with life.ctx.write() as conn:
        record_outcome(conn, life.policies, life.trust(),
                       insider.sign("insider", outcome_statement(hearing, "upheld", None, now)), now)  # fmt: skip
    life.decide(second.batch.id, keys.sign("approver", life.decision_statement(second.batch.id, "approve", None, now)),
                now)  # fmt: skip
    done = next(r for r in life.release(now) if r.batch.id == second.batch.id)
    _outcome(console, done)
    if done.batch.status != "delivered":
        raise SystemExit("the insider's batch was not delivered; the demo expected the sender's host to be fooled")
    return f"s3://{BUCKET}/{str(done.manifest_key).rsplit('/', 1)[0]}/"


def _recipient(console: Console, step: Any, url: str, published: Any, expect_ok: bool) -> None:
    step("The recipient verifies against the agency's published trust file",
         f"handoff verify {url} --trust {published}  (no state database)")  # fmt: skip
    report = verify_prefix(url, load_trust(published))
    for p in report.problems:
        console.print(f"  [red]FAIL[/] {plain(p)}", highlight=False)
    console.print(f"  {'[green]verified[/]' if report.ok else '[red]NOT verified[/]'}: {report.files} file(s), "
                  f"{report.rows:,} rows, approved by {', '.join(report.approvers) or 'nobody'}")  # fmt: skip
    if report.ok != expect_ok:
        raise SystemExit(1)


def _evidence(console: Console, step: Any, life: Lifecycle, d: Any, now: dt.datetime) -> None:
    s3 = boto3.client("s3", region_name=life.settings.region)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=d.manifest_key)["Body"].read())
    step("Manifest (written last, the commit marker)", f"s3://{BUCKET}/{d.manifest_key}")
    slim = {k: manifest[k] for k in ("batch_id", "order", "content_hash", "rows", "ledger_head")}
    slim["order"] = {k: manifest["order"][k] for k in ("ref", "effective_at", "policy_hash")}
    slim["approvals"] = [{"principal": a["principal"], "key": a["key"]} for a in manifest["approvals"]]
    console.print_json(json.dumps(slim, default=str))

    step("Lineage walk", "from S3 objects back to the source query and policy")
    doc = walk(life, d.batch.id)
    for o in doc["objects"]:
        console.print(f"  s3://{doc['bucket']}/{o['key']}  sha256 {o['sha256'][:16]}…")
    console.print(f"  ← approved by {doc['approval']['approver']} at {moment(doc['approval']['at'])}")
    console.print(f"  ← validated: {doc['validation']['result']}, suite sha256 {doc['suite']['hash'][:16]}…")
    console.print(f"  ← policy {doc['policy']['order_ref']} ({doc['policy']['file']})")
    console.print(f"  ← query sha256 {doc['source']['query_hash'][:16]}… on {doc['source']['url']}")

    step("Audit", "the hash chain against its write-once anchors; every table and manifest against the ledger")
    with life.engine.connect() as conn:
        v = audit.verify(conn, life.ctx.store, life.settings.region)
    console.print(f"  ledger {'intact' if v.ok else 'BROKEN'}: {v.entries} entries, {v.anchors} anchors in "
                  f"s3://{AUDIT_BUCKET}/anchors/")  # fmt: skip
    for f in v.findings:
        console.print(f"  [red]{plain(f)}[/]")
    again = life.release(now)
    console.print(f"  re-running release delivers nothing new: {len([r for r in again if r.objects])} batches")


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
