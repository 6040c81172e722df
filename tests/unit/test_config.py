"""Settings: the seed's environment variable names, ours, and readable errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from priorizer.config import Settings, describe_settings_error, mask_password

ENV_NAMES = [
    "PRIORIZER_HOST",
    "PRIORIZER_PORT",
    "AUTO_UPDATE_INTERVAL_MINUTES",
    "ALLOCATION_EXPIRY_HOURS",
    "DATA_DIRECTORY",
    "ALLOCATIONS_FILE",
    "CKAN_DATA_FILE",
    "DEBUG",
    "LOG_LEVEL",
    "DATABASE_URL",
    "REPLICATION_TARGET",
    "COPY_PENALTY",
    "UNKNOWN_SIZE_MB",
    "MAX_ASSETS_PER_ALLOCATION",
    "PRIORIZER_WORKERS",
    "PRIORIZER_RUN_SCHEDULER",
    # Attribute names, which must not be read from the environment.
    "HOST",
    "PORT",
    "WORKERS",
    "RUN_SCHEDULER",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Whatever the shell running the tests exports, each test starts from no variables."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_defaults():
    settings = Settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8002)
    assert settings.auto_update_interval_minutes == 2
    assert settings.allocation_expiry_hours == 24
    assert settings.allocation_expiry_seconds == 24 * 3600
    assert settings.data_directory == Path("./data")
    assert (settings.allocations_file, settings.ckan_data_file) == (
        "allocations.json",
        "ckan_data.json",
    )
    assert settings.debug is False
    assert settings.log_level == "INFO"
    assert settings.database_url is None
    assert settings.sqlalchemy_url == f"sqlite:///{Path('./data/priorizer.sqlite3').resolve()}"
    assert (settings.replication_target, settings.copy_penalty) == (2, 3)
    assert settings.unknown_size_mb == 1024
    assert settings.max_assets_per_allocation == 50


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("PRIORIZER_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("PRIORIZER_PORT", "9100", "port", 9100),
        ("AUTO_UPDATE_INTERVAL_MINUTES", "5", "auto_update_interval_minutes", 5.0),
        ("ALLOCATION_EXPIRY_HOURS", "48", "allocation_expiry_hours", 48.0),
        ("DATA_DIRECTORY", "/srv/priorizer", "data_directory", Path("/srv/priorizer")),
        ("ALLOCATIONS_FILE", "leases.json", "allocations_file", "leases.json"),
        ("CKAN_DATA_FILE", "catalog.json", "ckan_data_file", "catalog.json"),
        ("DEBUG", "true", "debug", True),
        ("DEBUG", "1", "debug", True),
        ("DEBUG", "false", "debug", False),
        ("LOG_LEVEL", "WARNING", "log_level", "WARNING"),
        ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("DATABASE_URL", "sqlite:////tmp/p.sqlite3", "database_url", "sqlite:////tmp/p.sqlite3"),
        ("REPLICATION_TARGET", "3", "replication_target", 3),
        ("COPY_PENALTY", "1.5", "copy_penalty", 1.5),
        ("COPY_PENALTY", "0", "copy_penalty", 0.0),
        ("UNKNOWN_SIZE_MB", "300", "unknown_size_mb", 300.0),
        ("MAX_ASSETS_PER_ALLOCATION", "7", "max_assets_per_allocation", 7),
        ("PRIORIZER_GROUP_COMMIT", "false", "group_commit", False),
        ("DATABASE_POOL_SIZE", "5", "database_pool_size", 5),
    ],
)
def test_reads_environment_variable(monkeypatch, name, value, attribute, expected):
    monkeypatch.setenv(name, value)

    assert getattr(Settings(), attribute) == expected


def test_every_variable_at_once(monkeypatch):
    values = {
        "PRIORIZER_HOST": "10.0.0.5",
        "PRIORIZER_PORT": "8100",
        "AUTO_UPDATE_INTERVAL_MINUTES": "3",
        "ALLOCATION_EXPIRY_HOURS": "12",
        "DATA_DIRECTORY": "/var/lib/priorizer",
        "ALLOCATIONS_FILE": "a.json",
        "CKAN_DATA_FILE": "c.json",
        "DEBUG": "true",
        "LOG_LEVEL": "ERROR",
        "LOG_FORMAT": "json",
        "DATABASE_URL": "postgresql://u:p@db:5432/priorizer",
        "REPLICATION_TARGET": "4",
        "COPY_PENALTY": "2",
        "UNKNOWN_SIZE_MB": "2048",
        "MAX_ASSETS_PER_ALLOCATION": "20",
        "DASHBOARD_REFRESH_SECONDS": "5",
        "SCORING_POLICY_FILE": "/etc/priorizer/policy.toml",
        "PRIORIZER_INSECURE": "1",
        "RATE_LIMIT_PER_NODE": "10/second",
        "RATE_LIMIT_PER_ADDRESS": "100/second",
        "MAX_REQUEST_BYTES": "65536",
        "SOURCES_CHECK_SECONDS": "10",
        "REMOVAL_WEBHOOK_URL": "https://alerts.example.org/hook",
        "PROBE_INTERVAL_MINUTES": "0",
        "PROBE_BATCH": "500",
        "PROBE_CONCURRENCY": "16",
        "PROBE_HOST_CONCURRENCY": "1",
        "PROBE_TIMEOUT_SECONDS": "5",
        "PROBE_RETRIES": "0",
        "PROBE_REFRESH_DAYS": "7",
        "PROBE_CONTACT_URL": "mailto:rescue@example.org",
        "EXPAND_MAX_DEPTH": "2",
        "EXPAND_MAX_CHILDREN": "50",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    lifecycle = {
        "failure_threshold",
        "failed_retry_hours",
        "size_tolerance",
        "unproven_leases_per_address",
        "max_free_space_gb",
        "node_lost_days",
        "priority_jitter",
        "priority_refresh_limit",
        "lease_cap_initial",
        "lease_cap_min",
        "lease_cap_max",
        "snapshot_retention_days",
    }
    # The fill order and size penalty (docs/allocation.md), group commit, pool: tested elsewhere.
    queue = {"fill_order", "size_penalty", "size_penalty_from_mb", "size_penalty_max"}
    database = {"group_commit", "database_pool_size"}
    excluded = {"workers", "run_scheduler", *database, *lifecycle, *queue}
    assert settings.model_dump(exclude=excluded) == {
        "host": "10.0.0.5",
        "port": 8100,
        "auto_update_interval_minutes": 3.0,
        "allocation_expiry_hours": 12.0,
        "data_directory": Path("/var/lib/priorizer"),
        "allocations_file": "a.json",
        "ckan_data_file": "c.json",
        "debug": True,
        "log_level": "ERROR",
        "log_format": "json",
        "database_url": "postgresql+psycopg://u:p@db:5432/priorizer",
        "replication_target": 4,
        "copy_penalty": 2.0,
        "unknown_size_mb": 2048.0,
        "max_assets_per_allocation": 20,
        "dashboard_refresh_seconds": 5.0,
        "scoring_policy_file": Path("/etc/priorizer/policy.toml"),
        "admin_token": None,
        "insecure": True,
        "node_auth": False,
        "enrollment_secret": None,
        "rate_limit_per_node": "10/second",
        "rate_limit_per_address": "100/second",
        "max_request_bytes": 65536,
        "sources_check_seconds": 10.0,
        "removal_webhook_url": "https://alerts.example.org/hook",
        "probe_interval_minutes": 0.0,
        "probe_batch": 500,
        "probe_concurrency": 16,
        "probe_host_concurrency": 1,
        "probe_timeout_seconds": 5.0,
        "probe_retries": 0,
        "probe_refresh_days": 7.0,
        "probe_contact_url": "mailto:rescue@example.org",
        "expand_max_depth": 2,
        "expand_max_children": 50,
    }
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/priorizer"


def test_fractions_accepted_for_short_intervals(monkeypatch):
    monkeypatch.setenv("ALLOCATION_EXPIRY_HOURS", "0.0005")
    monkeypatch.setenv("AUTO_UPDATE_INTERVAL_MINUTES", "0.02")

    settings = Settings()

    assert settings.allocation_expiry_hours == 0.0005
    assert settings.allocation_expiry_seconds == pytest.approx(1.8)
    assert settings.auto_update_interval_minutes == 0.02
    assert settings.auto_update_interval_seconds == pytest.approx(1.2)


def test_sqlite_url_is_derived_from_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIRECTORY", str(tmp_path / "d"))

    assert Settings().sqlalchemy_url == f"sqlite:///{tmp_path / 'd' / 'priorizer.sqlite3'}"


def test_empty_database_url_means_the_sqlite_default(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("DATA_DIRECTORY", str(tmp_path))

    settings = Settings()

    assert settings.database_url is None
    assert settings.sqlalchemy_url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        (
            "postgresql://u:p%40ss@h/db?sslmode=require",
            "postgresql+psycopg://u:p%40ss@h/db?sslmode=require",
        ),
    ],
)
def test_postgresql_urls_are_normalised_to_psycopg(monkeypatch, url, expected):
    monkeypatch.setenv("DATABASE_URL", url)

    settings = Settings()

    assert settings.database_url == expected
    assert settings.sqlalchemy_url == expected


def test_constructor_takes_attribute_names():
    settings = Settings.of(replication_target=3, database_url="postgresql://h/db")

    assert settings.replication_target == 3
    assert settings.database_url == "postgresql+psycopg://h/db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIORIZER_PORT", "abc"),
        ("PRIORIZER_PORT", "0"),
        ("PRIORIZER_PORT", "70000"),
        ("REPLICATION_TARGET", "0"),
        ("REPLICATION_TARGET", "two"),
        ("ALLOCATION_EXPIRY_HOURS", "-1"),
        ("ALLOCATION_EXPIRY_HOURS", "0"),
        ("ALLOCATION_EXPIRY_HOURS", "nan"),
        ("AUTO_UPDATE_INTERVAL_MINUTES", "0"),
        ("AUTO_UPDATE_INTERVAL_MINUTES", "inf"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "no-scheme-at-all"),
        ("DEBUG", "maybe"),
        ("COPY_PENALTY", "-1"),
        ("COPY_PENALTY", "inf"),
        ("UNKNOWN_SIZE_MB", "0"),
        ("MAX_ASSETS_PER_ALLOCATION", "0"),
    ],
)
def test_bad_value_is_refused_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as caught:
        Settings()

    message = describe_settings_error(caught.value)
    assert message.startswith("invalid configuration:")
    lines = message.splitlines()[1:]
    assert len(lines) == 1
    assert lines[0].strip().startswith(f"{name}: ")
    assert repr(value) in lines[0]


def test_every_bad_variable_is_reported(monkeypatch):
    monkeypatch.setenv("PRIORIZER_PORT", "abc")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    monkeypatch.setenv("REPLICATION_TARGET", "0")

    with pytest.raises(ValidationError) as caught:
        Settings()

    message = describe_settings_error(caught.value)
    named = {line.strip().split(":", 1)[0] for line in message.splitlines()[1:]}
    assert named == {"PRIORIZER_PORT", "LOG_LEVEL", "REPLICATION_TARGET"}


@pytest.mark.parametrize(("name", "value"), [("PORT", "9999"), ("HOST", "0.0.0.0")])
def test_only_the_documented_names_are_read(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    settings = Settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8002)


@pytest.mark.parametrize(
    "bad",
    [
        {"allocation_expiry_hours": 1e9},
        {"auto_update_interval_minutes": 0.0000001},
        {"database_url": "sqlite:///:memory:"},
        {"database_url": "sqlite://"},
    ],
)
def test_settings_that_would_fail_later_are_refused_at_start(bad):
    with pytest.raises(ValidationError):
        Settings.of(**bad)


# --- secrets never shown ----------------------------------------------------------------------

ADMIN_TOKEN = "admin-token-0123456789abcdef"
ENROLLMENT_SECRET = "enrollment-secret-0123456789"
DB_PASSWORD = "pg-pa55word-xyz"


@pytest.fixture
def secrets_set(monkeypatch):
    monkeypatch.setenv("PRIORIZER_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("PRIORIZER_ENROLLMENT_SECRET", ENROLLMENT_SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://priorizer:{DB_PASSWORD}@db:5432/p")


def assert_no_secret(text: str) -> None:
    for secret in (ADMIN_TOKEN, ENROLLMENT_SECRET, DB_PASSWORD):
        assert secret not in text, text


def test_a_rule_over_several_variables_names_them_and_shows_no_secret(monkeypatch, secrets_set):
    monkeypatch.setenv("LEASE_CAP_MIN", "500")

    with pytest.raises(ValidationError) as caught:
        Settings()

    message = describe_settings_error(caught.value)
    assert_no_secret(message)
    assert_no_secret(str(caught.value))  # a traceback printing the error shows none either
    [line] = message.splitlines()[1:]
    assert line.strip().startswith("LEASE_CAP_MIN, LEASE_CAP_INITIAL, LEASE_CAP_MAX: ")
    assert "(got 500, 200, 10000)" in line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIORIZER_ADMIN_TOKEN", "short-secret"),
        ("PRIORIZER_ENROLLMENT_SECRET", "tiny-secret"),
    ],
)
def test_a_bad_secret_is_named_but_never_shown(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as caught:
        Settings()

    message = describe_settings_error(caught.value)
    [line] = message.splitlines()[1:]
    assert line.strip().startswith(f"{name}: must be at least 16 characters")
    assert value not in message
    assert value not in str(caught.value)
    assert "secret" in line


def test_a_bad_database_url_is_shown_with_its_password_masked(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"mysql://root:{DB_PASSWORD}@db/priorizer")

    with pytest.raises(ValidationError) as caught:
        Settings()

    message = describe_settings_error(caught.value)
    assert_no_secret(message)
    assert_no_secret(str(caught.value))
    assert "(got 'mysql://root:***@db/priorizer')" in message


def test_settings_repr_shows_no_secret(secrets_set):
    settings = Settings()

    assert_no_secret(repr(settings))
    assert_no_secret(str(settings))


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql+psycopg://u:secret@h/db?sslmode=require", "postgresql+psycopg://u:***@h/db?sslmode=require"),
        ("postgresql://u:se@cr/et@h/db", "postgresql://u:***@h/db"),  # unescaped @ and /
        ("postgresql://u:s%40cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db?user=u&password=secret&x=1", "postgresql://h/db?user=u&password=***&x=1"),
        ("sqlite:////var/lib/p.sqlite3", "sqlite:////var/lib/p.sqlite3"),
        ("not a url", "not a url"),
    ],
)  # fmt: skip
def test_mask_password(url, masked):
    assert mask_password(url) == masked


def test_an_app_is_not_built_to_listen_beyond_loopback_without_an_admin_token(tmp_path):
    """The refusal `priorizer serve` makes holds however the app is built (`uvicorn --factory`,
    an embedding program): the factory itself refuses, and names the way out."""
    from priorizer.config import UnsafeSettings
    from priorizer.web.app import create_app

    def settings(**values: object) -> Settings:
        return Settings.of(database_url=f"sqlite:///{tmp_path / 'p.sqlite3'}", **values)

    with pytest.raises(UnsafeSettings, match="PRIORIZER_ADMIN_TOKEN"):
        create_app(settings(host="0.0.0.0"))
    assert create_app(settings(host="0.0.0.0", admin_token="t" * 20))
    assert create_app(settings(host="0.0.0.0", insecure=True))
    assert create_app(settings(host="::1"))
