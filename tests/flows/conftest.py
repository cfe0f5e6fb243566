"""Fixtures for flow tests: flows run inside a request (they read the client IP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

CLIENT_IP = "203.0.113.7"


@pytest.fixture
def request_ctx(app: Any) -> Iterator[Any]:
    """A request context on the test app, as a view would run the flow in."""
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": CLIENT_IP}) as ctx:
        yield ctx
