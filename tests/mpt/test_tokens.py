"""Tests of mpt/tokens.py: key files, signing, every rejection, the local token."""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import json
import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpt.errors import TokenError
from mpt.settings import SecuritySettings, Settings
from mpt.tokens import (
    Claims,
    TokenVerifier,
    ensure_keypair,
    key_paths,
    load_private_key,
    load_public_key,
    local_token,
    sign_token,
    signing_key,
    verification_key,
    verify_token,
)
from tests.mpt._support.processes import Child, child_env

NOW = 1_800_000_000.0
AUD = "mpt-engine"


@pytest.fixture(scope="module")
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def public_key(private_key: Ed25519PrivateKey) -> Ed25519PublicKey:
    return private_key.public_key()


def _settings(data_dir: Path, **security: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings init kwarg
        data_dir=data_dir,
        security=SecuritySettings(**security),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "user-1",
        "role": "student",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        "jti": "abc123",
        "iss": "mpt",
        "aud": AUD,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign_raw(private_key: Ed25519PrivateKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, private_key, algorithm="EdDSA")


def _reason(token: str, public_key: Ed25519PublicKey, **kwargs: Any) -> str:
    with pytest.raises(TokenError) as info:
        verify_token(token, public_key, audience=kwargs.pop("audience", AUD), **kwargs)
    message = str(info.value)
    assert message.startswith("token rejected: ")
    return message


# --------------------------------------------------------------------------------------------
# Key files


def test_ensure_keypair_creates_private_0600_pkcs8_and_public(tmp_path: Path) -> None:
    paths = ensure_keypair(tmp_path / "data")

    assert paths.private_key == (tmp_path / "data" / "keys" / "jwt_ed25519.pem").absolute()
    assert paths.public_key == paths.private_key.with_name("jwt_ed25519.pub.pem")
    assert stat.S_IMODE(paths.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.private_key.parent.stat().st_mode) == 0o700
    assert paths.private_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert paths.public_key.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private, public = load_private_key(paths.private_key), load_public_key(paths.public_key)
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert private.public_key().public_bytes(*raw) == public.public_bytes(*raw)
    assert sorted(p.name for p in paths.private_key.parent.iterdir()) == [
        "jwt_ed25519.pem",
        "jwt_ed25519.pub.pem",
    ]  # no temporary files left


def test_ensure_keypair_keeps_an_existing_pair(tmp_path: Path) -> None:
    first = ensure_keypair(tmp_path)
    before = first.private_key.read_bytes(), first.public_key.read_bytes()

    assert ensure_keypair(tmp_path) == first
    assert (first.private_key.read_bytes(), first.public_key.read_bytes()) == before


def test_ensure_keypair_rewrites_a_missing_public_key(tmp_path: Path) -> None:
    paths = ensure_keypair(tmp_path)
    public = paths.public_key.read_bytes()
    paths.public_key.unlink()  # as after a crash between the two writes

    ensure_keypair(tmp_path)

    assert paths.public_key.read_bytes() == public


def test_ensure_keypair_refuses_a_public_key_of_another_pair(tmp_path: Path) -> None:
    paths = ensure_keypair(tmp_path)
    other = ensure_keypair(tmp_path / "other")
    paths.public_key.write_bytes(other.public_key.read_bytes())

    with pytest.raises(TokenError, match="does not belong to the private key") as info:
        ensure_keypair(tmp_path)
    assert str(paths.public_key) in str(info.value)


def test_ensure_keypair_concurrently_from_two_processes_yields_one_pair(
    tmp_path: Path,
) -> None:
    # Both processes wait for the same instant, then race through the same fresh data
    # directories; each prints the public key it ended up with per directory.
    dirs = [tmp_path / f"race{i}" for i in range(20)]
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mpt.tokens import ensure_keypair, load_private_key\n"
        "from cryptography.hazmat.primitives import serialization as s\n"
        "start = float(sys.argv[1])\n"
        "while time.time() < start: pass\n"
        "for d in sys.argv[2:]:\n"
        "    paths = ensure_keypair(Path(d))\n"
        "    key = load_private_key(paths.private_key).public_key()\n"
        "    print(d, key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex(), flush=True)\n"
    )
    start = time.time() + 1.5  # both interpreters are up by then
    args = ["-c", script, repr(start), *map(str, dirs)]
    children = [Child(args, env=child_env({}), cwd=tmp_path) for _ in range(2)]
    try:
        outputs = [dict(child.read_line(timeout_s=20).split() for _ in dirs) for child in children]
        assert all(child.finish(timeout_s=10) == 0 for child in children)
    finally:
        for child in children:
            child.close()

    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for d in dirs:
        paths = ensure_keypair(d)
        on_disk = load_public_key(paths.public_key).public_bytes(*raw).hex()
        assert outputs[0][str(d)] == outputs[1][str(d)] == on_disk
        assert stat.S_IMODE(paths.private_key.stat().st_mode) == 0o600
        assert len(list(paths.private_key.parent.iterdir())) == 2  # no temporary files left


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_ensure_keypair_that_loses_the_race_adopts_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministically what the two-process test provokes by timing: another process
    # writes its key between our existence check and our link.
    winner = Ed25519PrivateKey.generate()
    real_link = os.link

    def link_after_the_winner(src: Any, dst: Any) -> None:
        Path(dst).write_bytes(_pem(winner))
        real_link(src, dst)  # FileExistsError, as in the real race

    monkeypatch.setattr(os, "link", link_after_the_winner)
    paths = ensure_keypair(tmp_path)

    assert _raw(load_public_key(paths.public_key)) == _raw(winner.public_key())
    assert _raw(load_private_key(paths.private_key).public_key()) == _raw(winner.public_key())
    assert len(list(paths.private_key.parent.iterdir())) == 2  # our temporary file is gone


