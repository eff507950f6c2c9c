"""An intermediate CA the operator supplies: ``MESHUI_CA_CERT`` and ``MESHUI_CA_KEY``.

``MESHUI_CA_CERT`` holds the intermediate first, then each parent up to the self-signed
root. Everything is checked when meshui starts, so a wrong file stops it with a sentence
saying what to fix rather than handing sidecars certificates nobody can verify.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshui.identity.certs import (
    CaProblem,
    describe_key,
    is_p256,
    is_self_signed,
    issued_by,
    load_certificates,
    may_sign_certificates,
    read_bytes,
    subject_text,
    validity_problem,
)


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = read_bytes(path, "MESHUI_CA_KEY")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CaProblem(f"MESHUI_CA_KEY: {path} is encrypted; meshui reads an unencrypted PEM "
                        "key (openssl pkey -in KEY -out PLAIN), kept mode 0600") from None
    except ValueError as exc:
        raise CaProblem(f"MESHUI_CA_KEY: {path} is not a PEM private key: {exc}") from None
    if not is_p256(key) or not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaProblem(f"MESHUI_CA_KEY: {path} is a {describe_key(key)} key; the CA signs with "
                        "ECDSA P-256 (SHA-256), as the sidecars' keys are")
    return key


def load_operator_ca(cert_path: Path, key_path: Path, now: datetime
                     ) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    """The chain (issuing CA first, root last) and its key, or CaProblem saying what is wrong."""
    chain = load_certificates(cert_path, "MESHUI_CA_CERT")
    key = load_key(key_path)
    issuing = chain[0]
    if issuing.public_key() != key.public_key():
        raise CaProblem(f"MESHUI_CA_KEY: {key_path} is not the key of the first certificate in "
                        f"MESHUI_CA_CERT ({subject_text(issuing)}); give the intermediate's own "
                        "key, and the intermediate first in the file")
    for n, cert in enumerate(chain):
        where = f"MESHUI_CA_CERT: certificate {n + 1} of {cert_path} ({subject_text(cert)})"
        if not may_sign_certificates(cert):
            raise CaProblem(f"{where} is not a CA certificate (it needs BasicConstraints "
                            "CA:TRUE and, with a KeyUsage, keyCertSign)")
        problem = validity_problem(cert, now)
        if problem is not None:
            raise CaProblem(f"{where} {problem}")
        if n + 1 < len(chain) and not issued_by(cert, chain[n + 1]):
            raise CaProblem(f"{where} is not issued by the certificate after it; list the "
                            "intermediate first, then its parents in order up to the root")
    if not is_self_signed(chain[-1]):
        raise CaProblem(f"MESHUI_CA_CERT: the last certificate of {cert_path} "
                        f"({subject_text(chain[-1])}) is not a self-signed root; append the "
                        "chain up to and including the root (it is the trust bundle)")
    return chain, key
