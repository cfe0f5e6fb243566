"""A person-readable name for a session's User-Agent: "Chrome on Linux", "Safari on iPhone".

Only the common browsers and systems, by the tokens their User-Agent strings have carried
for years; anything else is "Unknown browser" (GET /api/v1/me/sessions also gives the raw
string). Order matters: Edge, Opera and Samsung Internet also say "Chrome", and
Chrome also says "Safari"; Android says "Linux", iOS says "Mac OS X".
"""

from __future__ import annotations

import re

_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Edge", re.compile(r"\bEdg(e|A|iOS)?/")),
    ("Opera", re.compile(r"\b(OPR|Opera)/")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Firefox", re.compile(r"\b(Firefox|FxiOS)/")),
    ("Chrome", re.compile(r"\b(Chrome|HeadlessChrome|CriOS|Chromium)/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/")),
    ("curl", re.compile(r"^curl/")),
    ("Python", re.compile(r"^(python-requests|python-httpx|Python-urllib)/")),
)

_SYSTEMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iPhone", re.compile(r"\biPhone\b")),
    ("iPad", re.compile(r"\biPad\b")),
    ("Android", re.compile(r"\bAndroid\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b|\bX11\b")),
)


def _first(table: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str | None:
    return next((name for name, pattern in table if pattern.search(text)), None)


def describe(user_agent: str | None) -> str:
    """ "Chrome on Linux"; "Firefox" when the system is unknown; "Unknown device" for none."""
    text = (user_agent or "").strip()
    if not text:
        return "Unknown device"
    browser = _first(_BROWSERS, text)
    system = _first(_SYSTEMS, text)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or f"Browser on {system}"
    return "Unknown browser"
