"""/login (identifier first, then the ways open to it), /signup, and the start of a hand-off
to a client app.

/login asks for one thing, an e-mail address or a phone number, and POSTs it back to /login;
the answer is the next step for that kind of identifier (an address: its password, or a
mailed link and code; a number: a texted code). Whether an account has it is never looked
up: the step is the same for everybody, and a wrong or unknown address fails the password
like a wrong password. No script is needed: every step is a plain form.
"""

from __future__ import annotations

from flask import make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from authserver import codes, phones, pkce
from authserver.config import settings
from authserver.errors import Problem
from authserver.flows import password
from authserver.identifiers import normalize_email
from authserver.redirects import check_redirect
from authserver.services import services
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.email import link_binding, set_link_binding
from authserver.web.forms import (
    EmailLinkForm,
    IdentifierForm,
    PasswordLoginForm,
    PhoneForm,
    SignupForm,
    required,
)
from authserver.web.pages import Page, form_problem, render_form

# Every sign-in page keeps a pending app hand-off only for the attempt it belongs to, and
# carries that attempt on to the next page (see web/session.py).
bp.before_request(web_session.bind_sign_in_page)
bp.url_defaults(web_session.carry_attempt)

#: What a phone number may be typed with; anything else is neither an address nor a number.
PHONE_CHARACTERS = frozenset("0123456789+-(). /")


def _remember_handoff() -> Problem | None:
    """Start an app's sign-in attempt from ?redirect_to=&code_challenge=&state=."""
    if "redirect_to" not in request.args:
        return None
    # A new attempt replaces the old one, even when it is refused below.
    web_session.drop_handoff()
    try:
        target = check_redirect(request.args.get("redirect_to") or None)
        challenge = pkce.check_challenge(request.args.get("code_challenge"),
                                         request.args.get("code_challenge_method"))
        state = pkce.check_state(request.args.get("state"))
    except Problem as problem:
        # The API's wording speaks to developers; a person only needs to know where to go.
        problem.detail = ("The app that sent you here is not allowed to receive sign-ins "
                          "from this server. Sign in here, or go back to the app.")
        return problem
    if target is not None:
        web_session.start_handoff(target, challenge, state)
    return None


def _kind_of(identifier: str) -> tuple[str, str]:
    """("email" | "phone", the identifier as typed); 422 when it is neither.

    Only the form of what was typed decides: whether an account has it is never looked up,
    so the next step is the same for a known and an unknown address or number.
    """
    text = identifier.strip()
    if "@" in text:
        normalize_email(text)  # 422 invalid_email, in the API's wording
        return "email", text
    if text and set(text) <= PHONE_CHARACTERS and any(c.isdigit() for c in text):
        # 422 invalid_phone / phone_country_not_allowed: a number no text can reach
        phones.sms_phone(text, test_numbers=services().test_numbers)
        return "phone", text
    raise Problem(422, "invalid_request", "Enter an e-mail address (name@example.com) or a "
                  "mobile number.", field="identifier")


def _identify_page(form: IdentifierForm | None = None, problem: Problem | None = None) -> Page:
    """Step 1: one box, "E-mail or phone number", and Continue."""
    if problem is not None and problem.code in {"invalid_email", "invalid_phone",
                                                "phone_country_not_allowed"}:
        problem.field = "identifier"
    if problem is not None and problem.code == "invalid_redirect":
        page, _, _ = render_form("login.html", form or IdentifierForm(), None, step="identify",
                                 handoff_error=problem.detail)
        return page, problem.status, {}
    return render_form("login.html", form or IdentifierForm(), problem, step="identify")


def _email_step(email: str, form: PasswordLoginForm | None = None,
                problem: Problem | None = None) -> Page:
    """Step 2 for an e-mail address: the password, or a mailed link and code."""
    if problem is not None:
        # Shown under the password box when it is about the password; else above the form.
        problem.field = "password" if problem.code == "invalid_credentials" else None
    form = form or PasswordLoginForm(formdata=None, email=email)
    return render_form("login.html", form, problem, step="email", email=email,
                       email_form=EmailLinkForm(formdata=None, email=email))


def _phone_step(phone: str) -> Page:
    """Step 2 for a phone number: a texted code."""
    return render_form("login.html", PhoneForm(formdata=None, phone=phone), step="phone",
                       phone=phone)


def _identify() -> Page:
    form = IdentifierForm()
    if not form.validate_on_submit():
        return _identify_page(form, form_problem(form))
    try:
        kind, identifier = _kind_of(required(form.identifier))
    except Problem as problem:
        return _identify_page(form, problem)
    return _email_step(identifier) if kind == "email" else _phone_step(identifier)


@bp.route("/login", methods=["GET", "POST"])
@committed
def login() -> Response | Page:
    """GET: step 1. POST with `identifier`: step 2. POST with `email` and `password`: sign in."""
    if request.method == "GET":
        problem = _remember_handoff()
        found = web_session.current() if problem is None else None
        if found is not None:
            # Signed in already: an app's sign-in goes straight on, anything else to /account.
            return web_session.hand_off_signed_in(found) or \
                redirect(url_for("web.account"), code=303)
        return _identify_page(problem=problem)
    if "password" not in request.form:
        return _identify()
    form = PasswordLoginForm()
    if not form.validate_on_submit():
        if form.email.errors or not form.email.data:
            return _identify_page(IdentifierForm(formdata=None), form_problem(form) or Problem(
                400, "invalid_request", "Enter your e-mail address first."))
        return _email_step(required(form.email), form, form_problem(form))
    try:
        issued = password.sign_in(required(form.email), required(form.password), client="web")
    except Problem as problem:
        return _email_step(required(form.email), form, problem)
    return web_session.after_sign_in(issued)


@bp.route("/signup", methods=["GET", "POST"])
@committed
def signup() -> Response | Page:
    form = SignupForm()
    if request.method == "GET":
        return render_form("signup.html", form, _remember_handoff())
    if not form.validate_on_submit():
        return render_form("signup.html", form, form_problem(form))
    binding = link_binding() or codes.new_binding()
    try:
        issued = password.sign_up(required(form.email), required(form.password),
                                  form.name.data or None, client="web", binding=binding)
    except Problem as problem:
        return render_form("signup.html", form, problem)
    # The verification mail's link works in this browser (elsewhere it asks for the code).
    response = web_session.after_sign_in(issued) if issued is not None else make_response(
        render_template("signup_sent.html", email=required(form.email).strip()))
    set_link_binding(response, binding, settings().email_verification_ttl)
    return response


@bp.get("/")
def index() -> Response:
    return redirect(url_for("web.account" if web_session.current() else "web.login"))
