"""Certificates, keys and CSRs made with cryptography for the identity tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from meshui.identity.root_store import new_root


def now() -> datetime:
    return datetime.now(UTC)


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ca_certificate(subject: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any,
                   *, ca: bool = True, days: int = 365,
                   not_after: datetime | None = None) -> x509.Certificate:
    start = now() - timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer.subject if issuer is not None else name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def operator_chain(trust_domain: str = "meshui.local") -> tuple[list[x509.Certificate], Any]:
    """A corporate root and an intermediate under it (issuing first); the intermediate's key."""
    root, root_key = new_root(trust_domain, now())
    key = ec.generate_private_key(ec.SECP256R1())
    intermediate = ca_certificate("corp intermediate", key, root, root_key)
    return [intermediate, root], key


def write_pem(path: Path, *items: Any, mode: int = 0o600) -> Path:
    data = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            data += item.public_bytes(serialization.Encoding.PEM)
        else:
            data += item.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    path.write_bytes(data)
    path.chmod(mode)
    return path


def csr_pem(key: Any = None, *, uri: str | None = None, common_name: str | None = None,
            dns: str | None = None) -> str:
    """A CSR of ``key`` (a new P-256 key by default), naming what it is given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        name(common_name) if common_name else x509.Name([]))
    sans: list[x509.GeneralName] = []
    if uri:
        sans.append(x509.UniformResourceIdentifier(uri))
    if dns:
        sans.append(x509.DNSName(dns))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def p384_key() -> Any:
    return ec.generate_private_key(ec.SECP384R1())


def with_bad_signature(pem: str) -> str:
    """The CSR with one byte of its signature flipped (still valid DER, wrong signature)."""
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    csr = x509.load_der_x509_csr(bytes(der))
    return csr.public_bytes(serialization.Encoding.PEM).decode()
