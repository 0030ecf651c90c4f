"""Typed configuration, resolved in one documented order.

Order (first wins): command-line flags, ``HANDOFF_*`` environment variables, the TOML file
named by ``HANDOFF_CONFIG`` (default ``./handoff.toml`` when present), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from handoff.early_settings import config_file, default_workers
from handoff.errors import ConfigError

_REPO_EXPECTATIONS = Path(__file__).resolve().parents[2] / "expectations"


def _default_policy_dir() -> Path:
    local = Path.cwd() / "expectations"
    if (local / "orders").is_dir():
        return local
    return _REPO_EXPECTATIONS


class Settings(BaseSettings):
    """Everything an operator may set. See README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="forbid")

    home: Path = Field(default=Path(".handoff"), description="State, staging and lineage folder.")
    state_url: str | None = Field(default=None, description="State database URL (default SQLite in home).")
    policy_dir: Path = Field(default_factory=_default_policy_dir, description="Court-order policy folder.")
    chunk_rows: int = Field(default=50_000, ge=1_000, le=5_000_000, description="Rows per extract chunk.")
    workers: int = Field(default_factory=lambda: default_workers(), ge=1, le=64,
                         description="Worker processes checking units (with check_processes) and threads "
                         "encoding files; in threads, units are checked on one thread (GX holds the GIL). "
                         "Default: half the cores, at least one (the database needs the others).")  # fmt: skip
    check_rows: int = Field(default=200_000, ge=1_000, le=5_000_000, description="Rows GX validates at once "
                            "(consecutive chunks are grouped up to this): GX's cost per validation is mostly fixed, "
                            "so larger units cost less CPU and more memory.")  # fmt: skip
    check_processes: bool | None = Field(default=None, description="Check chunks in HANDOFF_WORKERS worker "
                                         "processes, one core each (true), or in threads of this process, which "
                                         "share one core while GX runs (false). Default: processes on machines "
                                         "with 4 or more cores.")  # fmt: skip
    fast_path: bool = Field(default=True, description="Use ADBC + shared snapshot on PostgreSQL.")
    source_parallel: int | None = Field(default=None, ge=0, le=64, description="PostgreSQL parallel workers per "
                                        "scan in source sessions (default: none for a source on this machine when "
                                        "it has fewer than 4 cores, else the server's setting).")  # fmt: skip
    signing_key: Path | None = Field(
        default=None,
        description="SSH key a scheduled deployment signs its transfer requests with (its service principal "
        "holds handoff-service in the trust file: it signs scheduled requests and nothing else). Grants nothing "
        "by itself: the trust file decides.",
    )
    bucket: str | None = Field(default=None, description="S3 handoff bucket.")
    prefix: str = Field(default="", description="Key prefix inside the bucket.")
    kms_key_id: str | None = Field(default=None, description="KMS key for SSE-KMS.")
    region: str = Field(default="us-east-1", description="AWS region of the bucket.")
    multipart_threshold_mb: int = Field(default=64, ge=5, description="Files above this use multipart.")
    audit_bucket: str | None = Field(
        default=None, description="Object Lock bucket for ledger anchors and stop markers."
    )
    audit_retention_days: int = Field(default=2190, ge=1, le=36500, description="COMPLIANCE retention of anchors.")
    uploads: int = Field(default=4, ge=1, le=32, description="Objects a delivery uploads at once; each is still "
                         "checked and guarded, in order, before its bytes go (1: one at a time).")  # fmt: skip
    lease_seconds: int = Field(default=900, ge=30, le=86400, description="A delivery's lease, renewed per object.")
    delivery_attempts: int = Field(default=3, ge=1, le=100, description="Releases that may fail on one batch (a "
                                   "missing bucket, access denied, an unusable KMS key, S3 down) before it ends "
                                   "failed, its uploaded objects withdrawn and accounted.")  # fmt: skip
    lineage_transport: Literal["file", "http", "none"] = "file"
    lineage_url: str | None = Field(default=None, description="OpenLineage HTTP endpoint (http transport).")
    lineage_namespace: str = "handoff"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def resolved_state_url(self) -> str:
        if self.state_url:
            return self.state_url
        return f"sqlite:///{(self.home / 'state.db').resolve()}"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def lineage_dir(self) -> Path:
        return self.home / "lineage"


_RETIRED = {
    "approvers": 'approvers are keys listed with namespaces="handoff-approve" in the reviewed trust file '
    "expectations/trust/allowed_signers; no setting grants authority",
}


def _refuse_retired() -> None:
    """A setting that used to grant authority is an error, not silently ignored."""
    for name, replaced in _RETIRED.items():
        if os.environ.get(f"HANDOFF_{name.upper()}"):
            raise ConfigError(f"HANDOFF_{name.upper()} is no longer read: {replaced}. Unset it")
        path = config_file()
        if path.is_file():
            import tomllib

            try:
                doc = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: not valid TOML ({exc})") from None
            if name in doc:
                raise ConfigError(f"{path}: `{name}` is no longer read: {replaced}. Remove it")


def load_settings(**overrides: Any) -> Settings:
    """Build settings; flags passed as keyword arguments win over everything else."""
    _refuse_retired()
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**clean)
    except SettingsError as exc:
        raise ConfigError(f"configuration error: {exc}; check HANDOFF_* variables and {config_file()}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(
            f"configuration error in {where}: {first['msg']} (check HANDOFF_{where.upper()} or {config_file()})"
        ) from None
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
