"""A throw-away PKI for one local cluster: a CA, the apiserver's serving certificate, one client
certificate per component, a front-proxy (request-header) CA and client, and the service-account
signing key pair; and a static admin bearer token (``--token-auth-file``) for clients that
authenticate with a token, as exec credential plugins of managed clusters do.

Client identities follow the bootstrap RBAC of kube-apiserver: the CN is the user name and the
O entries are groups (``system:kube-scheduler`` and ``system:kube-controller-manager`` have their
own ClusterRoles; ``system:masters`` is cluster-admin).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
FRONT_PROXY_CLIENT = "front-proxy-client"
TOKEN_USER = "neurokube-token-admin"  # the user of the static admin token (tokens.csv)


@dataclass(frozen=True)
class Identity:
    """A client certificate subject: user name and groups."""

    user: str
    groups: tuple[str, ...] = ()


#: One client certificate per component (file stem -> identity).
CLIENTS: dict[str, Identity] = {
    "admin": Identity("neurokube-admin", ("system:masters",)),
    "kube-controller-manager": Identity("system:kube-controller-manager"),
    "kube-scheduler": Identity("system:kube-scheduler"),
    # KWOK plays every kubelet; it patches node and pod status across the cluster.
    "kwok": Identity("neurokube-kwok", ("system:masters",)),
    # Least privilege, granted by the ClusterRole in rbac.py.
    "receive-adapter": Identity("neurokube-receive-adapter"),
}


@dataclass(frozen=True)
class Pki:
    """Paths of the generated files in ``<state>/pki``."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def sa_public(self) -> Path:
        return self.root / "sa.pub"

    @property
    def sa_private(self) -> Path:
        return self.root / "sa.key"

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.root / "front-proxy-ca.crt"

    @property
    def front_proxy_ca_key(self) -> Path:
        return self.root / "front-proxy-ca.key"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.root / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.root / "front-proxy-client.key"

    @property
    def token_file(self) -> Path:
        """The apiserver's static token file (``--token-auth-file``): one admin token, for clients
        that authenticate with a bearer token (exec credential plugins, as managed clusters do)."""
        return self.root / "tokens.csv"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    def client_cert(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.root / f"{name}.key"


def generate(root: Path, service_ip: str) -> Pki:
    """Write a fresh PKI under ``root`` for an apiserver on 127.0.0.1 and return its paths."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    pki = Pki(root)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew

    ca_cert, ca_key = _new_ca(pki.ca_cert, pki.ca_key, "neurokube-local-ca", now)
    names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local"]
    ips = ["127.0.0.1", service_ip]
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    _issue(pki.serving_cert, pki.serving_key, ca_cert, ca_key, now, Identity("kube-apiserver"),
           ExtendedKeyUsageOID.SERVER_AUTH, sans)
    for stem, identity in CLIENTS.items():
        _issue(pki.client_cert(stem), pki.client_key(stem), ca_cert, ca_key, now, identity,
               ExtendedKeyUsageOID.CLIENT_AUTH)

    # The request-header (front proxy) CA: with it the apiserver publishes a complete
    # kube-system/extension-apiserver-authentication ConfigMap, which kube-scheduler and
    # kube-controller-manager read for their own authentication (as with kubeadm).
    proxy_ca_cert, proxy_ca_key = _new_ca(pki.front_proxy_ca_cert, pki.front_proxy_ca_key,
                                          "neurokube-front-proxy-ca", now)
    _issue(pki.front_proxy_client_cert, pki.front_proxy_client_key, proxy_ca_cert, proxy_ca_key, now,
           Identity(FRONT_PROXY_CLIENT), ExtendedKeyUsageOID.CLIENT_AUTH)

    token = secrets.token_urlsafe(32)
    _write_private(pki.admin_token, token + "\n")
    _write_private(pki.token_file, f'{token},{TOKEN_USER},{TOKEN_USER},"system:masters"\n')

    # Service-account tokens are signed with RS256, the algorithm every verifier supports.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_private, sa_key)
    pki.sa_public.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki


def _new_ca(cert_path: Path, key_path: Path, name: str, now: dt.datetime
            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert, key


def _issue(cert_path: Path, key_path: Path, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
           now: dt.datetime, identity: Identity, usage: x509.ObjectIdentifier,
           sans: list[x509.GeneralName] | None = None) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in identity.groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.user))
    builder = (
        _builder(x509.Name(attributes), ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_key(key_path, key)
    _write_cert(cert_path, builder.sign(ca_key, hashes.SHA256()))


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: dt.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
