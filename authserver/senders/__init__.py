"""SMS and e-mail delivery behind two small protocols, with backends chosen by configuration.

Flows call `build_sms_sender(app.config)` / `build_email_sender(app.config)` once (the
builders take any mapping and import nothing from Flask), then `send(...)`, and turn
`SenderUnavailable` into 503 service_unavailable and `RecipientRejected` into 422.
"""

from authserver.senders.base import RecipientRejected, SendError, SenderUnavailable
from authserver.senders.email import EmailSender, build_email_sender
from authserver.senders.sms import SmsSender, build_sms_sender

__all__ = [
    "EmailSender",
    "RecipientRejected",
    "SendError",
    "SenderUnavailable",
    "SmsSender",
    "build_email_sender",
    "build_sms_sender",
]
