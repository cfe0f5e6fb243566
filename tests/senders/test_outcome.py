"""Sent-but-answer-lost against nothing-went-out, at the network boundary.

The real twilio SDK and smtplib talk to loopback fakes that take a message whole and then
hang or drop the connection (SendOutcomeUnknown: the message most likely arrived), or that
never get that far (plain SenderUnavailable: nothing went out).
"""

from __future__ import annotations

import time

import pytest

from authserver.senders import SenderUnavailable, SendOutcomeUnknown
from authserver.senders.email import build_email_sender
from authserver.senders.sms import build_sms_sender
from tests.fakes.smtp_server import BlackHole, FakeSmtp
from tests.fakes.twilio_server import FakeTwilio

TO = "+16502530000"
TIMEOUT = 1.0


def _raises(error: type[Exception], call: object, *args: object) -> Exception:
    started = time.monotonic()
    with pytest.raises(error) as caught:
        call(*args)  # type: ignore[operator]
    assert time.monotonic() - started < TIMEOUT + 3  # the timeout bounds it, no retry
    return caught.value


# -- Twilio ----------------------------------------------------------------------------------
def test_twilio_accepted_then_hung_is_outcome_unknown(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    fake_twilio.hang_next(30)
    sender = build_sms_sender(twilio_config | {"SMS_PROVIDER_TIMEOUT": TIMEOUT})

    error = _raises(SendOutcomeUnknown, sender.send, TO, "Your code is 123456")

    assert isinstance(error, SenderUnavailable)  # callers that don't know it stay cautious
    assert error.__cause__ is None
    assert len(fake_twilio.messages) == 1  # taken once, never retried


def test_twilio_accepted_then_dropped_is_outcome_unknown(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    fake_twilio.drop_next()
    sender = build_sms_sender(twilio_config | {"SMS_PROVIDER_TIMEOUT": TIMEOUT})

    _raises(SendOutcomeUnknown, sender.send, TO, "Your code is 123456")

    assert len(fake_twilio.messages) == 1


def test_twilio_verify_start_accepted_then_hung_is_outcome_unknown(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    fake_twilio.hang_next(30)
    sender = build_sms_sender(twilio_config | {"SMS_BACKEND": "twilio_verify",
                                                "SMS_PROVIDER_TIMEOUT": TIMEOUT})

    _raises(SendOutcomeUnknown, sender.start_verification, TO)


def test_twilio_verify_check_that_hangs_is_plain_unavailable(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    # A check sends nothing to the person: its lost answer is just an outage.
    sender = build_sms_sender(twilio_config | {"SMS_BACKEND": "twilio_verify",
                                                "SMS_PROVIDER_TIMEOUT": TIMEOUT})
    sender.start_verification(TO)
    fake_twilio.hang_next(30)

    error = _raises(SenderUnavailable, sender.check_verification, TO, "000000")

    assert not isinstance(error, SendOutcomeUnknown)


def test_twilio_refused_connection_is_nothing_sent(twilio_config: dict, closed_port: int) -> None:
    config = twilio_config | {"TWILIO_API_BASE_URL": f"http://127.0.0.1:{closed_port}"}

    error = _raises(SenderUnavailable, build_sms_sender(config).send, TO, "hi")

    assert not isinstance(error, SendOutcomeUnknown)


def test_twilio_tls_handshake_into_a_black_hole_is_nothing_sent(twilio_config: dict) -> None:
    # urllib3 reports this as the same ReadTimeout as a lost answer; no byte of the request
    # left, so it must stay "nothing went out".
    with BlackHole() as hole:
        config = twilio_config | {"TWILIO_API_BASE_URL": f"https://127.0.0.1:{hole.port}",
                                  "SMS_PROVIDER_TIMEOUT": TIMEOUT}
        error = _raises(SenderUnavailable, build_sms_sender(config).send, TO, "hi")

    assert not isinstance(error, SendOutcomeUnknown)


def test_twilio_success_after_a_lost_answer_is_plain_success(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    # The mark is per call: a later call on the same (pooled) client starts clean.
    sender = build_sms_sender(twilio_config | {"SMS_PROVIDER_TIMEOUT": TIMEOUT})
    fake_twilio.hang_next(30)
    _raises(SendOutcomeUnknown, sender.send, TO, "one")
    sender.send(TO, "two")
    fake_twilio.fail_next(503, 20503)
    error = _raises(SenderUnavailable, sender.send, TO, "three")

    assert not isinstance(error, SendOutcomeUnknown)  # Twilio answered: it took nothing


# -- SMTP ------------------------------------------------------------------------------------
def _smtp(smtp_config: dict, **changes: object) -> object:
    return build_email_sender(smtp_config | {"SMTP_TIMEOUT": TIMEOUT, **changes})


def test_smtp_data_taken_then_no_answer_is_outcome_unknown(
    fake_smtp: FakeSmtp, smtp_config: dict
) -> None:
    fake_smtp.hang_after_data = 30
    sender = _smtp(smtp_config)

    error = _raises(SendOutcomeUnknown, sender.send,  # type: ignore[attr-defined]
                    "ann@example.com", "Sign in", "code 123456", None)

    assert error.__cause__ is None
    assert len(fake_smtp.messages) == 1  # the server has the message


def test_smtp_hang_before_data_is_nothing_sent(fake_smtp: FakeSmtp, smtp_config: dict) -> None:
    fake_smtp.hang_at_rcpt = 30
    sender = _smtp(smtp_config)

    error = _raises(SenderUnavailable, sender.send,  # type: ignore[attr-defined]
                    "ann@example.com", "Sign in", "code 123456", None)

    assert not isinstance(error, SendOutcomeUnknown)
    assert fake_smtp.messages == []


def test_smtp_black_hole_is_nothing_sent(smtp_config: dict) -> None:
    with BlackHole() as hole:
        sender = _smtp(smtp_config, SMTP_HOST=hole.host, SMTP_PORT=hole.port)
        error = _raises(SenderUnavailable, sender.send,  # type: ignore[attr-defined]
                        "ann@example.com", "Sign in", "code 123456", None)

    assert not isinstance(error, SendOutcomeUnknown)


def test_smtp_refused_after_data_is_nothing_sent(fake_smtp: FakeSmtp, smtp_config: dict) -> None:
    # A server that answers the final dot with an error code took nothing.
    async def refuse(*_args: object) -> str:
        return "451 4.3.0 try again later"

    fake_smtp._controller.handler.handle_DATA = refuse
    error = _raises(SenderUnavailable, _smtp(smtp_config).send,  # type: ignore[attr-defined]
                    "ann@example.com", "Sign in", "code 123456", None)

    assert not isinstance(error, SendOutcomeUnknown)
    assert error.provider_code == 451  # type: ignore[attr-defined]
