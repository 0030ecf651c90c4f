"""How a deployment names its source database without holding its password.

A deployment's parameters are stored by the Prefect server in clear, so they carry a reference:
``env:VAR`` (an environment variable on the worker, read at run time), ``secret:BLOCK`` (a Prefect
Secret block; resolved in ``flows``), or a URL without a password. ``resolve`` turns ``env:``
and plain references into the URL; nothing here prints a URL with its password.
"""

from __future__ import annotations

import os

from handoff.errors import ConfigError
from handoff.urls import has_password, safe_url

ENV, SECRET = "env:", "secret:"


def reference(url: str | None, env_var: str | None, secret: str | None) -> str:
    """The one reference a deployment stores, from exactly one of the three ways to give it."""
    given = [x for x in (url, env_var, secret) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of --db URL (no password), --db-env VAR or --db-secret BLOCK")
    if url:
        if url.startswith((ENV, SECRET)):
            return url
        if has_password(url):
            raise ConfigError(f"--db {safe_url(url)} carries a password, which the deployment would store in clear; "
                              "put the URL in an environment variable on the worker and pass --db-env VAR, "
                              "or in a Prefect Secret block and pass --db-secret BLOCK")  # fmt: skip
        return url
    return f"{ENV}{env_var}" if env_var else f"{SECRET}{secret}"


def resolve(ref: str) -> str:
    """The URL behind an ``env:`` or plain reference (``secret:`` references are resolved by the flow)."""
    if ref.startswith(ENV):
        name = ref[len(ENV) :]
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"the source URL is in ${name}, which is not set on this worker")
        return value
    if ref.startswith(SECRET):
        raise ConfigError(f"{ref} names a Prefect Secret block; it is resolved inside a flow run")
    return ref
