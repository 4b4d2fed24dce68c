"""Who may call a function: a static bearer token, a Knative Eventing OIDC token, or (explicitly) anyone.

A POST to the binder, the sweeper or the extender is accepted only when its
``Authorization: Bearer <credential>`` is one of:

* the **static token** of the function (``NEUROKUBE_EVENT_TOKEN`` for the binder and sweeper,
  ``NEUROKUBE_TOKEN`` for the extender), compared in constant time after hashing both sides;
* a **Knative Eventing OIDC token** (``NEUROKUBE_OIDC_AUDIENCE`` set): a JWT that the cluster's
  service-account issuer signed for this function's audience. With the ``authentication-oidc``
  feature on, Knative's senders (the ApiServerSource adapter, the Broker's filter, a PingSource)
  get one per audience from the TokenRequest API and send it on every delivery. It is checked
  here as Knative's own verifier does: the signature against the issuer's keys (the apiserver's
  ``/openid/v1/jwks``, fetched with the function's own credentials and cached), the issuer (the
  apiserver's ``/.well-known/openid-configuration`` unless ``NEUROKUBE_OIDC_ISSUER`` names it),
  the audience, expiry and not-before (30 s leeway), and, when ``NEUROKUBE_OIDC_SUBJECTS`` lists
  them, the subject (``system:serviceaccount:<namespace>:<name>`` of the sender).

With neither configured a function refuses to start, unless ``NEUROKUBE_INSECURE=1`` says that
anyone who can reach it may call it (a warning at start-up and ``neurokube_insecure 1`` in
/metrics). Every refusal is a 401 that says what was wrong and is counted by reason
(``neurokube_auth_failures_total``). docs/OPERATIONS.md, "Security model", says what is trusted.

PyJWT does the JWT arithmetic (signature algorithms, claims); this module only decides which
keys, issuer and audience to trust and maps failures to answers.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from neurokube.errors import NeuroKubeError

#: Signature algorithms a Kubernetes service-account issuer uses (RSA or ECDSA keys); "none" and
#: the HMAC family are never accepted (an HMAC "signature" keyed with a public key is a forgery).
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256")
LEEWAY_S = 30.0
KEYS_MAX_AGE_S = 300.0
KEYS_MIN_REFRESH_S = 10.0
MAX_CREDENTIAL_BYTES = 16 * 1024

#: Reasons of a refusal (the metric's label values: a fixed set).
MISSING, SCHEME, WRONG_TOKEN, BAD_JWT, UNKNOWN_KEY, BAD_SIGNATURE, EXPIRED, WRONG_AUDIENCE, WRONG_ISSUER, \
    WRONG_SUBJECT, KEYS_UNAVAILABLE = ("missing", "scheme", "wrong_token", "malformed_jwt", "unknown_key",
                                      "bad_signature", "expired", "wrong_audience", "wrong_issuer",
                                      "wrong_subject", "keys_unavailable")


class Unauthorized(Exception):
    """The request is not authenticated; ``reason`` is one of the constants above."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class Principal:
    """Who called: ``token`` (the static token), ``oidc`` (with the JWT's subject) or ``anonymous``."""

    kind: str
    subject: str = ""


ANONYMOUS = Principal("anonymous")
TOKEN = Principal("token")


