"""One ``Settings`` object, read from the environment and an optional ``.env`` file.

It is built once at the edges (CLI, notebook, server extension) with ``load_settings()`` and
passed down; nothing deeper reads ``os.environ``. A malformed value stops the program at start
with a ``SettingsError`` that names the variable.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from revtops_kernel.errors import SettingsError

DEFAULT_MODEL = "claude-opus-4-6"  # 4-5 is marked deprecated by the SDK (retires 2027-01-22)
ORG_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# The read-only path's limits (REVTOPS_QUERY_MAX_ROWS, REVTOPS_QUERY_TIMEOUT) when unset; the
# store and the SQL guard default to these too.
DEFAULT_QUERY_MAX_ROWS = 10_000
DEFAULT_QUERY_TIMEOUT_SECONDS = 30.0
# DuckDB's buffer manager on the store's write connections (a sync's): DuckDB's own default is
# 80% of the machine's memory, which a scale-10 sync grows into as it scans big tables; above
# the limit DuckDB spills joins and sorts to <file>.tmp. REVTOPS_DUCKDB_MEMORY_LIMIT. 256MiB:
# Calendar's scale-10 first sync peaked at 623 MiB under load (874 with 512MiB, side by side,
# same CPU) and 822 MiB on a quiet machine; a 25,000-activity upsert into the scale-10 store
# took no more CPU (bench/results/scale-resolution-batch-rss-2026-12-06.txt).
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MiB"
# Seconds a sync waits for another process's sync of the same provider and organization
# (PostgreSQL) before giving up: longer than a scale-10 first sync. REVTOPS_SYNC_LOCK_WAIT.
DEFAULT_SYNC_LOCK_WAIT_SECONDS = 7200.0
_MEMORY_SIZE = r"(?i)^\s*\d+(\.\d+)?\s*(%|[KMGT]i?B|B|bytes)\s*$"  # as DuckDB reads it: a unit


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL such as https://host/path, got {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
OptionalHttpUrl = Annotated[str | None, AfterValidator(_http_url)]


class Settings(BaseSettings):
    """Everything configurable, with the environment variable that sets it.

    Field names map to variables through ``validation_alias``; the README's configuration
    table lists them all.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    # --- store -----------------------------------------------------------------------------
    home: Path = Field(default=Path("~/.revtops"), validation_alias="REVTOPS_HOME")
    database_url_raw: str | None = Field(default=None, validation_alias="REVTOPS_DATABASE_URL")
    readonly_database_url_raw: str | None = Field(
        default=None, validation_alias="REVTOPS_READONLY_DATABASE_URL"
    )
    org: str = Field(default="default", validation_alias="REVTOPS_ORG")
    db_lock_timeout: float = Field(default=60.0, gt=0, validation_alias="REVTOPS_DB_LOCK_TIMEOUT")
    duckdb_memory_limit: str = Field(
        default=DEFAULT_DUCKDB_MEMORY_LIMIT,
        pattern=_MEMORY_SIZE,
        validation_alias="REVTOPS_DUCKDB_MEMORY_LIMIT",
    )
    # How long a sync waits for another process's sync of the same provider and organization
    # (PostgreSQL) before giving up with one line naming the holder: a killed holder releases
    # the lock at once, so a wait this long means a hung one. Longer than a scale-10 first sync.
    sync_lock_wait: float = Field(
        default=DEFAULT_SYNC_LOCK_WAIT_SECONDS, gt=0, validation_alias="REVTOPS_SYNC_LOCK_WAIT"
    )
    # A sync's batch hit by a transient store fault (lost connection, deadlock, serialization
    # failure) is retried on a fresh connection this many times in total (store.retry), the
    # backoff starting at this many seconds and doubling, jittered, up to 8 s.
    store_retry_attempts: int = Field(
        default=5, ge=1, le=50, validation_alias="REVTOPS_STORE_RETRY_ATTEMPTS"
    )
    store_retry_delay: float = Field(
        default=0.5, ge=0, validation_alias="REVTOPS_STORE_RETRY_DELAY"
    )
    query_timeout: float = Field(
        default=DEFAULT_QUERY_TIMEOUT_SECONDS, gt=0, validation_alias="REVTOPS_QUERY_TIMEOUT"
    )
    query_max_rows: int = Field(
        default=DEFAULT_QUERY_MAX_ROWS, gt=0, validation_alias="REVTOPS_QUERY_MAX_ROWS"
    )

    # --- providers: a plain token for a single user, or Nango --------------------------------
    hubspot_token: SecretStr | None = Field(default=None, validation_alias="REVTOPS_HUBSPOT_TOKEN")
    salesforce_token: SecretStr | None = Field(
        default=None, validation_alias="REVTOPS_SALESFORCE_TOKEN"
    )
    slack_token: SecretStr | None = Field(default=None, validation_alias="REVTOPS_SLACK_TOKEN")
    google_calendar_token: SecretStr | None = Field(
        default=None, validation_alias="REVTOPS_GOOGLE_CALENDAR_TOKEN"
    )
    hubspot_base_url: HttpUrl = Field(
        default="https://api.hubapi.com", validation_alias="REVTOPS_HUBSPOT_BASE_URL"
    )
    salesforce_instance_url: OptionalHttpUrl = Field(
        default=None, validation_alias="REVTOPS_SALESFORCE_INSTANCE_URL"
    )
    slack_base_url: HttpUrl = Field(
        default="https://slack.com/api", validation_alias="REVTOPS_SLACK_BASE_URL"
    )
    google_calendar_base_url: HttpUrl = Field(
        default="https://www.googleapis.com/calendar/v3",
        validation_alias="REVTOPS_GOOGLE_CALENDAR_BASE_URL",
    )
    slack_thread_lookback_days: int = Field(
        default=14, ge=0, le=3650, validation_alias="REVTOPS_SLACK_THREAD_LOOKBACK_DAYS"
    )
    slack_requests_per_minute: int = Field(
        default=50, gt=0, validation_alias="REVTOPS_SLACK_REQUESTS_PER_MINUTE"
    )
    # A full Salesforce sync reads an object with more records than this through a Bulk API 2.0
    # query job instead of REST pages of 2,000; 0 never uses the Bulk API.
    salesforce_bulk_threshold: int = Field(
        default=10_000, ge=0, validation_alias="REVTOPS_SALESFORCE_BULK_THRESHOLD"
    )
    nango_base_url: HttpUrl = Field(
        default="https://api.nango.dev", validation_alias="NANGO_BASE_URL"
    )
    nango_secret_key: SecretStr | None = Field(default=None, validation_alias="NANGO_SECRET_KEY")
    nango_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="NANGO_WEBHOOK_SECRET"
    )

    # --- the assistant -------------------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: OptionalHttpUrl = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")
    model: str = Field(default=DEFAULT_MODEL, min_length=1, validation_alias="REVTOPS_MODEL")
    max_tool_rounds: int = Field(default=8, ge=1, le=50, validation_alias="REVTOPS_MAX_TOOL_ROUNDS")
    max_output_tokens: int = Field(
        default=4096, ge=256, le=128_000, validation_alias="REVTOPS_MAX_OUTPUT_TOKENS"
    )
    max_question_tokens: int = Field(
        default=300_000, ge=1_000, validation_alias="REVTOPS_MAX_QUESTION_TOKENS"
    )
    max_question_chars: int = Field(
        default=8_000, ge=100, le=1_000_000, validation_alias="REVTOPS_MAX_QUESTION_CHARS"
    )
    api_retries: int = Field(default=4, ge=0, le=10, validation_alias="REVTOPS_API_RETRIES")
    timezone: str = Field(default="UTC", min_length=1, validation_alias="REVTOPS_TIMEZONE")
    # Cost caps per organization (USD, UTC day and month; 0 = no cap); an admin can set an
    # organization's own (``revtops usage caps``). Verified answers never count against them.
    daily_cost_cap_usd: Decimal = Field(
        default=Decimal(0), ge=0, validation_alias="REVTOPS_DAILY_COST_CAP_USD"
    )
    monthly_cost_cap_usd: Decimal = Field(
        default=Decimal(0), ge=0, validation_alias="REVTOPS_MONTHLY_COST_CAP_USD"
    )

    # --- sign-in (Supabase) --------------------------------------------------------------------
    supabase_url: OptionalHttpUrl = Field(default=None, validation_alias="SUPABASE_URL")
    supabase_anon_key: SecretStr | None = Field(default=None, validation_alias="SUPABASE_ANON_KEY")
    supabase_jwt_secret: SecretStr | None = Field(
        default=None, validation_alias="SUPABASE_JWT_SECRET"
    )
    # The key of the admin endpoints (waitlist list and invite); unset disables them.
    admin_key: SecretStr | None = Field(default=None, validation_alias="REVTOPS_ADMIN_KEY")
    # The web app's kernels: one per open page (plus the preheated pool). An idle one (no
    # message for this many seconds, no page connected) is shut down; 0 keeps them forever.
    kernel_idle_timeout: float = Field(
        default=3600.0, ge=0, validation_alias="REVTOPS_KERNEL_IDLE_TIMEOUT"
    )
    # Users' kernels one app process holds at once; the next visitor is told to come back.
    max_kernels: int = Field(default=40, ge=1, validation_alias="REVTOPS_MAX_KERNELS")

    # --- scheduled work -----------------------------------------------------------------------
    broker_url: str | None = Field(default=None, validation_alias="REVTOPS_BROKER_URL")
    runs_dir_raw: Path | None = Field(default=None, validation_alias="REVTOPS_RUNS_DIR")
    run_timeout: float = Field(default=3600.0, gt=0, validation_alias="REVTOPS_RUN_TIMEOUT")
    run_heartbeat_interval: float = Field(
        default=15.0, gt=0, validation_alias="REVTOPS_RUN_HEARTBEAT_INTERVAL"
    )
    run_max_attempts: int = Field(default=2, ge=1, validation_alias="REVTOPS_RUN_MAX_ATTEMPTS")
    scheduler_poll_interval: float = Field(
        default=15.0, gt=0, validation_alias="REVTOPS_SCHEDULER_POLL_INTERVAL"
    )
    scheduler_workers: int = Field(default=2, ge=1, validation_alias="REVTOPS_SCHEDULER_WORKERS")
    notebook_kernel: str = Field(
        default="python3", min_length=1, validation_alias="REVTOPS_NOTEBOOK_KERNEL"
    )
    celery_queue: str = Field(
        default="revtops", min_length=1, validation_alias="REVTOPS_CELERY_QUEUE"
    )
    # Caps on what one organization may schedule (a workflow runs code on the server's workers).
    # Shortest time between two due times of a workflow's cron schedule, in minutes.
    workflow_min_interval_minutes: int = Field(
        default=5, ge=1, le=1440, validation_alias="REVTOPS_WORKFLOW_MIN_INTERVAL_MINUTES"
    )
    # Workflows one organization may store.
    workflow_max_per_org: int = Field(
        default=50, ge=1, validation_alias="REVTOPS_WORKFLOW_MAX_PER_ORG"
    )
    # Runs of one organization queued or running at once (started by hand or by the API).
    workflow_max_active_runs_per_org: int = Field(
        default=5, ge=1, validation_alias="REVTOPS_WORKFLOW_MAX_ACTIVE_RUNS_PER_ORG"
    )
    # Runs started by hand (CLI, API, run_now) of one workflow within an hour.
    workflow_max_manual_runs_per_hour: int = Field(
        default=12, ge=1, validation_alias="REVTOPS_WORKFLOW_MAX_MANUAL_RUNS_PER_HOUR"
    )

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Paris)") from None
        return value

    @field_validator("org")
    @classmethod
    def _org_is_slug(cls, value: str) -> str:
        if not ORG_ID_PATTERN.match(value):
            raise ValueError(
                "an organization id is 1-63 characters of lowercase letters, digits, '-' and '_', "
                f"starting with a letter or digit; got {value!r}"
            )
        return value

    @field_validator("database_url_raw", "readonly_database_url_raw")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        normalize_database_url(value)  # raises ValueError with the reason
        return value

    @field_validator("broker_url")
    @classmethod
    def _redis_broker(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if urlsplit(value).scheme not in ("redis", "rediss"):
            raise ValueError(f"expected redis://host:port/db, got {value!r}")
        return value

    # --- derived values ------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the store: PostgreSQL if set, else the embedded DuckDB file."""
        if self.database_url_raw:
            return normalize_database_url(self.database_url_raw)
        return f"duckdb:///{self.home / 'revtops.duckdb'}"

    @property
    def runs_dir(self) -> Path:
        """Where scheduled runs keep their output notebooks (``<workflow>/<run id>.ipynb``)."""
        return (self.runs_dir_raw or self.home / "runs").expanduser()

    @property
    def readonly_database_url(self) -> str | None:
        """Where the assistant's queries connect on PostgreSQL (see ``store.engines``)."""
        if self.readonly_database_url_raw:
            return normalize_database_url(self.readonly_database_url_raw)
        return None


class RiskThresholds(BaseModel):
    """Thresholds of the deal-risk rules (the ``deal_risks`` verified query), with their
    defaults. An organization overrides any of them (``organization_risk_settings``, written by
    ``revtops_kernel.intelligence.risk``); a question can override both.

    Not read from the environment, unlike ``Settings``: the defaults are written into the
    query's SQL, so a risk list re-runs identically from an artifact, a digest or
    ``revtops sql`` in any process. The per-organization row is the knob.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # ghosted: our emails, calls or messages went out in these days and nothing came back.
    risk_ghosted_days: int = Field(default=14, ge=1, le=365)
    # no recent meeting: none in these days (deal at least this old) and none scheduled.
    risk_no_meeting_days: int = Field(default=30, ge=1, le=365)
    # stalled: days in the current stage above this percentile of won deals' days there...
    risk_stalled_percentile: int = Field(default=75, ge=50, le=99)
    # ...when at least this many won deals went through the stage (fewer: no norm to judge by).
    risk_stalled_min_won_deals: int = Field(default=5, ge=1, le=10_000)
    # single-threaded: at most this many customer contacts engaged in these days.
    risk_single_threaded_days: int = Field(default=30, ge=1, le=365)
    risk_single_threaded_max_contacts: int = Field(default=1, ge=0, le=10)
    # close date pushed: moved later at least this many times.
    risk_pushed_min_moves: int = Field(default=2, ge=1, le=50)
    # amount dropped: cut by at least this many percent since entering the current stage.
    risk_amount_drop_percent: int = Field(default=20, ge=1, le=100)


RISK_DEFAULTS = RiskThresholds()


def normalize_database_url(url: str) -> str:
    """Accept ``postgres://``, ``postgresql://``, ``duckdb:///path``; pin the psycopg 3 driver."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError(f"a PostgreSQL URL needs a host: {_redact(url)!r}")
        return urlunsplit(parts._replace(scheme="postgresql+psycopg"))
    if scheme == "duckdb":
        if not parts.path or parts.path == "/":
            raise ValueError("a DuckDB URL needs a file path: duckdb:////absolute/path.duckdb")
        return url
    raise ValueError(
        "expected postgresql://user@host:5432/db or duckdb:///path/to/file.duckdb, "
        f"got {_redact(url)!r}"
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and ``.env``); raise ``SettingsError`` naming the bad variable.

    ``overrides`` are keyed by variable name (``REVTOPS_ORG="acme"``) and win over the
    environment, which is how the CLI's flags and the tests set values.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = str(first["loc"][0]) if first["loc"] else "settings"
        variable = _variable_for(field_name)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(variable, message) from None


def _variable_for(name: str) -> str:
    field = Settings.model_fields.get(name)
    if field is not None and isinstance(field.validation_alias, str):
        return field.validation_alias
    return name
