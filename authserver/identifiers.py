"""Normalising what people type to identify themselves: e-mail addresses (and phone numbers)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from authserver.errors import Problem

MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> str:
    """The canonical, lower-cased form of an address, or 422 invalid_email.

    No DNS look-up: deliverability is proven by the person clicking a link, and a look-up
    would make the answer's timing depend on the domain.
    """
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_EMAIL_LENGTH:
        raise Problem(422, "invalid_email", "Enter a valid e-mail address.", field="email")
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise Problem(422, "invalid_email", "Enter a valid e-mail address.",
                      field="email") from None
    return result.normalized.lower()
