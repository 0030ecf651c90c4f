"""The two settings ``handoff transfer`` reads before pydantic loads agree with ``Settings`` wherever they
decide: the same variable (any case) or TOML key, the same precedence, the same booleans and integers;
a value ``Settings`` would refuse, or one it reads otherwise, is None, so the command's own settings
decide (Hypothesis over the raw text, from the environment and from the file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from handoff import early_settings
from handoff.config import load_settings
from handoff.errors import ConfigError

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WORDS = hs.sampled_from(["true", "False", "YES", "no", "on", "Off", "1", "0", "t", "F", "y", "N", "2", "-1", "64",
                         " 3 ", "maybe", "", "1.5", "0x10", "٣", " true", "TRUE ", "\ton", "+3", "1_000", "03", "3.0",
                         "1\x1f", "\x1c2", "\u30002\u2029", "\x852"])  # fmt: skip
RAW = WORDS | hs.text(max_size=6)


def _settings(env: dict[str, str], toml: str | None, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in [k for k in os.environ if k.upper().startswith("HANDOFF_")]:
        monkeypatch.delenv(key)
    config = tmp / "handoff.toml"
    if toml is None:
        config.unlink(missing_ok=True)
    else:
        config.write_text(toml, encoding="utf-8")
    monkeypatch.setenv("HANDOFF_CONFIG", str(config))
    monkeypatch.setenv("HANDOFF_HOME", str(tmp / "home"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        return load_settings()
    except ConfigError:
        return None


@FUZZ
@given(value=RAW, upper=hs.booleans())
def test_check_processes_from_the_environment_reads_as_settings_reads_it(
    value: str, upper: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "\x00" in value:
        return  # not a value the environment can hold
    name = "HANDOFF_CHECK_PROCESSES" if upper else "handoff_check_processes"
    real = _settings({name: value}, None, tmp_path, monkeypatch)
    early = early_settings.flag("check_processes")
    if early is not None:
        assert real is not None and real.check_processes is early, (value, early)
    elif real is not None:
        assert real.check_processes is None or value.strip().lower() not in early_settings._TRUE | early_settings._FALSE


@FUZZ
@given(value=RAW)
def test_workers_from_the_environment_reads_as_settings_reads_it(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "\x00" in value:
        return
    real = _settings({"HANDOFF_WORKERS": value}, None, tmp_path, monkeypatch)
    early = early_settings.integer("workers")
    if early is not None and 1 <= early <= 64:
        assert real is not None and real.workers == early, (value, early)


@FUZZ
@given(processes=hs.booleans() | hs.integers(-2, 3) | hs.text(max_size=5), workers=hs.integers(-1, 70),
       env_processes=hs.none() | hs.sampled_from(["true", "false"]))  # fmt: skip
def test_the_file_and_the_environment_in_the_order_settings_uses(
    processes: Any, workers: int, env_processes: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = repr(processes).lower() if isinstance(processes, bool) else repr(processes).replace("'", '"')
    toml = f"check_processes = {value}\nworkers = {workers}\n"
    env = {"HANDOFF_CHECK_PROCESSES": env_processes} if env_processes else {}
    real = _settings(env, toml, tmp_path, monkeypatch)
    early = early_settings.flag("check_processes")
    if real is not None:
        if early is not None:
            assert real.check_processes is early
        assert early_settings.integer("workers") == real.workers


def test_nothing_set_leaves_the_decision_to_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _settings({}, None, tmp_path, monkeypatch)
    assert early_settings.flag("check_processes") is None and early_settings.integer("workers") is None
    assert real.check_processes is None and real.workers == early_settings.default_workers()


def test_a_file_that_is_not_toml_is_left_to_settings_to_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _settings({}, "workers = = 2", tmp_path, monkeypatch)
    assert real is None  # Settings refuses it, with its own message
    assert early_settings.integer("workers") is None


@pytest.mark.parametrize("space", [c for c in map(chr, range(0x3001)) if c.isspace()], ids=lambda c: f"U+{ord(c):04X}")
def test_workers_padded_with_any_white_space_read_as_settings_reads_them(
    space: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every character Python calls white space, around a number: pydantic strips some (Unicode's
    White_Space) and refuses the rest (the separators U+001C-U+001F); the early read must agree."""
    real = _settings({"HANDOFF_WORKERS": f"{space}3{space}"}, None, tmp_path, monkeypatch)
    early = early_settings.integer("workers")
    assert (real.workers if real is not None else None) == early
