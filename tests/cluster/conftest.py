"""Issue 15's stack, once for the whole directory: a 3-node Galera cluster on loopback,
HAProxy in front of it (deploy/haproxy/), the migrations run through node 1, and three
instances (gunicorn, 2 workers each) sharing a private Redis for the limits:

    A on node 1, B on node 2, C through HAProxy (whose writer is node 2, then node 3).

The whole directory skips, with the reason, only when galera-4, mariadbd, haproxy or rsync
is missing (.ci/run installs them, so under CI it runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.galera import MISSING, GaleraCluster, HAProxy
from tests.e2e.conftest import BIN, ROOT, LiveServer, free_port, start_gunicorn
from tests.fakes.private_servers import REDIS_AVAILABLE, PrivateRedis

DATABASE = "authserver"
REFRESH_GRACE = 4

#: Limits far above what the tests send from their one address: the tests are about the
#: database under concurrency, not about the limits (which still run, in Redis, and the
#: global SMS budget in the database, a row every code request writes).
LIMITS = {
    "SIGNIN_LIMIT_PER_IP": "100000/minute", "SIGNIN_LIMIT_PER_ACCOUNT": "100000/minute",
    "SIGNUP_LIMIT_PER_IP": "100000/hour", "TOKEN_LIMIT_PER_IP": "100000/minute",
    "SIGNIN_MAX_CONSECUTIVE_FAILURES": "1000000",
    "OTP_LIMIT_PER_IP_HOUR": "100000/hour", "OTP_LIMIT_PER_COUNTRY_HOUR": "100000/hour",
    "OTP_LIMIT_GLOBAL_HOUR": "100000/hour", "OTP_LIMIT_PER_PHONE_HOUR": "1000/hour",
    "OTP_LIMIT_PER_PHONE_DAY": "1000/day",
    "MAGIC_LINK_LIMIT_PER_IP_HOUR": "100000/hour",
    "MAGIC_LINK_LIMIT_PER_EMAIL_HOUR": "1000/hour",
    "MAGIC_LINK_VERIFY_LIMIT_PER_IP": "100000/minute",
    "CODE_GUESS_LIMIT": "1000/hour",
}


@dataclass
class Stack:
    cluster: GaleraCluster
    haproxy: HAProxy
    a: LiveServer  # node 1
    b: LiveServer  # node 2
    c: LiveServer  # through HAProxy
    outbox: Path

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{server.log()[-3000:]}"
                         for name, server in (("A", self.a), ("B", self.b), ("C", self.c)))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = MISSING or ("" if REDIS_AVAILABLE else "redis-server")
    if missing:
        reason = f"tests/cluster needs {missing} (apt-get install galera-4 mariadb-server " \
                 "haproxy rsync redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; .ci/run installs them")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("cluster")
    outbox = folder / "outbox"
    servers: list[LiveServer] = []
    started = time.monotonic()
    with GaleraCluster(3, keep_logs=folder / "nodes") as cluster, PrivateRedis() as redis:
        print(f"cluster: 3 nodes synced in {time.monotonic() - started:.1f} s")
        haproxy = HAProxy(cluster, order=(2, 3, 1), python=sys.executable)
        try:
            cluster.sql(1, f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 "
                           "COLLATE utf8mb4_unicode_ci")

            def instance(database_url: str) -> LiveServer:
                port = free_port()
                env = {
                    **os.environ,
                    "DATABASE_URL": database_url,
                    "SECRET_KEY": "cluster-test-secret-key-0123456789abcdef",
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                    # One issuer for all three, as behind one public name: a token from one
                    # instance is good on the others (until it is revoked).
                    "JWT_ISSUER": "http://auth.cluster.test",
                    "SMS_BACKEND": "file", "EMAIL_BACKEND": "file",
                    "OUTBOX_DIR": str(outbox),
                    "FLASK_APP": "authserver",
                    "PWNED_PASSWORDS_URL": "",
                    "RATELIMIT_STORAGE_URI": redis.url,
                    "RATELIMIT_ENABLED": "true",
                    # A commit waits for the cluster while a dead node is being evicted
                    # (evs.suspect_timeout, 2 s): answers may take that long, not fail.
                    "DATABASE_READ_TIMEOUT": "15",
                    "DB_CAUSAL_READS": "true",
                    # Short, so the replay test needn't wait long to replay past it.
                    "REFRESH_REUSE_GRACE": str(REFRESH_GRACE),
                    **LIMITS,
                }
                server = start_gunicorn(env, folder, workers=2, threads=4, wait=90, migrate=False)
                servers.append(server)
                return server

            # Migrations run once, through node 1; the DDL replicates to the other nodes
            # (start_gunicorn's own `flask db upgrade` then finds nothing to do).
            subprocess.run([str(BIN / "flask"), "--app", "authserver", "db", "upgrade"],
                           cwd=ROOT, env={**os.environ, "DATABASE_URL": cluster.url(1, DATABASE),
                                          "SECRET_KEY": "cluster-test-secret-key-0123456789abcdef",
                                          "DATABASE_READ_TIMEOUT": "120"},
                           check=True, capture_output=True, timeout=120)
            # Started side by side, none migrating again: migrations run once, as a one-shot
            # step (on a cluster GET_LOCK is node-local and can't serialise them).
            with ThreadPoolExecutor(3) as pool:
                a, b, c = pool.map(instance, [cluster.url(1, DATABASE), cluster.url(2, DATABASE),
                                              haproxy.url(DATABASE)])
            print(f"cluster: stack ready in {time.monotonic() - started:.1f} s")
            yield Stack(cluster, haproxy, a, b, c, outbox)
        finally:
            for server in servers:
                server.stop()
            haproxy.close()
