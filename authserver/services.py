"""The app's services, built once in create_app and reached through `services()`.

Settings, the SMS and e-mail senders and the signing-key ring are made here, once per app,
from the typed settings; flows and views never build or pick a backend themselves. Tests
swap a service with `replace(app, sms=...)` and change settings with `configure(app, ...)`,
both public, instead of reaching into private names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any, cast

from flask import Flask, current_app

from authserver import metrics, phones
from authserver.config import EXTENSION_KEY, ConfigError, Settings, load, settings
from authserver.keys import KeyRing
from authserver.senders.email import EmailSender, build_email_sender
from authserver.senders.gate import GatedEmailSender, GatedSmsSender, SendGate
from authserver.senders.sms import SmsSender, build_sms_sender

log = logging.getLogger("authserver.services")

_KEY = "authserver.services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    sms: SmsSender
    email: EmailSender
    keyring: KeyRing
    #: SMS_TEST_NUMBERS keyed by E.164, so any notation of a test number finds its code.
    test_numbers: dict[str, str]


def _test_numbers(settings: Settings) -> dict[str, str]:
    try:
        return phones.normalize_test_numbers(settings.sms_test_numbers,
                                             settings.phone_default_region)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


__all__ = ["Services", "configure", "init_app", "replace", "services", "settings"]


def init_app(app: Flask, settings: Settings) -> None:
    """Build every service from `settings`; a misconfigured backend stops the app here."""
    config = settings.flask_config()
    try:
        # Gated: a hung provider holds at most SEND_CONCURRENCY of this process's threads.
        # Timed: every provider call is observed (authserver_sender_duration_seconds).
        sms: SmsSender = GatedSmsSender(build_sms_sender(config), SendGate(
            "sms", settings.send_concurrency, timer=metrics.observe_send))
        email: EmailSender = GatedEmailSender(build_email_sender(config), SendGate(
            "email", settings.send_concurrency, timer=metrics.observe_send))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    numbers = _test_numbers(settings)
    if numbers:
        log.warning(
            "SMS_TEST_NUMBERS is set: %d number(s) sign in with a fixed code and are never "
            "texted (%s). Anyone who knows such a number and its code can sign in as it.",
            len(numbers), ", ".join(phones.mask(n) for n in numbers))
    app.extensions[EXTENSION_KEY] = settings
    app.extensions[_KEY] = Services(
        settings=settings, sms=sms, email=email,
        keyring=KeyRing(settings.secret_keys(), settings.jwt_algorithm), test_numbers=numbers)


def services(app: Flask | None = None) -> Services:
    """The services of `app` (default: the current app)."""
    return cast(Services, (app or current_app).extensions[_KEY])


def replace(app: Flask, **changes: Any) -> Services:
    """Swap services of a running app (tests: `replace(app, sms=FailingSender())`)."""
    updated = _replace(services(app), **changes)
    app.extensions[_KEY] = updated
    app.extensions[EXTENSION_KEY] = updated.settings
    return updated


def configure(app: Flask, **values: Any) -> Settings:
    """Change settings of a running app by their upper-case names, validated like at start.

    For tests and the shell; the senders and the key ring keep the backends they were built
    with.
    """
    current = services(app).settings
    merged = {**current.model_dump(), **{name.lower(): value for name, value in values.items()}}
    updated = load({name.upper(): value for name, value in merged.items()}, app.instance_path,
                   environ={})
    app.config.update(updated.flask_config())
    replace(app, settings=updated, test_numbers=_test_numbers(updated))
    return updated
