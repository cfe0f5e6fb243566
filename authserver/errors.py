"""The Problem exception and the handlers that turn every failure into RFC 9457 problem details.

Flows raise `Problem(status, code, detail)`; only this module turns it into a response.
JSON clients get `application/problem+json`; browsers on the HTML pages get an error page in
the site's style with the same status. Nothing here ever puts a trace, SQL or secret in a body.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from jinja2 import TemplateNotFound
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("authserver.errors")

# Each member carries the problem's `title`, so a code and its wording are one named thing
# (as in Authlib's OAuth 2 errors) rather than a string typed in many places. Members are
# `str`s, so `problem.code == "invalid_otp"` and JSON encoding keep working unchanged.
class ErrorCode(StrEnum):
    """Every `code` the API may answer with: the contract's list, nothing else."""

    _value_: str
    label: str  # the problem's RFC 9457 `title` (`str.title` is a method, hence not `title`)

    def __new__(cls, value: str, label: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def of(cls, code: ErrorCode | str) -> ErrorCode:
        """The member for a code given as a member or its string; ValueError for anything else."""
        member = cls._value2member_map_.get(code)
        if not isinstance(member, cls):
            raise ValueError(f"unknown problem code {code!r}")
        return member

    INVALID_REQUEST = "invalid_request", "Invalid request"
    INVALID_EMAIL = "invalid_email", "Invalid e-mail address"
    INVALID_PHONE = "invalid_phone", "Invalid phone number"
    PHONE_COUNTRY_NOT_ALLOWED = "phone_country_not_allowed", "Phone country not allowed"
    WEAK_PASSWORD = "weak_password", "Password too weak"
    BREACHED_PASSWORD = "breached_password", "Password found in a data breach"
    INVALID_REDIRECT = "invalid_redirect", "Redirect not allowed"
    EMAIL_TAKEN = "email_taken", "E-mail already registered"
    PHONE_TAKEN = "phone_taken", "Phone already registered"
    INVALID_CREDENTIALS = "invalid_credentials", "Invalid credentials"
    ACCOUNT_DISABLED = "account_disabled", "Account disabled"
    PASSWORD_SIGNIN_LOCKED = "password_signin_locked", "Password sign-in locked"
    INVALID_OTP = "invalid_otp", "Invalid code"
    OTP_ATTEMPTS_EXCEEDED = "otp_attempts_exceeded", "Too many attempts"
    INVALID_LINK = "invalid_link", "Invalid or expired link"
    INVALID_TOKEN = "invalid_token", "Invalid token"
    INVALID_GRANT = "invalid_grant", "Invalid grant"
    REAUTHENTICATION_REQUIRED = "reauthentication_required", "Recent sign-in required"
    EMAIL_NOT_VERIFIED = "email_not_verified", "E-mail address not verified"
    MFA_REQUIRED = "mfa_required", "Second factor required"
    MFA_REQUIRED_FOR_ROLE = "mfa_required_for_role", "Second factor required for this role"
    INSUFFICIENT_USER_AUTHENTICATION = ("insufficient_user_authentication",
                                        "Stronger sign-in required")
    MFA_NOT_ENROLLED = "mfa_not_enrolled", "No second factor"
    MFA_ALREADY_ENROLLED = "mfa_already_enrolled", "Second factor already set up"
    FORBIDDEN = "forbidden", "Forbidden"
    NOT_FOUND = "not_found", "Not found"
    CANNOT_DISABLE_SELF = "cannot_disable_self", "Cannot disable your own account"
    RATE_LIMITED = "rate_limited", "Too many requests"
    SERVICE_UNAVAILABLE = "service_unavailable", "Service unavailable"
    INTERNAL_ERROR = "internal_error", "Internal error"


#: Kept for code that reads the codes as plain strings.
TITLES: dict[str, str] = {code.value: code.label for code in ErrorCode}
CODES = frozenset(TITLES)


class Problem(Exception):
    """An expected failure with an HTTP status and a stable machine-readable `code`.

    `code` is an `ErrorCode` member or its string value (`Problem(401, "invalid_otp", ...)`);
    anything else is a programming error and raises ValueError at once. `errors` lists
    field-level findings (`[{"field": ..., "message": ...}]`) of a body that failed validation.
    """

    def __init__(
        self,
        status: int,
        code: ErrorCode | str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = ErrorCode.of(code)
        self.detail = detail
        self.headers = headers or {}
        self.field = field  # the form field the web pages show the message next to
        self.errors = errors or []
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:authserver:problem:{self.code.value}",
            "title": self.code.label,
            "status": self.status,
            "detail": self.detail,
            "code": self.code.value,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def unavailable(detail: str, retry_after: int = 30) -> Problem:
    return Problem(503, ErrorCode.SERVICE_UNAVAILABLE, detail,
                   headers={"Retry-After": str(retry_after)})


def rate_limited(retry_after: int, detail: str = "Too many requests. Try again later.") -> Problem:
    return Problem(429, ErrorCode.RATE_LIMITED, detail,
                   headers={"Retry-After": str(max(1, int(retry_after)))})


def page_detail(problem: Problem) -> str:
    """The detail as a web page shows it: a 429 says how long to wait (its Retry-After), in
    words, where the API's wording only says "later"."""
    retry = problem.headers.get("Retry-After", "")
    if problem.status != 429 or not retry.isdigit():
        return problem.detail
    wait = f"Try again in {_duration(int(retry))}."
    if "Try again later." in problem.detail:
        return problem.detail.replace("Try again later.", wait)
    if any(ch.isdigit() for ch in problem.detail):
        return problem.detail  # it names its wait already ("Wait 30 seconds …")
    return f"{problem.detail} {wait}"


def _duration(seconds: int) -> str:
    """Rounded up, so nobody who waits as long as told is refused again."""
    if seconds < 60:
        return f"{max(1, seconds)} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{-(-minutes // 60)} hours"


def invalid_token(
    detail: str = "The access token is missing, malformed, expired or revoked.",
) -> Problem:
    return Problem(401, ErrorCode.INVALID_TOKEN, detail,
                   headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def invalid_link(kind: str) -> Problem:
    """One answer for a mailed link or code that is wrong, expired, used or replaced, and for
    an address with none: `kind` names the mail ("sign-in", "reset", "confirmation")."""
    return Problem(401, ErrorCode.INVALID_LINK, f"This {kind} link or code is invalid, "
                   "expired or already used. Ask for a new one.")


def invalid_otp() -> Problem:
    """One answer for a texted code that is wrong, expired, used or replaced, and for a phone
    with none."""
    return Problem(401, ErrorCode.INVALID_OTP, "The code is wrong, expired or already used. "
                   "Check it, or ask for a new one.", field="code")


#: What a mailed code's holder can still do when guessing used the code up.
USE_THE_LINK = "Use the link in the e-mail or ask for a new one."


def code_used_up(retry_after: int, next_step: str, field: str | None = None) -> Problem:
    """The wrong try that used up a code's attempts: only a new code (or the mail's link,
    which guessing never uses up) goes on; `retry_after` says when one can be sent."""
    return Problem(429, ErrorCode.OTP_ATTEMPTS_EXCEEDED, "Too many wrong codes: this code no "
                   f"longer works. {next_step}", headers={"Retry-After": str(retry_after)},
                   field=field)


def wants_html() -> bool:
    """True for the HTML pages (the web blueprint), where errors render as pages."""
    if request.blueprint == "web":
        return True
    if request.blueprint is not None or request.path.startswith(
            ("/api/", "/.well-known/", "/openapi")):
        return False
    # A browser sends "text/html,…,*/*;q=0.8": HTML wins. curl's "*/*" keeps JSON (listed first).
    best = request.accept_mimetypes.best_match(["application/problem+json", "text/html"])
    return best == "text/html"


def problem_response(problem: Problem) -> Response:
    if wants_html():
        try:
            html = render_template("error.html", problem=problem, detail=page_detail(problem))
        except TemplateNotFound:
            html = f"<!doctype html><title>{problem.status}</title><p>{problem.detail}</p>"
        response = current_app.response_class(html, status=problem.status, mimetype="text/html")
    else:
        response = jsonify(problem.body())
        response.status_code = problem.status
        response.mimetype = "application/problem+json"
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


_HTTP_CODES = {404: ErrorCode.NOT_FOUND, 403: ErrorCode.FORBIDDEN, 401: ErrorCode.INVALID_TOKEN,
               429: ErrorCode.RATE_LIMITED}


def _from_http(exc: HTTPException) -> Problem:
    status = exc.code or 500
    if status >= 500:
        return Problem(500, ErrorCode.INTERNAL_ERROR, "The server failed to handle this request.")
    code = _HTTP_CODES.get(status, ErrorCode.INVALID_REQUEST)
    detail = {
        404: "There is nothing at this address.",
        405: f"{request.method} is not allowed here.",
        413: "The request body is too large.",
        415: "Send the body as application/json.",
    }.get(status, exc.description or "The request could not be understood.")
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return Problem(status, code, detail, headers=headers)


#: What the MySQL/MariaDB error numbers seen in operation mean, for the log line.
_DB_ERRNOS = {
    1040: "too many connections",
    1047: "cluster node not ready",
    1180: "commit failed",
    1205: "lock wait timeout",
    1305: "savepoint gone",
    1213: "deadlock",
    2002: "cannot connect (socket)",
    2003: "cannot connect",
    2006: "server has gone away",
    2013: "lost connection",
    3101: "cluster certification failed",
}


def db_errno(exc: BaseException) -> int | None:
    """The MySQL error number of a driver error (its first argument), or None."""
    args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None), "args", ()))
    return args[0] if args and isinstance(args[0], int) else None


