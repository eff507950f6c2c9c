"""A small certificate authority for the sidecar's mTLS tests (meshui's own CA is meshui/identity).

Issues what a test needs: good certificates for a service, expired ones, ones of another CA,
ones without a SPIFFE ID, and writes them as the PEM files of ``--cert/--key/--trust-bundle``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxies.identity import keys
from tests.certificates import self_signed_root

TRUST_DOMAIN = "test.mesh"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class MeshCA:
    def __init__(self, name: str = "test root") -> None:
        self.cert, self.key = self_signed_root(name, days=30)
        self.roots_pem = _pem(self.cert)

    def issue(
        self, service: str | None, key: ec.EllipticCurvePrivateKey | None = None, *,
        lifetime_s: float = 3600, start_s: float = -60, uri: str | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, str]:
        """A key and a leaf for ``service`` (its SPIFFE ID, or ``uri`` instead; None: no SAN)."""
        key = key or keys.new_key()
        return key, self.sign(service, key.public_key(), lifetime_s=lifetime_s, start_s=start_s, uri=uri)

    def sign(
        self, service: str | None, public_key: ec.EllipticCurvePublicKey, *,
        lifetime_s: float = 3600, start_s: float = -60, uri: str | None = None,
    ) -> str:
        now = dt.datetime.now(dt.UTC)
        name = uri if uri is not None else (
            None if service is None else f"spiffe://{TRUST_DOMAIN}/service/{service}")
        # A certificate must name something: a subject when it has no SAN.
        subject = x509.Name([] if name else [x509.NameAttribute(NameOID.COMMON_NAME, "anon")])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(seconds=start_s))
            .not_valid_after(now + dt.timedelta(seconds=start_s + lifetime_s))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        if name is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(name)]), critical=True)
        return _pem(builder.sign(self.key, hashes.SHA256()))

    def files(self, directory: Path, service: str, **options: object) -> tuple[str, str, str]:
        """``--cert``, ``--key`` and ``--trust-bundle`` files of a certificate for ``service``."""
        key, chain = self.issue(service, **options)  # type: ignore[arg-type]
        directory.mkdir(parents=True, exist_ok=True)
        cert_file, key_file, bundle_file = (directory / f"{service}.{n}" for n in ("crt", "key", "roots"))
        cert_file.write_text(chain)
        key_file.write_bytes(keys.key_pem(key))
        bundle_file.write_text(self.roots_pem)
        return str(cert_file), str(key_file), str(bundle_file)
