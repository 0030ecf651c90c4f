"""Database URLs as people see them: every password hidden, in messages, logs, manifests and lineage."""

from __future__ import annotations

import re

import sqlalchemy as sa

# Query keys that carry a secret in some dialect's URL: password, sslpassword (libpq), passwd and pwd
# (MySQL, ODBC), and anything naming a secret, token or credential; also a value that is itself a
# connection string holding one (``odbc_connect=...;PWD=...``).
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token|credential", re.IGNORECASE)
_SECRET_IN_VALUE = re.compile(r"(?:pass|pwd)\w*\s*=", re.IGNORECASE)


def _secret_keys(url: sa.engine.URL) -> list[str]:
    return [k for k, v in url.query.items() if _SECRET_QUERY_KEY.search(k) or _SECRET_IN_VALUE.search(str(v))]


def safe_url(url: str | sa.engine.URL) -> str:
    """A database URL with every password hidden (userinfo and password-bearing query keys), for the
    state database, logs, manifests, lineage and error messages."""
    try:
        parsed = sa.engine.make_url(url)
        secret = _secret_keys(parsed)
        if secret:
            parsed = parsed.update_query_dict({k: "masked" for k in secret})
        return parsed.render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        return "<unparseable url>"


def has_password(url: str) -> bool:
    """Whether the URL carries a password anywhere SQLAlchemy or the driver would read one."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        return "@" in url or bool(_SECRET_QUERY_KEY.search(url))
    return bool(parsed.password) or bool(_secret_keys(parsed))
