"""Every setting, read from the environment once, typed, with its default and a check.

`load(environ)` returns a plain dict that becomes `app.config`. Each setting has a working
default for local use; production overrides them through environment variables (the names
are the contract's, see shared/spec/api.md). A bad value stops the app at start with a
message that names the variable, instead of failing on the first request.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("authserver.config")


class ConfigError(ValueError):
    """A setting has a value the server cannot run with."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _test_numbers(raw: str) -> dict[str, str]:
    numbers: dict[str, str] = {}
    for item in _list(raw):
        phone, sep, code = item.partition("=")
        if not sep or not code.strip().isdigit() or len(code.strip()) != 6:
            raise ValueError(f"expected +NUMBER=6DIGITS, got {item!r}")
        numbers[phone.strip()] = code.strip()
    return numbers


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any] = str
    doc: str = ""


SETTINGS: tuple[Setting, ...] = (
    # Core
    Setting("DATABASE_URL", None, str, "SQLAlchemy URL; default: SQLite in the instance folder"),
    Setting("SECRET_KEY", None, str, "signs cookies and links, encrypts signing keys at rest"),
    Setting("PUBLIC_BASE_URL", "http://localhost:5000", str, "the origin mailed links point at"),
    Setting("APP_NAME", "authserver", str, "shown in pages, mails and SMS"),
    Setting("MAX_CONTENT_LENGTH", 64 * 1024, int, "largest request body accepted, in bytes"),
    Setting("LOG_LEVEL", "INFO", str, "root log level"),
    # Tokens
    Setting("JWT_ISSUER", None, str, "iss claim; default: PUBLIC_BASE_URL"),
    Setting("JWT_AUDIENCE", "authserver", str, "aud claim expected by resource services"),
    Setting("JWT_ALGORITHM", "ES256", str, "ES256 | EdDSA | RS256 | HS256"),
    Setting("ACCESS_TOKEN_TTL", 900, int, "access token lifetime, seconds"),
    Setting("REFRESH_TOKEN_TTL", 30 * 24 * 3600, int, "session / refresh token lifetime, seconds"),
    Setting("REFRESH_REUSE_GRACE", 10, int, "seconds a rotated refresh token may be replayed"),
    Setting("HANDOFF_CODE_TTL", 60, int, "lifetime of the one-time code on redirect_to, seconds"),
    Setting("REDIRECT_ALLOWLIST", [], _list, "origins or URL prefixes redirect_to may point at"),
    # Sign-up switches
    Setting("PASSWORD_SIGNUP_ENABLED", True, _bool, "allow POST /api/v1/signup"),
    Setting("PHONE_SIGNUP_ENABLED", True, _bool, "create users on first SMS sign-in"),
    Setting("EMAIL_SIGNUP_ENABLED", True, _bool, "create users on first e-mail sign-in"),
    # SMS
    Setting("SMS_BACKEND", "console", str, "console | file | twilio | twilio_verify"),
    Setting("SMS_ALLOWED_COUNTRIES", [], _list, "ISO country codes allowed for SMS; empty: all"),
    Setting("SMS_TEST_NUMBERS", {}, _test_numbers, "+NUMBER=CODE pairs: fixed codes, nothing sent"),
    Setting("PHONE_DEFAULT_REGION", "US", str, "region for numbers written without +"),
    Setting("OTP_TTL", 300, int, "SMS code lifetime, seconds"),
    Setting("OTP_MAX_ATTEMPTS", 5, int, "wrong tries before a code dies"),
    Setting("OTP_RESEND_COOLDOWN", 30, int, "seconds between codes to one phone"),
    Setting("OTP_LIMIT_PER_PHONE_HOUR", "5/hour", str, "codes per phone per hour"),
    Setting("OTP_LIMIT_PER_PHONE_DAY", "10/day", str, "codes per phone per day"),
    Setting("OTP_LIMIT_PER_IP_HOUR", "20/hour", str, "code requests per client IP per hour"),
    Setting("OTP_LIMIT_PER_COUNTRY_HOUR", "200/hour", str, "codes per country prefix per hour"),
    Setting("OTP_LIMIT_GLOBAL_HOUR", "1000/hour", str, "codes sent in all per hour (bill stop)"),
    Setting("SMS_PROVIDER_TIMEOUT", 5.0, float, "seconds to wait for the SMS provider"),
    Setting("TWILIO_ACCOUNT_SID", "", str, ""),
    Setting("TWILIO_AUTH_TOKEN", "", str, ""),
    Setting("TWILIO_FROM_NUMBER", "", str, ""),
    Setting("TWILIO_MESSAGING_SERVICE_SID", "", str, ""),
    Setting("TWILIO_VERIFY_SERVICE_SID", "", str, ""),
    Setting("TWILIO_API_BASE_URL", "https://api.twilio.com", str, ""),
    Setting("TWILIO_VERIFY_BASE_URL", "https://verify.twilio.com", str, ""),
    # E-mail
    Setting("EMAIL_BACKEND", "console", str, "console | file | smtp"),
    Setting("MAGIC_LINK_TTL", 900, int, "magic link and e-mailed code lifetime, seconds"),
    Setting("MAGIC_LINK_MAX_ATTEMPTS", 5, int, "wrong e-mailed codes before they die"),
    Setting("MAGIC_LINK_RESEND_COOLDOWN", 30, int, "seconds between mails to one address"),
    Setting("MAGIC_LINK_LIMIT_PER_EMAIL_HOUR", "5/hour", str, "mails per address per hour"),
    Setting("MAGIC_LINK_LIMIT_PER_IP_HOUR", "30/hour", str, "link requests per client IP per hour"),
    Setting("MAGIC_LINK_VERIFY_LIMIT_PER_IP", "30/minute", str,
            "link/code sign-in attempts per client IP (API and the /auth/magic button)"),
    Setting("SMTP_HOST", "localhost", str, ""),
    Setting("SMTP_PORT", 25, int, ""),
    Setting("SMTP_USERNAME", "", str, ""),
    Setting("SMTP_PASSWORD", "", str, ""),
    Setting("SMTP_STARTTLS", False, _bool, ""),
    Setting("SMTP_SSL", False, _bool, "implicit TLS (port 465)"),
    Setting("SMTP_TIMEOUT", 10.0, float, "seconds to wait for the SMTP server"),
    Setting("MAIL_FROM", "authserver <no-reply@localhost>", str, ""),
    Setting("OUTBOX_DIR", None, str, "folder for the file backends; default: instance/outbox"),
    # Limits
    Setting("RATELIMIT_STORAGE_URI", "memory://", str, "memory:// or redis://host:port/db"),
    Setting("RATELIMIT_ENABLED", True, _bool, "turn every limit off (load tests only)"),
    Setting("SIGNIN_LIMIT_PER_IP", "30/minute", str, "password sign-ins per client IP"),
    Setting("SIGNIN_LIMIT_PER_ACCOUNT", "10/minute;50/hour", str, "sign-ins per e-mail address"),
    Setting("SIGNUP_LIMIT_PER_IP", "10/hour", str, "sign-ups per client IP"),
    Setting("TOKEN_LIMIT_PER_IP", "120/minute", str, "refresh/exchange/verify calls per client IP"),
    Setting("PROXY_FIX_HOPS", 0, int, "trusted reverse proxies setting X-Forwarded-For"),
    # Web
    Setting("SESSION_COOKIE_SECURE", None, _bool, "default: true when PUBLIC_BASE_URL is https"),
)


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read every setting from `environ` (default: os.environ) into a config dict."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw is None or raw == "":
            value = setting.default
            # Copy mutable defaults so one app's config can't leak into another's.
            if isinstance(value, list | dict):
                value = type(value)(value)
        else:
            try:
                value = setting.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{setting.name}: {exc}") from exc
        config[setting.name] = value
    return config


