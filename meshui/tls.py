"""The dashboard's own certificate (MESHUI_TLS_CERT, MESHUI_TLS_KEY), checked at start-up.

uvicorn reads the same two files (``--ssl-certfile``/``--ssl-keyfile``, docs/security.md,
"The dashboard over HTTPS"), but only when it binds, and a key that belongs to another
certificate fails there with OpenSSL's ``KEY_VALUES_MISMATCH``. Settings check them first, so
a wrong path, a file that is not PEM, an encrypted key or a mismatched pair stops every
meshui process with a message that names the variable and the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PublicKeyTypes

CERT_VARIABLE = "MESHUI_TLS_CERT"
KEY_VARIABLE = "MESHUI_TLS_KEY"


class TlsFilesError(ValueError):
    """The certificate or key files cannot serve HTTPS; the message says which and why."""


@dataclass(frozen=True)
class TlsFiles:
    """A certificate chain and its private key that belong together."""

    cert: Path
    key: Path
    subject: str  # of the first (leaf) certificate, for messages
    not_after: datetime


def _read(variable: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsFilesError(f"{variable}: {path} does not exist") from None
    except IsADirectoryError:
        raise TlsFilesError(f"{variable}: {path} is a directory, not a PEM file") from None
    except OSError as exc:
        raise TlsFilesError(f"{variable}: cannot read {path} ({exc.strerror})") from None


def _spki(public: CertificatePublicKeyTypes | PublicKeyTypes) -> bytes:
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def load_tls_files(cert: str, key: str) -> TlsFiles | None:
    """The pair, checked; ``None`` when neither is set (plain HTTP).

    The certificate file may hold a chain (leaf first, as uvicorn and OpenSSL expect); the
    key must be unencrypted PEM (uvicorn could take a password, but a password in an
    environment variable protects the key no better than the file's owner-only mode).
    """
    if not cert and not key:
        return None
    if not cert or not key:
        missing = CERT_VARIABLE if not cert else KEY_VARIABLE
        raise TlsFilesError(f"{missing} is not set: {CERT_VARIABLE} and {KEY_VARIABLE} go "
                            "together (both for HTTPS, neither for plain HTTP)")
    cert_path, key_path = Path(cert), Path(key)
    cert_pem, key_pem = _read(CERT_VARIABLE, cert_path), _read(KEY_VARIABLE, key_path)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TlsFilesError(f"{CERT_VARIABLE}: {cert_path} holds no PEM certificate "
                            "(-----BEGIN CERTIFICATE-----)") from None
    leaf = chain[0]
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsFilesError(f"{KEY_VARIABLE}: {key_path} is encrypted; give meshui the key "
                            "unencrypted, readable by its user only (chmod 600)") from None
    except ValueError:
        raise TlsFilesError(f"{KEY_VARIABLE}: {key_path} holds no PEM private key "
                            "(-----BEGIN PRIVATE KEY-----)") from None
    subject = leaf.subject.rfc4514_string() or "(empty subject)"
    if _spki(private.public_key()) != _spki(leaf.public_key()):
        raise TlsFilesError(f"{KEY_VARIABLE}: {key_path} is not the private key of the "
                            f"certificate in {CERT_VARIABLE} ({cert_path}, {subject})")
    return TlsFiles(cert=cert_path, key=key_path, subject=subject,
                    not_after=leaf.not_valid_after_utc)
