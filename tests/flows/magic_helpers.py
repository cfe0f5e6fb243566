"""Reading sign-in mails back, from the file outbox or an SMTP message, as a person would."""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LINK_RE = re.compile(r"(https?://\S+/auth/magic\?token=[A-Za-z0-9_.\-%]+)")
CODE_RE = re.compile(r"enter this code: (\d{6})")


def email_messages(outbox_dir: str | Path, to: str | None = None) -> list[dict[str, Any]]:
    """The e-mail files in the outbox, oldest first (file names sort in send order)."""
    folder = Path(outbox_dir)
    if not folder.is_dir():
        return []
    messages = [json.loads(path.read_text(encoding="utf-8"))
                for path in sorted(folder.glob("*.json"))]
    return [m for m in messages if m["channel"] == "email" and (to is None or m["to"] == to)]


def link_in(text: str) -> str:
    match = LINK_RE.search(text)
    assert match, f"no sign-in link in {text!r}"
    return match.group(1)


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def code_in(text: str) -> str:
    match = CODE_RE.search(text)
    assert match, f"no 6-digit code in {text!r}"
    return match.group(1)


def last_mail(outbox_dir: str | Path, to: str) -> tuple[str, str]:
    """(token, code) of the newest sign-in mail to `to`."""
    messages = email_messages(outbox_dir, to)
    assert messages, f"no mail to {to} in {outbox_dir}"
    text = messages[-1]["text"]
    return token_of(link_in(text)), code_in(text)


def parts_of(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML bodies of a delivered multipart message."""
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None, "expected text and HTML parts"
    return plain.get_content(), html.get_content()


def wrong_code(code: str) -> str:
    """A well-formed code that is certainly not `code`."""
    return f"{(int(code) + 1) % 10**6:06d}"