def finalize(config: dict[str, Any], instance_path: str) -> dict[str, Any]:
    """Fill in the defaults that depend on other settings, then check the result."""
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = "sqlite:///" + os.path.join(instance_path, "authserver.db")
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _dev_secret(instance_path)
    if not config.get("OUTBOX_DIR"):
        config["OUTBOX_DIR"] = os.path.join(instance_path, "outbox")
    config["PUBLIC_BASE_URL"] = config["PUBLIC_BASE_URL"].rstrip("/")
    if not config.get("JWT_ISSUER"):
        config["JWT_ISSUER"] = config["PUBLIC_BASE_URL"]
    if config.get("SESSION_COOKIE_SECURE") is None:
        config["SESSION_COOKIE_SECURE"] = config["PUBLIC_BASE_URL"].startswith("https://")

    _check(config)
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(config["DATABASE_URL"])
    config["RATELIMIT_HEADERS_ENABLED"] = False  # Retry-After goes on 429s only
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_NAME"] = "authserver_session"
    config["WTF_CSRF_TIME_LIMIT"] = None  # the token lives as long as the cookie session
    config["JSON_SORT_KEYS"] = False
    return config


def _check(config: dict[str, Any]) -> None:
    if config["JWT_ALGORITHM"] not in {"ES256", "EdDSA", "RS256", "HS256"}:
        raise ConfigError("JWT_ALGORITHM: expected ES256, EdDSA, RS256 or HS256")
    if config["SMS_BACKEND"] not in {"console", "file", "twilio", "twilio_verify"}:
        raise ConfigError("SMS_BACKEND: expected console, file, twilio or twilio_verify")
    if config["EMAIL_BACKEND"] not in {"console", "file", "smtp"}:
        raise ConfigError("EMAIL_BACKEND: expected console, file or smtp")
    base = urlsplit(config["PUBLIC_BASE_URL"])
    if base.scheme not in {"http", "https"} or not base.netloc:
        raise ConfigError("PUBLIC_BASE_URL: expected an absolute http(s) URL")
    for name in ("ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL", "OTP_TTL", "MAGIC_LINK_TTL"):
        if config[name] <= 0:
            raise ConfigError(f"{name}: must be positive")
    if len(config["SECRET_KEY"]) < 16:
        raise ConfigError("SECRET_KEY: use at least 32 random characters")
    for entry in config["REDIRECT_ALLOWLIST"]:
        parts = urlsplit(entry)
        # Custom app schemes (myapp://callback) are fine; http(s) needs a host.
        if not parts.scheme or (parts.scheme in {"http", "https"} and not parts.netloc):
            raise ConfigError(f"REDIRECT_ALLOWLIST: {entry!r} is not an absolute URL")


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("mysql"):
        return {
            "pool_pre_ping": True,
            "pool_recycle": 280,
            # Bounded waits so a dead database answers 503 instead of hanging a worker.
            "connect_args": {"connect_timeout": 3, "read_timeout": 10, "write_timeout": 10,
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
