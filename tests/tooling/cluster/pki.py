"""Certificates and keys for the local control plane, made with ``cryptography``.

One throw-away CA signs everything: serving certificates for etcd and kube-apiserver
(loopback names only), client certificates for kube-apiserver -> etcd, kube-apiserver -> kubelet,
the admin (``system:masters``) and kube-controller-manager, plus the ServiceAccount signing key
pair; a node's kubelet and kube-proxy certificates are added by :func:`generate_node`.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.0.0.1"  # first address of --service-cluster-ip-range
API_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """Paths of everything :func:`generate` writes (PEM files)."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
    )


def _leaf(
    pki: Pki,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    name: str,
    common_name: str,
    *,
    organization: str | None = None,
    server: bool = False,
    client: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        _builder(_name(common_name, organization), ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if dns or ips:
        alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    _write_key(pki.key(name), key)
    _write_cert(pki.cert(name), builder.sign(ca_key, hashes.SHA256()))


def generate_node(root: Path, node_name: str, node_ip: str) -> Pki:
    """Certificates of a node, signed by the CA already in ``root`` (see :func:`generate`).

    ``kubelet-client``: ``CN=system:node:<name>, O=system:nodes`` (the Node authorizer and
    NodeRestriction); ``kubelet-serving``: the kubelet's HTTPS endpoint on ``node_ip``;
    ``kube-proxy``: ``CN=system:kube-proxy`` (bound to ``system:node-proxier`` by default).
    """
    pki = Pki(root)
    ca_key = serialization.load_pem_private_key((root / "ca.key").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the cluster CA key is not an EC key")
    ca_name = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).subject
    leaf = functools.partial(_leaf, pki, ca_key, ca_name)
    node = f"system:node:{node_name}"
    leaf("kubelet-client", node, organization="system:nodes", client=True)
    leaf("kubelet-serving", node, organization="system:nodes", server=True, dns=(node_name,), ips=(node_ip,))
    leaf("kube-proxy", "system:kube-proxy", client=True)
    return pki


def generate(root: Path) -> Pki:
    """Write a fresh CA, leaf certificates and the ServiceAccount key pair into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    pki = Pki(root)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("shards-local-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    _write_key(root / "ca.key", ca_key)
    _write_cert(pki.ca_cert, ca_cert)

    leaf = functools.partial(_leaf, pki, ca_key, ca_name)
    loopback = ("127.0.0.1",)
    leaf("etcd-server", "etcd", server=True, client=True, dns=("localhost",), ips=loopback)
    leaf("apiserver-etcd-client", "kube-apiserver-etcd-client", client=True)
    leaf(
        "apiserver", "kube-apiserver", server=True,
        dns=API_DNS_NAMES, ips=(*loopback, SERVICE_IP),
    )  # fmt: skip
    leaf("admin", "shards-admin", organization="system:masters", client=True)
    leaf("controller-manager", "system:kube-controller-manager", client=True)
    # kube-apiserver -> kubelet (logs, exec, port-forward): a client the kubelet's webhook
    # authorizer lets through (system:masters). Made always: the flags are harmless without a node.
    leaf("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
         organization="system:masters", client=True)  # fmt: skip

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
