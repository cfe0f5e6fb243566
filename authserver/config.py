"""Every setting, typed, in one object: `Settings`, read from the environment once per app.

`load(overrides, instance_path)` parses the environment (names are the upper-case field
names, documented in docs/api.md) and the overrides given to `create_app` through the very
same validators, fills in the defaults that depend on other settings and checks the result.
A bad value stops the app at start with a message that names the variable, instead of
failing on the first request. Code reads settings as attributes (`settings().otp_ttl`, see
services.py); Flask and its extensions get the upper-case copy `flask_config()` returns.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Mapping
from typing import Annotated, Any, cast
from urllib.parse import urlsplit

from flask import current_app
from limits import parse_many
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

log = logging.getLogger("authserver.config")


class ConfigError(ValueError):
    """A setting has a value the server cannot run with."""


def _split(raw: Any) -> Any:
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _test_numbers(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    numbers: dict[str, str] = {}
    for item in _split(raw):
        phone, sep, code = item.partition("=")
        if not sep or not code.strip().isdigit() or len(code.strip()) != 6:
            raise ValueError(f"expected +NUMBER=6DIGITS, got {item!r}")
        numbers[phone.strip()] = code.strip()
    return numbers


def _rate(value: str) -> str:
    value = value.strip().strip(";").strip()
    if value:
        list(parse_many(value))  # raises ValueError naming the bad part
    return value


#: Satellite and international networks (Inmarsat +870, GMSS +881, international networks
#: +882/+883) and the international premium rate service +979: costly to text, rarely a
#: person's phone, the usual ranges of SMS pumping.
DEFAULT_SMS_DENIED_PREFIXES = ("+870", "+881", "+882", "+883", "+979")


#: The password length bounds (code points after NFKC; see passwords.py). NIST SP 800-63B
#: rev. 4: at least 15 for a password that is the only factor, never below 8; accept at
#: least 64. The cap bounds argon2's input: 256 code points are at most 1024 UTF-8 bytes.
PASSWORD_MIN_LENGTH_FLOOR = 8
PASSWORD_MAX_LENGTH = 256


#: What WEBHOOK_EVENTS may name (authserver/webhooks.py maps the internal events to these).
WEBHOOK_EVENT_TYPES = ("user.created", "user.signed_in", "user.updated", "user.deleted",
                       "session.revoked")


#: A comma-separated list in the environment, a list in overrides.
CommaList = Annotated[list[str], BeforeValidator(_split)]
#: "+15550001111=123456,…" in the environment, a dict in overrides.
TestNumbers = Annotated[dict[str, str], BeforeValidator(_test_numbers)]
#: A rate limit in the `limits` notation ("5/hour;10/day"); empty turns it off.
Rate = Annotated[str, AfterValidator(_rate)]


class Settings(BaseModel):
    """Each field is the environment variable of the same name in upper case."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # Core
    database_url: str = Field("", description="SQLAlchemy URL; default: SQLite in instance/")
    database_connect_timeout: float = Field(
        2.0, description="MySQL: seconds to wait for a TCP connection to the database")
    database_read_timeout: float = Field(
        2.5, description="MySQL: seconds to wait for any one answer (handshake, statement); "
                         "raise it for a long migration")
    database_lock_wait_timeout: int = Field(
        2, description="MySQL: seconds a statement waits for a row lock (per session)")
    database_pool_timeout: float = Field(
        2.0, description="seconds to wait for a free pooled connection")
    db_causal_reads: bool = Field(
        False, description="MariaDB Galera / MySQL Group Replication: the token check's "
                           "revocation lookup waits until this node has applied every write "
                           "the cluster committed before it (a logout on one node is refused "
                           "on all at once); off: a node may lag by a moment")
    secret_key: str = Field("", description="signs cookies and links, encrypts keys at rest")
    cors_allowed_origins: CommaList = Field(
        default_factory=list,
        description="origins (scheme://host[:port], exact) whose browser apps may call "
                    "token/exchange, token/refresh, logout and me across origins; default "
                    "none")
    secret_key_fallbacks: CommaList = Field(
        default_factory=list,
        description="earlier SECRET_KEYs, newest first: what they signed or encrypted is still "
                    "accepted (cookies, links, codes, device tokens, keys at rest) while new "
                    "things use SECRET_KEY; see README \"Rotating SECRET_KEY\"")
    public_base_url: str = Field("http://localhost:5000",
                                 description="the origin mailed links point at")
    app_name: str = Field("authserver", description="shown in pages, mails and SMS")
    max_content_length: int = Field(64 * 1024, description="largest request body, bytes")
    log_level: str = Field("INFO", description="root log level")
    log_format: str = Field(
        "text", description="json (one object per line; gunicorn.conf.py's default) | text "
                            "(`make run`'s)")
    metrics_token: str = Field(
        "", description="when set, GET /metrics asks for `Authorization: Bearer <it>`; "
                        "empty: /metrics is open (keep it off the public network)")
    migrate_lock_timeout: int = Field(
        300, description="seconds `flask db upgrade` waits for another process's migration")
    # Tokens
    jwt_issuer: str = Field("", description="iss claim; default: PUBLIC_BASE_URL")
    jwt_audience: str = Field("authserver", description="aud claim expected by resource services")
    jwt_algorithm: str = Field("ES256", description="ES256 | EdDSA | RS256 | HS256")
    access_token_ttl: int = Field(900, description="access token lifetime, seconds")
    refresh_token_ttl: int = Field(30 * 24 * 3600,
                                   description="session / refresh token lifetime, seconds")
    reauth_max_age: int = Field(
        600, description="seconds after a sign-in during which sensitive account changes "
                         "(e-mail, phone, password, deletion) are allowed without signing in "
                         "again")
    refresh_reuse_grace: int = Field(10,
                                     description="seconds a rotated refresh token may be replayed")
    refresh_token_history: int = Field(
        7 * 24 * 3600, description="seconds `flask prune` keeps a rotated refresh token, so "
        "that its replay still revokes the session")
    handoff_code_ttl: int = Field(60, description="lifetime of the one-time code on redirect_to")
    # Audit trail (audit.py)
    audit_retention_days: int = Field(
        90, ge=0, description="days `flask prune` keeps audit events; 0 keeps them forever")
    # Second factor (authenticator app, recovery codes)
    mfa_required_roles: CommaList = Field(
        default_factory=lambda: ["admin"],
        description="roles whose holders must sign in with a second factor to use what the "
                    "role allows (403 mfa_required_for_role until they do); empty: none")
    mfa_token_ttl: int = Field(
        300, description="seconds the mfa_token of a sign-in waiting for its second factor "
                         "lives")
    mfa_max_attempts: int = Field(5, description="wrong second-factor codes before the "
                                                 "mfa_token dies")
    redirect_allowlist: CommaList = Field(
        default_factory=list, description="origins or URL prefixes redirect_to may point at")
    # Sign-up switches
    password_signup_enabled: bool = Field(True, description="allow POST /api/v1/signup")
    phone_signup_enabled: bool = Field(True, description="create users on first SMS sign-in")
    email_signup_enabled: bool = Field(True, description="create users on first e-mail sign-in")
    # SMS
    sms_backend: str = Field("console", description="console | file | twilio | twilio_verify")
    sms_allowed_countries: CommaList = Field(
        default_factory=list, description="ISO country codes allowed for SMS; empty: all")
    sms_denied_prefixes: CommaList = Field(
        default_factory=lambda: list(DEFAULT_SMS_DENIED_PREFIXES),
        description="E.164 prefixes never texted (satellite, international premium); empty: none")
    sms_test_numbers: TestNumbers = Field(
        default_factory=dict, description="+NUMBER=CODE pairs: fixed codes, nothing sent")
    phone_default_region: str = Field("US", description="region for numbers written without +")
    otp_ttl: int = Field(300, description="SMS code lifetime, seconds")
    otp_max_attempts: int = Field(5, description="wrong tries before a code dies")
    otp_resend_cooldown: int = Field(30, description="seconds between codes to one phone")
    otp_limit_per_phone_hour: Rate = Field("5/hour", description="codes per phone per hour")
    otp_limit_per_phone_day: Rate = Field("10/day", description="codes per phone per day")
    otp_limit_per_ip_hour: Rate = Field("20/hour", description="code requests per IP per hour")
    otp_limit_per_country_hour: Rate = Field("200/hour",
                                             description="codes per country prefix per hour")
    otp_limit_global_hour: Rate = Field("1000/hour",
                                        description="codes sent in all per hour (bill stop)")
    sms_provider_timeout: float = Field(5.0, description="seconds to wait for the SMS provider")
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_verify_service_sid: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_verify_base_url: str = "https://verify.twilio.com"
    # E-mail
    email_backend: str = Field("console", description="console | file | smtp")
    magic_link_ttl: int = Field(900, description="magic link and e-mailed code lifetime, seconds")
    magic_link_max_attempts: int = Field(5, description="wrong e-mailed codes before they die")
    magic_link_resend_cooldown: int = Field(30, description="seconds between mails to one address")
    magic_link_limit_per_email_hour: Rate = Field("5/hour", description="mails per address/hour")
    magic_link_limit_per_ip_hour: Rate = Field("30/hour",
                                               description="link requests per client IP per hour")
    magic_link_verify_limit_per_ip: Rate = Field(
        "30/minute", description="link/code sign-in attempts per client IP (API and /auth/magic)")
    magic_link_binding: bool = Field(
        True, description="a mailed link signs in only in the browser that asked for it (or "
                          "hands over to the app's PKCE); off: any browser's button signs in "
                          "(weaker: mail scanners that press buttons sign in too)")
    password_reset_ttl: int = Field(
        1800, description="password reset link and e-mailed code lifetime, seconds")
    email_verification_required: bool = Field(
        False, description="password sign-up answers 202 without tokens for every address and "
                           "password sign-in of an unverified address is 403 "
                           "email_not_verified; the verification link signs in")
    email_verification_ttl: int = Field(
        86400, ge=60, description="e-mail verification and e-mail change link and code "
                                  "lifetime, seconds")
    code_guess_limit: Rate = Field(
        "10/hour;20/day", description="wrong codes per phone or address, across its codes")
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_ssl: bool = Field(False, description="implicit TLS (port 465)")
    smtp_timeout: float = Field(10.0, description="seconds to wait for the SMTP server")
    mail_from: str = "authserver <no-reply@localhost>"
    outbox_dir: str = Field("", description="file backends' folder; default: instance/outbox")
    send_concurrency: int = Field(
        2, ge=1, description="SMS sends (and e-mails) a process may wait on at once, per "
                             "channel; more at once answer 503 (a hung provider can't take "
                             "every thread)")
    # Limits
    ratelimit_storage_uri: str = Field("memory://", description="memory:// or redis://host:port/db")
    ratelimit_enabled: bool = Field(True, description="turn every limit off (load tests only)")
    ratelimit_storage_timeout: float = Field(
        0.5, description="seconds to wait for the Redis limit store before counting in this "
                         "process's memory until it is back")
    signin_limit_per_ip: Rate = Field("30/minute", description="password sign-ins per client IP")
    signin_limit_per_account: Rate = Field("10/minute;50/hour",
                                           description="sign-ins per e-mail address")
    signin_limit_per_device: Rate = Field(
        "10/minute;50/hour", description="sign-ins per signed-in-before device (device token)")
    signin_max_consecutive_failures: int = Field(
        100, description="wrong passwords in a row before password sign-in locks; 0: never")
    signin_device_ttl: int = Field(365 * 24 * 3600,
                                   description="device token (cookie) lifetime, seconds")
    signup_limit_per_ip: Rate = Field("10/hour", description="sign-ups per client IP")
    token_limit_per_ip: Rate = Field("120/minute",
                                     description="refresh/exchange/verify calls per client IP")
    proxy_fix_hops: int = Field(0, description="trusted reverse proxies setting X-Forwarded-For")
    # Password policy (NIST SP 800-63B rev. 4; see authserver/passwords.py)
    password_min_length: int = Field(
        15, description="shortest password accepted, characters (8 to 256; NIST SP 800-63B "
                        "rev. 4: 15 when the password is the only factor)")
    # Breached passwords (Have I Been Pwned range API, k-anonymity; see authserver/pwned.py)
    pwned_passwords_url: str = Field(
        "https://api.pwnedpasswords.com/range/",
        description="range API base URL (https; http only on loopback); empty turns it off")
    pwned_passwords_timeout: float = Field(
        2.0, description="seconds to wait for the range API")
    pwned_passwords_fail: str = Field(
        "open", description="range API unreachable: open (accept, logged) | closed (503)")
    # Webhooks (see authserver/webhooks.py and docs/api.md "Webhooks")
    webhook_url: str = Field(
        "", description="where events are POSTed (http or https); empty: no webhooks")
    webhook_secret: str = Field(
        "", description="signing secret, `whsec_<base64 of 24 to 64 bytes>` (Standard "
                        "Webhooks) or a raw string of at least 32 characters; required with "
                        "WEBHOOK_URL")
    webhook_events: CommaList = Field(
        default_factory=lambda: list(WEBHOOK_EVENT_TYPES),
        description="event types sent (comma-separated); default: all of user.created, "
                    "user.signed_in, user.updated, user.deleted, session.revoked")
    webhook_timeout: float = Field(5.0, description="seconds to wait for the receiver's answer")
    webhook_max_age: int = Field(
        86400, description="seconds an event is retried (exponential back-off with jitter) "
                           "before it is given up")
    # Web
    session_cookie_secure: bool | None = Field(
        None, description="default: true when PUBLIC_BASE_URL is https")
    security_contact: CommaList = Field(
        default_factory=list,
        description="Contact URIs (mailto:, https:, tel:) for /.well-known/security.txt; "
                    "empty: 404")

    @field_validator("public_base_url")
    @classmethod
    def _absolute_base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("expected an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("jwt_algorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        if value not in {"ES256", "EdDSA", "RS256", "HS256"}:
            raise ValueError("expected ES256, EdDSA, RS256 or HS256")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in {"json", "text"}:
            raise ValueError("expected json or text")
        return value

    @field_validator("sms_backend")
    @classmethod
    def _sms_backend(cls, value: str) -> str:
        if value not in {"console", "file", "twilio", "twilio_verify"}:
            raise ValueError("expected console, file, twilio or twilio_verify")
        return value

    @field_validator("email_backend")
    @classmethod
    def _email_backend(cls, value: str) -> str:
        if value not in {"console", "file", "smtp"}:
            raise ValueError("expected console, file or smtp")
        return value

    @field_validator("password_min_length")
    @classmethod
    def _password_min_length(cls, value: int) -> int:
        if not PASSWORD_MIN_LENGTH_FLOOR <= value <= PASSWORD_MAX_LENGTH:
            raise ValueError(f"expected a length between {PASSWORD_MIN_LENGTH_FLOOR} and "
                             f"{PASSWORD_MAX_LENGTH}")
        return value

    @field_validator("pwned_passwords_url")
    @classmethod
    def _pwned_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        # Plain http could be answered by anyone on the path with "not breached".
        loopback = parts.scheme == "http" and parts.hostname in {"127.0.0.1", "::1", "localhost"}
        if not parts.netloc or not (parts.scheme == "https" or loopback):
            raise ValueError("expected an https URL (http only on 127.0.0.1, ::1 or localhost)")
        if parts.query or parts.fragment:
            raise ValueError("expected a base URL without query or fragment")
        return value if value.endswith("/") else value + "/"

    @field_validator("pwned_passwords_fail")
    @classmethod
    def _pwned_fail(cls, value: str) -> str:
        if value not in {"open", "closed"}:
            raise ValueError("expected open or closed")
        return value

    @field_validator("pwned_passwords_timeout")
    @classmethod
    def _pwned_timeout(cls, value: float) -> float:
        if not 0 < value <= 30:
            raise ValueError("expected seconds between 0 and 30")
        return value

    @field_validator("database_connect_timeout", "database_read_timeout",
                     "database_pool_timeout", "ratelimit_storage_timeout")
    @classmethod
    def _wait(cls, value: float) -> float:
        if not 0 < value <= 3600:
            raise ValueError("expected seconds between 0 and 3600")
        return value

    @field_validator("database_lock_wait_timeout")
    @classmethod
    def _lock_wait(cls, value: int) -> int:
        if not 1 <= value <= 3600:
            raise ValueError("expected whole seconds between 1 and 3600")
        return value

    @field_validator("access_token_ttl", "refresh_token_ttl", "otp_ttl", "magic_link_ttl",
                     "password_reset_ttl", "reauth_max_age", "mfa_token_ttl",
                     "mfa_max_attempts",
                     "refresh_token_history", "migrate_lock_timeout")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("sms_denied_prefixes")
    @classmethod
    def _phone_prefixes(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not (entry.startswith("+") and entry[1:].isdigit() and len(entry) <= 8):
                raise ValueError(f"{entry!r} is not an E.164 prefix like +881")
        return value

    @field_validator("signin_max_consecutive_failures")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("signin_device_ttl")
    @classmethod
    def _device_ttl(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("redirect_allowlist")
    @classmethod
    def _absolute_redirects(cls, value: list[str]) -> list[str]:
        for entry in value:
            parts = urlsplit(entry)
            # Custom app schemes (myapp://callback) are fine; http(s) needs a host.
            if not parts.scheme or (parts.scheme in {"http", "https"} and not parts.netloc):
                raise ValueError(f"{entry!r} is not an absolute URL")
        return value

    @field_validator("security_contact")
    @classmethod
    def _contact_uris(cls, value: list[str]) -> list[str]:
        for entry in value:
            # One line of security.txt each: a URI, and nothing that could start another field.
            if (not entry.startswith(("mailto:", "https://", "tel:"))
                    or not entry.isprintable() or " " in entry):
                raise ValueError(f"{entry!r} is not a mailto:, https:// or tel: URI")
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for entry in value:
            parts = urlsplit(entry)
            if (parts.scheme not in {"http", "https"} or not parts.netloc
                    or entry != f"{parts.scheme}://{parts.netloc}"):
                raise ValueError(f"{entry!r} is not an origin like https://app.example.com")
        return value

    @field_validator("secret_key_fallbacks")
    @classmethod
    def _fallback_keys(cls, value: list[str]) -> list[str]:
        for entry in value:
            if len(entry) < 16:
                raise ValueError("each fallback key must be at least 16 characters")
        return value

    def secret_keys(self) -> list[str]:
        """SECRET_KEY, then each of SECRET_KEY_FALLBACKS: the first signs and encrypts, every
        one of them verifies and decrypts."""
        return [self.secret_key,
                *(key for key in self.secret_key_fallbacks if key != self.secret_key)]

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if value and (parts.scheme not in {"http", "https"} or not parts.netloc):
            raise ValueError("expected an absolute http(s) URL")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("whsec_"):
            try:
                key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
            except ValueError:
                raise ValueError("whsec_ must be followed by base64") from None
            if not 24 <= len(key) <= 64:
                raise ValueError("expected whsec_ and the base64 of 24 to 64 bytes")
        elif value and len(value) < 32:
            raise ValueError("use at least 32 random characters (or whsec_<base64>)")
        return value

    @field_validator("webhook_events")
    @classmethod
    def _webhook_events(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in WEBHOOK_EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event type {unknown[0]!r}; expected some of "
                             + ", ".join(WEBHOOK_EVENT_TYPES))
        if not value:
            raise ValueError("name at least one event type (leave WEBHOOK_URL empty for none)")
        return value

    @field_validator("webhook_timeout")
    @classmethod
    def _webhook_timeout(cls, value: float) -> float:
        if not 0 < value <= 60:
            raise ValueError("expected seconds between 0 and 60")
        return value

    @field_validator("webhook_max_age")
    @classmethod
    def _webhook_max_age(cls, value: int) -> int:
        if not 60 <= value <= 30 * 86400:
            raise ValueError("expected seconds between 60 and 2592000 (30 days)")
        return value

    def flask_config(self) -> dict[str, Any]:
        """The upper-case mapping Flask, its extensions and the sender builders read."""
        config = {name.upper(): value for name, value in self.model_dump().items()}
        config.update(
            SQLALCHEMY_DATABASE_URI=self.database_url,
            SQLALCHEMY_ENGINE_OPTIONS=self._bounded(engine_options(self.database_url)),
            RATELIMIT_STORAGE_OPTIONS=storage_options(self.ratelimit_storage_uri,
                                                      self.ratelimit_storage_timeout),
            RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
            RATELIMIT_HEADERS_ENABLED=False,  # Retry-After goes on 429s only
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_NAME="authserver_session",
            WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the cookie session
            # itsdangerous: signs with the last key, accepts any (a form rendered before a
            # SECRET_KEY rotation still posts).
            WTF_CSRF_SECRET_KEY=list(reversed(self.secret_keys())),
        )
        return config

    def checks_engine_options(self) -> dict[str, Any] | None:
        """Options of session_checks.py's engine (the token check's one query), on MySQL:
        the same database through autocommit connections that are neither pinged before use
        nor rolled back after it, so the check costs one round trip (a dropped connection is
        retried there instead). None: SQLite reads through the main engine."""
        if not self.database_url.startswith("mysql"):
            return None
        options = self._bounded(engine_options(self.database_url))
        options.update(isolation_level="AUTOCOMMIT", pool_pre_ping=False,
                       pool_reset_on_return=None, skip_autocommit_rollback=True)
        return options

    def _bounded(self, options: dict[str, Any]) -> dict[str, Any]:
        """`options` with every database wait bounded by the DATABASE_*_TIMEOUT settings, so a
        hung database answers 503 in seconds instead of holding a worker thread."""
        options = dict(options)
        if self.database_url.startswith("mysql"):
            options.setdefault("pool_timeout", self.database_pool_timeout)
            options["connect_args"] = {
                **options.get("connect_args", {}),
                "connect_timeout": self.database_connect_timeout,
                # pymysql reads the server's handshake with read_timeout too.
                "read_timeout": self.database_read_timeout,
                "write_timeout": self.database_read_timeout,
                # Server side: a statement behind a lock fails cleanly (1205) before the
                # client gives up on it.
                "init_command": "SET SESSION innodb_lock_wait_timeout = "
                                f"{int(self.database_lock_wait_timeout)}",
            }
        return options


def storage_options(uri: str, timeout: float) -> dict[str, Any]:
    """Options for the rate-limit storage: short socket timeouts on Redis, so a down or hung
    store costs a request at most `timeout` before limits are counted in memory."""
    if uri.startswith(("redis://", "rediss://", "redis+unix://", "valkey://", "valkeys://")):
        return {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    return {}


#: Where create_app keeps the app's Settings (services.py puts them there).
EXTENSION_KEY = "authserver.settings"


def settings() -> Settings:
    """The current app's settings: `settings().otp_ttl`."""
    return cast(Settings, current_app.extensions[EXTENSION_KEY])


#: The settings' names as the environment spells them.
NAMES = frozenset(name.upper() for name in Settings.model_fields)
#: Settings where an empty variable is a choice (turn it off), not "use the default": the
#: breach check's URL, the roles that need a second factor, and every rate limit (docs/api.md:
#: "an empty rate turns it off").
EMPTY_IS_A_VALUE = frozenset({"PWNED_PASSWORDS_URL", "MFA_REQUIRED_ROLES"} | {
    name.upper() for name, field in Settings.model_fields.items()
    if any(getattr(meta, "func", None) is _rate for meta in field.metadata)})


def load(overrides: Mapping[str, Any] | None, instance_path: str,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default: os.environ) and `overrides` (upper-case names).

    Overrides go through the same validation as the environment: "30" and 30 both work.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {name.lower(): raw for name, raw in environ.items()
                              if name.upper() in NAMES
                              and (raw != "" or name.upper() in EMPTY_IS_A_VALUE)}
    values.update({name.lower(): value for name, value in (overrides or {}).items()
                   if name.upper() in NAMES})
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None
    return _finalize(settings, instance_path)


def _finalize(settings: Settings, instance_path: str) -> Settings:
    """Fill in the defaults that depend on other settings or on the instance folder."""
    filled: dict[str, Any] = {}
    if not settings.database_url:
        filled["database_url"] = "sqlite:///" + os.path.join(instance_path, "authserver.db")
    if not settings.secret_key:
        filled["secret_key"] = _dev_secret(instance_path)
    if not settings.outbox_dir:
        filled["outbox_dir"] = os.path.join(instance_path, "outbox")
    if not settings.jwt_issuer:
        filled["jwt_issuer"] = settings.public_base_url
    if settings.session_cookie_secure is None:
        filled["session_cookie_secure"] = settings.public_base_url.startswith("https://")
    settings = settings.model_copy(update=filled)  # values computed here, already valid
    if settings.webhook_url and not settings.webhook_secret:
        raise ConfigError("WEBHOOK_SECRET: required when WEBHOOK_URL is set")
    if len(settings.secret_key) < 16:
        raise ConfigError("SECRET_KEY: use at least 32 random characters")
    return settings


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("mysql"):
        return {
            # Pinged on checkout only after sitting idle, and not rolled back on return
            # (every transaction has ended by then): db_pool.py says why.
            "pool_pre_ping": False,
            "pool_reset_on_return": None,
            "pool_recycle": 280,
            # As many kept-open connections as a worker has threads (gunicorn.conf.py: 8),
            # so a busy worker does not open and close overflow connections per request.
            "pool_size": 10,
            "max_overflow": 5,
            # Bounded waits so a dead database answers 503 instead of hanging a worker;
            # Settings.flask_config puts the DATABASE_*_TIMEOUT settings over these.
            "connect_args": {"connect_timeout": 2, "read_timeout": 2.5, "write_timeout": 2.5,
                             "charset": "utf8mb4"},
        }
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 15}}
    return {"pool_pre_ping": True}


def _dev_secret(instance_path: str) -> str:
    """A per-install secret for local use, kept in the instance folder so restarts keep sessions."""
    path = os.path.join(instance_path, "dev-secret-key")
    os.makedirs(instance_path, exist_ok=True)
    try:
        with open(path, encoding="utf-8") as fh:
            secret = fh.read().strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secret)
    log.warning(
        "SECRET_KEY is not set: using a generated development secret from %s. "
        "Set SECRET_KEY in production; changing it invalidates links and signing keys.",
        path,
    )
    return secret
