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
        # Set what the view did not set itself: one pass over the headers, not one per name
        # (this runs on every answer, the token check's included).
        present = {name.lower() for name, _value in headers.items()}
        wanted = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                  ("Referrer-Policy", "no-referrer")]
        if response.mimetype == "text/html":
            wanted.append((
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                f"form-action {_form_action()}; frame-ancestors 'none'; base-uri 'none'"))
        else:
            wanted.append(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))
        if request.endpoint not in _CACHEABLE_ENDPOINTS:
            # Token responses, /account and every page with personal data or a form's CSRF
            # token must never sit in a cache, shared or the browser's; an endpoint that may
            # be cached says so itself (the JWKS: public, max-age=300).
            if "cache-control" not in present:
                wanted.append(("Cache-Control", "no-store"))
                wanted.append(("Pragma", "no-cache"))
            elif headers["Cache-Control"] == "no-store":
                wanted.append(("Pragma", "no-cache"))
        if settings().public_base_url.startswith("https://"):
            wanted.append(("Strict-Transport-Security", "max-age=31536000"))
        headers.extend([(name, value) for name, value in wanted
                        if name.lower() not in present])
        return response
