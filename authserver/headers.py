"""Security headers on every response."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

from authserver.config import settings

# The endpoints that may be cached: static files and the ones that set their own policy
# (the JWKS). Everything else may show personal data or carry a secret: not stored.
_CACHEABLE_ENDPOINTS = frozenset({"static"})


def _form_action() -> str:
    # Chromium applies form-action to the redirect after a POST, so the allow-listed apps a
    # sign-in may hand over to must be listed next to 'self'.
    origins = []
    for entry in settings().redirect_allowlist:
        parts = urlsplit(entry)
        origins.append(f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:")
    return " ".join(["'self'", *sorted(set(origins))])


def init_app(app: Flask) -> None:
    @app.after_request
    def secure_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "text/html":
            headers.setdefault(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                f"form-action {_form_action()}; frame-ancestors 'none'; base-uri 'none'",
            )
        else:
            headers.setdefault("Content-Security-Policy",
                               "default-src 'none'; frame-ancestors 'none'")
        if request.endpoint not in _CACHEABLE_ENDPOINTS:
            # Token responses, /account and every page with personal data or a form's CSRF
            # token must never sit in a cache, shared or the browser's; an endpoint that may
            # be cached says so itself (the JWKS: public, max-age=300).
            headers.setdefault("Cache-Control", "no-store")
            if headers["Cache-Control"] == "no-store":
                headers.setdefault("Pragma", "no-cache")
        if settings().public_base_url.startswith("https://"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
