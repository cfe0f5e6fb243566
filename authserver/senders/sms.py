"""SMS senders: one small protocol, four backends chosen by SMS_BACKEND.

- console: logs each text on the "authserver.sms" logger at INFO (the local default, so a
  developer can read the code in the terminal). Never use it in production: it logs codes.
- file: one JSON file per message in OUTBOX_DIR (see base.Outbox).
- twilio: Programmable Messaging; we generate the code and send the text.
- twilio_verify: Twilio Verify creates, sends and checks the code (`owns_codes` is True).

The Twilio backends use the official SDK pointed at TWILIO_API_BASE_URL /
TWILIO_VERIFY_BASE_URL, with a bounded timeout (SMS_PROVIDER_TIMEOUT) and no retries, so a
slow provider turns into SenderUnavailable instead of a hung worker or a duplicate text, or,
when the request had reached Twilio whole before the answer was lost, SendOutcomeUnknown
(the text is most likely on its way; see handover.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from authserver.senders.base import (
    Outbox,
    RecipientRejected,
    SenderUnavailable,
    SendOutcomeUnknown,
    require,
)

if TYPE_CHECKING:
    # Untyped (no stubs for twilio 9): to mypy these are Any, so `exc.status` and
    # `exc.code` type-check. Imported at run time only where used (the SDK is slow to import).
    from twilio.base.exceptions import TwilioRestException, TwilioServiceException

log = logging.getLogger("authserver.sms")

DEFAULT_TWILIO_API_BASE_URL = "https://api.twilio.com"
DEFAULT_TWILIO_VERIFY_BASE_URL = "https://verify.twilio.com"
DEFAULT_SMS_PROVIDER_TIMEOUT = 5.0

# Twilio 4xx errors that are about our sending setup, not the recipient: the user can do
# nothing about them, so they must not come back as "invalid phone".
#   21212 invalid From number, 21603 From missing, 21606 From not SMS-capable for this
#   account, 21659 From is not a Twilio number.
_SETUP_ERROR_CODES = frozenset({21212, 21603, 21606, 21659})
# Verify answers 429 with 60202 once a verification has had too many wrong codes: the code
# is dead, which for a check is simply "not approved".
_MAX_CHECK_ATTEMPTS_CODE = 60202


@runtime_checkable
class SmsSender(Protocol):
    """Sends texts. When `owns_codes` is True the provider generates and checks the codes."""

    owns_codes: bool

    def send(self, to: str, text: str) -> None:
        """Send `text` to the E.164 number `to`."""
        ...

    def start_verification(self, to: str) -> None:
        """Have the provider send a fresh code to `to` (only when `owns_codes`)."""
        ...

    def check_verification(self, to: str, code: str) -> bool:
        """True when `code` is the pending code for `to` (only when `owns_codes`)."""
        ...


class _WeSendCodes:
    """For backends that only deliver text: the flow generates and checks the code itself."""

    owns_codes = False

    def start_verification(self, to: str) -> None:
        raise TypeError(f"{type(self).__name__} does not own codes; generate one and send()")

    def check_verification(self, to: str, code: str) -> bool:
        raise TypeError(f"{type(self).__name__} does not own codes; check them yourself")


class ConsoleSmsSender(_WeSendCodes):
    def send(self, to: str, text: str) -> None:
        log.info("SMS to %s: %s", to, text)


class FileSmsSender(_WeSendCodes):
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def send(self, to: str, text: str) -> None:
        self.outbox.write("sms", to, None, text, None)


class TwilioSmsSender(_WeSendCodes):
    """Programmable Messaging: POST /2010-04-01/Accounts/{sid}/Messages.json."""

    def __init__(
        self, client: Any, from_number: str | None, messaging_service_sid: str | None
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("twilio backend needs TWILIO_FROM_NUMBER or "
                             "TWILIO_MESSAGING_SERVICE_SID to be set")
        self.client = client
        self.from_number = from_number or None
        self.messaging_service_sid = messaging_service_sid or None

    def send(self, to: str, text: str) -> None:
        # The SDK drops None values, so only the configured sender identity is sent.
        with _twilio_errors("send the SMS", delivers=True):
            self.client.messages.create(
                to=to,
                body=text,
                from_=self.from_number,
                messaging_service_sid=self.messaging_service_sid,
            )


class TwilioVerifySmsSender:
    """Twilio Verify: the provider generates, sends and checks the code."""

    owns_codes = True

    def __init__(self, client: Any, service_sid: str, messenger: TwilioSmsSender | None) -> None:
        self.client = client
        self.service_sid = service_sid
        # Verify cannot carry free text; other texts go through Messaging when it is set up.
        self.messenger = messenger

    def send(self, to: str, text: str) -> None:
        if self.messenger is None:
            raise SenderUnavailable(
                "plain SMS needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"
            )
        self.messenger.send(to, text)

    def start_verification(self, to: str) -> None:
        with _twilio_errors("start the verification", delivers=True):
            self._service().verifications.create(to=to, channel="sms")

    def check_verification(self, to: str, code: str) -> bool:
        with _twilio_errors("check the code"):
            try:
                check = self._service().verification_checks.create(to=to, code=code)
            except _rest_error_types() as exc:
                # 404: no pending verification (expired, already approved, never started).
                if exc.status == 404 or exc.code == _MAX_CHECK_ATTEMPTS_CODE:
                    return False
                raise
        return check.status == "approved"

    def _service(self) -> Any:
        return self.client.verify.v2.services(self.service_sid)


@contextmanager
def _twilio_errors(action: str, *, delivers: bool = False) -> Iterator[None]:
    """Turn SDK and transport failures into our two error types, with our own wording.

    `delivers`: the call sends a text; a transport failure after the request reached Twilio
    whole is then SendOutcomeUnknown (answer lost) rather than SenderUnavailable.
    The causes are dropped (`from None`): their text carries request URLs with the account
    SID, the phone number and Twilio's raw message. Status and Twilio code are kept.
    """
    from requests.exceptions import RequestException
    from twilio.base.exceptions import TwilioException

    from authserver.senders import handover

    try:
        with handover.tracking() as delivery:
            yield
    except _rest_error_types() as exc:
        status, code = int(exc.status), exc.code
        error = _map_status(status, code, action)
        log.warning("Twilio could not %s: HTTP %s, Twilio error %s", action, status, code)
        raise error from None
    except RequestException as exc:
        if delivers and delivery.handed_over:
            # Twilio has the whole request; its answer timed out or the connection dropped.
            log.warning("Twilio took the request to %s, its answer was lost: %s", action,
                        type(exc).__name__)
            raise SendOutcomeUnknown(f"SMS provider did not confirm, could not {action}"
                                     ) from None
        log.warning("Twilio could not %s: %s", action, type(exc).__name__)
        raise SenderUnavailable(f"SMS provider unreachable, could not {action}") from None
    except (TwilioException, json.JSONDecodeError) as exc:
        # A 2xx that is not Twilio JSON: a proxy or captive portal in the way.
        log.warning("Twilio could not %s: %s", action, type(exc).__name__)
        raise SenderUnavailable(f"SMS provider gave an unreadable answer to {action}") from None


def _rest_error_types() -> tuple[type[TwilioRestException], type[TwilioServiceException]]:
    """Twilio's two HTTP error shapes (classic JSON and RFC 9457); both carry status, code."""
    from twilio.base.exceptions import TwilioRestException, TwilioServiceException

    return (TwilioRestException, TwilioServiceException)


