"""Signing keys: create on first use, encrypt at rest, rotate, publish as a JWKS.

Private keys are stored encrypted with a Fernet key derived (HKDF) from SECRET_KEY, so a
database dump alone cannot mint tokens (SECRET_KEY_FALLBACKS still decrypt; `reencrypt`
moves every key to the current SECRET_KEY). Every process keeps the keys it has loaded in memory:
verifying a token costs no database query unless its `kid` is new to this process (a key
rotated in by another worker), and such a miss reloads at most once a second so
forged `kid`s cannot turn into a query per request. When such a reload (or the JWKS's) fails
because the database is down, the keys loaded last keep serving: the JWKS still answers and
tokens with a known `kid` still verify, so services can check tokens offline during an outage.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from authserver import clock
from authserver.extensions import db
from authserver.models import SigningKey

log = logging.getLogger("authserver.keys")

RELOAD_INTERVAL = 1.0  # seconds between database reloads caused by unknown kids
REFRESH_INTERVAL = 60.0  # seconds before a signer re-reads which key is active (rotation)
STALE_RETRY = 10.0  # seconds between reload tries while the database is failing


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    algorithm: str
    signing_key: Any  # private key object, or bytes for HS256
    verifying_key: Any  # public key object, or bytes for HS256
    public_jwk: dict[str, Any] | None
    status: str


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as operators see it: never any key material."""

    kid: str
    algorithm: str
    status: str
    created_at: datetime


