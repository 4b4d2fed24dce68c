"""neurokube.live.auth: static tokens and Knative OIDC tokens, as a verifier of the cluster's
service-account JWTs. Keys are generated here; the issuer's discovery and JWKS documents are
served by a stand-in for the apiserver (the e2e suite uses the real one): a token signed by the
issuer for the audience passes, and every other kind is a 401 with its own reason."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from neurokube.errors import TemporaryError
from neurokube.live import auth

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "serving.knative.dev/service/neurokube/neurokube-binder"
SENDER = "system:serviceaccount:neurokube:neurokube-pods-oidc-sources.knative.dev-apiserversource"
TOKEN = "a-static-token-of-some-length"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


ISSUER_KEY = rsa_key()
OTHER_KEY = rsa_key()


def jwk(private, kid: str) -> dict:
    doc = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return {**doc, "kid": kid, "use": "sig", "alg": "RS256"}


class Apiserver:
    """The two documents a verifier reads, and how often it read them."""

    def __init__(self, keys: list[dict], issuer: str = ISSUER) -> None:
        self.keys, self.issuer, self.reads = keys, issuer, []
        self.down = False

    def fetch(self, path: str) -> dict:
        self.reads.append(path)
        if self.down:
            raise TemporaryError("apiserver down")
        if path == "/.well-known/openid-configuration":
            return {"issuer": self.issuer, "jwks_uri": self.issuer + "/openid/v1/jwks"}
        if path == "/openid/v1/jwks":
            return {"keys": self.keys}
        raise AssertionError(path)


def claims(**changes) -> dict:
    now = int(time.time())
    doc = {"iss": ISSUER, "aud": [AUDIENCE], "sub": SENDER, "iat": now, "nbf": now, "exp": now + 3600}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def sign(private=ISSUER_KEY, kid="k1", alg="RS256", **changes) -> str:
    return jwt.encode(claims(**changes), private, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def apiserver():
    return Apiserver([jwk(ISSUER_KEY, "k1")])


def authenticator(apiserver, **kwargs) -> auth.Authenticator:
    return auth.Authenticator(token=kwargs.pop("token", TOKEN), audience=AUDIENCE,
                              keys=auth.IssuerKeys(apiserver.fetch, kwargs.pop("issuer", None)), **kwargs)


def test_a_token_the_issuer_signed_for_this_audience_passes(apiserver):
    principal = authenticator(apiserver).check("Bearer " + sign())
    assert principal == auth.Principal("oidc", SENDER)


def test_the_static_token_passes(apiserver):
    assert authenticator(apiserver).check("Bearer " + TOKEN) == auth.TOKEN
    assert apiserver.reads == []  # no key lookups for a static token


def _none_token() -> str:
    return jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})


def _hmac_with_the_public_key() -> str:
    """The classic algorithm confusion: HS256 keyed with the issuer's public key, which anyone has."""
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    public = ISSUER_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def _tampered() -> str:
    head, body, signature = sign().split(".")
    import base64

    doc = claims(sub="system:serviceaccount:evil:evil")
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


