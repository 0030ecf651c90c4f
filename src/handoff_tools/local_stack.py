"""`handoff local up`: the local S3 + KMS endpoint for day-to-day use, ready for handoff.

Starts the endpoint on loopback, creates a versioned handoff bucket, an Object Lock audit bucket and
a KMS key, writes the environment to export into ``HOME/local.env`` (and prints it), and stays up
until stopped: Ctrl-C, or `handoff local down` from another shell (it reads the pid beside the env
file). Everything lives in the endpoint's memory: stopping it forgets the buckets.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from handoff.errors import ConfigError
from handoff.state.status import process_exists
from handoff_tools import emulator

BUCKET = "handoff-local"
AUDIT_BUCKET = "handoff-local-audit"


def env_file(home: Path) -> Path:
    return home / "local.env"


def pid_file(home: Path) -> Path:
    return home / "local.pid"


def running(home: Path) -> int | None:
    """The pid of the local stack (or kept demo) serving under ``home``, if one runs."""
    pid = pid_file(home)
    number = int(pid.read_text().strip() or 0) if pid.exists() else 0
    return number if number and process_exists(number) else None


def aws_env(local: emulator.LocalS3) -> dict[str, str]:
    """What a shell needs to reach the endpoint: its address (S3 and KMS) and the throwaway credentials."""
    return {"AWS_ENDPOINT_URL": local.endpoint, "AWS_ENDPOINT_URL_S3": local.endpoint,
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "AWS_DEFAULT_REGION": os.environ["AWS_DEFAULT_REGION"]}  # fmt: skip


def serve(local: emulator.LocalS3, env: dict[str, str], home: Path, say: Any, stop: threading.Event | None = None,
          then: str = "run handoff") -> None:  # fmt: skip
    """Write ``env`` to ``HOME/local.env`` and the pid beside it, print it, and keep the endpoint up until
    ``stop`` is set, Ctrl-C or SIGTERM (`handoff local down`); then stop it and remove both files."""
    pid = pid_file(home)
    try:
        home.mkdir(parents=True, exist_ok=True)
        text = "".join(f"export {k}={v}\n" for k, v in env.items())
        env_file(home).write_text(text)
        pid.write_text(str(os.getpid()))
        say(text.rstrip())
        say(f"# up (also in {env_file(home)}); `source` it, then {then}; Ctrl-C or `handoff local down` stops it "
            "and forgets every bucket")  # fmt: skip
        done = stop or threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        local.stop()
        for f in (env_file(home), pid):
            f.unlink(missing_ok=True)


def up(home: Path, say: Any = print, stop: threading.Event | None = None) -> None:
    """Run the stack until ``stop`` is set (or the process is interrupted or terminated)."""
    if running(home):
        raise ConfigError(f"a local stack already runs (pid {running(home)}); `handoff local down` stops it")
    local = emulator.start()
    try:
        key = emulator.create_bucket(local, BUCKET)
        emulator.create_bucket(local, AUDIT_BUCKET, object_lock=True)
    except BaseException:
        local.stop()
        raise
    env = {**aws_env(local), "HANDOFF_BUCKET": BUCKET, "HANDOFF_AUDIT_BUCKET": AUDIT_BUCKET, "HANDOFF_KMS_KEY_ID": key}
    serve(local, env, home, say, stop)


def down(home: Path, timeout: float = 20) -> int:
    """Stop the stack `up` started under ``home``; return its pid."""
    pid = pid_file(home)
    if not pid.exists():
        raise ConfigError(f"no local stack runs under {home} (no {pid.name}); `handoff local up` starts one")
    number = int(pid.read_text().strip() or 0)
    if not process_exists(number):
        pid.unlink(missing_ok=True)
        env_file(home).unlink(missing_ok=True)
        raise ConfigError(f"the local stack (pid {number}) is no longer running; its files were removed")
    os.kill(number, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_exists(number) and time.monotonic() < deadline:
        time.sleep(0.1)
    return number
