"""How fast is token verification? Prints figures; asserts nothing.

    .venv/bin/python bench/verify_tokens.py [--database-url mysql+pymysql://root@127.0.0.1/bench]

Measures, in one process:
  * offline verification (signature + claims, what a resource service does with the JWKS)
  * verification with the revocation check (one primary-key lookup of the session)
  * password sign-in, for contrast (argon2id is slow on purpose)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from authserver import accounts, create_app, passwords, tokens
from authserver.extensions import db


def measure(label: str, fn: Callable[[], object], seconds: float = 2.0) -> None:
    fn()  # warm caches
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    p50 = statistics.median(samples) * 1e6
    p99 = samples[int(len(samples) * 0.99) - 1] * 1e6
    print(f"{label:45} {len(samples) / sum(samples):9.0f} ops/s  p50 {p50:8.1f} us"
          f"  p99 {p99:8.1f} us  (n={len(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--algorithm", default="ES256")
    args = parser.parse_args()
    instance = tempfile.mkdtemp(prefix="authserver-bench-")
    url = args.database_url or f"sqlite:///{instance}/bench.db"
    app = create_app({"INSTANCE_PATH": instance, "DATABASE_URL": url,
                      "SECRET_KEY": "bench-secret-key-0123456789abcdef",
                      "JWT_ALGORITHM": args.algorithm, "RATELIMIT_ENABLED": False})
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.create_all()
        user = accounts.create(email="bench@example.com",
                               password_hash=passwords.hash_password("bench passphrase 1"))
        response = tokens.issue(user, ["pwd"])
        token = response.access_token
        print(f"database: {db.engine.dialect.name}, algorithm: {args.algorithm}, "
              f"token: {len(token)} bytes")
        measure("verify, offline (signature + claims)",
                lambda: tokens.verify(token, check_revocation=False))
        measure("verify + revocation check (1 PK lookup)", lambda: tokens.verify(token))
        measure("issue (session + refresh + sign)", lambda: tokens.issue(user, ["pwd"]), 1.0)
        measure("password verify (argon2id, deliberate)",
                lambda: passwords.verify_password(user.password_hash, "bench passphrase 1"), 1.0)
        db.session.remove()
        db.drop_all()


if __name__ == "__main__":
    main()
