"""Small readers of PEM files and descriptions of keys and certificates for error messages.

Every problem with the CA's files is a ``CaProblem`` whose text names the file (or the
variable that points at it) and says what to do: meshui refuses to start on one
(apps.py), as it does on any bad setting.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

# x509.random_serial_number() has 159 bits; the contract's serials are 128 bits with the
# top bit set, so every serial is 32 lower-case hex digits whether or not it is padded.
SERIAL_BITS = 128


class CaProblem(ValueError):
    """The CA's configuration or files cannot be used; the text says what to fix."""


def new_serial() -> int:
    return secrets.randbits(SERIAL_BITS - 1) | (1 << (SERIAL_BITS - 1))


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def describe_key(key: Any) -> str:
    """``EC secp384r1``, ``RSA 2048``, ``Ed25519``: what a key is, for a refusal's reason."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "Ed448"
    return type(key).__name__


def is_p256(key: Any) -> bool:
    return (isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey)
            and isinstance(key.curve, ec.SECP256R1))


def subject_text(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def may_sign_certificates(cert: x509.Certificate) -> bool:
    """BasicConstraints CA:TRUE, and keyCertSign if it has a KeyUsage at all (RFC 5280 4.2.1.3)."""
    if not is_ca(cert):
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``cert`` (and the names chain)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and issued_by(cert, cert)


def validity_problem(cert: x509.Certificate, now: datetime) -> str | None:
    if now >= cert.not_valid_after_utc:
        return f"expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    if now < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    return None


def read_bytes(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CaProblem(f"{variable}: cannot read {path}: {exc.strerror or exc}") from None


def load_certificates(path: Path, variable: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in order; at least one."""
    data = read_bytes(path, variable)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CaProblem(f"{variable}: {path} is not a PEM file of certificates "
                        f"(-----BEGIN CERTIFICATE-----): {exc}") from None
    if not certs:
        raise CaProblem(f"{variable}: {path} holds no certificate")
    return certs


def pem_of(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")