def fernet(secret_key: str, info: bytes) -> Fernet:
    """A Fernet key derived (HKDF-SHA256) from SECRET_KEY; `info` keeps each use's key apart
    (signing keys, second-factor secrets, ...)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=info).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _fernet(secret_keys: str | list[str]) -> MultiFernet:
    """Encrypts under the first key (SECRET_KEY), decrypts under any (SECRET_KEY_FALLBACKS)."""
    secrets_ = [secret_keys] if isinstance(secret_keys, str) else secret_keys
    return MultiFernet([fernet(secret, b"authserver signing keys at rest")
                        for secret in secrets_])


def _generate(algorithm: str) -> tuple[bytes, Any]:
    """New key material: (PEM or raw secret bytes, private key object or secret)."""
    if algorithm == "HS256":
        secret = secrets.token_bytes(32)
        return secret, secret
    if algorithm == "ES256":
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported algorithm {algorithm}")
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem, private


def _public_jwk(kid: str, algorithm: str, private: Any) -> dict[str, Any] | None:
    if algorithm == "HS256":
        return None
    algo = jwt.get_algorithm_by_name(algorithm)
    jwk = json.loads(algo.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return jwk


class KeyRing:
    """The signing keys of one app, cached in this process."""

    def __init__(self, secret_keys: str | list[str], algorithm: str) -> None:
        """`secret_keys`: SECRET_KEY, then SECRET_KEY_FALLBACKS (Settings.secret_keys())."""
        self._fernet = _fernet(secret_keys)
        self._algorithm = algorithm
        self._keys: dict[str, LoadedKey] = {}
        self._active: LoadedKey | None = None
        self._lock = threading.Lock()
        self._last_reload = 0.0
        self._stale = False  # the last reload failed: serving the keys loaded before it

    # -- loading ------------------------------------------------------------------------
    def _load_row(self, row: SigningKey) -> LoadedKey:
        try:
            material = self._fernet.decrypt(row.private_key_encrypted.encode())
        except InvalidToken:
            raise RuntimeError(
                f"signing key {row.kid} cannot be decrypted: SECRET_KEY changed since it was "
                "made. Put the old SECRET_KEY in SECRET_KEY_FALLBACKS (then run `flask "
                "--app authserver keys reencrypt`), or run `flask --app authserver keys rotate`."
            ) from None
        signing: bytes | PrivateKeyTypes
        verifying: bytes | PublicKeyTypes
        if row.algorithm == "HS256":
            signing = verifying = material
        else:
            signing = serialization.load_pem_private_key(material, password=None)
            verifying = signing.public_key()
        jwk = json.loads(row.public_jwk) if row.public_jwk else None
        return LoadedKey(row.kid, row.algorithm, signing, verifying, jwk, row.status)

    def reload(self) -> None:
        rows = db.session.scalars(
            select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)).all()
        keys: dict[str, LoadedKey] = {}
        active = None
        for row in rows:
            try:
                loaded = self._load_row(row)
            except RuntimeError as exc:
                log.error("%s", exc)
                continue
            keys[row.kid] = loaded
            if active is None and row.status == "active" and row.algorithm == self._algorithm:
                # The oldest active key signs: if two workers made a first key at the same
                # moment, both settle on the same one (rotation retires every older key).
                active = loaded
        with self._lock:
            self._keys = keys
            self._active = active
            self._last_reload = time.monotonic()
        if self._stale:
            self._stale = False
            log.warning("signing keys reloaded from the database again")

    def _reload_or_keep(self) -> None:
        """reload(); when the database fails and keys are loaded, keep serving those (logged
        once per outage; the next try waits RELOAD_INTERVAL). With no keys loaded, raise."""
        try:
            self.reload()
        except SQLAlchemyError as exc:
            if not self._keys:
                raise
            with contextlib.suppress(SQLAlchemyError):
                db.session.rollback()
            with self._lock:  # a hung database must not cost every second request its timeout
                self._last_reload = time.monotonic() + STALE_RETRY - RELOAD_INTERVAL
            if not self._stale:
                self._stale = True
                log.warning("cannot reload signing keys (%s): serving the %d keys loaded "
                            "before", type(exc).__name__, len(self._keys))

    # -- use ------------------------------------------------------------------------------
    def active(self) -> LoadedKey:
        """The key new tokens are signed with; made and stored on first use."""
        if self._active is None or time.monotonic() - self._last_reload > REFRESH_INTERVAL:
            # A key rotated by another process (`flask keys rotate`) takes over within a minute.
            self.reload()
        if self._active is None:
            self.create()
        assert self._active is not None
        return self._active

    def get(self, kid: str) -> LoadedKey | None:
        """The key for a token's `kid`, or None. A miss reloads, at most once per interval."""
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_reload > RELOAD_INTERVAL:
            self._reload_or_keep()
            key = self._keys.get(kid)
        return key

    def jwks(self) -> dict[str, Any]:
        if not self._keys:
            self.active()
        elif time.monotonic() - self._last_reload > RELOAD_INTERVAL:
            self._reload_or_keep()  # pick up keys rotated in by other workers
        return {"keys": [k.public_jwk for k in self._keys.values() if k.public_jwk]}

    # -- management -------------------------------------------------------------------------
    def create(self, algorithm: str | None = None) -> LoadedKey:
        algorithm = algorithm or self._algorithm
        material, private = _generate(algorithm)
        kid = secrets.token_urlsafe(12)
        row = SigningKey(
            kid=kid,
            algorithm=algorithm,
            private_key_encrypted=self._fernet.encrypt(material).decode(),
            public_jwk=json.dumps(_public_jwk(kid, algorithm, private)) if algorithm != "HS256"
            else None,
            status="active",
        )
        db.session.add(row)
        # Committed at once: tokens signed with it leave before any edge commit, and other
        # workers look their `kid` up in the database.
        db.session.commit()
        log.info("created signing key %s (%s)", kid, algorithm)
        self.reload()
        return self._keys[kid]

    def rotate(self) -> LoadedKey:
        """Make a new active key; older ones retire but keep verifying until tokens expire."""
        now = clock.now()
        for row in db.session.scalars(select(SigningKey).where(SigningKey.status == "active")):
            row.status = "retired"
            row.retired_at = now
        db.session.flush()
        return self.create()

    def prune(self, older_than_seconds: int) -> int:
        """Delete retired keys retired longer ago than any token they signed can live."""
        cutoff = clock.now().timestamp() - older_than_seconds
        removed = 0
        rows = db.session.scalars(select(SigningKey).where(SigningKey.status == "retired"))
        for row in rows:
            if row.retired_at and row.retired_at.timestamp() < cutoff:
                db.session.delete(row)
                removed += 1
        db.session.flush()
        self.reload()
        return removed

    def reencrypt(self) -> tuple[int, int]:
        """Re-encrypt every stored key under the current SECRET_KEY (after a rotation, so the
        old key can leave SECRET_KEY_FALLBACKS); not committed here. Returns (re-encrypted,
        unreadable): an unreadable key was made under a key no longer held."""
        done = unreadable = 0
        for row in db.session.scalars(select(SigningKey).order_by(SigningKey.created_at)):
            try:
                row.private_key_encrypted = self._fernet.rotate(
                    row.private_key_encrypted.encode()).decode()
            except InvalidToken:
                unreadable += 1
                log.error("signing key %s cannot be decrypted with SECRET_KEY or "
                          "SECRET_KEY_FALLBACKS", row.kid)
                continue
            done += 1
        db.session.flush()
        return done, unreadable

    def listing(self) -> list[KeyInfo]:
        """Every stored key, oldest first, without its private half (`flask keys list`).

        Like signing, it makes the first key when there is none.
        """
        self.reload()
        self.active()
        rows = db.session.scalars(select(SigningKey).order_by(SigningKey.created_at))
        return [KeyInfo(row.kid, row.algorithm, row.status, row.created_at) for row in rows]


def keyring() -> KeyRing:
    """The current app's key ring (built once in create_app, see services.py)."""
    from authserver.services import services

    return services().keyring
