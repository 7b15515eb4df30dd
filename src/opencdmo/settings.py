"""One typed settings object, read from ``OPENCDMO_*`` environment variables once at start."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def default_data_dir() -> Path:
    """Per-user data directory; root gets /var/lib/opencdmo (never a path under /root)."""
    if os.geteuid() == 0:
        return Path("/var/lib/opencdmo")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "opencdmo"


@dataclass(frozen=True)
class Settings:
    """Every field is documented in one line; the README lists them from here."""

    database_url: str | None = field(
        default=None,
        metadata={"doc": "Owner connection URL (runs migrations); unset: embedded PostgreSQL"},
    )
    app_database_url: str | None = field(
        default=None,
        metadata={"doc": "Application-role URL; unset: the owner URL with user opencdmo_app"},
    )
    app_db_password: str | None = field(
        default=None, metadata={"doc": "Password set on the opencdmo_app role by `db upgrade`"}
    )
    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata={"doc": "Embedded cluster, local blobs and the generated secret key"},
    )
    secret_key: str | None = field(
        default=None,
        metadata={
            "doc": "Keys CSRF tokens and trusted-browser cookies; unset: generated once and "
            "kept in the data dir"
        },
    )
    audit_key: str | None = field(
        default=None,
        metadata={
            "doc": "Key of the audit trail's HMAC chain and checkpoints (32+ characters); "
            "unset: generated once and kept in the data dir"
        },
    )
    audit_retired_keys: str | None = field(
        default=None,
        metadata={
            "doc": "Earlier audit keys, comma-separated: verified, never used to write (rotation)"
        },
    )
    audit_checkpoint_dir: Path | None = field(
        default=None,
        metadata={
            "doc": "Where signed audit checkpoints are appended; "
            "unset: <data dir>/audit-checkpoints"
        },
    )
    audit_checkpoint_seconds: int = field(
        default=60,
        metadata={"doc": "Seconds between the app's audit checkpoints (0: only by command)"},
    )
    host: str = field(default="127.0.0.1", metadata={"doc": "Address `serve` binds"})
    port: int = field(default=8000, metadata={"doc": "Port `serve` binds"})
    workers: int = field(default=1, metadata={"doc": "Worker processes `serve` starts"})
    cookie_secure: bool = field(
        default=True,
        metadata={"doc": "Secure flag on cookies; false only for plain http on localhost"},
    )
    trusted_origins: str = field(
        default="",
        metadata={
            "doc": "Other origins (comma-separated, e.g. https://cdmo.example) whose pages may "
            "send unsafe requests; the request's own host is always accepted"
        },
    )
    session_idle_minutes: int = field(
        default=30, metadata={"doc": "A session ends after this many idle minutes"}
    )
    session_lifetime_hours: int = field(
        default=12, metadata={"doc": "A session ends this many hours after login, active or not"}
    )
    login_max_failures_account: int = field(
        default=5,
        metadata={
            "doc": "Failed sign-ins for one account from one address (or trusted browser) "
            "before that pair is refused; also where the account's slow-down starts"
        },
    )
    login_max_failures_address: int = field(
        default=20,
        metadata={
            "doc": "Accounts with failed sign-ins from one address before untrusted "
            "attempts from it are slowed down"
        },
    )
    login_window_seconds: int = field(
        default=900, metadata={"doc": "Failures older than this no longer count (throttle decays)"}
    )
    argon2_time_cost: int = field(default=3, metadata={"doc": "argon2id iterations"})
    argon2_memory_kib: int = field(default=65536, metadata={"doc": "argon2id memory in KiB"})
    db_pool_size: int = field(default=10, metadata={"doc": "Connections in the app's pool"})
    auth_cache_seconds: int = field(
        default=10,
        metadata={
            "doc": "Seconds an API token lookup is reused; changes to tokens, users, "
            "memberships and roles drop it at once (0: look up every request)"
        },
    )
    invitation_hours: int = field(
        default=72, metadata={"doc": "Hours an invitation link stays valid (single use)"}
    )
    public_url: str | None = field(
        default=None,
        metadata={
            "doc": "Address people reach the app at, for invitation links; unset: the "
            "request's address (CLI: http://HOST:PORT)"
        },
    )
    sso_http_timeout_seconds: int = field(
        default=10, metadata={"doc": "Seconds to wait for a tenant's OpenID provider"}
    )
    sso_discovery_cache_seconds: int = field(
        default=3600,
        metadata={"doc": "Seconds a provider's discovery document is reused before refetching"},
    )
    sso_request_minutes: int = field(
        default=10,
        metadata={"doc": "Minutes a single sign-on request (state, nonce) stays valid, used once"},
    )
    sso_clock_skew_seconds: int = field(
        default=60, metadata={"doc": "Clock difference allowed on an ID token's times"}
    )
    sso_signing_grant_minutes: int = field(
        default=5,
        metadata={
            "doc": "Minutes a signing code from a re-authentication through the provider "
            "stays valid (single use)"
        },
    )
    s3_bucket: str | None = field(
        default=None,
        metadata={"doc": "S3 bucket that keeps uploaded files (blobs); unset: <data dir>/blobs"},
    )
    s3_endpoint_url: str | None = field(
        default=None,
        metadata={"doc": "S3 endpoint URL (MinIO or another S3 service); unset: AWS's own"},
    )
    s3_region: str | None = field(
        default=None, metadata={"doc": "S3 region of the bucket; unset: boto3's default"}
    )
    s3_access_key_id: str | None = field(
        default=None,
        metadata={"doc": "S3 access key id; unset: boto3's credential chain (instance role...)"},
    )
    s3_secret_access_key: str | None = field(
        default=None,
        repr=False,
        metadata={"doc": "S3 secret access key, from the environment only (never logged)"},
    )
    upload_max_bytes: int = field(
        default=20 * 1024 * 1024,
        metadata={"doc": "Largest file accepted in one upload (a certificate of analysis), bytes"},
    )
    transfer_upload_max_bytes: int = field(
        default=4 * 1024 * 1024 * 1024,
        metadata={"doc": "Largest tech-transfer package accepted in one upload, bytes"},
    )
    pg_bin_dir: Path | None = field(
        default=None,
        metadata={
            "doc": "Directory of pg_dump and pg_restore for `backup` and `restore`; unset: the "
            "embedded server's own of the server's version, else the ones on PATH"
        },
    )
    metrics_token: str | None = field(
        default=None,
        repr=False,
        metadata={
            "doc": "Bearer token that reads /metrics (Prometheus); unset: /metrics answers 404"
        },
    )
    api_rate_per_token: int = field(
        default=600,
        metadata={"doc": "API requests per minute one API token may make (0: no limit)"},
    )
    api_rate_per_tenant: int = field(
        default=3000,
        metadata={"doc": "API requests per minute into one tenant, all callers (0: no limit)"},
    )
    api_rate_burst_seconds: int = field(
        default=10,
        metadata={
            "doc": "Seconds of a rate's requests that may come at once before the limit "
            "spaces them out (the bucket's depth)"
        },
    )
    worker_concurrency: int = field(
        default=2, metadata={"doc": "Jobs one `opencdmo worker` runs at once"}
    )
    job_poll_seconds: int = field(
        default=5,
        metadata={"doc": "A worker looks for due jobs at least this often (NOTIFY wakes it)"},
    )
    job_stale_seconds: int = field(
        default=60,
        metadata={"doc": "A running job whose worker has not beaten for this long is taken again"},
    )
    job_retry_seconds: int = field(
        default=10,
        metadata={"doc": "First retry delay of a failed job; doubled on each later attempt"},
    )
    worker_stop_seconds: int = field(
        default=30,
        metadata={"doc": "On SIGTERM, how long running jobs may finish before they are requeued"},
    )
    lot_expiry_seconds: int = field(
        default=3600,
        metadata={"doc": "How often the lot expiry job stores `expired` on passed lots (0: never)"},
    )
    smtp_url: str | None = field(
        default=None,
        repr=False,
        metadata={
            "doc": "Mail server for notifications: smtp://[user[:password]@]host[:port] "
            "(STARTTLS when offered) or smtps://... (TLS); unset: no mail is sent"
        },
    )
    smtp_password_env: str | None = field(
        default=None,
        metadata={
            "doc": "Name of the environment variable holding the SMTP password (instead of "
            "a password in the URL)"
        },
    )
    smtp_timeout_seconds: int = field(
        default=30, metadata={"doc": "Seconds to wait for the mail server"}
    )
    mail_from: str | None = field(
        default=None,
        metadata={
            "doc": "Sender of notification mails; unset: opencdmo@ the host of the public "
            "URL (else of the mail server)"
        },
    )
    notify_seconds: int = field(
        default=300,
        metadata={
            "doc": "How often work awaiting people is mailed to them, when mail is set up "
            "(0: never)"
        },
    )
    prune_seconds: int = field(
        default=86400,
        metadata={
            "doc": "How often the job worker removes finished jobs past their retention and "
            "spent single sign-on requests (0: never)"
        },
    )
    job_retention_days: int = field(
        default=30,
        metadata={"doc": "Days a finished (done or failed) background job is kept"},
    )
    export_wait_seconds: int = field(
        default=120,
        metadata={
            "doc": "Seconds an API request for an export waits for the job worker to build it "
            "before answering 202 with the export to poll"
        },
    )
    quarantine_sweep_seconds: int = field(
        default=3600,
        metadata={
            "doc": "How often the job worker removes uploads left in quarantine a day after "
            "their verification ended or vanished (0: never)"
        },
    )
    seal_seconds: int = field(
        default=30,
        metadata={
            "doc": "How often the job worker seals the equipment samples' due periods into "
            "the audit trail (0: never)"
        },
    )
    seal_period_seconds: int = field(
        default=300,
        metadata={
            "doc": "Length of a sealed period of equipment samples for a unit's first seal "
            "(a unit keeps the length of its seals)"
        },
    )
    seal_grace_seconds: int = field(
        default=60,
        metadata={"doc": "Seconds after a period of samples ends before it is sealed"},
    )
    log_level: str = field(default="INFO", metadata={"doc": "Log level (DEBUG, INFO, WARNING)"})
    log_json: bool = field(default=True, metadata={"doc": "Structured JSON logs (false: text)"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``OPENCDMO_<FIELD>`` for every field; ``overrides`` win (used by tests)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"OPENCDMO_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, str(f.type), raw)
        values.update(overrides)
        return cls(**values)

    def resolved_secret_key(self) -> str:
        """The configured secret, or one generated once and kept (0600) in the data dir."""
        return self.secret_key or _generated(self.data_dir / "secret_key")

    def resolved_audit_key(self) -> str:
        """The audit key: configured, or generated once and kept (0600) in the data dir."""
        key = self.audit_key or _generated(self.data_dir / "audit_key")
        if len(key) < AUDIT_KEY_MIN:
            raise SettingsError(f"OPENCDMO_AUDIT_KEY: needs at least {AUDIT_KEY_MIN} characters")
        return key

    def resolved_audit_retired_keys(self) -> list[str]:
        return [k.strip() for k in (self.audit_retired_keys or "").split(",") if k.strip()]

    def resolved_audit_checkpoint_dir(self) -> Path:
        return self.audit_checkpoint_dir or self.data_dir / "audit-checkpoints"


AUDIT_KEY_MIN = 32


def _generated(path: Path) -> str:
    """A random key kept in ``path`` (0600), created once and published whole (a link), so a
    concurrent process reads either no file or the complete key; the first creator wins."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def _parse(name: str, type_name: str, raw: str) -> Any:
    if "bool" in type_name:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"OPENCDMO_{name.upper()}: expected true or false, got {raw!r}")
    if type_name == "int":
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(
                f"OPENCDMO_{name.upper()}: expected an integer, got {raw!r}"
            ) from None
    if "Path" in type_name:
        return Path(raw).expanduser()
    return raw
