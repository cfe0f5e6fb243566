"""PKCE (RFC 7636, S256 only) and an app's `state`: the values an app gives when it starts a
sign-in, checked where they come in (the web sign-in page, an API magic-link request), and
the verifier checked against the challenge when the app redeems what the sign-in gave it
(flows/handoff.py's code exchange, a magic link bound to the app).

An app's `state` is opaque to us: only its length and characters are checked, so it can
ride along to `redirect_to?code=…&state=…` without anything mangling it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from authserver.errors import Problem

CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43,128}\Z")
VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}\Z")
MAX_STATE_LENGTH = 512
# Printable ASCII (RFC 6749 VSCHAR plus space): nothing a URL, a log or a page could mangle.
STATE_RE = re.compile(rf"^[\x20-\x7e]{{1,{MAX_STATE_LENGTH}}}\Z")


def check_challenge(code_challenge: str | None, method: str | None = None) -> str | None:
    """A PKCE challenge given at sign-in start (S256 only), or 422 invalid_request."""
    if method is not None and method != "S256":
        raise Problem(422, "invalid_request", "code_challenge_method must be S256.",
                      field="code_challenge_method")
    if code_challenge is None or code_challenge == "":
        return None
    if not CHALLENGE_RE.match(code_challenge):
        raise Problem(422, "invalid_request",
                      "code_challenge must be 43 to 128 base64url characters (S256).",
                      field="code_challenge")
    return code_challenge


def check_state(state: str | None) -> str | None:
    """An app's `state` given at sign-in start (None or "" for none), or 422 invalid_request."""
    if state is None or state == "":
        return None
    if not STATE_RE.match(state):
        raise Problem(422, "invalid_request",
                      f"state must be 1 to {MAX_STATE_LENGTH} printable ASCII characters.",
                      field="state")
    return state


def verifier_matches(code_challenge: str | None, code_verifier: str | None) -> bool:
    """PKCE S256: the verifier hashes to the challenge. No challenge takes no verifier (and
    a challenge needs one), so a code minted without PKCE can't be "upgraded" or
    downgraded by what the caller sends."""
    if not code_challenge:
        # A verifier now means the app believes it used PKCE, and the code it holds is not
        # the one it started (a downgrade, or a swapped code).
        return code_verifier is None
    if not code_verifier or not VERIFIER_RE.match(code_verifier):
        return False
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(expected, code_challenge)
