"""Settings: the seed's environment variables by their exact names, plus ours.

Every value is validated when the service starts; a bad one stops start-up with a message that
names the variable (see `describe_settings_error`) and never shows a secret.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> str:
    # Only the documented name is read from the environment (never a generic PORT or HOST).
    return name


Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]

# Variables whose values are never shown, in an error or anywhere else.
SECRET_VARIABLES = frozenset({"PRIORIZER_ADMIN_TOKEN", "PRIORIZER_ENROLLMENT_SECRET"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        validate_default=True,
        # A traceback that prints the error must not print a secret (see `describe_settings_error`).
        hide_input_in_errors=True,
    )

    # --- the seed's variables, names unchanged ---
    host: str = Field("127.0.0.1", validation_alias=_env("PRIORIZER_HOST"))
    port: int = Field(8002, ge=1, le=65535, validation_alias=_env("PRIORIZER_PORT"))
    auto_update_interval_minutes: float = Field(
        2.0,
        ge=0.001,
        le=10_080,
        allow_inf_nan=False,
        validation_alias=_env("AUTO_UPDATE_INTERVAL_MINUTES"),
    )
    allocation_expiry_hours: float = Field(
        24.0, gt=0, le=87_600, allow_inf_nan=False, validation_alias=_env("ALLOCATION_EXPIRY_HOURS")
    )
    data_directory: Path = Field(Path("./data"), validation_alias=_env("DATA_DIRECTORY"))
    allocations_file: str = Field("allocations.json", validation_alias=_env("ALLOCATIONS_FILE"))
    ckan_data_file: str = Field("ckan_data.json", validation_alias=_env("CKAN_DATA_FILE"))
    debug: bool = Field(False, validation_alias=_env("DEBUG"))
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = Field(
        "INFO", validation_alias=_env("LOG_LEVEL")
    )

    # --- ours ---
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("LOG_FORMAT"))
    database_url: str | None = Field(None, repr=False, validation_alias=_env("DATABASE_URL"))
    replication_target: int = Field(2, ge=1, le=100, validation_alias=_env("REPLICATION_TARGET"))
    copy_penalty: float = Field(
        3.0, ge=0, le=100, allow_inf_nan=False, validation_alias=_env("COPY_PENALTY")
    )
    unknown_size_mb: Positive = Field(1024.0, validation_alias=_env("UNKNOWN_SIZE_MB"))
    # Large files rank lower: SIZE_PENALTY per doubling past SIZE_PENALTY_FROM_MB, at most
    # SIZE_PENALTY_MAX; FILL_ORDER says which files of one rank go first (docs/allocation.md).
    size_penalty: float = Field(
        2.0, ge=0, le=100, allow_inf_nan=False, validation_alias=_env("SIZE_PENALTY")
    )
    size_penalty_from_mb: Positive = Field(1024.0, validation_alias=_env("SIZE_PENALTY_FROM_MB"))
    size_penalty_max: float = Field(
        4.0, ge=0, le=100, allow_inf_nan=False, validation_alias=_env("SIZE_PENALTY_MAX")
    )
    fill_order: Literal["smallest", "largest"] = Field(
        "smallest", validation_alias=_env("FILL_ORDER")
    )
    max_assets_per_allocation: int = Field(
        50, ge=1, le=10_000, validation_alias=_env("MAX_ASSETS_PER_ALLOCATION")
    )
    workers: int = Field(1, ge=1, le=64, validation_alias=_env("PRIORIZER_WORKERS"))
    run_scheduler: bool = Field(True, validation_alias=_env("PRIORIZER_RUN_SCHEDULER"))
    # SQLite: concurrent /allocate calls of one process share one transaction
    # (`db.writers.GroupCommit`).
    group_commit: bool = Field(True, validation_alias=_env("PRIORIZER_GROUP_COMMIT"))
    # PostgreSQL: connections each server process keeps (as many more at peaks).
    database_pool_size: int = Field(20, ge=1, le=500, validation_alias=_env("DATABASE_POOL_SIZE"))
    # Lifecycle and maintenance (docs/maintenance.md).
    failure_threshold: int = Field(3, ge=1, le=1000, validation_alias=_env("FAILURE_THRESHOLD"))
    # A node is not given back an asset it failed for this long (the origin may come back).
    failed_retry_hours: float = Field(
        72.0, ge=0, le=87_600, allow_inf_nan=False, validation_alias=_env("FAILED_RETRY_HOURS")
    )
    # A copy whose reported size is off the asset's known size by more than this share is
    # disputed: recorded, not counted (allocation.evidence).
    size_tolerance: float = Field(
        0.05, ge=0, le=100, allow_inf_nan=False, validation_alias=_env("SIZE_TOLERANCE")
    )
    node_lost_days: float = Field(
        14.0, gt=0, le=3650, allow_inf_nan=False, validation_alias=_env("NODE_LOST_DAYS")
    )
    priority_jitter: int = Field(1, ge=0, le=9, validation_alias=_env("PRIORITY_JITTER"))
    lease_cap_initial: int = Field(
        200, ge=1, le=1_000_000, validation_alias=_env("LEASE_CAP_INITIAL")
    )
    lease_cap_min: int = Field(10, ge=1, le=1_000_000, validation_alias=_env("LEASE_CAP_MIN"))
    lease_cap_max: int = Field(10_000, ge=1, le=1_000_000, validation_alias=_env("LEASE_CAP_MAX"))
    priority_refresh_limit: int = Field(
        25_000, ge=1, le=100_000_000, validation_alias=_env("PRIORITY_REFRESH_LIMIT")
    )
    snapshot_retention_days: float = Field(
        30.0, gt=0, le=3650, allow_inf_nan=False, validation_alias=_env("SNAPSHOT_RETENTION_DAYS")
    )

    # Security and limits (README "Security").
    admin_token: SecretStr | None = Field(None, validation_alias=_env("PRIORIZER_ADMIN_TOKEN"))
    insecure: bool = Field(False, validation_alias=_env("PRIORIZER_INSECURE"))
    # Node calls must carry the node's own token (POST /nodes/enroll).
    node_auth: bool = Field(False, validation_alias=_env("NODE_AUTH"))
    # Lets a node enroll itself (X-Enrollment-Secret); without it only an admin enrolls nodes.
    enrollment_secret: SecretStr | None = Field(
        None, validation_alias=_env("PRIORIZER_ENROLLMENT_SECRET")
    )
    rate_limit_per_node: str = Field("300/minute", validation_alias=_env("RATE_LIMIT_PER_NODE"))
    rate_limit_per_address: str = Field(
        "6000/minute", validation_alias=_env("RATE_LIMIT_PER_ADDRESS")
    )
    # Open mode (NODE_AUTH off): open leases held by nodes with no completed copy, from one
    # client address, together; None: LEASE_CAP_INITIAL; 0: no such cap.
    unproven_leases_per_address: int | None = Field(
        None, ge=0, le=1_000_000, validation_alias=_env("UNPROVEN_LEASES_PER_ADDRESS")
    )
    # Free space a node may claim; more is a mistake or a lie (422).
    max_free_space_gb: float = Field(
        1_000_000.0, gt=0, le=1e7, allow_inf_nan=False, validation_alias=_env("MAX_FREE_SPACE_GB")
    )
    max_request_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, le=1024**3, validation_alias=_env("MAX_REQUEST_BYTES")
    )
    # The scoring policy (TOML; see scoring/default_policy.toml); None: the default one.
    scoring_policy_file: Path | None = Field(None, validation_alias=_env("SCORING_POLICY_FILE"))
    dashboard_refresh_seconds: float = Field(
        15.0,
        ge=0.5,
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("DASHBOARD_REFRESH_SECONDS"),
    )

    # Watched sources (docs/harvest.md "Watched sources"): how often the scheduler looks for
    # sources due, and where removal alerts go (a JSON POST; none when unset).
    sources_check_seconds: float = Field(
        30.0, ge=1, le=86_400, allow_inf_nan=False, validation_alias=_env("SOURCES_CHECK_SECONDS")
    )
    removal_webhook_url: str | None = Field(
        None, repr=False, validation_alias=_env("REMOVAL_WEBHOOK_URL")
    )

    @field_validator("removal_webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    # Discovery (docs/discovery.md): probing URLs and expanding listings into files.
    probe_interval_minutes: float = Field(
        60.0, ge=0, le=10_080, allow_inf_nan=False, validation_alias=_env("PROBE_INTERVAL_MINUTES")
    )
    probe_batch: int = Field(2_000, ge=1, le=1_000_000, validation_alias=_env("PROBE_BATCH"))
    probe_concurrency: int = Field(64, ge=1, le=1_000, validation_alias=_env("PROBE_CONCURRENCY"))
    probe_host_concurrency: int = Field(
        2, ge=1, le=100, validation_alias=_env("PROBE_HOST_CONCURRENCY")
    )
    probe_timeout_seconds: float = Field(
        20.0, gt=0, le=600, allow_inf_nan=False, validation_alias=_env("PROBE_TIMEOUT_SECONDS")
    )
    probe_retries: int = Field(2, ge=0, le=10, validation_alias=_env("PROBE_RETRIES"))
    probe_refresh_days: float = Field(
        30.0, gt=0, le=3650, allow_inf_nan=False, validation_alias=_env("PROBE_REFRESH_DAYS")
    )
    probe_contact_url: str = Field(
        "https://github.com/priorizer/priorizer",
        pattern=r"^(https?://|mailto:)\S+$",
        validation_alias=_env("PROBE_CONTACT_URL"),
    )
    expand_max_depth: int = Field(3, ge=1, le=20, validation_alias=_env("EXPAND_MAX_DEPTH"))
    expand_max_children: int = Field(
        10_000, ge=1, le=1_000_000, validation_alias=_env("EXPAND_MAX_CHILDREN")
    )

    @field_validator("admin_token", "enrollment_secret")
    @classmethod
    def _token_strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("rate_limit_per_node", "rate_limit_per_address")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a rate like '120/minute'") from error
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0]
        if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        if scheme == "sqlite":
            if value in ("sqlite://", "sqlite:///:memory:"):
                raise ValueError("must name a file: an in-memory database is not shared")
            return value
        raise ValueError("must start with sqlite:// or postgresql:// (postgresql+psycopg://)")

    @model_validator(mode="after")
    def _ordered_caps(self) -> Settings:
        if not self.lease_cap_min <= self.lease_cap_initial <= self.lease_cap_max:
            raise ValueError(
                "LEASE_CAP_MIN, LEASE_CAP_INITIAL, LEASE_CAP_MAX: must be in that order, "
                f"each at most the next (got {self.lease_cap_min}, {self.lease_cap_initial}, "
                f"{self.lease_cap_max})"
            )
        return self

    @classmethod
    def of(cls, **fields: Any) -> Settings:
        """Settings given by attribute name (tools, tests); the environment fills the rest."""
        by_env_name = {
            str(cls.model_fields[name].validation_alias): v for name, v in fields.items()
        }
        return cls(**by_env_name)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_directory / 'priorizer.sqlite3').resolve()}"

    @property
    def allocation_expiry_seconds(self) -> float:
        return self.allocation_expiry_hours * 3600

    @property
    def unproven_address_cap(self) -> int:
        """Open leases of unproven nodes per client address, in open mode (0: no cap)."""
        if self.node_auth:
            return 0  # nodes are who their tokens say: each has its own cap
        if self.unproven_leases_per_address is None:
            return self.lease_cap_initial
        return self.unproven_leases_per_address

    @property
    def failed_retry_seconds(self) -> float:
        return self.failed_retry_hours * 3600

    @property
    def auto_update_interval_seconds(self) -> float:
        return self.auto_update_interval_minutes * 60

    @property
    def node_lost_seconds(self) -> float:
        return self.node_lost_days * 86_400

    def unsafe_to_serve(self) -> str | None:
        """Why the server must not start with these settings, or None: listening beyond
        loopback with no admin token would open admin actions to anyone who reaches it. Checked
        by `priorizer serve` and by `web.app.create_app`, whoever builds the app."""
        if is_loopback(self.host) or self.admin_token is not None or self.insecure:
            return None
        return (
            f"refusing to listen on {self.host} with no PRIORIZER_ADMIN_TOKEN: anyone "
            "who reaches it could run admin actions. Set PRIORIZER_ADMIN_TOKEN (16+ "
            "characters), listen on 127.0.0.1, or set PRIORIZER_INSECURE=1 to accept the risk."
        )


class UnsafeSettings(ValueError):
    """Settings a server must not start with (`Settings.unsafe_to_serve`)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def describe_settings_error(error: ValidationError) -> str:
    """One line per bad variable, named as the operator wrote it, with the value it has unless
    that is a secret (a password inside DATABASE_URL is masked)."""
    lines = []
    for problem in error.errors(include_url=False, include_context=False):
        message = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:  # a rule over several variables: its message names them
            lines.append(message)
            continue
        name = str(problem["loc"][0]).upper()
        lines.append(f"{name}: {message} {_shown_value(name, problem.get('input'))}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _shown_value(name: str, value: object) -> str:
    if name in SECRET_VARIABLES:
        return "(its value is secret: not shown)"
    if name == "DATABASE_URL" and isinstance(value, str):
        value = mask_password(value)
    return f"(got {value!r})"


def mask_password(url: str) -> str:
    """The URL with any password in it replaced by ***: `postgresql://user:***@host/db`.
    Everything before the URL's last @ counts as the user's part, so a password holding an
    unescaped @ or / is hidden whole (at worst, more than the password is)."""
    scheme, separator, rest = url.partition("://")
    if separator and "@" in rest:
        user_part, host = rest.rsplit("@", 1)
        if ":" in user_part:
            url = f"{scheme}://{user_part.split(':', 1)[0]}:***@{host}"
    # libpq also takes a password as a query parameter.
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
