"""Whether an HTTP request reached the provider whole: "nothing went out" vs "answer lost".

requests' exceptions don't draw that line: urllib3 reports a TLS handshake that timed out
(nothing sent) as the same ReadTimeout as a provider that took the request and never
answered (a text on its way). So the Twilio client's connections note, in the sending
thread's `Delivery`, the moment `request()` returned: the request line, headers and body
were all written. An error after that mark means the provider may have acted on it.

Imported only by the Twilio backends (requests and urllib3 come with the SDK).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Delivery:
    """One provider call: `handed_over` once a request of it was written whole."""

    handed_over = False


_current: ContextVar[Delivery | None] = ContextVar("authserver_http_delivery", default=None)


@contextmanager
def tracking() -> Iterator[Delivery]:
    """Track the requests made inside the block (same thread or context)."""
    delivery = Delivery()
    token = _current.set(delivery)
    try:
        yield delivery
    finally:
        _current.reset(token)


def _written() -> None:
    delivery = _current.get()
    if delivery is not None:
        delivery.handed_over = True


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _written()


class _TlsConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _written()


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


_PLAIN_POOLS = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}


def _track(manager: PoolManager) -> PoolManager:
    # Only urllib3's own pools are swapped; a SOCKS proxy's are left alone (untracked, so
    # its failures read as "nothing went out", the behaviour from before this module).
    if manager.pool_classes_by_scheme == _PLAIN_POOLS:
        manager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}
    return manager


class TrackingAdapter(HTTPAdapter):
    """requests' adapter (no retries: a retry could send a second text), whose connections
    mark `Delivery.handed_over`, direct or through a proxy from the environment."""

    def __init__(self) -> None:
        # Twilio's own adapter's pool size; max_retries=0 as requests' default.
        super().__init__(pool_maxsize=min(32, (os.cpu_count() or 1) + 4), max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _track(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> PoolManager:
        return _track(super().proxy_manager_for(proxy, **kwargs))
