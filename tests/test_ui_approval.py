"""An approver resumes a paused transfer from the real Prefect UI, in headless Chromium.

The same setup as ``test_prefect_server.py`` (a real ``prefect server start`` serving its UI,
``handoff serve`` executing the run); the test opens the flow run page, clicks Resume, fills the
approval form generated from ``ApprovalInput``'s JSON schema and submits it. Screenshots of the
paused page, the form and the final page go to ``$HANDOFF_SCREENSHOTS`` (else the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("prefect_server")

from prefect_server import (  # noqa: E402
    _get,
    artifacts_for,
    is_paused,
    pause_key,
    signed_answer,
    trigger_transfer,
    wait_for_run,
)
from support import APPROVERS, unavailable  # noqa: E402

pytest_plugins = ["prefect_server"]
pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
UI_TIMEOUT_MS = 45_000
RUN_TIMEOUT = 90.0


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    chosen = os.environ.get("HANDOFF_SCREENSHOTS")  # .ci/run sets it; conftest.py keeps it
    folder = Path(chosen) if chosen else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser_page(tmp_path: Path) -> Any:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _field(page: Any, label: str) -> Any:
    """A schema-form property by its label text (the UI's <label for> points at no id, so no get_by_label)."""
    by_label = page.get_by_label(label, exact=False)
    if by_label.count() == 1:
        return by_label
    return page.get_by_role("dialog").locator(".schema-form-property").filter(
        has=page.locator(".schema-form-property__label", has_text=re.compile(rf"^\s*{re.escape(label)}\b"))
    )  # fmt: skip


def _open_form(page: Any, resume: Any) -> Any:
    from playwright.sync_api import expect

    resume.first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_approver_resumes_from_the_prefect_ui(
    prefect_server: Any, handoff_env: Any, serve_factory: Any, browser_page: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    status, body = _get(prefect_server.url + "/", timeout=10)
    assert status == 200 and b"<html" in body.lower(), body[:200]

    serve = serve_factory(handoff_env.source_url, handoff_env.bucket, extra_env=handoff_env.env)
    run = trigger_transfer()
    wait_for_run(run.id, is_paused, RUN_TIMEOUT, "the approval pause", serve)

    # The paused run, as an approver sees it.
    page.goto(f"{prefect_server.url}/runs/flow-run/{run.id}")
    resume = page.get_by_role("button", name=re.compile(r"^\s*Resume\b"))
    expect(resume.first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^\s*(Suspended|Paused)\s*$")).first).to_be_visible()
    page.screenshot(path=str(screenshots / "1-paused-run.png"), full_page=True)

    # The approval form generated from ApprovalInput: the statement, the command that signs it, the batch.
    dialog = _open_form(page, resume)
    expect(dialog.get_by_text("by signing the statement below", exact=False)).to_be_visible()
    expect(dialog.get_by_text("ssh-keygen -Y sign -n handoff-approve", exact=False).first).to_be_visible()
    expect(dialog.get_by_text("awaiting-approval", exact=False).first).to_be_visible()
    statement = _field(page, "Statement").locator("textarea, input").first.input_value()
    assert json.loads(statement)["decision"] == "approve" and json.loads(statement)["batch_id"]

    # A signature by a key nobody enrolled: the form comes back with the reason.
    _field(page, "Signature").locator("textarea, input").first.fill(signed_answer(statement, "mallory")["signature"])
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden(timeout=UI_TIMEOUT_MS)  # the server answers the resume first, slowly when loaded
    wait_for_run(run.id, lambda r: is_paused(r) and pause_key(r) == "approval-1", RUN_TIMEOUT,
                 "the form to come back after a bad signature", serve)  # fmt: skip
    page.goto(f"{prefect_server.url}/runs/flow-run/{run.id}")
    dialog = _open_form(page, page.get_by_role("button", name=re.compile(r"^\s*Resume\b")))
    expect(dialog.get_by_text("not in the trust file", exact=False).first).to_be_visible()

    # The approver signs what the form shows and pastes the signature.
    approver = APPROVERS[1]
    statement = _field(page, "Statement").locator("textarea, input").first.input_value()
    _field(page, "Signature").locator("textarea, input").first.fill(signed_answer(statement, "bo")["signature"])
    dialog.screenshot(path=str(screenshots / "2-approval-form.png"))
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden(timeout=UI_TIMEOUT_MS)  # the server answers the resume first, slowly when loaded

    final = wait_for_run(run.id, lambda r: r.state is not None and r.state.is_final(), RUN_TIMEOUT,
                         "the run to end after the UI approval", serve)  # fmt: skip
    assert final.state.is_completed(), final.state
    assert final.state.name == "Delivered", (final.state.name, final.state.message)

    entries = handoff_env.ledger()
    approved = [e for e in entries if e.kind == "approved"]
    delivered = [e for e in entries if e.kind == "delivered"]
    assert [e.actor for e in approved] == [approver]
    assert len(delivered) == 1 and delivered[0].payload["approvers"] == [approver]
    keys = handoff_env.bucket_keys()
    assert any(k.endswith("manifest.json") for k in keys), keys

    # The final run page: state Delivered and the batch artifacts.
    page.goto(f"{prefect_server.url}/runs/flow-run/{run.id}")
    expect(page.get_by_text(re.compile(r"^\s*Delivered\s*$")).first).to_be_visible()
    artifact_keys = {a.key for a in artifacts_for(run.id) if a.key}
    assert artifact_keys, "the run published no artifacts"
    page.get_by_role("tab", name="Artifacts").or_(page.get_by_text("Artifacts", exact=True)).first.click()
    expect(page.get_by_text(sorted(artifact_keys)[0], exact=False).first).to_be_visible()
    page.screenshot(path=str(screenshots / "3-delivered-run.png"), full_page=True)
    for name in ("1-paused-run.png", "2-approval-form.png", "3-delivered-run.png"):
        assert (screenshots / name).stat().st_size > 10_000, name
