"""Normalising what people type to identify themselves: e-mail addresses (and phone numbers).

An address is an account key, a rate-limit and cooldown key, and the recipient of mail. All
three must name the same mailbox, so an address is accepted only in a plain `local@domain`
form that no mail library will decode or rewrite on the way out (see `refusal_reason`).
"""

from __future__ import annotations

import contextlib
import unicodedata

from email_validator import EmailNotValidError, validate_email

from authserver.errors import Problem

MAX_EMAIL_LENGTH = 254

INVALID_DETAIL = "Enter a valid e-mail address."
PLAIN_DETAIL = ("Enter just the e-mail address, like name@example.com: no name, quotes, "
                "comments, brackets, spaces or encoded text.")
LOOKALIKE_DETAIL = ("The part before the @ uses look-alike characters (such as full-width, "
                    "stylised, superscript or ligature letters). Type it with ordinary "
                    "characters.")

# Characters that carry structure in a mail header (RFC 5322 specials other than "@" and
# "."): a header parser reads them as display names, comments, quoted strings, groups,
# address lists or domain literals, and so may deliver to another mailbox than the one we
# stored. None of them can appear in a plain dot-atom address.
_HEADER_SPECIALS = frozenset('<>()[]\\,;:"')

# Control, format (zero-width joiners, bidi overrides, soft hyphen), surrogate, private-use,
# unassigned and separator (spaces, line and paragraph separators) code points: invisible
# or rewritten by mail software, never part of a real mailbox name.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def refusal_reason(address: str) -> str | None:
    """Why `address` is not a plain address safe to put in a mail header, or None.

    Refused: RFC 2047 encoded-words (`=?utf-8?q?ada?=@…` is stored as its own account but a
    mail library decodes it and delivers to `ada@…`, past that address's cooldown and limits),
    header specials (quoted local parts, comments, angle brackets, lists, domain literals) and
    control, format or space characters (CR/LF header injection, zero-width joiners).
    """
    if "=?" in address:
        return PLAIN_DETAIL
    for char in address:
        if char in _HEADER_SPECIALS or unicodedata.category(char) in _REFUSED_CATEGORIES:
            return PLAIN_DETAIL
    return None


def is_lookalike_local_part(local: str) -> bool:
    """True when NFKC would change the local part (or its lower-case form).

    Such a part renders as, and may be delivered like, another address (full-width `a`
    U+FF41, the ligature U+FB01 "fi", mathematical bold `a` U+1D41A, superscript two U+00B2
    against their plain letters and digits). We refuse these rather than fold them to NFKC:
    folding would silently merge what the person typed into a different-looking account and
    send mail to an address they never wrote, while refusing is simple and visible. Canonical
    equivalents (a precomposed "é" and "e" + combining accent) are the same text and are
    already merged by email_validator's NFC step.
    """
    return any(unicodedata.normalize("NFKC", form) != form for form in (local, local.lower()))


def normalize_email(raw: str) -> str:
    """The canonical, lower-cased form of an address, or 422 invalid_email.

    No DNS look-up: deliverability is proven by the person clicking a link, and a look-up
    would make the answer's timing depend on the domain. The domain keeps its IDNA handling
    (`exämple.com` and `xn--exmple-cua.com` are one domain, stored in Unicode form).
    """
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_EMAIL_LENGTH:
        raise _invalid(INVALID_DETAIL)
    candidate = raw.strip()
    reason = refusal_reason(candidate)
    if reason:
        raise _invalid(reason)
    try:
        # The library's defaults already refuse most of this; they are spelled out so a
        # library upgrade that relaxes a default cannot quietly reopen a hole.
        result = validate_email(candidate, check_deliverability=False,
                                allow_quoted_local=False, allow_domain_literal=False,
                                allow_display_name=False, allow_smtputf8=True)
    except EmailNotValidError:
        raise _invalid(INVALID_DETAIL) from None
    if is_lookalike_local_part(result.local_part):
        raise _invalid(LOOKALIKE_DETAIL)
    normalized = result.normalized.lower()
    # Lower-casing can itself produce a special character (never seen, but cheap to rule out).
    if refusal_reason(normalized):
        raise _invalid(PLAIN_DETAIL)
    return normalized


def lookalike_key(address: str) -> str:
    """What an address looks like once compatibility forms, case and invisible characters are
    folded away (NFKC + casefold, domain in IDNA form): two stored addresses with one key are
    look-alikes of each other. For reports (`flask users check-lookalikes`), never for storage.
    """
    local, _, domain = address.rpartition("@")
    visible = "".join(c for c in local if unicodedata.category(c) not in _REFUSED_CATEGORIES)
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", visible).casefold())
    with contextlib.suppress(EmailNotValidError):  # keep an unparsable domain as it is
        domain = validate_email("x@" + domain, check_deliverability=False).domain
    return folded + "@" + unicodedata.normalize("NFKC", domain).casefold()


def _invalid(detail: str) -> Problem:
    return Problem(422, "invalid_email", detail, field="email")
