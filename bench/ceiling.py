"""The ceiling: the least a server can do for each benchmarked request, as a bare Flask app.

`make bench` serves it next to authserver, under the very same gunicorn configuration
(gunicorn.conf.py: workers, threads, timeouts, access log), and the table divides
authserver's requests per second by this app's. Two endpoints:

- `GET /verify`: what a token check cannot do without. The Bearer token's ES256 signature
  and claims are checked with PyJWT against the project's public key (issuer, audience,
  expiry with the same 5-second leeway as authserver/access_tokens.py), then ONE query asks
  the database what `sessions.is_open` asks (the session by primary key joined to its user
  by primary key), over a raw PyMySQL autocommit connection kept open by each worker
  thread, and a small JSON answer goes back.
- `POST /signin`: what a password sign-in cannot do without: parse the JSON body and verify
  an argon2id hash made with exactly authserver/passwords.py's parameters (the hashes of
  the benchmark's password users, held in memory: no query).

Configured by environment variables that bench/run.py sets: CEILING_KEYS (a JSON file with
the public key PEM, issuer and audience), CEILING_HASHES (a JSON file, e-mail → hash) and
CEILING_DATABASE (host, port, user, database as `host:port/user/database`).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from typing import Any

import jwt
import pymysql
from argon2 import PasswordHasher, Type
from argon2.exceptions import VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, jsonify, request

from authserver import access_tokens, passwords

with open(os.environ["CEILING_KEYS"], encoding="utf-8") as keys_file:
    KEYS: dict[str, str] = json.load(keys_file)
with open(os.environ["CEILING_HASHES"], encoding="utf-8") as hashes_file:
    HASHES: dict[str, str] = json.load(hashes_file)
_address, _, _rest = os.environ["CEILING_DATABASE"].partition("/")
DB_USER, _, DB_NAME = _rest.partition("/")
DB_HOST, _, DB_PORT = _address.partition(":")


def _public_key(pem: str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SystemExit("the ceiling checks ES256 tokens: the project's key is another kind")
    return key


# Parsed once, as the project's key ring keeps its keys loaded.
PUBLIC_KEY = _public_key(KEYS["public_key_pem"])
REQUIRED = list(access_tokens.REQUIRED_CLAIMS)

# The project's parameters, read from the module that defines them, so the two never differ.
HASHER = PasswordHasher(time_cost=passwords.TIME_COST, memory_cost=passwords.MEMORY_COST_KIB,
                        parallelism=passwords.PARALLELISM, hash_len=passwords.HASH_LENGTH,
                        salt_len=passwords.SALT_LENGTH, type=Type.ID)
# A hash nobody's password matches, for an address the ceiling does not know (same work).
UNKNOWN = HASHER.hash("no password is this one")

# sessions.is_open's question, as one statement.
IS_OPEN = ("SELECT s.user_id, s.revoked_at, s.expires_at, u.disabled FROM sessions s "
           "JOIN users u ON u.id = s.user_id WHERE s.id = %s")

app = Flask(__name__)
_local = threading.local()


def _connection() -> Any:
    """This thread's connection, opened on its first request and kept (autocommit: a read
    holds no transaction open between requests)."""
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = pymysql.connect(host=DB_HOST, port=int(DB_PORT or 3306), user=DB_USER,
                                     database=DB_NAME, autocommit=True)
        _local.connection = connection
    return connection


def _unauthorized(detail: str) -> tuple[Response, int]:
    return jsonify({"status": 401, "code": "invalid_token", "detail": detail}), 401


@app.get("/verify")
def verify() -> Any:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _unauthorized("no bearer token")
    try:
        claims = jwt.decode(token, PUBLIC_KEY, algorithms=["ES256"],
                            audience=KEYS["audience"], issuer=KEYS["issuer"],
                            leeway=access_tokens.LEEWAY, options={"require": REQUIRED})
    except jwt.PyJWTError:
        return _unauthorized("bad token")
    with _connection().cursor() as cursor:
        cursor.execute(IS_OPEN, (claims["sid"],))
        row = cursor.fetchone()
    if (row is None or row[0] != claims["sub"] or row[1] is not None
            or row[2] <= datetime.now(UTC).replace(tzinfo=None) or row[3]):
        return _unauthorized("session ended")
    return jsonify({"user_id": claims["sub"], "session_id": claims["sid"],
                    "roles": claims.get("roles", [])})


@app.post("/signin")
def signin() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("password"), str):
        return jsonify({"status": 400, "code": "invalid_request"}), 400
    try:
        HASHER.verify(HASHES.get(str(body.get("email")), UNKNOWN), body["password"])
    except VerifyMismatchError:
        return jsonify({"status": 401, "code": "invalid_credentials"}), 401
    return jsonify({"signed_in": True})