REFUSED = {
    "no header": (lambda: None, auth.MISSING),
    "basic scheme": (lambda: "Basic " + TOKEN, auth.SCHEME),
    "bearer without credential": (lambda: "Bearer ", auth.SCHEME),
    "wrong static token": (lambda: "Bearer " + TOKEN[:-1] + "x", auth.WRONG_TOKEN),
    "garbage with two dots": (lambda: "Bearer a.b.c", auth.BAD_JWT),
    "alg none": (lambda: "Bearer " + _none_token(), auth.BAD_JWT),
    "HS256 keyed with the public key": (lambda: "Bearer " + _hmac_with_the_public_key(), auth.BAD_JWT),
    "another key, same kid": (lambda: "Bearer " + sign(OTHER_KEY), auth.BAD_SIGNATURE),
    "claims changed after signing": (lambda: "Bearer " + _tampered(), auth.BAD_SIGNATURE),
    "unknown kid": (lambda: "Bearer " + sign(OTHER_KEY, kid="k9"), auth.UNKNOWN_KEY),
    "no kid": (lambda: "Bearer " + jwt.encode(claims(), ISSUER_KEY, algorithm="RS256"), auth.UNKNOWN_KEY),
    "wrong audience": (lambda: "Bearer " + sign(aud=["serving.knative.dev/service/neurokube/other"]),
                       auth.WRONG_AUDIENCE),
    "wrong issuer": (lambda: "Bearer " + sign(iss="https://elsewhere.example"), auth.WRONG_ISSUER),
    "expired": (lambda: "Bearer " + sign(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200,
                                         exp=int(time.time()) - 3600), auth.EXPIRED),
    "not yet valid": (lambda: "Bearer " + sign(nbf=int(time.time()) + 3600), auth.BAD_JWT),
    "no expiry": (lambda: "Bearer " + sign(exp=None), auth.BAD_JWT),
    "too long": (lambda: "Bearer " + "a" * (auth.MAX_CREDENTIAL_BYTES + 1), auth.BAD_JWT),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_every_other_credential_is_refused_with_its_reason(apiserver, case):
    header, reason = REFUSED[case]
    with pytest.raises(auth.Unauthorized) as caught:
        authenticator(apiserver).check(header())
    assert caught.value.reason == reason, caught.value.message


def test_subjects_restrict_who_may_call(apiserver):
    check = authenticator(apiserver, subjects=(SENDER,)).check
    assert check("Bearer " + sign()).subject == SENDER
    with pytest.raises(auth.Unauthorized) as caught:
        check("Bearer " + sign(sub="system:serviceaccount:default:default"))
    assert caught.value.reason == auth.WRONG_SUBJECT


def test_an_ecdsa_issuer_works_too():
    private = ec.generate_private_key(ec.SECP256R1())
    key = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key())), "kid": "e1"}
    apiserver = Apiserver([key])
    assert authenticator(apiserver).check("Bearer " + sign(private, kid="e1", alg="ES256")).kind == "oidc"


def test_a_configured_issuer_skips_discovery(apiserver):
    apiserver.issuer = "https://not-what-the-token-says"
    check = authenticator(apiserver, issuer=ISSUER).check
    assert check("Bearer " + sign()).kind == "oidc"
    assert "/.well-known/openid-configuration" not in apiserver.reads


def test_unknown_key_ids_refresh_the_keys_at_most_every_ten_seconds():
    now = [1000.0]
    apiserver = Apiserver([jwk(ISSUER_KEY, "k1")])
    keys = auth.IssuerKeys(apiserver.fetch, clock=lambda: now[0])
    check = auth.Authenticator(audience=AUDIENCE, keys=keys).check
    assert check("Bearer " + sign()).kind == "oidc"
    reads = len(apiserver.reads)
    for _ in range(20):  # made-up key ids must not make it hammer the apiserver
        with pytest.raises(auth.Unauthorized):
            check("Bearer " + sign(OTHER_KEY, kid="k2"))
    assert len(apiserver.reads) == reads
    apiserver.keys.append(jwk(OTHER_KEY, "k2"))  # the issuer rotates its keys
    now[0] += auth.KEYS_MIN_REFRESH_S + 1
    assert check("Bearer " + sign(OTHER_KEY, kid="k2")).kind == "oidc"


def test_unreadable_keys_refuse_and_known_keys_survive_an_outage():
    now = [1000.0]
    apiserver = Apiserver([jwk(ISSUER_KEY, "k1")])
    apiserver.down = True
    check = auth.Authenticator(audience=AUDIENCE, keys=auth.IssuerKeys(apiserver.fetch, clock=lambda: now[0])).check
    with pytest.raises(auth.Unauthorized) as caught:
        check("Bearer " + sign())
    assert caught.value.reason == auth.KEYS_UNAVAILABLE
    apiserver.down = False
    now[0] += auth.KEYS_MIN_REFRESH_S + 1
    assert check("Bearer " + sign()).kind == "oidc"
    apiserver.down = True
    now[0] += auth.KEYS_MAX_AGE_S + 1  # expired cache, apiserver down: the keys we had still verify
    assert check("Bearer " + sign()).kind == "oidc"


def test_open_only_when_nothing_is_configured():
    assert auth.Authenticator(insecure=True).check(None) == auth.ANONYMOUS
    assert auth.Authenticator(insecure=True).open
    assert not auth.Authenticator(token=TOKEN, insecure=True).open
    with pytest.raises(ValueError):
        auth.Authenticator(audience=AUDIENCE)