def test_ensure_keypair_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: Any, dst: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    paths = ensure_keypair(tmp_path)

    assert stat.S_IMODE(paths.private_key.stat().st_mode) == 0o600
    assert _raw(load_private_key(paths.private_key).public_key()) == _raw(
        load_public_key(paths.public_key)
    )
    assert len(list(paths.private_key.parent.iterdir())) == 2


def test_load_missing_key_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TokenError, match="does not exist") as info:
        load_private_key(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(TokenError, match="does not exist") as info:
        load_public_key(missing)
    assert str(missing) in str(info.value)


def test_load_unreadable_key_names_the_path(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.pem"
    directory.mkdir()
    with pytest.raises(TokenError, match="cannot read private key") as info:
        load_private_key(directory)
    assert str(directory) in str(info.value)


def test_load_garbage_names_the_path(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(TokenError, match="is not a PEM private key") as info:
        load_private_key(garbage)
    assert str(garbage) in str(info.value)
    with pytest.raises(TokenError, match="is not a PEM public key"):
        load_public_key(garbage)


def test_load_other_key_types_is_refused(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "ec.pem"
    private.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "ec.pub.pem"
    public.write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(TokenError, match="not an Ed25519 key") as info:
        load_private_key(private)
    assert str(private) in str(info.value)
    with pytest.raises(TokenError, match="not an Ed25519 key") as info:
        load_public_key(public)
    assert str(public) in str(info.value)


def test_load_encrypted_private_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "encrypted.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TokenError, match="is encrypted"):
        load_private_key(path)


# --------------------------------------------------------------------------------------------
# Signing and verifying


def test_round_trip(private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey) -> None:
    token = sign_token(private_key, sub="user-1", role="teacher", audience=AUD, ttl_s=1800, now=NOW)

    claims = verify_token(token, public_key, audience=AUD, now=NOW + 60)

    assert isinstance(claims, Claims)
    assert claims.sub == "user-1"
    assert claims.role == "teacher"
    assert claims.audience == (AUD,)
    assert claims.issued_at == datetime.fromtimestamp(NOW, tz=UTC)
    assert claims.expires_at == datetime.fromtimestamp(NOW + 1800, tz=UTC)
    assert len(claims.jti) == 32 and int(claims.jti, 16) >= 0
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"sub", "role", "exp", "iat", "jti", "iss", "aud"}
    assert payload["iss"] == "mpt"


def test_every_token_has_its_own_jti(private_key: Ed25519PrivateKey) -> None:
    tokens = {
        sign_token(private_key, sub="u", role="student", audience=AUD, ttl_s=60, now=NOW)
        for _ in range(3)
    }
    assert len(tokens) == 3


def test_several_audiences(private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey) -> None:
    token = sign_token(
        private_key, sub="u", role="admin", audience=["mpt-api", AUD], ttl_s=60, now=NOW
    )

    assert verify_token(token, public_key, audience=AUD, now=NOW).audience == ("mpt-api", AUD)
    assert verify_token(token, public_key, audience="mpt-api", now=NOW).role == "admin"
    assert "audience 'other'" in _reason(token, public_key, audience="other", now=NOW)


def test_verify_uses_the_clock_by_default(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = sign_token(private_key, sub="u", role="student", audience=AUD, ttl_s=60)
    assert verify_token(token, public_key, audience=AUD).sub == "u"
    old = sign_token(
        private_key, sub="u", role="student", audience=AUD, ttl_s=60, now=time.time() - 3600
    )
    assert "expired" in _reason(old, public_key)


def test_rejects_bad_signature(private_key: Ed25519PrivateKey) -> None:
    token = sign_token(private_key, sub="u", role="student", audience=AUD, ttl_s=60, now=NOW)
    other_public = Ed25519PrivateKey.generate().public_key()

    assert "signature does not verify" in _reason(token, other_public, now=NOW)


def test_rejects_a_tampered_payload(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = sign_token(private_key, sub="u", role="student", audience=AUD, ttl_s=60, now=NOW)
    header, _payload, signature = token.split(".")
    forged = _b64(json.dumps(_claims(sub="u", role="admin")).encode())

    assert "signature does not verify" in _reason(
        f"{header}.{forged}.{signature}", public_key, now=NOW
    )


def test_rejects_hs256_signed_with_the_public_key_bytes(public_key: Ed25519PublicKey) -> None:
    # The classic algorithm-confusion attack: HMAC keyed with the (public) verification key.
    # PyJWT refuses to create such a token, so it is built by hand.
    for encoding, fmt in (
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ):
        secret = public_key.public_bytes(encoding, fmt)
        signing_input = (
            _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
            + "."
            + _b64(json.dumps(_claims()).encode())
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(mac)}"

        assert "algorithm is not EdDSA" in _reason(token, public_key, now=NOW)


def test_rejects_alg_none(public_key: Ed25519PublicKey) -> None:
    token = jwt.encode(_claims(), key=None, algorithm="none")
    assert "algorithm is not EdDSA" in _reason(token, public_key, now=NOW)


def test_rejects_expired_beyond_the_leeway(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = sign_token(private_key, sub="u", role="student", audience=AUD, ttl_s=60, now=NOW)

    assert verify_token(token, public_key, audience=AUD, now=NOW + 60 + 29).sub == "u"
    assert "it has expired" in _reason(token, public_key, now=NOW + 60 + 30)
    assert "it has expired" in _reason(token, public_key, now=NOW + 61, leeway_s=0)


def test_rejects_a_token_issued_in_the_future(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = sign_token(private_key, sub="u", role="student", audience=AUD, ttl_s=600, now=NOW)

    assert verify_token(token, public_key, audience=AUD, now=NOW - 30).sub == "u"
    assert "issued in the future" in _reason(token, public_key, now=NOW - 31)


def test_rejects_a_token_not_valid_yet(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = _sign_raw(private_key, _claims(nbf=int(NOW) + 300))
    assert "not valid yet" in _reason(token, public_key, now=NOW)


def test_rejects_wrong_audience(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = sign_token(private_key, sub="u", role="student", audience="mpt-api", ttl_s=60, now=NOW)
    assert "not for audience 'mpt-engine'" in _reason(token, public_key, now=NOW)


def test_rejects_wrong_issuer(private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey) -> None:
    token = sign_token(
        private_key, sub="u", role="student", audience=AUD, ttl_s=60, issuer="evil", now=NOW
    )
    assert "not issued by 'mpt'" in _reason(token, public_key, now=NOW)


@pytest.mark.parametrize("claim", ["sub", "role", "exp", "iat", "jti", "iss", "aud"])
def test_rejects_a_missing_claim(
    claim: str, private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = _sign_raw(private_key, _claims(**{claim: None}))
    assert f"the {claim!r} claim is missing" in _reason(token, public_key, now=NOW)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (_claims(role="superuser"), "'role' claim is not one of student, teacher, admin"),
        (_claims(role=["admin"]), "'role' claim is not one of"),
        (_claims(sub=""), "the 'sub' claim is not a non-empty string"),
        (_claims(sub=42), "the 'sub' claim is not a non-empty string"),
        (_claims(jti=7), "the 'jti' claim is not a non-empty string"),
        (_claims(jti=""), "the 'jti' claim is not a non-empty string"),
        (_claims(exp="soon"), "'exp' claim is not a number"),
        (_claims(iat=True), "'iat' claim is not a number"),
        (_claims(aud=[]), "the 'aud' claim is missing"),
    ],
)
def test_rejects_invalid_claims(
    claims: dict[str, Any],
    reason: str,
    private_key: Ed25519PrivateKey,
    public_key: Ed25519PublicKey,
) -> None:
    assert reason in _reason(_sign_raw(private_key, claims), public_key, now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "..."])
def test_rejects_malformed_tokens(token: str, public_key: Ed25519PublicKey) -> None:
    assert "malformed" in _reason(token, public_key, now=NOW)


def test_rejection_messages_carry_no_token_contents(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    secret_sub, secret_role = "sub-7f3a9c", "role-1b2e4d"
    tokens = [
        _sign_raw(private_key, _claims(sub=secret_sub, role=secret_role)),
        _sign_raw(private_key, _claims(sub=secret_sub, aud="aud-elsewhere")),
        _sign_raw(private_key, _claims(sub=secret_sub, iss="iss-elsewhere")),
        _sign_raw(private_key, _claims(sub=secret_sub, exp=int(NOW) - 3600)),
    ]
    for token in tokens:
        message = _reason(token, public_key, now=NOW)
        for secret in (secret_sub, secret_role, "aud-elsewhere", "iss-elsewhere", token):
            assert secret not in message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sub": ""}, "subject"),
        ({"role": "root"}, "role"),
        ({"audience": []}, "audience"),
        ({"audience": ""}, "audience"),
        ({"ttl_s": 0}, "ttl_s=0"),
        ({"ttl_s": float("nan")}, "ttl_s=nan"),
    ],
)
def test_sign_validates_arguments(
    kwargs: dict[str, Any], match: str, private_key: Ed25519PrivateKey
) -> None:
    arguments: dict[str, Any] = {"sub": "u", "role": "student", "audience": AUD, "ttl_s": 60}
    arguments.update(kwargs)
    with pytest.raises(TokenError, match=match):
        sign_token(private_key, **arguments)


# --------------------------------------------------------------------------------------------
# Settings and the local token


def test_local_token_uses_the_data_dir_pair(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")

    token = local_token(settings)

    paths = ensure_keypair(tmp_path / "data")
    claims = verify_token(token, load_public_key(paths.public_key), audience="mpt-engine")
    assert (claims.sub, claims.role, claims.audience) == ("local-user", "student", (AUD,))
    lifetime = claims.expires_at - claims.issued_at
    assert 3600 <= lifetime.total_seconds() <= 3601
    assert verify_token(token, verification_key(settings), audience=AUD).sub == "local-user"


def test_local_token_arguments(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    token = local_token(settings, audience="mpt-api", role="teacher", sub="t-1", ttl_s=10)

    claims = verify_token(token, verification_key(settings), audience="mpt-api")
    assert (claims.sub, claims.role) == ("t-1", "teacher")


def test_configured_key_paths_win(tmp_path: Path) -> None:
    elsewhere = ensure_keypair(tmp_path / "elsewhere")
    settings = _settings(
        tmp_path / "data",
        private_key_path=elsewhere.private_key,
        public_key_path=elsewhere.public_key,
    )

    assert key_paths(settings) == elsewhere
    token = local_token(settings)
    assert verify_token(token, load_public_key(elsewhere.public_key), audience=AUD)
    assert not (tmp_path / "data").exists()  # nothing generated in the data dir
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signing_key(settings).public_key().public_bytes(*raw) == verification_key(
        settings
    ).public_bytes(*raw)


def test_configured_missing_key_is_an_error_naming_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, public_key_path=tmp_path / "missing.pub.pem")
    with pytest.raises(TokenError, match=r"missing\.pub\.pem"):
        verification_key(settings)


def test_default_key_paths_are_in_the_data_dir(tmp_path: Path) -> None:
    paths = key_paths(_settings(tmp_path / "data"))
    assert paths.private_key == tmp_path / "data" / "keys" / "jwt_ed25519.pem"
    assert paths.public_key == tmp_path / "data" / "keys" / "jwt_ed25519.pub.pem"
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------------------------
# TokenVerifier: remembers verified tokens, re-checks time on every call


def test_verifier_gives_the_same_claims_as_verify_token(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = _sign_raw(private_key, _claims())
    verifier = TokenVerifier(public_key, audience=AUD)
    first = verifier.verify(token, now=NOW)
    assert first == verify_token(token, public_key, audience=AUD, now=NOW)
    assert verifier.verify(token, now=NOW) == first  # answered from what it remembers
    assert verifier.cached == 1


def test_a_remembered_token_still_expires(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    token = _sign_raw(private_key, _claims(exp=int(NOW) + 60))
    verifier = TokenVerifier(public_key, audience=AUD, leeway_s=5.0)
    assert verifier.verify(token, now=NOW).sub == "user-1"
    assert verifier.cached == 1
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token, now=NOW + 66)


def test_verifier_remembers_no_rejected_token(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    verifier = TokenVerifier(public_key, audience=AUD)
    good = _sign_raw(private_key, _claims())
    forged = good[: good.rindex(".") + 1] + _b64(b"\0" * 64)
    other_audience = _sign_raw(private_key, _claims(aud="mpt-api"))
    rejected = ((forged, "signature"), (other_audience, "audience"), ("x.y.z", "malformed"))
    for token, reason in rejected:
        for _ in range(2):  # the second time is checked again, not remembered
            with pytest.raises(TokenError, match=reason):
                verifier.verify(token, now=NOW)
    assert verifier.cached == 0


def test_a_token_signed_by_another_key_fails_even_after_a_good_one(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    verifier = TokenVerifier(public_key, audience=AUD)
    verifier.verify(_sign_raw(private_key, _claims()), now=NOW)
    stranger = _sign_raw(Ed25519PrivateKey.generate(), _claims())
    with pytest.raises(TokenError, match="signature"):
        verifier.verify(stranger, now=NOW)


def test_verifier_keeps_at_most_max_cached_tokens(
    private_key: Ed25519PrivateKey, public_key: Ed25519PublicKey
) -> None:
    verifier = TokenVerifier(public_key, audience=AUD, max_cached=3)
    tokens = [_sign_raw(private_key, _claims(jti=f"t{i}")) for i in range(5)]
    for token in tokens:
        verifier.verify(token, now=NOW)
    assert verifier.cached == 3
    assert [verifier.verify(t, now=NOW).jti for t in tokens] == [f"t{i}" for i in range(5)]
    with pytest.raises(ValueError, match="max_cached"):
        TokenVerifier(public_key, audience=AUD, max_cached=-1)
