"""What a CSR must be to be signed, and the certificate meshui signs for it."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from meshui.identity.authority import Authority, build_authority
from meshui.identity.csr import CSR_MAX_BYTES, CsrRefused, checked_key
from tests.meshui.identity.pki import (
    csr_pem,
    now,
    operator_chain,
    p384_key,
    rsa_key,
    with_bad_signature,
    write_pem,
)
from tests.meshui.identity.test_authority import settings_for

PAYMENTS = "spiffe://meshui.local/service/payments"


def refusal(pem: str) -> tuple[str, str]:
    with pytest.raises(CsrRefused) as refused:
        checked_key(pem, PAYMENTS, "payments")
    return refused.value.code, str(refused.value)


@pytest.mark.parametrize("pem, code, says", [
    ("", "bad_csr", "no '-----BEGIN CERTIFICATE REQUEST-----' line"),
    ("hello, I am a CSR", "bad_csr", "not a PEM certificate request"),
    ("-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!\n-----END CERTIFICATE REQUEST-----\n",
     "bad_csr", "cannot be parsed"),
    ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "bad_csr", "cannot be parsed"),
    ("-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * CSR_MAX_BYTES, "bad_csr",
     f"bytes of PEM; at most {CSR_MAX_BYTES}"),
])
def test_text_that_is_no_csr_is_bad_csr_saying_why(pem: str, code: str, says: str) -> None:
    assert refusal(pem)[0] == code
    assert says in refusal(pem)[1]


def test_a_csr_whose_signature_does_not_verify_is_bad_csr() -> None:
    code, reason = refusal(with_bad_signature(csr_pem(uri=PAYMENTS)))
    assert code == "bad_csr" and "signature does not verify" in reason


@pytest.mark.parametrize("key, named", [(rsa_key(), "RSA 2048"), (p384_key(), "EC secp384r1")])
def test_keys_other_than_p256_are_refused_naming_the_key(key: object, named: str) -> None:
    code, reason = refusal(csr_pem(key))
    assert code == "bad_csr"
    assert f"the CSR's key is {named}; the mesh takes ECDSA P-256 keys only" in reason


def test_another_service_s_spiffe_id_is_an_identity_mismatch() -> None:
    code, reason = refusal(csr_pem(uri="spiffe://meshui.local/service/catalog"))
    assert code == "identity_mismatch"
    assert "asks for 'spiffe://meshui.local/service/catalog'" in reason
    assert "join token is for 'payments'" in reason


def test_another_trust_domain_is_an_identity_mismatch() -> None:
    assert refusal(csr_pem(uri="spiffe://evil.example/service/payments"))[0] == "identity_mismatch"


def test_a_common_name_of_another_service_is_an_identity_mismatch() -> None:
    code, reason = refusal(csr_pem(common_name="catalog"))
    assert code == "identity_mismatch"
    assert "CN='catalog'" in reason and "use CN=payments" in reason


def test_a_dns_name_is_bad_csr() -> None:
    code, reason = refusal(csr_pem(uri=PAYMENTS, dns="payments.example"))
    assert code == "bad_csr" and "DNSName 'payments.example'" in reason


@pytest.mark.parametrize("names", [{}, {"uri": PAYMENTS}, {"common_name": "payments"},
                                   {"uri": PAYMENTS, "common_name": PAYMENTS}])
def test_a_csr_naming_its_own_identity_or_none_passes(names: dict[str, str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert checked_key(csr_pem(key, **names), PAYMENTS, "payments") == key.public_key()


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return build_authority(settings_for(tmp_path, lifetime_s=3600), now())


def test_the_issued_certificate_carries_the_spiffe_id_and_the_contract_s_fields(
    authority: Authority,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued_at = now()
    leaf = authority.sign(key.public_key(), "payments", issued_at)
    cert = leaf.certificate
    (uri,) = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uri == x509.UniformResourceIdentifier(PAYMENTS)
    assert cert.subject.rfc4514_string() == "CN=payments"
    assert cert.public_key() == key.public_key()
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.value.digest
    assert cert.serial_number.bit_length() == 128
    assert cert.not_valid_after_utc - leaf.issued_at == timedelta(seconds=3600)
    assert leaf.issued_at - cert.not_valid_before_utc == timedelta(seconds=60)
    assert leaf.refresh_at - leaf.issued_at == timedelta(seconds=2400)


def test_the_chain_verifies_against_the_trust_bundle(authority: Authority) -> None:
    leaf = authority.sign(ec.generate_private_key(ec.SECP256R1()).public_key(), "payments",
                          now()).certificate
    store = Store(list(x509.load_pem_x509_certificates(authority.roots_pem.encode())))
    verifier = PolicyBuilder().store(store).time(now()).build_client_verifier()
    verified = verifier.verify(leaf, list(authority.intermediates))
    assert verified.subjects == [x509.UniformResourceIdentifier(PAYMENTS)]


def test_an_operator_chain_verifies_with_openssl(tmp_path: Path) -> None:
    chain, key = operator_chain()
    authority = build_authority(settings_for(
        tmp_path, ca_cert=write_pem(tmp_path / "chain.pem", *chain),
        ca_key=write_pem(tmp_path / "key.pem", key)), now())
    leaf = authority.sign(ec.generate_private_key(ec.SECP256R1()).public_key(), "payments",
                          now()).certificate
    sent = tmp_path / "sent.pem"
    sent.write_text(authority.chain_of(leaf))
    (tmp_path / "bundle.pem").write_text(authority.roots_pem)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "bundle.pem"), "-untrusted", str(sent),
         "-purpose", "sslclient", str(sent)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
