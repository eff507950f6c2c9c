"""The checks a sidecar's certificate signing request passes before it is signed.

Pure: the CSR's PEM text and the identity its join token allows in, its P-256 public key
out, or ``CsrRefused`` with the control channel's code (``bad_csr`` or
``identity_mismatch``) and a reason a person can act on. Nothing of the CSR but its key
goes into the certificate (leaf.py): the identity is the join token's, so a CSR can ask for
no more than that; a CSR naming another one is refused rather than silently corrected, so
a misconfigured sidecar learns why.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshui.identity.certs import describe_key, is_p256
from meshui.registry.frames import BAD_CSR, IDENTITY_MISMATCH

# A P-256 CSR with a SPIFFE ID is ~500 bytes of PEM; anything near this is not one.
CSR_MAX_BYTES = 8192
PEM_HEADER = "-----BEGIN CERTIFICATE REQUEST-----"
SIGNATURE_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


class CsrRefused(ValueError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _bad(reason: str) -> CsrRefused:
    return CsrRefused(BAD_CSR, reason)


def _parse(pem: str) -> x509.CertificateSigningRequest:
    size = len(pem.encode("utf-8", "surrogatepass"))
    if size > CSR_MAX_BYTES:
        raise _bad(f"the CSR is {size} bytes of PEM; at most {CSR_MAX_BYTES}")
    if PEM_HEADER not in pem:
        raise _bad(f"not a PEM certificate request: the text has no '{PEM_HEADER}' line")
    try:
        return x509.load_pem_x509_csr(pem.encode("utf-8", "surrogatepass"))
    except ValueError as exc:
        raise _bad(f"the PEM certificate request cannot be parsed: {exc}") from None


def _names(csr: x509.CertificateSigningRequest) -> tuple[list[str], list[str]]:
    """The URI SANs and the common names the CSR asks for."""
    try:
        extensions = csr.extensions
        common_names = [str(a.value) for a in csr.subject.get_attributes_for_oid(
            NameOID.COMMON_NAME)]
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise _bad(f"the CSR's subject or extensions cannot be read: {exc}") from None
    try:
        sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], common_names
    others = [name for name in sans if not isinstance(name, x509.UniformResourceIdentifier)]
    if others:
        raise _bad(f"the CSR asks for {len(others)} name(s) other than a URI SAN "
                   f"({type(others[0]).__name__} {others[0].value!r}); a mesh certificate "
                   "carries only the SPIFFE ID")
    return [name.value for name in sans], common_names


def checked_key(pem: str, identity: str, service: str) -> ec.EllipticCurvePublicKey:
    """The CSR's key, if the CSR may be signed for ``identity`` (``service``'s SPIFFE ID)."""
    csr = _parse(pem)
    try:
        signed = csr.is_signature_valid
        algorithm = csr.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise _bad(f"the CSR's signature algorithm is not supported: {exc}") from None
    if not signed:
        raise _bad("the CSR's signature does not verify: it must be signed with the private "
                   "key whose public key it carries")
    try:
        key = csr.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise _bad(f"the CSR's public key cannot be read: {exc}") from None
    if not is_p256(key) or not isinstance(key, ec.EllipticCurvePublicKey):
        raise _bad(f"the CSR's key is {describe_key(key)}; the mesh takes ECDSA P-256 keys "
                   "only (generate one with curve secp256r1)")
    if not isinstance(algorithm, SIGNATURE_HASHES):
        name = algorithm.name if algorithm is not None else "none"
        raise _bad(f"the CSR is signed with {name}; sign it with ECDSA and SHA-256")
    uris, common_names = _names(csr)
    for uri in uris:
        if uri != identity:
            raise CsrRefused(IDENTITY_MISMATCH, (
                f"the CSR asks for {uri!r} but its join token is for {service!r}, whose "
                f"identity is {identity!r}"))
    if len(uris) > 1:
        raise _bad(f"the CSR names its SPIFFE ID {len(uris)} times; a certificate carries "
                   "exactly one")
    for name in common_names:
        if name not in (service, identity):
            raise CsrRefused(IDENTITY_MISMATCH, (
                f"the CSR's subject is CN={name!r} but its join token is for {service!r}; "
                f"leave the subject empty or use CN={service}"))
    return key
