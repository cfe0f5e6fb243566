"""The page a mailed link opens, whatever the link proves (web/magic.py, web/verify.py,
web/reset.py each build one `LinkPage` and keep only what their link is for).

The GET changes nothing. What the page offers depends on where it is opened
(codes.LinkUse): where the link is usable (in the browser that asked for it; for a sign-in
link, also an app's hand-off) the page's own button or form, which uses it; anywhere else a
box for the 6-digit code from the same mail. So a mail scanner that opens the link in a
browser of its own and presses what it finds uses and burns nothing. A link that no longer
works (expired, used, revoked) or never did (forged, mangled) gets a 410 page.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import make_response, request
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from authserver import codes
from authserver.errors import Problem
from authserver.web.email import link_binding
from authserver.web.pages import form_problem

# The link no longer works (expired, used, revoked) or never did (forged, mangled).
INVALID_STATUS = 410

#: What a flow's peek_link answers: the live link and what it may do here, or None.
Opened = tuple[codes.Challenge, codes.LinkUse]
#: A handler of a usable link: (token, challenge, use) → the response.
OnLink = Callable[[str, codes.Challenge, codes.LinkUse], Response]

CodeFormT = TypeVar("CodeFormT", bound=FlaskForm)
T = TypeVar("T")


def page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A link page's response: the token is in its URL, so no Referer and no caching."""
    response = make_response(html, status)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


@dataclass(frozen=True)
class LinkPage(Generic[CodeFormT]):
    """One kind of mailed link: how to look at it, and its code box and 410 page."""

    #: The flow's peek_link(token, binding): changes nothing.
    peek: Callable[[str, str | None], Opened | None]
    #: The form of the code box (it carries the token as a hidden field).
    code_form: type[CodeFormT]
    #: Renders the code box, with a Problem next to its field or on the page.
    code_page: Callable[[CodeFormT, Problem | None], Response]
    #: Renders the body of the 410 page.
    invalid_page: Callable[[], str]
    #: The flow's answers to a code shown next to the box rather than raised.
    shown: Collection[str]
    #: Where the link is opened, what lets its button use it (else: the code box).
    usable: Collection[codes.LinkUse] = (codes.LinkUse.HERE,)
    #: A shown answer that names a field of its own keeps it (else: the code box).
    keep_field: bool = False

    def invalid(self) -> Response:
        return page(self.invalid_page(), INVALID_STATUS)

    def ask_code(self, token: str) -> Response:
        """The code box, empty, for this token."""
        return self.code_page(self.code_form(formdata=None, token=token), None)

    def opened(self, on_link: OnLink) -> Response:
        """GET: 410, the code box, or (where usable) what `on_link` shows; uses nothing."""
        return self._open(request.args.get("token", ""), on_link)

    def submitted(self, on_code: Callable[[str], Response], on_link: OnLink) -> Response:
        """POST: the code box goes to `on_code`; a button is looked at again (a button
        pressed without the asking browser's cookie uses nothing), then goes to `on_link`.
        CSRFProtect has already refused a post without a valid token from our own page."""
        token = request.form.get("token", "")
        if "code" in request.form:
            return on_code(token)
        return self._open(token, on_link)

    def _open(self, token: str, on_link: OnLink) -> Response:
        opened = self.peek(token, link_binding())
        if opened is None:
            return self.invalid()
        challenge, use = opened
        if use not in self.usable:
            return self.ask_code(token)
        return on_link(token, challenge, use)

    def use_code(self, attempt: Callable[[CodeFormT], T],
                 done: Callable[[T], Response]) -> Response:
        """The posted code box: its own checks, then `attempt` (the flow); a shown answer
        goes back next to the box, anything else is raised."""
        form = self.code_form()
        if not form.validate_on_submit():
            return self.code_page(form, form_problem(form))
        try:
            result = attempt(form)
        except Problem as problem:
            if problem.code not in self.shown:
                raise
            problem.field = (problem.field if self.keep_field else None) or "code"
            return self.code_page(form, problem)
        return done(result)

    def use_link(self, attempt: Callable[[], T], done: Callable[[T], Response]) -> Response:
        """Use the link once (`attempt`); a link gone meanwhile gets the 410 page."""
        try:
            result = attempt()
        except Problem as problem:
            if problem.code != "invalid_link":
                raise
            return self.invalid()
        return done(result)
