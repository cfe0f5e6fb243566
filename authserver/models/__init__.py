"""The database tables. Import models from here: `from authserver.models import User`."""

from authserver.models.audit import AuditEvent
from authserver.models.cooldown import SendCooldown
from authserver.models.counter import Counter
from authserver.models.handoff import HandoffCode
from authserver.models.mfa import RecoveryCode, TotpFactor
from authserver.models.one_time_code import OneTimeCode
from authserver.models.session import RefreshToken, Session
from authserver.models.signing_key import SigningKey
from authserver.models.user import Role, User, user_roles
from authserver.models.webhook import WebhookOutbox

__all__ = [
    "AuditEvent",
    "Counter",
    "HandoffCode",
    "OneTimeCode",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "SendCooldown",
    "Session",
    "SigningKey",
    "TotpFactor",
    "User",
    "WebhookOutbox",
    "user_roles",
]
