"""SMS senders: the real Twilio SDK against the fake Twilio server, plus the local backends."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from authserver.senders import (
    RecipientRejected,
    SenderUnavailable,
    SmsSender,
    build_sms_sender,
)
from tests.fakes.twilio_server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    MESSAGING_SERVICE_SID,
    VERIFY_SERVICE_SID,
    FakeTwilio,
)

TO = "+14155550123"
RAW_TWILIO_MESSAGE = "The 'To' number +14155550123 is not a valid phone number."


# --- Programmable Messaging --------------------------------------------------------------


def test_twilio_send_with_from_number(fake_twilio: FakeTwilio, twilio_config: dict) -> None:
    sender = build_sms_sender(twilio_config)
    assert isinstance(sender, SmsSender)
    assert sender.owns_codes is False

    sender.send(TO, "Your code is 123456")

    [req] = fake_twilio.requests
    assert req.method == "POST"
    assert req.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert req.form == {"To": TO, "From": FROM_NUMBER, "Body": "Your code is 123456"}
    assert (req.username, req.password) == (ACCOUNT_SID, AUTH_TOKEN)


def test_twilio_send_with_messaging_service(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    config = twilio_config | {
        "TWILIO_FROM_NUMBER": "",
        "TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID,
    }
    build_sms_sender(config).send(TO, "Your code is 654321")

    [req] = fake_twilio.messages
    assert req.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert req.form == {
        "To": TO,
        "MessagingServiceSid": MESSAGING_SERVICE_SID,
        "Body": "Your code is 654321",
    }
    assert (req.username, req.password) == (ACCOUNT_SID, AUTH_TOKEN)


def test_twilio_edge_in_environment_does_not_redirect_requests(
    fake_twilio: FakeTwilio, twilio_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would otherwise rebuild the host as <first label>.<edge>.<region>.<domain>.
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    build_sms_sender(twilio_config).send(TO, "hello")

    assert len(fake_twilio.messages) == 1


def test_twilio_invalid_number_is_recipient_rejected_without_leaking(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    fake_twilio.fail_next(400, 21211, RAW_TWILIO_MESSAGE)
    sender = build_sms_sender(twilio_config)

    with pytest.raises(RecipientRejected) as caught:
        sender.send(TO, "Your code is 123456")

    text = str(caught.value)
    assert ACCOUNT_SID not in text
    assert AUTH_TOKEN not in text
    assert RAW_TWILIO_MESSAGE not in text
    assert "not a valid phone number" not in text
    assert caught.value.provider_code == 21211
    assert caught.value.provider_status == 400
    # The SDK's exception (whose text holds the URL with the SID) is not chained either.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, 20500),
        (503, 20503),
        (429, 20429),  # Twilio's rate limit: try later, the number is fine
        (401, 20003),  # our credentials: the user can do nothing about it
        (400, 21606),  # our From number cannot send SMS: setup, not the recipient
    ],
)
def test_twilio_provider_and_setup_errors_are_unavailable(
    fake_twilio: FakeTwilio, twilio_config: dict, status: int, code: int
) -> None:
    fake_twilio.fail_next(status, code, "raw provider text")

    with pytest.raises(SenderUnavailable) as caught:
        build_sms_sender(twilio_config).send(TO, "hi")

    assert caught.value.provider_status == status
    assert caught.value.provider_code == code
    assert "raw provider text" not in str(caught.value)


def test_twilio_hang_gives_up_after_the_timeout(
    fake_twilio: FakeTwilio, twilio_config: dict
) -> None:
    fake_twilio.hang_next(30)
    sender = build_sms_sender(twilio_config | {"SMS_PROVIDER_TIMEOUT": 1.0})

    started = time.monotonic()
    with pytest.raises(SenderUnavailable):
        sender.send(TO, "hi")

    assert time.monotonic() - started < 10
    assert len(fake_twilio.requests) == 1  # no silent retry that could send twice


def test_twilio_connection_refused_is_unavailable(twilio_config: dict, closed_port: int) -> None:
    config = twilio_config | {"TWILIO_API_BASE_URL": f"http://127.0.0.1:{closed_port}"}

    with pytest.raises(SenderUnavailable) as caught:
        build_sms_sender(config).send(TO, "hi")

    assert ACCOUNT_SID not in str(caught.value)
    assert caught.value.__cause__ is None


def test_twilio_secrets_stay_out_of_logs(
    fake_twilio: FakeTwilio, twilio_config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # create_app quiets this SDK logger (it logs URLs with the account SID); hear it here.
    caplog.set_level(logging.DEBUG, logger="twilio.http_client")
    sender = build_sms_sender(twilio_config)
    sender.send(TO, "hi")
    fake_twilio.fail_next(400, 21211, RAW_TWILIO_MESSAGE)
    with pytest.raises(RecipientRejected):
        sender.send(TO, "hi")

    assert any(r.name == "twilio.http_client" for r in caplog.records)
    assert AUTH_TOKEN not in caplog.text
    assert RAW_TWILIO_MESSAGE not in caplog.text


# --- Verify --------------------------------------------------------------------------------


@pytest.fixture
def verify_sender(twilio_config: dict) -> SmsSender:
    return build_sms_sender(twilio_config | {"SMS_BACKEND": "twilio_verify"})


def test_verify_start_then_check_the_right_code(
    fake_twilio: FakeTwilio, verify_sender: SmsSender
) -> None:
    assert verify_sender.owns_codes is True

    verify_sender.start_verification(TO)

    [req] = fake_twilio.requests
    assert req.path == f"/v2/Services/{VERIFY_SERVICE_SID}/Verifications"
    assert req.form == {"To": TO, "Channel": "sms"}
    assert (req.username, req.password) == (ACCOUNT_SID, AUTH_TOKEN)

    assert verify_sender.check_verification(TO, fake_twilio.codes[TO]) is True
    check = fake_twilio.requests[-1]
    assert check.path == f"/v2/Services/{VERIFY_SERVICE_SID}/VerificationCheck"
    assert check.form == {"To": TO, "Code": fake_twilio.codes[TO]}


def test_verify_wrong_code_is_false(fake_twilio: FakeTwilio, verify_sender: SmsSender) -> None:
    verify_sender.start_verification(TO)
    wrong = f"{(int(fake_twilio.codes[TO]) + 1) % 10**6:06d}"

    assert verify_sender.check_verification(TO, wrong) is False
    # Still pending: the right code works after a wrong one.
    assert verify_sender.check_verification(TO, fake_twilio.codes[TO]) is True


def test_verify_check_without_pending_verification_is_false(
    fake_twilio: FakeTwilio, verify_sender: SmsSender
) -> None:
    # Twilio answers 404 here (nothing started, expired, or already approved).
    assert verify_sender.check_verification(TO, "123456") is False

    verify_sender.start_verification(TO)
    code = fake_twilio.codes[TO]
    assert verify_sender.check_verification(TO, code) is True
    assert verify_sender.check_verification(TO, code) is False


def test_verify_too_many_wrong_codes_is_false(
    fake_twilio: FakeTwilio, verify_sender: SmsSender
) -> None:
    verify_sender.start_verification(TO)
    code = fake_twilio.codes[TO]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        assert verify_sender.check_verification(TO, wrong) is False

    # Twilio now answers 429 / 60202: the code is dead, which is a "no", not an outage.
    assert verify_sender.check_verification(TO, code) is False


def test_verify_invalid_number_is_recipient_rejected(
    fake_twilio: FakeTwilio, verify_sender: SmsSender
) -> None:
    with pytest.raises(RecipientRejected) as caught:
        verify_sender.start_verification("12345")
    assert caught.value.provider_code == 60200


def test_verify_check_outage_is_unavailable(
    fake_twilio: FakeTwilio, verify_sender: SmsSender
) -> None:
    verify_sender.start_verification(TO)
    fake_twilio.fail_next(503, 20503, "down")

    with pytest.raises(SenderUnavailable):
        verify_sender.check_verification(TO, fake_twilio.codes[TO])


def test_verify_sends_plain_texts_through_messaging_when_configured(
    fake_twilio: FakeTwilio, verify_sender: SmsSender, twilio_config: dict
) -> None:
    verify_sender.send(TO, "Your number was added to an account")
    assert fake_twilio.messages[-1].form["From"] == FROM_NUMBER

    without_sender = build_sms_sender(
        twilio_config | {"SMS_BACKEND": "twilio_verify", "TWILIO_FROM_NUMBER": ""}
    )
    with pytest.raises(SenderUnavailable):
        without_sender.send(TO, "hi")


# --- local backends ------------------------------------------------------------------------


def test_file_backend_writes_one_json_file_per_message(tmp_path) -> None:
    outbox = tmp_path / "outbox"
    sender = build_sms_sender({"SMS_BACKEND": "file", "OUTBOX_DIR": str(outbox)})

    sender.send(TO, "first 111111")
    sender.send("+447700900123", "second 222222")

    names = sorted(os.listdir(outbox))
    assert len(names) == 2
    assert all(name.endswith(".json") for name in names)  # no temp files left behind
    first, second = (json.loads((outbox / name).read_text("utf-8")) for name in names)
    assert set(first) == {"channel", "to", "subject", "text", "html", "sent_at"}
    assert first["channel"] == "sms"
    assert first["to"] == TO
    assert first["subject"] is None
    assert first["html"] is None
    assert first["text"] == "first 111111"
    assert first["sent_at"].endswith("+00:00")
    assert second["text"] == "second 222222"  # names sort in send order


def test_console_backend_logs_the_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authserver.sms")
    sender = build_sms_sender({"SMS_BACKEND": "console"})

    sender.send(TO, "Your code is 424242")

    [record] = [r for r in caplog.records if r.name == "authserver.sms"]
    assert record.levelno == logging.INFO
    assert TO in record.getMessage()
    assert "424242" in record.getMessage()


def test_console_is_the_default_and_does_not_own_codes() -> None:
    sender = build_sms_sender({})
    assert sender.owns_codes is False
    with pytest.raises(TypeError):
        sender.start_verification(TO)


# --- building ------------------------------------------------------------------------------


def test_unknown_backend_is_refused_at_build_time() -> None:
    with pytest.raises(ValueError, match="SMS_BACKEND"):
        build_sms_sender({"SMS_BACKEND": "carrier-pigeon"})


def test_missing_twilio_settings_are_named_not_shown(twilio_config: dict) -> None:
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN") as caught:
        build_sms_sender(twilio_config | {"TWILIO_AUTH_TOKEN": ""})
    assert ACCOUNT_SID not in str(caught.value)

    with pytest.raises(ValueError, match="TWILIO_FROM_NUMBER"):
        build_sms_sender(twilio_config | {"TWILIO_FROM_NUMBER": ""})

    with pytest.raises(ValueError, match="TWILIO_VERIFY_SERVICE_SID"):
        build_sms_sender(
            twilio_config | {"SMS_BACKEND": "twilio_verify", "TWILIO_VERIFY_SERVICE_SID": ""}
        )
