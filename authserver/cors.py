"""CORS for the token endpoints, so a single-page app on another origin can finish the
hand-off and keep its session from the browser (CORS_ALLOWED_ORIGINS, default none).

Only four endpoints take part, each with the one method a browser app needs:
`POST /api/v1/token/exchange`, `POST /api/v1/token/refresh`, `POST /api/v1/logout` and
`GET /api/v1/me`. Their tokens travel in the body and the Authorization header, never in
cookies, so no credentials are allowed (no Access-Control-Allow-Credentials) and the origin
is always echoed exactly, never `*`. A preflight from an origin that is not listed, for
another method, or to any other endpoint gets no CORS headers at all, and the browser then
refuses the request.
"""

from __future__ import annotations

from flask import Flask, Response, request

from authserver.config import settings

#: Path → the method a browser app may use on it.
METHODS = {
    "/api/v1/token/exchange": "POST",
    "/api/v1/token/refresh": "POST",
    "/api/v1/logout": "POST",
    "/api/v1/me": "GET",
}
ALLOW_HEADERS = "Authorization, Content-Type"
#: Seconds a browser may keep a preflight's answer.
MAX_AGE = 600


def _allowed_origin() -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin and origin in settings().cors_allowed_origins else None


def init_app(app: Flask) -> None:
    @app.after_request
    def cors_headers(response: Response) -> Response:
        method = METHODS.get(request.path)
        if method is None or not settings().cors_allowed_origins:
            return response
        # The answer depends on the Origin header: caches must keep them apart.
        response.vary.add("Origin")
        origin = _allowed_origin()
        if origin is None:
            return response
        if request.method == "OPTIONS":
            asked = request.headers.get("Access-Control-Request-Method")
            if asked != method:
                return response
            response.headers["Access-Control-Allow-Methods"] = method
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = str(MAX_AGE)
        elif request.method != method:
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        return response
