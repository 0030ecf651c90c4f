"""Text from outside is data: markup and escape sequences planted in every field a person types are
printed as typed (markup) or not at all (control), and every command that shows them still works.

Anyone may set an emergency stop, so before this a reason of ``[/]`` made `status`, `release` and
`hold list` raise Rich's MarkupError for everyone using that state database, and an ANSI or OSC
sequence in a reason or a name reached every operator's terminal raw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import KEYS, buckets, cli_env, run_cli

# Markup that closes nothing, markup that would style, an emoji code, a CSI colour, an OSC title (BEL-ended), an 8-bit
# CSI, a right-to-left override and a newline that would forge a second line.
PLANT = "[/] [bold red]loud[/bold red] :warning: \x1b[31mred\x1b[0m \x1b]0;owned\x07 \x9b2J \u202eevil\nemergency stop cleared"
RAW = ("\x1b", "\x9b", "\x07", "\u202e")


@pytest.fixture(scope="module")
def world(s3_server, sqlite_source_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("outside-home")
    bucket, key, audit = buckets(s3_server, "text")
    env = cli_env(home, HANDOFF_KMS_KEY_ID=key, HANDOFF_AUDIT_BUCKET=audit, HANDOFF_BUCKET=bucket)
    cwd = tmp_path_factory.mktemp("outside-cwd")
    res = run_cli("transfer", "--db", sqlite_source_url, "--key", str(KEYS.key("operator")), "--json",
                  env=env, cwd=cwd)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return {"env": env, "cwd": cwd, "batch": json.loads(res.stdout)["batch_id"]}


def _run(world: dict[str, Any], *args: str, codes: tuple[int, ...] = (0,)) -> str:
    res = run_cli(*args, env=world["env"], cwd=world["cwd"])
    shown = res.stdout + res.stderr
    assert res.returncode in codes, f"{args}: {shown}"
    assert "Traceback" not in shown and "MarkupError" not in shown, f"{args}: {shown}"
    for raw in RAW:
        assert raw not in shown, f"{args} printed {raw!r} raw"
    return shown


def test_markup_and_escape_sequences_in_every_typed_field_are_data(world: dict[str, Any]) -> None:
    batch = world["batch"]
    shown = _run(world, "hold", "set", "--reason", PLANT, "--as", PLANT)
    assert "[/] [bold red]loud[/bold red] :warning:" in shown  # printed as typed, not read as markup or emoji
    assert "\nemergency stop cleared" not in shown  # the planted newline cannot forge a line of its own
    shown = _run(world, "court", "hearing", "add", "--order", "cand-3-25-cv-05536-2025-12-29",
                 "--at", "2026-02-10T09:00", "--title", PLANT, "--as", PLANT)  # fmt: skip
    assert "[bold red]loud[/bold red]" in shown
    shown = _run(world, "reject", batch, "--note", PLANT, "--key", str(KEYS.key("ada")))
    assert "[bold red]loud[/bold red]" in shown

    for args, codes in [
        (("status",), (0,)),
        (("status", batch), (0,)),
        (("release",), (0, 1)),
        (("hold", "list"), (0,)),
        (("hold", "set", "--reason", "second stop"), (0,)),
        (("court", "hearing", "list"), (0,)),
        (("lineage", batch), (0,)),
        (("audit", "disclosures"), (0,)),
        (("trust", "show"), (0,)),
    ]:
        _run(world, *args, codes=codes)
    assert "[bold red]loud[/bold red] :warning:" in _run(world, "hold", "list")
    assert "[bold red]loud[/bold red]" in _run(world, "court", "hearing", "list")
    shown = _run(world, "hold", "clear", "--reason", PLANT, "--key", str(KEYS.key("ops")))
    assert "cleared" in shown and "[bold red]loud[/bold red]" in shown


def test_clean_removes_every_sequence_and_keeps_the_text() -> None:
    from hypothesis import given
    from hypothesis import strategies as hs

    from handoff.terminal import clean, plain

    assert clean("a\x1b[1;31mb\x1b[0mc\x1b]8;;http://x\x1b\\d\x9be") == "abcde"
    assert plain("[/]\n[b]x") == "\\[/] \\[b]x"

    @given(hs.text())
    def never_control(text: str) -> None:
        for value in (clean(text), plain(text)):
            assert not any(ord(ch) < 32 and ch not in "\t\n" or 0x7F <= ord(ch) <= 0x9F for ch in value)
        assert "\n" not in plain(text)

    never_control()


def test_a_name_in_a_path_is_shown_as_typed(tmp_path: Path) -> None:
    """A trust file at a path with brackets: `trust show` prints the path, not a markup error."""
    folder = tmp_path / "[red]policy[bold]"
    folder.mkdir()
    import shutil

    from support import POLICY_DIR

    shutil.copytree(POLICY_DIR, folder, dirs_exist_ok=True)
    res = run_cli("trust", "show", env=cli_env(tmp_path / "home", HANDOFF_POLICY_DIR=str(folder)), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[red]policy[bold]" in res.stdout
