"""Reading texted codes back: from the file backend's outbox, as a phone would receive them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# The WebOTP line the SMS must end with: "@<host> #<code>".
WEBOTP_LINE = re.compile(r"^@(?P<host>[^\s#]+) #(?P<code>\d{6})$")


def sms_messages(outbox_dir: str | Path, to: str | None = None) -> list[dict[str, Any]]:
    """The SMS files in the outbox, oldest first (file names sort in send order)."""
    folder = Path(outbox_dir)
    if not folder.is_dir():
        return []
    messages = [json.loads(path.read_text(encoding="utf-8"))
                for path in sorted(folder.glob("*.json"))]
    return [m for m in messages if m["channel"] == "sms" and (to is None or m["to"] == to)]


def code_in(text: str) -> str:
    """The code of an SMS, read from its last line as a browser's WebOTP would."""
    match = WEBOTP_LINE.match(text.splitlines()[-1])
    assert match, f"the SMS does not end with a WebOTP line: {text!r}"
    return match["code"]


def last_code(outbox_dir: str | Path, to: str) -> str:
    messages = sms_messages(outbox_dir, to)
    assert messages, f"no SMS to {to} in {outbox_dir}"
    return code_in(messages[-1]["text"])


def wrong_code(code: str) -> str:
    """A well-formed code that is certainly not `code`."""
    return f"{(int(code) + 1) % 10**6:06d}"
