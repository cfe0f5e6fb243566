"""Requests per second and latency of GET /api/v1/isAuthenticated over real HTTP.

    .venv/bin/python bench/http_verify.py                # starts gunicorn on SQLite itself
    .venv/bin/python bench/http_verify.py --url http://127.0.0.1:8000   # an existing server

Bounded: `--seconds` of load from `--clients` threads, loopback only. Prints figures.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def start_server(workers: int) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="authserver-bench-")
    env = {**os.environ, "DATABASE_URL": os.environ.get("DATABASE_URL",
                                                         f"sqlite:///{folder}/bench.db"),
           "SECRET_KEY": "bench-secret-key-0123456789abcdef", "RATELIMIT_ENABLED": "false",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "WARNING"}
    subprocess.run([str(BIN / "flask"), "--app", "authserver", "db", "upgrade"], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    process = subprocess.Popen([str(BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w",
                                str(workers), "--threads", "4", "wsgi:app"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/healthz", timeout=1)
            return url, process
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    process = None
    url = args.url
    if not url:
        url, process = start_server(args.workers)
    try:
        email = f"bench-{time.time_ns()}@example.com"
        tokens = requests.post(url + "/api/v1/signup", json={
            "email": email, "password": "a bench passphrase"}, timeout=10).json()
        headers = {"Authorization": "Bearer " + tokens["access_token"]}
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def client() -> None:
            nonlocal errors
            session = requests.Session()
            mine: list[float] = []
            bad = 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = session.get(url + "/api/v1/isAuthenticated", headers=headers,
                                       timeout=10)
                mine.append(time.perf_counter() - started)
                bad += response.status_code != 200
            with lock:
                latencies.extend(mine)
                errors += bad

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        latencies.sort()
        print(f"GET /api/v1/isAuthenticated  {len(latencies) / args.seconds:8.0f} req/s  "
              f"p50 {statistics.median(latencies) * 1e3:6.2f} ms  "
              f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1e3:6.2f} ms  "
              f"errors {errors}  ({args.clients} clients, {args.seconds:.0f} s)")
    finally:
        if process:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
