"""The Python load generators bench/run.py uses besides wrk.

- `paced`: open loop at a fixed rate (the p99 at 1,000 req/s). Request i is due at
  start + i/rate whatever happened before it, and its latency is counted from when it was
  due, not from when a connection was free to send it: a server that falls behind shows it
  in the tail instead of silently slowing the generator down (wrk, closed-loop, would).
- `closed`: N connections each sending its next request when the last one is answered, for
  a fixed time: the same measurement as wrk's, for a machine without wrk (bounded: it runs
  in this one process and cannot load two cores as wrk does; its figures are lower).

Both speak HTTP/1.1 with keep-alive over asyncio streams, send a random X-Forwarded-For with
each request, check every status, and take their requests from the same items as wrk.lua.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Shape:
    """What to send: GET with a Bearer token, or POST a JSON body; items cycled or used once."""

    method: str
    path: str
    kind: str  # "bearer" or "json"
    items: list[str]
    once: bool = False
    _next: int = 0

    def request(self, host: str) -> bytes | None:
        if self._next >= len(self.items) and self.once:
            return None
        item = self.items[self._next % len(self.items)]
        self._next += 1
        forwarded = (f"10.{random.randrange(256)}.{random.randrange(256)}."
                     f"{random.randrange(1, 255)}")
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}",
                 f"X-Forwarded-For: {forwarded}"]
        body = b""
        if self.kind == "bearer":
            lines.append(f"Authorization: Bearer {item}")
        else:
            body = item.encode()
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    exhausted: bool = False
    seconds: float = 0.0

    def summary(self) -> dict[str, float | int | str | bool]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1e3 if ordered \
                else float("nan")

        return {"requests": len(ordered), "rps": len(ordered) / self.seconds if self.seconds
                else 0.0, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": self.errors,
                "first_error": self.first_error, "exhausted": self.exhausted}


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, data: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):  # a keep-alive connection the server closed: reopen once
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            try:
                self.writer.write(data)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.writer = None
                if attempt == 2:
                    raise
                continue
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await self.reader.readexactly(length) if length else b""
            if b"connection: close" in head.lower():
                self.writer.close()
                self.writer = None
            return status, body
        raise ConnectionError("unreachable")


def _record(figures: Figures, status: int, body: bytes) -> None:
    if not 200 <= status <= 299:
        figures.errors += 1
        if not figures.first_error:
            figures.first_error = f"{status} {body[:200].decode(errors='replace')}"


async def _paced(url: str, shape: Shape, rate: float, seconds: float,
                 connections: int) -> Figures:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(_Connection(host, port))
    figures = Figures()
    loop = asyncio.get_running_loop()

    async def one(due: float, data: bytes) -> None:
        connection = await idle.get()
        try:
            status, body = await connection.exchange(data)
            figures.latencies.append(loop.time() - due)
            _record(figures, status, body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            figures.errors += 1
            figures.first_error = figures.first_error or f"{type(exc).__name__}: {exc}"
        finally:
            idle.put_nowait(connection)

    start = loop.time() + 0.05
    total = int(rate * seconds)
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        data = shape.request(f"{host}:{port}")
        if data is None:
            figures.exhausted = True
            break
        tasks.append(asyncio.ensure_future(one(due, data)))
    await asyncio.gather(*tasks)
    # req/s is what was answered per second until the last answer: below `rate` when the
    # server could not keep up.
    figures.seconds = max(seconds, loop.time() - start)
    return figures


async def _closed(url: str, shape: Shape, seconds: float, connections: int) -> Figures:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    figures = Figures()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def client() -> None:
        connection = _Connection(host, port)
        while loop.time() < deadline:
            data = shape.request(f"{host}:{port}")
            if data is None:
                figures.exhausted = True
                return
            sent = loop.time()
            try:
                status, body = await connection.exchange(data)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                figures.errors += 1
                figures.first_error = figures.first_error or f"{type(exc).__name__}: {exc}"
                connection = _Connection(host, port)
                continue
            figures.latencies.append(loop.time() - sent)
            _record(figures, status, body)

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    figures.seconds = time.monotonic() - started
    return figures


def paced(url: str, shape: Shape, *, rate: float, seconds: float,
          connections: int = 64) -> Figures:
    """Open loop: `rate` requests a second for `seconds`, latency counted from each one's
    due time (`connections` is the most that may be in flight at once)."""
    return asyncio.run(_paced(url, shape, rate, seconds, connections))


def closed(url: str, shape: Shape, *, seconds: float, connections: int = 16) -> Figures:
    """Closed loop: `connections` clients, each sending as soon as it has its answer."""
    return asyncio.run(_closed(url, shape, seconds, connections))


if __name__ == "__main__":  # a quick look by hand: python bench/loadgen.py URL TOKEN
    import sys

    figures = paced(sys.argv[1], Shape("GET", urlsplit(sys.argv[1]).path or "/", "bearer",
                                       [sys.argv[2]]), rate=200, seconds=3)
    print(json.dumps(figures.summary()))