def _map_status(
    status: int, code: int | None, action: str
) -> RecipientRejected | SenderUnavailable:
    if 400 <= status < 500 and status not in {401, 403, 404, 429} and (
        code not in _SETUP_ERROR_CODES
    ):
        return RecipientRejected(
            "SMS provider refused the number or message",
            provider_code=code,
            provider_status=status,
        )
    return SenderUnavailable(
        f"SMS provider could not {action}", provider_code=code, provider_status=status
    )


def _twilio_client(config: Mapping[str, Any]) -> Any:
    # Imported here so the console and file backends (and the app's import) don't pay for
    # the SDK's import time.
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    from authserver.senders.handover import TrackingAdapter

    backend = config.get("SMS_BACKEND", "twilio")
    require(config, backend, "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    timeout = float(config.get("SMS_PROVIDER_TIMEOUT") or DEFAULT_SMS_PROVIDER_TIMEOUT)
    http_client = TwilioHttpClient(timeout=timeout)
    # For http:// too (a loopback fake, a plain-HTTP egress proxy URL): every request is
    # tracked, so a lost answer is told apart from a request that never left.
    adapter = TrackingAdapter()
    http_client.session.mount("https://", adapter)
    http_client.session.mount("http://", adapter)
    client = Client(
        config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"], http_client=http_client
    )
    # The SDK would rewrite each request's host from TWILIO_EDGE / TWILIO_REGION found in
    # os.environ; our base URLs already name the host (regional edge, proxy or test fake).
    client.edge = None
    client.region = None
    # Each product domain builds its URLs from `base_url` on every request, so replacing it
    # on the (cached) domain objects redirects every call made through this client.
    client.api.base_url = _base_url(config, "TWILIO_API_BASE_URL", DEFAULT_TWILIO_API_BASE_URL)
    client.verify.base_url = _base_url(
        config, "TWILIO_VERIFY_BASE_URL", DEFAULT_TWILIO_VERIFY_BASE_URL
    )
    return client


def _base_url(config: Mapping[str, Any], name: str, default: str) -> str:
    url = str(config.get(name) or default).rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{name} must be an absolute http(s) URL")
    return url


def build_sms_sender(config: Mapping[str, Any]) -> SmsSender:
    """Build the sender SMS_BACKEND names (console, file, twilio, twilio_verify)."""
    backend = config.get("SMS_BACKEND") or "console"
    if backend == "console":
        return ConsoleSmsSender()
    if backend == "file":
        return FileSmsSender(Outbox(config.get("OUTBOX_DIR") or "outbox"))
    if backend == "twilio":
        return TwilioSmsSender(
            _twilio_client(config),
            config.get("TWILIO_FROM_NUMBER"),
            config.get("TWILIO_MESSAGING_SERVICE_SID"),
        )
    if backend == "twilio_verify":
        require(config, backend, "TWILIO_VERIFY_SERVICE_SID")
        client = _twilio_client(config)
        from_number = config.get("TWILIO_FROM_NUMBER")
        service = config.get("TWILIO_MESSAGING_SERVICE_SID")
        messenger = TwilioSmsSender(client, from_number, service) if (
            from_number or service
        ) else None
        return TwilioVerifySmsSender(client, config["TWILIO_VERIFY_SERVICE_SID"], messenger)
    raise ValueError(
        f"unknown SMS_BACKEND {backend!r}: expected console, file, twilio or twilio_verify"
    )
