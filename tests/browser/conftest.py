"""Browser tests: Playwright for Python driving Debian's Chromium against a live server.

Playwright's own browser download does not work on these machines, so the tests launch the
system Chromium (`/usr/bin/chromium`, from Debian's `chromium` package, which .ci/run
installs). Screenshots land in test-output/screenshots/ for a person to look at.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.e2e.conftest import free_port, live_server  # noqa: F401  (fixture re-export)

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORTS = {"360": {"width": 360, "height": 740}, "1280": {"width": 1280, "height": 800}}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORTS["1280"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def shoot(page: Any, name: str) -> None:
    """Screenshot the current page at phone and desktop widths."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(VIEWPORTS["1280"])


class Outbox:
    """Messages the file backends wrote, newest last."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def messages(self, channel: str, to: str) -> list[dict[str, Any]]:
        if not self.folder.exists():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            message = json.loads(path.read_text())
            if message["channel"] == channel and message["to"] == to:
                found.append(message)
        return found

    def wait_for(self, channel: str, to: str, count: int = 1) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            messages = self.messages(channel, to)
            if len(messages) >= count:
                return messages[-1]
            time.sleep(0.1)
        raise AssertionError(f"no {channel} message #{count} to {to}")

    def sms_code(self, phone: str, count: int = 1) -> str:
        text = self.wait_for("sms", phone, count)["text"]
        return re.search(r"#(\d{6})", text).group(1)

    def magic_link(self, email: str, count: int = 1) -> str:
        text = self.wait_for("email", email, count)["text"]
        return re.search(r"https?://\S+/auth/magic\?token=[^\s]+", text).group(0)

    def email_code(self, email: str, count: int = 1) -> str:
        """The 6-digit code printed next to the link of the newest mail to `email`."""
        text = self.wait_for("email", email, count)["text"]
        return re.search(r"enter this code: (\d{6})", text).group(1)

    def reset_link(self, email: str, count: int = 1) -> str:
        text = self.wait_for("email", email, count)["text"]
        return re.search(r"https?://\S+/auth/reset\?token=[^\s]+", text).group(0)


#: The small phone screen the sign-in pages must work on without scrolling sideways.
PHONE_SCREEN = {"width": 360, "height": 640}
LAPTOP_SCREEN = {"width": 1280, "height": 800}


def no_sideways_scroll(page: Any) -> None:
    """The page fits the viewport's width (nothing sticks out to scroll sideways to)."""
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url}: {scroll_width}px wide in a {width}px viewport"


def focused_and_visible(page: Any, selector: str) -> None:
    """`selector` has the keyboard focus and lies wholly inside the viewport."""
    # Polled from here, not with wait_for_function: that needs the page's own scripts on.
    deadline = time.monotonic() + 5
    while not page.evaluate("s => document.activeElement === document.querySelector(s)",
                            selector):
        assert time.monotonic() < deadline, f"{selector} does not have the focus"
        time.sleep(0.05)
    inside = page.locator(selector).evaluate(
        "e => { const r = e.getBoundingClientRect();"
        " return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight"
        " && r.right <= innerWidth; }")
    assert inside, f"{selector} is not wholly in the viewport"


class StubApp:
    """A client app on loopback: starts a PKCE sign-in and exchanges the code it gets back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.callback = self.url + "/callback"
        self.verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(self.verifier.encode()).digest()
        self.challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        self.auth_url = ""
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                code = query.get("code", [""])[0]
                answer = requests.post(stub.auth_url + "/api/v1/token/exchange",
                                       json={"code": code, "code_verifier": stub.verifier},
                                       timeout=10)
                if answer.status_code == 200:
                    body = f"<h1 id='who'>Hello {answer.json()['user']['email']}</h1>"
                else:
                    body = f"<h1 id='who'>Exchange failed: {answer.json()['code']}</h1>"
                data = f"<!doctype html><title>Stub app</title>{body}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def password_sign_in(page: Any, base_url: str, email: str, password: str) -> None:
    """Sign in through /login's steps: the address first, then its password."""
    page.goto(base_url + "/login")
    page.get_by_label("E-mail or phone number").fill(email)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("#identity")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in with password").click()