def is_deadlock(exc: DBAPIError) -> bool:
    """MySQL's 1213: a deadlock, or on a multi-primary cluster (Galera, Group Replication)
    a write conflict with another node that this transaction lost."""
    return db_errno(exc) == 1213


def db_error_summary(exc: BaseException) -> str:
    """The class of a database failure and the driver's error number, e.g.
    "OperationalError: pymysql OperationalError 1213 (deadlock)".

    Never the message: str(exc) holds the statement and its parameters (an e-mail address,
    a token hash), and even the server's own text can quote a value ("Duplicate entry
    'ada@example.com'"). The number names the cause without any of that.
    """
    summary = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is None:
        return summary
    driver = type(orig).__module__.split(".")[0]
    summary += f": {driver} {type(orig).__name__}"
    args = getattr(orig, "args", ())
    errno = args[0] if args and isinstance(args[0], int) else None
    if errno is None:  # sqlite3 keeps its code apart from the message
        errno = getattr(orig, "sqlite_errorcode", None)
    if isinstance(errno, int):
        meaning = _DB_ERRNOS.get(errno) if driver != "sqlite3" else None
        summary += f" {errno}" + (f" ({meaning})" if meaning else "")
    return summary


def init_app(app: Flask) -> None:
    @app.errorhandler(Problem)
    def handle_problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(RateLimitExceeded)
    def handle_rate_limit(exc: RateLimitExceeded) -> Response:
        retry_after = 60
        limit = getattr(exc, "limit", None)
        if limit is not None:
            retry_after = int(limit.limit.get_expiry())
        return problem_response(rate_limited(retry_after))

    @app.errorhandler(CSRFError)
    def handle_csrf(exc: CSRFError) -> Response:
        return problem_response(Problem(400, ErrorCode.INVALID_REQUEST,
                                        "The form expired or was not sent from this site. "
                                        "Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException) -> Response:
        return problem_response(_from_http(exc))

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeoutError)
    def handle_db_down(exc: Exception) -> Response:
        # The class and error number only: the message can hold SQL with user input.
        log.error("database unavailable on %s %s: %s", request.method, request.path,
                  db_error_summary(exc))
        return problem_response(unavailable("The database is not answering. Try again shortly."))

    @app.errorhandler(DBAPIError)
    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        if isinstance(exc, DBAPIError):
            if exc.connection_invalidated:
                return handle_db_down(exc)
            # str(exc) carries the SQL and its parameters, which may be secrets: name it only.
            log.error("database error on %s %s: %s", request.method, request.path,
                      db_error_summary(exc))
        else:
            log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            Problem(500, ErrorCode.INTERNAL_ERROR, "The server failed to handle this request.")
        )
