"""Typed configuration, resolved in one documented order.

Order (first wins): command-line flags, ``HANDOFF_*`` environment variables, the TOML file
named by ``HANDOFF_CONFIG`` (default ``./handoff.toml`` when present), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from handoff.errors import ConfigError

_REPO_EXPECTATIONS = Path(__file__).resolve().parents[2] / "expectations"


def _default_policy_dir() -> Path:
    local = Path.cwd() / "expectations"
    if (local / "orders").is_dir():
        return local
    return _REPO_EXPECTATIONS


def _config_file() -> Path:
    return Path(os.environ.get("HANDOFF_CONFIG", "handoff.toml"))


class Settings(BaseSettings):
    """Everything an operator may set. See README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="forbid")

    home: Path = Field(default=Path(".handoff"), description="State, staging and lineage folder.")
    state_url: str | None = Field(default=None, description="State database URL (default SQLite in home).")
    policy_dir: Path = Field(default_factory=_default_policy_dir, description="Court-order policy folder.")
    chunk_rows: int = Field(default=50_000, ge=1_000, le=5_000_000, description="Rows per extract chunk.")
    workers: int = Field(default=2, ge=1, le=64, description="Threads validating and encoding chunks.")
    fast_path: bool = Field(default=True, description="Use ADBC + shared snapshot on PostgreSQL.")
    approvers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Names allowed to approve a batch (comma-separated in the environment)."
    )
    bucket: str | None = Field(default=None, description="S3 handoff bucket.")
    prefix: str = Field(default="", description="Key prefix inside the bucket.")
    kms_key_id: str | None = Field(default=None, description="KMS key for SSE-KMS.")
    region: str = Field(default="us-east-1", description="AWS region of the bucket.")
    multipart_threshold_mb: int = Field(default=64, ge=5, description="Files above this use multipart.")
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
        path = _config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("approvers", mode="before")
    @classmethod
    def _split_approvers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

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


def load_settings(**overrides: Any) -> Settings:
    """Build settings; flags passed as keyword arguments win over everything else."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**clean)
    except SettingsError as exc:
        raise ConfigError(f"configuration error: {exc}; check HANDOFF_* variables and {_config_file()}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(
            f"configuration error in {where}: {first['msg']} (check HANDOFF_{where.upper()} or {_config_file()})"
        ) from None
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
