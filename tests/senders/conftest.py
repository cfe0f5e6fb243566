"""Fixtures for sender tests: the fake Twilio and SMTP servers, and a port nobody listens on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.fakes.smtp_server import FakeSmtp
from tests.fakes.twilio_server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    VERIFY_SERVICE_SID,
    FakeTwilio,
)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake



@pytest.fixture
def closed_port() -> int:
    """A loopback port that refuses connections (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def twilio_config(fake_twilio: FakeTwilio) -> dict[str, object]:
    """A complete Twilio configuration pointed at the fake server."""
    return {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_MESSAGING_SERVICE_SID": "",
        "TWILIO_VERIFY_SERVICE_SID": VERIFY_SERVICE_SID,
        "TWILIO_API_BASE_URL": fake_twilio.url,
        "TWILIO_VERIFY_BASE_URL": fake_twilio.url,
        "SMS_PROVIDER_TIMEOUT": 5.0,
    }


@pytest.fixture
def smtp_config(fake_smtp: FakeSmtp) -> dict[str, object]:
    """A complete SMTP configuration pointed at the fake server."""
    return {
        "EMAIL_BACKEND": "smtp",
        "SMTP_HOST": fake_smtp.host,
        "SMTP_PORT": fake_smtp.port,
        "SMTP_USERNAME": "",
        "SMTP_PASSWORD": "",
        "SMTP_STARTTLS": False,
        "SMTP_SSL": False,
        "SMTP_TIMEOUT": 5.0,
        "MAIL_FROM": "Example Auth <no-reply@auth.example.com>",
    }
