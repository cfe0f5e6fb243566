"""Prometheus metrics: what the server counts (`GET /metrics`, in meta.py, shows it).

The metric objects live here, at module level, once per process, in no registry (not
prometheus_client's global one): tests build many apps in one process, and each scrape
builds a registry of its own, so nothing is registered twice. Under gunicorn,
gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before any worker imports prometheus_client:
every worker then writes its values to files there, and a scrape (answered by whichever
worker) adds up all of them with `MultiProcessCollector`. Under `make run` (one process)
the values stay in memory.

What moves the counters:
- the events sink (`events.listen`): sign-ins, codes sent, refreshes (see `_on_event`);
- the HTTP layer: every answer's duration by route template (never the raw path), method and
  status class, and a refresh answered 401 without an event (an unknown or expired token);
- the senders' gate (senders/gate.py), which every real SMS and e-mail goes through;
- transactions.py, each time a unit of work is run again after a conflict (its MySQL errno);
- the number of open sessions, counted at scrape time (cached a few seconds).

Labels only ever hold values from fixed sets (events.Method, events.Outcome, the channels,
URL rules): never a user id, an address or a phone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from authserver import clock, events
from authserver.events import Event, EventType, Method, Outcome
from authserver.extensions import db
from authserver.models import Session

#: Where gunicorn.conf.py points every worker (and prometheus_client reads).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: prometheus_client chose file-backed values when it was imported (just above) iff this was
#: set then; a scrape reads the files in that case only.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))

SIGNINS = Counter(
    "authserver_signins_total", "Sign-in attempts by method and outcome",
    ["method", "outcome"], registry=None)
CODES_SENT = Counter(
    "authserver_codes_sent_total", "Codes and links sent (or not) by channel and outcome",
    ["channel", "outcome"], registry=None)
REFRESHES = Counter(
    "authserver_refresh_total", "Refresh token rotations by outcome", ["outcome"],
    registry=None)
HTTP_DURATION = Histogram(
    "authserver_http_request_duration_seconds",
    "Time to answer a request, by route template, method and status class",
    ["route", "method", "status"], registry=None,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
SENDER_DURATION = Histogram(
    "authserver_sender_duration_seconds", "Time the SMS or e-mail provider took, per call",
    ["channel"], registry=None,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
DB_RETRIES = Counter(
    "authserver_db_retries_total",
    "Units of work run again after a deadlock or a cluster write conflict (transactions.py)",
    ["errno"], registry=None)

METRICS = (SIGNINS, CODES_SENT, REFRESHES, HTTP_DURATION, SENDER_DURATION, DB_RETRIES)

#: Seconds a count of the open sessions is reused, so frequent scrapes stay cheap.
ACTIVE_SESSIONS_TTL = 5.0
_SESSIONS_CACHE = "authserver.metrics.active_sessions"

CHANNELS = frozenset({"sms", "email"})
METHODS = frozenset(m.value for m in Method)
OUTCOMES = frozenset(o.value for o in Outcome) | {"mfa_required", "invalid"}
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REFRESH_ROUTE = "/api/v1/token/refresh"
#: Set in the WSGI environ when an event counted this request's refresh.
_REFRESH_COUNTED = "authserver.metrics.refresh_counted"


def _bounded(value: Any, allowed: frozenset[str], default: str) -> str:
    """`value` when it is one of `allowed`, else `default`: a label never holds free text."""
    text = getattr(value, "value", value)
    return text if isinstance(text, str) and text in allowed else default


def _on_event(event: Event) -> None:
    method = _bounded(event.method, METHODS, "other")
    if event.type is EventType.SIGNIN_SUCCEEDED:
        SIGNINS.labels(method, Outcome.SUCCESS.value).inc()
    elif event.type is EventType.SIGNIN_FAILED:
        SIGNINS.labels(method, _bounded(event.outcome, OUTCOMES, "other")).inc()
    elif event.type is EventType.MFA_REQUIRED:
        SIGNINS.labels(method, "mfa_required").inc()
    elif event.type is EventType.CODE_SENT:
        channel = _bounded(event.detail.get("channel"), CHANNELS, "other")
        CODES_SENT.labels(channel, _bounded(event.outcome, OUTCOMES, Outcome.SENT.value)).inc()
    elif event.type is EventType.REFRESHED:
        REFRESHES.labels(Outcome.SUCCESS.value).inc()
    elif event.type is EventType.REFRESH_REUSE_DETECTED:
        REFRESHES.labels(Outcome.REUSE_DETECTED.value).inc()


def observe_send(channel: str) -> Callable[[], None]:
    """Start timing a provider call; the returned function records it (senders/gate.py)."""
    started = time.perf_counter()
    label = _bounded(channel, CHANNELS, "other")

    def done() -> None:
        SENDER_DURATION.labels(label).observe(time.perf_counter() - started)

    return done


def route_label(environ: dict[str, Any]) -> str:
    """The URL rule that answered (e.g. /api/v1/me/sessions/<session_id>), or "unmatched"."""
    req = environ.get("werkzeug.request")
    rule = getattr(req, "url_rule", None)
    return rule.rule if rule is not None else "unmatched"


def observe_request(environ: dict[str, Any], status: int, seconds: float) -> None:
    """One answered request (called by logs.RequestIdMiddleware, which sees every answer)."""
    route = route_label(environ)
    method = _bounded(environ.get("REQUEST_METHOD"), HTTP_METHODS, "other")
    HTTP_DURATION.labels(route, method, f"{status // 100}xx").observe(seconds)
    if route == REFRESH_ROUTE and method == "POST" and not environ.get(_REFRESH_COUNTED):
        if status == 401:
            REFRESHES.labels("invalid").inc()
        elif status == 429:
            REFRESHES.labels(Outcome.RATE_LIMITED.value).inc()


class _ActiveSessions(Collector):
    def __init__(self, count: int | None) -> None:
        self.count = count

    def collect(self) -> Iterable[Metric]:
        if self.count is None:
            return []
        gauge = GaugeMetricFamily("authserver_active_sessions",
                                  "Sessions neither revoked nor expired (counted at scrape "
                                  f"time, cached {ACTIVE_SESSIONS_TTL:g} s)")
        gauge.add_metric([], self.count)
        return [gauge]


def active_sessions() -> int | None:
    """The open sessions of the current app's database, counted at most every few seconds;
    None when the database does not answer (the scrape goes on without it)."""
    cached = current_app.extensions.get(_SESSIONS_CACHE)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return int(cached[1])
    try:
        count = db.session.execute(
            select(func.count()).select_from(Session).where(
                Session.revoked_at.is_(None), Session.expires_at > clock.now())).scalar_one()
    except Exception:
        db.session.rollback()
        return None
    current_app.extensions[_SESSIONS_CACHE] = (now + ACTIVE_SESSIONS_TTL, int(count))
    return int(count)


def registry() -> CollectorRegistry:
    """A registry for one scrape: every worker's files in multiprocess mode, else this
    process's metrics; with the open-sessions gauge."""
    scrape = CollectorRegistry(auto_describe=True)
    if MULTIPROCESS:
        multiprocess.MultiProcessCollector(scrape)
    else:
        for metric in METRICS:
            scrape.register(metric)
    scrape.register(_ActiveSessions(active_sessions()))
    return scrape


def init_app(app: Flask) -> None:
    events.listen(app, _sink)


def _sink(event: Event) -> None:
    _on_event(event)
    if (event.type in (EventType.REFRESHED, EventType.REFRESH_REUSE_DETECTED)
            and has_request_context()):
        # This request's refresh is counted: its 401 (reuse) is not `invalid` on top.
        request.environ[_REFRESH_COUNTED] = True
