"""A sidecar's key pair and certificate signing request (docs/security.md, "Identity").

Every sidecar makes its own ECDSA P-256 key and never sends it anywhere: meshui's CA sees
only the CSR. A new key is made for every renewal, so a key that leaked stops being useful
when its certificate is rotated out.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def csr_pem(key: ec.EllipticCurvePrivateKey, service: str) -> str:
    """A CSR naming ``service`` by its CN only: the CA puts the SPIFFE ID (which needs its
    trust domain) in the certificate, for the service the join token allows."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")
