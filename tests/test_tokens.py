"""The token module directly: issuing, verifying, refusing forgeries, rotating, revoking."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authserver import accounts, tokens
from authserver.errors import Problem
from authserver.keys import keyring
from authserver.models import RefreshToken, Session


@pytest.fixture
def user(app):
    return accounts.create(email="grace@example.com", roles=["staff"])


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_issue_opens_a_session_and_signs_claims(app, user):
    response = tokens.issue(user, ["pwd"])
    assert response.token_type == "Bearer"
    assert response.expires_in == 900
    assert response.user.email == "grace@example.com"
    assert "password_hash" not in response.response()["user"]

    header = jwt.get_unverified_header(response.access_token)
    assert header["alg"] == "ES256" and header["kid"]
    claims = tokens.verify(response.access_token)
    assert claims.user_id == user.id
    assert claims.amr == ["pwd"]
    assert claims.roles == ["staff"]
    raw = claims.raw
    assert raw["iss"] == "https://auth.example.test" and raw["aud"] == "test-audience"
    assert raw["exp"] - raw["iat"] == 900 and raw["jti"]
    session = app.extensions["sqlalchemy"].session.get(Session, raw["sid"])
    assert session.user_id == user.id and session.amr == "pwd"


def test_refresh_token_is_stored_only_as_a_hash(app, user):
    response = tokens.issue(user, ["sms"])
    rows = app.extensions["sqlalchemy"].session.query(RefreshToken).all()
    assert len(rows) == 1
    assert rows[0].token_hash != response.refresh_token
    assert response.refresh_token not in rows[0].token_hash
    assert len(response.refresh_token) >= 43  # 256 bits, base64url


def test_expired_token_refused(app, user, clock):
    token = tokens.issue(user, ["pwd"]).access_token
    clock.travel(900 + 6)
    with pytest.raises(Problem) as info:
        tokens.verify(token)
    assert info.value.code == "invalid_token" and info.value.status == 401


def test_tampered_payload_refused(app, user):
    token = tokens.issue(user, ["pwd"]).access_token
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    forged = f"{header}.{_b64(claims)}.{signature}"
    with pytest.raises(Problem):
        tokens.verify(forged)


def test_alg_none_refused(app, user):
    token = tokens.issue(user, ["pwd"]).access_token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = f"{_b64({**header, 'alg': 'none'})}.{_b64(claims)}."
    with pytest.raises(Problem):
        tokens.verify(forged)


def test_hs256_signed_with_the_public_key_refused(app, user):
    """The classic RS/ES -> HS confusion: the public key used as an HMAC secret."""
    token = tokens.issue(user, ["pwd"]).access_token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    public_pem = keyring().get(header["kid"]).verifying_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac

    signing_input = f"{_b64({**header, 'alg': 'HS256'})}.{_b64(claims)}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    with pytest.raises(Problem):
        tokens.verify(forged)


def test_wrong_audience_and_issuer_refused(app, user):
    token = tokens.issue(user, ["pwd"]).access_token
    header = jwt.get_unverified_header(token)
    key = keyring().get(header["kid"])
    claims = jwt.decode(token, options={"verify_signature": False})
    for change in ({"aud": "another-service"}, {"iss": "https://evil.test"}):
        forged = jwt.encode({**claims, **change}, key.signing_key, algorithm="ES256",
                            headers={"kid": key.kid})
        with pytest.raises(Problem):
            tokens.verify(forged)


def test_token_signed_by_a_foreign_key_refused(app, user):
    token = tokens.issue(user, ["pwd"]).access_token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": header["kid"]})
    with pytest.raises(Problem):
        tokens.verify(forged)


def test_signed_token_with_odd_sid_or_foreign_sub_is_refused(app, user):
    token = tokens.issue(user, ["pwd"]).access_token
    header = jwt.get_unverified_header(token)
    key = keyring().get(header["kid"])
    claims = jwt.decode(token, options={"verify_signature": False})
    other = accounts.create(email="other@example.com")
    for change in ({"sid": [claims["sid"]]}, {"sid": {"a": 1}}, {"sub": other.id}):
        forged = jwt.encode({**claims, **change}, key.signing_key, algorithm="ES256",
                            headers={"kid": key.kid})
        with pytest.raises(Problem):
            tokens.verify(forged)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "e30.e30.", "x" * 5000])
def test_garbage_refused(app, garbage):
    with pytest.raises(Problem) as info:
        tokens.verify(garbage)
    assert info.value.code == "invalid_token"


def test_refresh_rotates_and_reuse_revokes_session(app, user, clock):
    first = tokens.issue(user, ["pwd"])
    second = tokens.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    tokens.verify(second.access_token)

    clock.travel(60)  # well outside the grace window
    with pytest.raises(Problem):
        tokens.refresh(first.refresh_token)
    # The thief's replay killed the whole session: the legitimate tokens die too.
    with pytest.raises(Problem):
        tokens.refresh(second.refresh_token)
    with pytest.raises(Problem):
        tokens.verify(second.access_token)


def test_refresh_replay_inside_grace_window_gets_the_same_successor(app, user):
    first = tokens.issue(user, ["pwd"])
    a = tokens.refresh(first.refresh_token)
    b = tokens.refresh(first.refresh_token)  # a concurrent client, seconds later
    assert a.refresh_token == b.refresh_token  # one chain, not two
    tokens.verify(a.access_token)
    tokens.verify(b.access_token)
    assert app.extensions["sqlalchemy"].session.query(RefreshToken).count() == 2


def test_a_thief_replaying_inside_the_grace_window_is_caught_later(app, user, clock):
    first = tokens.issue(user, ["pwd"])
    owner = tokens.refresh(first.refresh_token)
    thief = tokens.refresh(first.refresh_token)  # stolen, replayed within the grace
    clock.travel(60)
    tokens.refresh(owner.refresh_token)  # the owner moves on
    clock.travel(60)
    with pytest.raises(Problem):
        tokens.refresh(thief.refresh_token)  # a reuse: the session dies
    with pytest.raises(Problem):
        tokens.verify(owner.access_token)


def test_revoked_session_refuses_access_and_refresh(app, user):
    response = tokens.issue(user, ["pwd"])
    claims = tokens.verify(response.access_token)
    tokens.revoke_session(claims.session_id)
    with pytest.raises(Problem):
        tokens.verify(response.access_token)
    with pytest.raises(Problem):
        tokens.refresh(response.refresh_token)
    # Without the revocation check only signature and claims are checked (offline services).
    assert tokens.verify(response.access_token, check_revocation=False).user_id == user.id


def test_disabled_user_cannot_sign_in_or_refresh(app, user):
    response = tokens.issue(user, ["pwd"])
    accounts.disable(user)
    with pytest.raises(Problem) as info:
        tokens.issue(user, ["pwd"])
    assert info.value.code == "account_disabled"
    with pytest.raises(Problem):
        tokens.refresh(response.refresh_token)
    with pytest.raises(Problem):
        tokens.verify(response.access_token)


def test_rotated_key_keeps_verifying_old_tokens(app, user):
    old = tokens.issue(user, ["pwd"]).access_token
    old_kid = jwt.get_unverified_header(old)["kid"]
    keyring().rotate()
    new = tokens.issue(user, ["pwd"]).access_token
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    tokens.verify(old)
    tokens.verify(new)
    kids = {key["kid"] for key in keyring().jwks()["keys"]}
    assert old_kid in kids and len(kids) == 2


def test_private_key_encrypted_at_rest(app, user):
    from authserver.models import SigningKey

    tokens.issue(user, ["pwd"])
    row = app.extensions["sqlalchemy"].session.query(SigningKey).one()
    assert "PRIVATE KEY" not in row.private_key_encrypted
    public = json.loads(row.public_jwk)
    assert "d" not in public  # the private scalar never reaches the JWKS


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256", "HS256"])
def test_other_algorithms(tmp_path, sqlite_url, algorithm):
    from authserver import create_app
    from authserver.extensions import db
    from tests.conftest import base_config

    other = create_app({**base_config(tmp_path, "sqlite:///" + str(tmp_path / "a.db")),
                        "JWT_ALGORITHM": algorithm})
    with other.app_context():
        db.create_all()
        person = accounts.create(email="alg@example.com")
        token = tokens.issue(person, ["pwd"]).access_token
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        assert tokens.verify(token).user_id == person.id
        keys = keyring().jwks()["keys"]
        if algorithm == "HS256":
            assert keys == []  # a shared secret is never published
        else:
            assert keys[0]["alg"] == algorithm
        db.session.remove()


def test_rotation_by_another_process_takes_over_within_the_refresh_interval(app, user,
                                                                             monkeypatch):
    from authserver import keys
    from authserver.keys import KeyRing

    first = tokens.issue(user, ["pwd"]).access_token
    # e.g. `flask keys rotate` in a shell
    other_process = KeyRing(app.config["SECRET_KEY"], app.config["JWT_ALGORITHM"])
    new_kid = other_process.rotate().kid
    # Until the signer refreshes, it still signs with the key it has loaded.
    assert jwt.get_unverified_header(tokens.issue(user, ["pwd"]).access_token)["kid"] != new_kid
    monkeypatch.setattr(keys, "REFRESH_INTERVAL", 0.0)
    after = tokens.issue(user, ["pwd"]).access_token
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    tokens.verify(first)  # the retired key still verifies


def test_auth_time_is_the_sign_in_and_refreshing_keeps_it(app, user, clock):
    issued = tokens.issue(user, ["pwd"])
    signed_in = tokens.verify(issued.access_token).auth_time
    assert abs(signed_in - clock.now().timestamp()) < 2
    clock.travel(700)
    again = tokens.refresh(issued.refresh_token)
    claims = tokens.verify(again.access_token)
    assert claims.auth_time == signed_in  # a refresh is no new proof of who this is
    assert claims.raw["iat"] - claims.auth_time >= 700


def test_recent_auth_is_measured_against_reauth_max_age(app, user, clock):
    from authserver.auth import is_recent

    auth_time = tokens.verify(tokens.issue(user, ["pwd"]).access_token).auth_time
    assert is_recent(auth_time)
    # The server's clock runs on in real time under the offset: a few seconds of slack for
    # a loaded machine, either side of REAUTH_MAX_AGE (600).
    clock.travel(595)
    assert is_recent(auth_time)
    clock.travel(7)
    assert not is_recent(auth_time)
