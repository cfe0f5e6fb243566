"""SMS and e-mail delivery behind two small protocols, with backends chosen by configuration.

Flows call `build_sms_sender(app.config)` / `build_email_sender(app.config)` once (the
builders take any mapping and import nothing from Flask), then `send(...)`, and turn
`SenderUnavailable` into 503 service_unavailable and `RecipientRejected` into 422, except
`SendOutcomeUnknown` (handed over, answer lost), which counts as sent. `gate.SendGate` caps
how many request threads of a process may wait on one channel's provider at once.
"""

from authserver.senders.base import (
    RecipientRejected,
    SendError,
    SenderUnavailable,
    SendOutcomeUnknown,
)
from authserver.senders.email import EmailSender, build_email_sender
from authserver.senders.sms import SmsSender, build_sms_sender

__all__ = [
    "EmailSender",
    "RecipientRejected",
    "SendError",
    "SendOutcomeUnknown",
    "SenderUnavailable",
    "SmsSender",
    "build_email_sender",
    "build_sms_sender",
]
