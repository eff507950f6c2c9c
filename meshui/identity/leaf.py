"""A sidecar's certificate: its SPIFFE ID, its own key, signed by the CA (docs/security.md).

Pure: the CA, the CSR's key, the identity and a clock in, a certificate out.
Subject ``CN=<service>`` (readable in ``openssl x509 -text``; the SPIFFE ID in the one URI
SAN is what peers check), serverAuth and clientAuth, CA:FALSE, 60 s of clock skew before
the issue time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshui.identity.certs import new_serial

CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Leaf:
    certificate: x509.Certificate
    issued_at: datetime  # whole seconds
    refresh_at: datetime  # two thirds of the lifetime after the issue


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def sign_leaf(issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
              public_key: ec.EllipticCurvePublicKey, service: str, identity: str,
              now: datetime, lifetime_s: int) -> Leaf:
    """The certificate of ``service``'s ``identity`` for ``lifetime_s`` seconds from ``now``.

    It never outlives its issuer (a chain with an expired CA verifies nowhere): past the
    CA's own end it is cut short, and the certificates page warns about the CA."""
    issued = now.replace(microsecond=0)
    not_after = min(issued + timedelta(seconds=lifetime_s), issuer.not_valid_after_utc)
    refresh = issued + timedelta(seconds=(not_after - issued).total_seconds() * 2 // 3)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(issued - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(identity)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return Leaf(cert, issued, refresh)
