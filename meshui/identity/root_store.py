"""The root meshui generates on its first start, kept in ``MESHUI_CA_DIR`` (docs/security.md).

The directory is 0700, the key 0600, and the pair is made once however many processes start
at the same moment (several ASGI workers, Celery, a management command): whoever holds the
directory's lock (``flock`` on ``.lock``) either finds the pair or writes it, each file
first under a temporary name and then renamed, the certificate last. The certificate is
the marker that the pair is whole: a key without one (a crash between the two renames) is
replaced.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshui.identity.certs import CaProblem, describe_key, is_p256, new_serial

ROOT_CERT = "root.pem"
ROOT_KEY = "root.key"
LOCK_FILE = ".lock"
ROOT_LIFETIME = timedelta(days=3650)
CLOCK_SKEW = timedelta(seconds=60)


def root_name(trust_domain: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"meshui root CA {trust_domain}")])


def new_root(trust_domain: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed ECDSA P-256 root for ten years. pathlen 1: it signs the leaves itself,
    and may later sign one intermediate (a move to an operator's CA under it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = root_name(trust_domain)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(new_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _private_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(directory.stat().st_mode) != 0o700:
            directory.chmod(0o700)  # made by someone else, or under a loose umask
    except OSError as exc:
        raise CaProblem(f"MESHUI_CA_DIR: cannot create {directory} (mode 0700): "
                        f"{exc.strerror or exc}") from None


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """``data`` at ``path`` with ``mode`` from the first byte on (never a moment wider)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def _load(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key_path, cert_path = directory / ROOT_KEY, directory / ROOT_CERT
    if not key_path.exists():
        raise CaProblem(f"MESHUI_CA_DIR: {cert_path} has no key beside it ({key_path}); restore "
                        "the key, or move the directory away to make a new root (every "
                        "sidecar then needs the new trust bundle)")
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        raise CaProblem(f"MESHUI_CA_DIR: {key_path} is readable by others (mode {mode:04o}); "
                        f"run chmod 600 {key_path}")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CaProblem(f"MESHUI_CA_DIR: the root in {directory} cannot be read: {exc}") from None
    if not is_p256(key) or not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaProblem(f"MESHUI_CA_DIR: {key_path} is {describe_key(key)}; meshui's root is "
                        "ECDSA P-256")
    if cert.public_key() != key.public_key():
        raise CaProblem(f"MESHUI_CA_DIR: {key_path} is not the key of {cert_path}")
    return cert, key


def load_or_create_root(directory: Path, trust_domain: str, now: datetime
                        ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    """The root kept in ``directory``, made first if there is none; and whether it was made."""
    _private_directory(directory)
    with _locked(directory):
        if (directory / ROOT_CERT).exists():
            return (*_load(directory), False)
        cert, key = new_root(trust_domain, now)
        _write_new(directory / ROOT_KEY, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), 0o600)
        _write_new(directory / ROOT_CERT, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert, key, True
