"""E-mail senders: real smtplib against an aiosmtpd catcher, plus the local backends."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator

import pytest

from authserver.senders import (
    EmailSender,
    RecipientRejected,
    SenderUnavailable,
    build_email_sender,
)
from tests.fakes.smtp_server import FakeSmtp

TO = "ann@example.com"
SUBJECT = "Your sign-in link"
TEXT = "Sign in: https://auth.example.com/auth/magic?token=abc\nOr type 123456."
HTML = '<p><a href="https://auth.example.com/auth/magic?token=abc">Sign in</a> or 123456</p>'


def test_smtp_delivers_a_multipart_alternative_message(
    fake_smtp: FakeSmtp, smtp_config: dict
) -> None:
    sender = build_email_sender(smtp_config)
    assert isinstance(sender, EmailSender)

    sender.send(TO, SUBJECT, TEXT, HTML)

    [msg] = fake_smtp.wait_for(1)
    assert msg["From"] == "Example Auth <no-reply@auth.example.com>"
    assert msg["To"] == TO
    assert msg["Subject"] == SUBJECT
    assert msg["Date"] is not None
    assert msg["Message-ID"].endswith("@auth.example.com>")
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert plain is not None and plain.get_content().strip() == TEXT
    assert html is not None and html.get_content().strip() == HTML
    [envelope] = fake_smtp.envelopes
    assert envelope.mail_from == "no-reply@auth.example.com"
    assert envelope.rcpt_tos == [TO]


def test_smtp_text_only_message_is_plain(fake_smtp: FakeSmtp, smtp_config: dict) -> None:
    build_email_sender(smtp_config).send(TO, SUBJECT, TEXT, None)

    [msg] = fake_smtp.wait_for(1)
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == TEXT


def test_smtp_server_down_is_unavailable(smtp_config: dict, closed_port: int) -> None:
    sender = build_email_sender(smtp_config | {"SMTP_PORT": closed_port})

    with pytest.raises(SenderUnavailable):
        sender.send(TO, SUBJECT, TEXT, HTML)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel backlog) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_smtp_silent_server_times_out_as_unavailable(
    smtp_config: dict, silent_server: int
) -> None:
    sender = build_email_sender(smtp_config | {"SMTP_PORT": silent_server, "SMTP_TIMEOUT": 0.5})

    started = time.monotonic()
    with pytest.raises(SenderUnavailable):
        sender.send(TO, SUBJECT, TEXT, HTML)
    assert time.monotonic() - started < 10


def test_smtp_recipient_refused_permanently_is_rejected(
    fake_smtp: FakeSmtp, smtp_config: dict
) -> None:
    fake_smtp.refuse.add(TO)

    with pytest.raises(RecipientRejected) as caught:
        build_email_sender(smtp_config).send(TO, SUBJECT, TEXT, HTML)

    assert caught.value.provider_code == 550
    assert "mailbox unavailable" not in str(caught.value)
    assert fake_smtp.messages == []


def test_smtp_recipient_deferred_is_unavailable(fake_smtp: FakeSmtp, smtp_config: dict) -> None:
    fake_smtp.defer.add(TO)

    with pytest.raises(SenderUnavailable) as caught:
        build_email_sender(smtp_config).send(TO, SUBJECT, TEXT, HTML)

    assert caught.value.provider_code == 450


def test_smtp_starttls_not_offered_is_unavailable(
    fake_smtp: FakeSmtp, smtp_config: dict
) -> None:
    # A sender told to encrypt must never fall back to plain text.
    sender = build_email_sender(smtp_config | {"SMTP_STARTTLS": True})

    with pytest.raises(SenderUnavailable):
        sender.send(TO, SUBJECT, TEXT, HTML)
    assert fake_smtp.messages == []


def test_smtp_implicit_tls_against_plain_server_is_unavailable(
    fake_smtp: FakeSmtp, smtp_config: dict
) -> None:
    sender = build_email_sender(smtp_config | {"SMTP_SSL": True, "SMTP_TIMEOUT": 2.0})

    with pytest.raises(SenderUnavailable):
        sender.send(TO, SUBJECT, TEXT, HTML)
    assert fake_smtp.messages == []


@pytest.fixture
def auth_smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp(credentials=("mailer", "s3cret-pass")) as fake:
        yield fake


def test_smtp_logs_in_when_a_username_is_set(auth_smtp: FakeSmtp, smtp_config: dict) -> None:
    config = smtp_config | {
        "SMTP_PORT": auth_smtp.port,
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": "s3cret-pass",
    }

    build_email_sender(config).send(TO, SUBJECT, TEXT, HTML)

    assert auth_smtp.logins == ["mailer"]
    assert len(auth_smtp.wait_for(1)) == 1


def test_smtp_wrong_password_is_unavailable_without_leaking(
    auth_smtp: FakeSmtp, smtp_config: dict
) -> None:
    config = smtp_config | {
        "SMTP_PORT": auth_smtp.port,
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": "wrong-pass",
    }

    with pytest.raises(SenderUnavailable) as caught:
        build_email_sender(config).send(TO, SUBJECT, TEXT, HTML)

    assert caught.value.provider_code == 535
    assert "wrong-pass" not in str(caught.value)
    assert auth_smtp.logins == []
    assert auth_smtp.messages == []


# --- local backends ------------------------------------------------------------------------


def test_file_backend_writes_the_contract_fields(tmp_path) -> None:
    sender = build_email_sender({"EMAIL_BACKEND": "file", "OUTBOX_DIR": str(tmp_path)})

    sender.send(TO, SUBJECT, TEXT, HTML)

    [name] = os.listdir(tmp_path)
    assert name.endswith(".json")
    record = json.loads((tmp_path / name).read_text("utf-8"))
    assert record == {
        "channel": "email",
        "to": TO,
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "sent_at": record["sent_at"],
    }
    assert record["sent_at"].endswith("+00:00")


def test_console_backend_logs_the_mail(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authserver.email")

    build_email_sender({}).send(TO, SUBJECT, TEXT, HTML)

    [record] = [r for r in caplog.records if r.name == "authserver.email"]
    assert record.levelno == logging.INFO
    assert TO in record.getMessage()
    assert SUBJECT in record.getMessage()
    assert "token=abc" in record.getMessage()


# --- building ------------------------------------------------------------------------------


def test_unknown_backend_is_refused_at_build_time() -> None:
    with pytest.raises(ValueError, match="EMAIL_BACKEND"):
        build_email_sender({"EMAIL_BACKEND": "fax"})


def test_starttls_and_implicit_tls_together_are_refused(smtp_config: dict) -> None:
    with pytest.raises(ValueError, match="SMTP_STARTTLS"):
        build_email_sender(smtp_config | {"SMTP_PORT": 465, "SMTP_STARTTLS": True})
