"""`make bench`: authserver against its ceiling, side by side, in one run. Prints one table and
writes bench/results.json. `make bench-scale` (`--scale`): the same at 10,000 and at
1,000,000 users, side by side. bench/README.md says what each figure means.

    .venv/bin/python bench/run.py [--scale] [--seconds 10] [--warmup 2] [--log FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import seed

ROOT = seed.ROOT
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
WORKERS = 2
THREADS = 2  # wrk threads
CONNECTIONS = 16
P99_RATE = 1000  # req/s of the open-loop latency run
RSS_AT = (10_000, 100_000)  # token checks after which the workers' memory is read
NOISY_PCT = 20  # the two runs of a ceiling further apart than this: the ratios are doubtful

SMALL = seed.Target("authserver_bench", 10_000, redis_db=11)
LARGE = seed.Target("authserver_bench_scale", 1_000_000, redis_db=12)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    kind: str  # "bearer" or "json"
    pool: str  # the items: "access", "password", "sms", "email", "refresh"
    ceiling: str | None  # the ceiling endpoint its ratio is to
    target: float | None
    once: bool = False


ENDPOINTS = [
    Endpoint("isAuthenticated", "GET", "/api/v1/isAuthenticated", "bearer", "access",
             "ceiling /verify", 0.90),
    Endpoint("me", "GET", "/api/v1/me", "bearer", "access", "ceiling /verify", 0.90),
    Endpoint("password sign-in", "POST", "/api/v1/signin", "json", "password",
             "ceiling /signin", 0.90),
    Endpoint("SMS-code sign-in", "POST", "/api/v1/otp/verify", "json", "sms",
             "ceiling /verify", 0.50, once=True),
    Endpoint("e-mail-code sign-in", "POST", "/api/v1/magic-link/verify", "json", "email",
             "ceiling /verify", 0.50, once=True),
    Endpoint("refresh", "POST", "/api/v1/token/refresh", "json", "refresh", None, None,
             once=True),
]
CEILINGS = [
    Endpoint("ceiling /verify", "GET", "/verify", "bearer", "access", None, None),
    Endpoint("ceiling /signin", "POST", "/signin", "json", "password", None, None),
]


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- servers ---------------------------------------------------------------------------------
class Server:
    """gunicorn with the project's gunicorn.conf.py (2 workers), serving `app`."""

    def __init__(self, name: str, app: str, port: int, env: dict[str, str], log: Path | None,
                 pythonpath: Path | None = None) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        # No control socket: gunicorn's default one is a single path per machine user, which
        # other gunicorns running here (another checkout's tests or benchmarks) use too.
        command = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
                   "--bind", f"127.0.0.1:{port}", "--no-control-socket"]
        if pythonpath:
            command += ["--pythonpath", str(pythonpath)]
        output = log.open("ab") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [*command, app], cwd=ROOT, stdout=output, stderr=output,
            env={**os.environ, **env, "WEB_CONCURRENCY": str(WORKERS), "LOG_FORMAT": "json"})

    def wait(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited at start (run with --log FILE to see why)")
            try:
                urllib.request.urlopen(self.url + path, timeout=2)
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer within 60 s")

    def check(self) -> None:
        """Stop the benchmark loudly if the server is gone (figures against a dead server
        would be connection errors, not results)."""
        if self.process.poll() is not None:
            raise SystemExit(f"!! {self.name} exited during the run (code "
                             f"{self.process.returncode}); run with --log FILE to see why")

    def workers(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return sorted(pids)

    def rss_kib(self) -> list[int]:
        sizes = []
        for pid in self.workers():
            match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
            if match:
                sizes.append(int(match.group(1)))
        return sizes

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- load ------------------------------------------------------------------------------------
class Load:
    """Drives one server's endpoint with wrk (or, without wrk, the Python closed loop)."""

    def __init__(self, folder: Path, seconds: float, warmup: float) -> None:
        self.folder, self.seconds, self.warmup = folder, seconds, warmup
        self.wrk = shutil.which("wrk")

    def items_file(self, name: str, items: list[str]) -> Path:
        path = self.folder / f"{name}.txt"
        path.write_text("".join(item + "\n" for item in items))
        return path

    def run(self, server: Server, endpoint: Endpoint, items: list[str], *, seconds: float,
            start: int = 0, quota: int = 0) -> dict[str, Any]:
        """One run; `start`: the first item to use; `quota`: stop after this many answers."""
        server.check()
        url = server.url
        if not self.wrk:
            shape = loadgen.Shape(endpoint.method, endpoint.path, endpoint.kind, items[start:],
                                  once=endpoint.once)
            figures = loadgen.closed(url, shape, seconds=seconds, connections=CONNECTIONS)
            out = figures.summary()
            out["next_start"] = start + shape._next
            out["generator"] = "python closed loop"
            return out
        items_path = self.items_file(re.sub(r"\W+", "-", endpoint.name), items)
        marker = self.folder / "quota"
        for old in self.folder.glob("quota.*"):
            old.unlink()
        duration = max(1, int(seconds)) if not quota else 3600
        command = [self.wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s",
                   "--timeout", "10s", "-s", str(HERE / "wrk.lua"), url + endpoint.path, "--",
                   endpoint.method, endpoint.path, endpoint.kind, str(items_path), str(start),
                   "1" if endpoint.once else "0", str(quota // THREADS if quota else 0),
                   str(marker), str(THREADS)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        if quota:
            # wrk sleeps its whole -d; each thread touches its marker when it has its answers.
            deadline = time.monotonic() + 60 + quota / 50
            while len(list(self.folder.glob("quota.*"))) < THREADS \
                    and process.poll() is None and time.monotonic() < deadline:
                if server.process.poll() is not None:
                    process.kill()
                    server.check()
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate()
        server.check()
        line = next((row for row in stdout.splitlines() if row.startswith("BENCH ")), None)
        if line is None:
            raise SystemExit(f"wrk failed for {endpoint.name}:\n{stdout}\n{stderr}")
        raw = json.loads(line[len("BENCH "):])
        seconds_run = raw["duration_us"] / 1e6
        errors = raw["non2xx"] + raw["socket_errors"] + raw["timeouts"]
        return {"requests": raw["requests"], "rps": raw["requests"] / seconds_run,
                "p50_ms": raw["p50_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3,
                "errors": errors, "first_error": raw["first_error"],
                "exhausted": bool(raw["exhausted"]), "next_start": raw["next_start"],
                "generator": f"wrk -t{THREADS} -c{CONNECTIONS}"}


# -- one size --------------------------------------------------------------------------------
def measure(target: seed.Target, args: argparse.Namespace) -> dict[str, Any]:
    say(f"== {target.users:,} users, {target.sessions:,} sessions ({target.database})")
    seed.ensure_loaded(target, log=say)
    port, ceiling_port = free_port(), free_port()
    config = seed.app_config(target, f"http://127.0.0.1:{port}")
    results: dict[str, Any] = {"users": target.users, "sessions": target.sessions,
                               "database": target.database, "endpoints": {}}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="authserver-bench-")))
        log = Path(args.log) if args.log else None
        say("  making credentials with the project's own code ...")
        keys = seed.public_key(config)
        hashes = seed.password_hashes()
        maker = seed.Maker(target, config)
        stack.callback(maker.close)
        access = [pair[0] for pair in maker.tokens(seed.ACCESS_TOKENS)]
        passwords = [json.dumps({"email": seed.email_of(i), "password": seed.password_of(i)})
                     for i in range(seed.PASSWORD_USERS)]
        (folder / "keys.json").write_text(json.dumps(keys))
        (folder / "hashes.json").write_text(json.dumps(hashes))

        env = {"DATABASE_URL": config["DATABASE_URL"], "SECRET_KEY": config["SECRET_KEY"],
               "PUBLIC_BASE_URL": config["PUBLIC_BASE_URL"],
               "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:6379/{target.redis_db}",
               "SMS_BACKEND": "console", "EMAIL_BACKEND": "console", "PROXY_FIX_HOPS": "1",
               "LOG_LEVEL": "INFO",
               **dict(item.partition("=")[::2] for item in args.set)}
        ceiling_env = {**env, "CEILING_KEYS": str(folder / "keys.json"),
                       "CEILING_HASHES": str(folder / "hashes.json"),
                       "CEILING_DATABASE": f"{target.host}:{target.port}/{target.user}/"
                                           f"{target.database}"}
        project = Server("authserver", "wsgi:app", port, env, log)
        stack.callback(project.stop)
        ceiling = Server("ceiling", "ceiling:app", ceiling_port, ceiling_env, log,
                         pythonpath=HERE)
        stack.callback(ceiling.stop)
        project.wait("/healthz")
        ceiling.wait("/verify")
        load = Load(folder, args.seconds, args.warmup)
        pools: dict[str, list[str]] = {"access": access, "password": passwords}

        results["in_process"] = seed.in_process(maker, access[0])
        figures = results["in_process"]
        say(f"  in-process, one thread, no HTTP: token signature+claims "
            f"{figures['offline_verify_per_s']:,.0f}/s, with the session lookup "
            f"{figures['verify_with_lookup_per_s']:,.0f}/s, argon2id check "
            f"{figures['argon2id_verify_ms']:.1f} ms")

        # Memory first, on fresh workers: RSS after 10,000 and after 100,000 token checks.
        checks = ENDPOINTS[0]
        rss: dict[str, Any] = {}
        done = 0
        answered: dict[str, int] = {}
        for mark in RSS_AT:
            run = load.run(project, checks, access, seconds=0, quota=mark - done)
            if run["errors"]:
                raise SystemExit(f"!! token checks failed: {run['first_error']}")
            done += run["requests"]
            answered[str(mark)] = done
            rss[str(mark)] = project.rss_kib()
            say(f"  worker RSS after {done:,} token checks: "
                + ", ".join(f"{kib / 1024:.1f} MiB" for kib in rss[str(mark)]))
        results["rss_kib"] = rss
        results["rss_requests"] = answered

        def measured(server: Server, endpoint: Endpoint) -> dict[str, Any]:
            items = pools[endpoint.pool]
            warm = load.run(server, endpoint, items, seconds=args.warmup)
            start = warm["next_start"] if endpoint.once else 0
            if endpoint.once:
                # Enough unused items for the run at the warm-up's pace, and some.
                # (A warm-up that ran out went faster than it could show.)
                pace = warm["rps"] * (3 if warm["exhausted"] else 1)
                need = int(pace * args.seconds * 1.5) + 500
                missing = need - (len(items) - start)
                if missing > 0:
                    items.extend(make(endpoint.pool, missing))
            figures = load.run(server, endpoint, items, seconds=args.seconds, start=start)
            if endpoint.once:
                pools[endpoint.pool] = items[figures["next_start"]:]
            errors = f"  {figures['errors']} ERRORS: {figures['first_error']}" \
                if figures["errors"] else ""
            say(f"  {endpoint.name:22} {figures['rps']:8.0f} req/s  p50 {figures['p50_ms']:6.1f}"
                f" ms  p99 {figures['p99_ms']:6.1f} ms{errors}")
            return figures

        def make(pool: str, count: int) -> list[str]:
            if pool == "refresh":
                return [json.dumps({"refresh_token": pair[1]}) for pair in maker.tokens(count)]
            return maker.codes(pool, count)

        say("  measuring ...")
        # Each ceiling is measured before and after the endpoints compared with it, and
        # counts as the mean of both: the machine's pace drifts (other work on it, caches),
        # and the two runs bracket that drift instead of leaving it all in one ratio.
        by_name = {endpoint.name: endpoint for endpoint in CEILINGS + ENDPOINTS}
        order = ["ceiling /verify", "isAuthenticated", "me", "SMS-code sign-in",
                 "e-mail-code sign-in", "ceiling /verify", "ceiling /signin",
                 "password sign-in", "ceiling /signin", "refresh"]
        runs: dict[str, list[dict[str, Any]]] = {}
        for name in order:
            endpoint = by_name[name]
            if endpoint.once and endpoint.pool not in pools:
                pools[endpoint.pool] = make(endpoint.pool, 1500)
            server = ceiling if endpoint.name.startswith("ceiling") else project
            runs.setdefault(name, []).append(measured(server, endpoint))
        for name, measured_runs in runs.items():
            results["endpoints"][name] = combined(measured_runs)

        shape = loadgen.Shape(checks.method, checks.path, checks.kind, access)
        paced = loadgen.paced(project.url, shape, rate=P99_RATE, seconds=args.seconds)
        project.check()
        results["p99_at_rate"] = {"rate": P99_RATE, **paced.summary(),
                                  "generator": "python open loop (asyncio, paced)"}
        say(f"  isAuthenticated at {P99_RATE} req/s (open loop): p99 "
            f"{results['p99_at_rate']['p99_ms']:.1f} ms, {paced.errors} errors")
    return results


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from repeated runs of an endpoint: mean req/s and p50, the worse p99, all
    errors, and how far apart the runs' req/s were (`drift`, % of the mean)."""
    if len(runs) == 1:
        return {**runs[0], "drift_pct": 0.0}
    rps = [run["rps"] for run in runs]
    mean = sum(rps) / len(rps)
    return {**runs[0], "rps": mean, "p50_ms": sum(run["p50_ms"] for run in runs) / len(runs),
            "p99_ms": max(run["p99_ms"] for run in runs),
            "requests": sum(run["requests"] for run in runs),
            "errors": sum(run["errors"] for run in runs),
            "exhausted": any(run["exhausted"] for run in runs),
            "drift_pct": (max(rps) - min(rps)) / mean * 100 if mean else 0.0, "runs": runs}


# -- the table -------------------------------------------------------------------------------
def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    figures = result["endpoints"]
    for endpoint in CEILINGS + ENDPOINTS:
        own = figures[endpoint.name]
        ratio = own["rps"] / figures[endpoint.ceiling]["rps"] if endpoint.ceiling else None
        invalid = own["errors"] > 0 or own["exhausted"] or (
            endpoint.ceiling is not None and (figures[endpoint.ceiling]["errors"] > 0))
        noisy = endpoint.ceiling is not None and \
            figures[endpoint.ceiling].get("drift_pct", 0.0) > NOISY_PCT
        out.append({"endpoint": endpoint.name, "noisy": noisy, "rps": own["rps"],
                    "p50_ms": own["p50_ms"], "p99_ms": own["p99_ms"], "ratio": ratio,
                    "target": endpoint.target,
                    "ceiling": endpoint.ceiling, "errors": own["errors"],
                    "exhausted": own["exhausted"], "invalid": invalid,
                    "drift_pct": own.get("drift_pct", 0.0),
                    "met": None if ratio is None or endpoint.target is None or invalid
                    else ratio >= endpoint.target})
    return out


def extra_rows(result: dict[str, Any]) -> list[str]:
    p99 = result["p99_at_rate"]
    rss = result["rss_kib"]
    first, last = (sum(rss[str(mark)]) for mark in RSS_AT)
    growth = (last - first) / first * 100 if first else float("nan")
    bad = f"  !! {p99['errors']} ERRORS" if p99["errors"] else ""
    own = result.get("in_process")
    calls = [] if not own else [
        f"in-process (one thread, no HTTP): token signature+claims "
        f"{own['offline_verify_per_s']:,.0f}/s, with the session lookup "
        f"{own['verify_with_lookup_per_s']:,.0f}/s, argon2id check "
        f"{own['argon2id_verify_ms']:.1f} ms"]
    return [
        f"isAuthenticated p99 at {p99['rate']:,} req/s (open loop): {p99['p99_ms']:.1f} ms "
        f"(target < 20 ms; p50 {p99['p50_ms']:.1f} ms; answered at {p99['rps']:,.0f} req/s)"
        f"{bad}",
        f"worker RSS after {RSS_AT[0]:,} token checks: {first / 1024:.1f} MiB, after "
        f"{RSS_AT[1]:,}: {last / 1024:.1f} MiB ({growth:+.1f} %, target within +5 %) "
        f"[{WORKERS} workers, summed]",
        *calls,
    ]


def _ratio(row: dict[str, Any]) -> str:
    return f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"


def _target(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return "-"
    verdict = {True: "met", False: "MISSED", None: "n/a"}[row["met"]]
    if row["noisy"] and row["met"] is not None:
        verdict += "?"  # the ceiling's two runs disagree: see the note under the table
    return f">={row['target']:.2f} {verdict}"


def _errors(row: dict[str, Any]) -> str:
    if row["exhausted"]:
        return f"{row['errors']} !! RAN OUT OF ITEMS"
    return f"{row['errors']} !! INVALID" if row["errors"] else "0"


def table(result: dict[str, Any]) -> str:
    head = (f"{'endpoint':22} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}  "
            f"{'target':15} errors")
    lines = [head, "-" * len(head)]
    for row in rows(result):
        drift = f"  (mean of 2 runs {row['drift_pct']:.0f} % apart)" if row["drift_pct"] else ""
        lines.append(f"{row['endpoint']:22} {row['rps']:8.0f} {row['p50_ms']:7.1f} "
                     f"{row['p99_ms']:7.1f} {_ratio(row):>6}  {_target(row):15} "
                     f"{_errors(row)}{drift}")
    return "\n".join([*lines, *noise_note(result), "", *extra_rows(result)])


def noise_note(result: dict[str, Any]) -> list[str]:
    moved = [(name, figures["drift_pct"]) for name, figures in result["endpoints"].items()
             if figures.get("drift_pct", 0.0) > NOISY_PCT]
    if not moved:
        return []
    which = ", ".join(f"{name} {drift:.0f} %" for name, drift in moved)
    return [f"!! NOISY: the two runs of a ceiling differ by more than {NOISY_PCT} % ({which}): "
            "the machine's pace moved during the run (other work on it?); the ratios marked ? "
            "are unreliable. Run again on a quiet machine."]


def side_by_side(small: dict[str, Any], large: dict[str, Any]) -> str:
    head = (f"{'endpoint':22} {'req/s 10k':>9} {'req/s 1M':>9} {'diff':>7}  {'p99 10k':>7} "
            f"{'p99 1M':>7} {'diff':>7}  {'ratio 10k':>9} {'ratio 1M':>8}  errors")
    lines = [head, "-" * len(head)]
    for a, b in zip(rows(small), rows(large), strict=True):
        rps = (b["rps"] - a["rps"]) / a["rps"] * 100 if a["rps"] else float("nan")
        p99 = (b["p99_ms"] - a["p99_ms"]) / a["p99_ms"] * 100 if a["p99_ms"] else float("nan")
        flag = "" if abs(rps) <= 10 else "  (outside +-10 %)"
        errors = "0" if not (a["errors"] or b["errors"] or a["exhausted"] or b["exhausted"]) \
            else f"{_errors(a)} / {_errors(b)}"
        lines.append(f"{a['endpoint']:22} {a['rps']:9.0f} {b['rps']:9.0f} {rps:+6.1f}%  "
                     f"{a['p99_ms']:7.1f} {b['p99_ms']:7.1f} {p99:+6.1f}%  {_ratio(a):>9} "
                     f"{_ratio(b):>8}  {errors}{flag}")
    lines += [*(f"10k: {note}" for note in noise_note(small)),
              *(f"1M: {note}" for note in noise_note(large))]
    lines += ["", "10k: " + extra_rows(small)[0], "1M:  " + extra_rows(large)[0],
              "10k: " + extra_rows(small)[1], "1M:  " + extra_rows(large)[1]]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = next((line.partition(":")[2].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    with SMALL.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        database = cursor.fetchone()[0]
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "python": platform.python_version(), "database": database,
            "wrk": shutil.which("wrk") is not None}


def preflight() -> None:
    """MariaDB and Redis must answer before anything starts: without Redis the server would
    fall back to per-process limits after a timeout on every call, and measure that."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                raise OSError("no PONG")
    except OSError as exc:
        raise SystemExit(f"Redis at 127.0.0.1:6379 does not answer ({exc})") from None
    try:
        SMALL.connect().close()
    except Exception as exc:
        raise SystemExit(f"MariaDB/MySQL at {SMALL.host}:{SMALL.port} (user {SMALL.user}, no "
                         f"password) does not answer: {exc}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="store_true",
                        help="also 1,000,000 users and 3,000,000 sessions, side by side")
    parser.add_argument("--seconds", type=float, default=10.0, help="each measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="before each run")
    parser.add_argument("--log", help="append both servers' logs to this file")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for authserver only (repeatable), e.g. "
                             "DB_CAUSAL_READS=true to measure what it costs")
    args = parser.parse_args()
    for item in args.set:
        name, equals, _value = item.partition("=")
        if not equals or not name.isupper():
            parser.error(f"--set {item!r}: expected NAME=VALUE")
    if not shutil.which("wrk"):
        say("!! wrk not found: using the Python closed-loop generator (one process; its "
            "req/s are lower than wrk's, compare ratios only)")
    preflight()
    started = time.time()
    info = machine()
    results: dict[str, Any] = {"machine": info, "started": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "settings": {
        "workers": WORKERS, "wrk_threads": THREADS, "connections": CONNECTIONS,
        "seconds": args.seconds, "warmup": args.warmup, "authserver_settings": args.set}}
    results["small"] = measure(SMALL, args)
    if args.scale:
        results["large"] = measure(LARGE, args)
    say("")
    say(f"authserver benchmark, {info['cores']} cores ({info['cpu']}), {info['database']}, "
        f"gunicorn {WORKERS} workers (gunicorn.conf.py), {CONNECTIONS} connections, "
        f"{args.seconds:.0f} s per run" + (f", authserver with {' '.join(args.set)}"
                                            if args.set else ""))
    say("")
    say(table(results["small"]))
    if args.scale:
        say("")
        say(side_by_side(results["small"], results["large"]))
    for key in ("small", "large"):
        if key in results:
            results[key]["table"] = rows(results[key])
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    say("\n(bench/results.json written)")
    invalid = [row["endpoint"] for key in ("small", "large") if key in results
               for row in results[key]["table"] if row["invalid"]]
    if invalid:
        say(f"!! INVALID RUN: errors or too few items for {', '.join(invalid)}: a fast error "
            "is not a result")
        sys.exit(1)


if __name__ == "__main__":
    main()
