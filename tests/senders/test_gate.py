"""The per-channel send gate: a hung provider holds at most SEND_CONCURRENCY threads."""

from __future__ import annotations

import threading
import time

import pytest

from authserver.senders import SenderUnavailable
from authserver.senders.email import build_email_sender
from authserver.senders.gate import GatedEmailSender, GatedSmsSender, SendGate
from authserver.senders.sms import build_sms_sender
from tests.fakes.smtp_server import FakeSmtp
from tests.fakes.twilio_server import FakeTwilio


def test_calls_beyond_the_limit_are_refused_fast_while_the_provider_hangs(
    fake_smtp: FakeSmtp, smtp_config: dict
) -> None:
    fake_smtp.hang_after_data = 30
    sender = GatedEmailSender(build_email_sender(smtp_config | {"SMTP_TIMEOUT": 2.0}),
                              SendGate("email", 2))
    errors: list[BaseException] = []

    def hung() -> None:
        try:
            sender.send("ann@example.com", "s", "t", None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hung) for _ in range(2)]
    for thread in threads:
        thread.start()
    fake_smtp.wait_for(2)  # both slots are now held by sends waiting on the server

    started = time.monotonic()
    with pytest.raises(SenderUnavailable) as caught:
        sender.send("bob@example.com", "s", "t", None)
    assert time.monotonic() - started < 1.0
    assert "busy" in str(caught.value)
    assert len(fake_smtp.messages) == 2  # the refused one never reached the server

    for thread in threads:
        thread.join(timeout=10)
    assert len(errors) == 2
    # The slots came back with the failures: the next send goes through.
    fake_smtp.hang_after_data = 0
    sender.send("bob@example.com", "s", "t", None)
    assert len(fake_smtp.messages) == 3


def test_each_channel_has_its_own_slots(fake_twilio: FakeTwilio, twilio_config: dict) -> None:
    sms_gate, mail_gate = SendGate("sms", 1, wait=0.01), SendGate("email", 1, wait=0.01)
    sms = GatedSmsSender(build_sms_sender(twilio_config), sms_gate)
    with sms_gate.slot():  # the SMS provider's one slot is taken
        with pytest.raises(SenderUnavailable):
            sms.send("+16502530000", "hi")
        with mail_gate.slot():
            pass  # mail is not held up by the SMS provider
    sms.send("+16502530000", "hi")
    assert len(fake_twilio.messages) == 1


def test_verify_checks_take_the_same_slots_and_keep_owns_codes(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    gate = SendGate("sms", 1, wait=0.01)
    sms = GatedSmsSender(build_sms_sender(twilio_config | {"SMS_BACKEND": "twilio_verify"}),
                         gate)
    assert sms.owns_codes is True
    sms.start_verification("+16502530000")
    with gate.slot(), pytest.raises(SenderUnavailable):
        sms.check_verification("+16502530000", fake_twilio.codes["+16502530000"])
    assert sms.check_verification("+16502530000", fake_twilio.codes["+16502530000"])


def test_a_limit_below_one_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="SEND_CONCURRENCY"):
        SendGate("sms", 0)