class IssuerKeys:
    """The service-account issuer's public keys and name, fetched by ``fetch(path)`` (a GET on the
    apiserver with the function's credentials) and kept ``KEYS_MAX_AGE_S``; a token signed with a
    key id not in the set refreshes it at once, but at most every ``KEYS_MIN_REFRESH_S`` (so
    made-up key ids cannot make the function hammer the apiserver)."""

    def __init__(self, fetch: Callable[[str], dict], issuer: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._configured_issuer = issuer
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._issuer: str | None = issuer
        self._fetched_at = float("-inf")

    def issuer(self) -> str:
        self._ensure(force=False)
        assert self._issuer is not None
        return self._issuer

    def key(self, kid: str) -> jwt.PyJWK | None:
        self._ensure(force=False)
        if kid not in self._keys:
            self._ensure(force=True)
        return self._keys.get(kid)

    def _ensure(self, force: bool) -> None:
        with self._lock:
            age = self._clock() - self._fetched_at
            if self._keys and (age < KEYS_MAX_AGE_S and not force or age < KEYS_MIN_REFRESH_S):
                return
            try:
                if self._configured_issuer is None:
                    discovery = self._fetch("/.well-known/openid-configuration")
                    issuer = discovery.get("issuer") if isinstance(discovery, dict) else None
                    if not isinstance(issuer, str) or not issuer:
                        raise Unauthorized(KEYS_UNAVAILABLE, "the apiserver's OIDC discovery names no issuer")
                    self._issuer = issuer
                document = self._fetch("/openid/v1/jwks")
                keys = {}
                for entry in (document.get("keys") or []) if isinstance(document, dict) else []:
                    try:
                        key = jwt.PyJWK.from_dict(entry)
                    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                        continue  # a key type we cannot use cannot have signed a token we accept
                    if key.key_id:
                        keys[key.key_id] = key
            except (NeuroKubeError, OSError, ValueError) as exc:
                self._fetched_at = self._clock()  # do not retry on every request
                if not self._keys:
                    raise Unauthorized(KEYS_UNAVAILABLE,
                                       f"cannot read the service-account issuer's keys: {exc}") from None
                return  # keep the keys we had
            self._keys, self._fetched_at = keys, self._clock()


class Authenticator:
    """Checks one function's ``Authorization`` header (see the module docstring)."""

    def __init__(self, *, token: str | None = None, audience: str | None = None, keys: IssuerKeys | None = None,
                 subjects: tuple[str, ...] = (), insecure: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        if audience is not None and keys is None:
            raise ValueError("an OIDC audience needs the issuer's keys")
        self._digest = _digest(token) if token is not None else None
        self.audience = audience
        self.keys = keys
        self.subjects = frozenset(subjects)
        self.insecure = insecure and token is None and audience is None
        self.clock = clock

    @property
    def open(self) -> bool:
        """True when every request is accepted (no credential configured and insecure allowed)."""
        return self.insecure

    def check(self, header: str | None) -> Principal:
        """The caller, or :class:`Unauthorized`."""
        if self.open:
            return ANONYMOUS
        if self._digest is None and self.audience is None:
            raise Unauthorized(MISSING, "this function has no credential configured and is not insecure")
        if not header:
            raise Unauthorized(MISSING, "missing Authorization header")
        scheme, _, given = header.partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized(SCHEME, "the Authorization scheme must be Bearer")
        if len(given) > MAX_CREDENTIAL_BYTES:
            raise Unauthorized(BAD_JWT, "the bearer credential is too long")
        if self._digest is not None and hmac.compare_digest(_digest(given), self._digest):
            return TOKEN
        if self.audience is None or given.count(".") != 2:
            raise Unauthorized(WRONG_TOKEN, "wrong bearer token")
        return self._verify(given)

    def _verify(self, token: str) -> Principal:
        assert self.keys is not None and self.audience is not None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(BAD_JWT, f"not a JWT ({exc})") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(BAD_JWT, f"JWT algorithm {str(header.get('alg'))[:20]!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized(UNKNOWN_KEY, "the JWT names no signing key (kid)")
        key = self.keys.key(kid)
        if key is None:
            raise Unauthorized(UNKNOWN_KEY, "the JWT is signed with a key the cluster's issuer does not have")
        try:
            claims = jwt.decode(token, key, algorithms=[header["alg"]], audience=self.audience,
                                issuer=self.keys.issuer(), leeway=LEEWAY_S,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized(EXPIRED, "the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(WRONG_AUDIENCE, f"the JWT is not for audience {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(WRONG_ISSUER, "the JWT's issuer is not the cluster's") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized(BAD_SIGNATURE, "the JWT's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(BAD_JWT, f"invalid JWT ({exc})") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or (self.subjects and subject not in self.subjects):
            raise Unauthorized(WRONG_SUBJECT, "the JWT's subject may not call this function")
        return Principal("oidc", subject)


def _digest(text: str) -> bytes:
    """Both sides are hashed to 32 bytes first, so ``hmac.compare_digest`` takes the same time for
    a wrong token of any length or content (it would return early on a length mismatch)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
