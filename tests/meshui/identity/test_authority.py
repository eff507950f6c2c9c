"""meshui's CA: the generated root on disk, an operator's intermediate, the trust bundle."""

from __future__ import annotations

import multiprocessing
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from meshui.identity.authority import CaSettings, build_authority
from meshui.identity.certs import CaProblem
from meshui.identity.root_store import ROOT_CERT, ROOT_KEY, load_or_create_root
from tests.meshui.identity.pki import ca_certificate, now, operator_chain, write_pem


def settings_for(tmp_path: Path, **fields: Any) -> CaSettings:
    values: dict[str, Any] = {"ca_dir": tmp_path / "ca", "ca_cert": None, "ca_key": None,
                              "extra_roots": None, "trust_domain": "meshui.local",
                              "lifetime_s": 86400}
    return CaSettings(**{**values, **fields})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_generates_a_p256_root_with_owner_only_permissions(tmp_path: Path) -> None:
    authority = build_authority(settings_for(tmp_path), now())
    directory = tmp_path / "ca"
    assert mode(directory) == 0o700
    assert mode(directory / ROOT_KEY) == 0o600
    root = authority.certificate
    assert root.subject.rfc4514_string() == "CN=meshui root CA meshui.local"
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(root.public_key().curve, ec.SECP256R1)  # type: ignore[union-attr]
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert root.not_valid_after_utc - root.not_valid_before_utc > timedelta(days=3649)
    assert authority.source == "generated"
    assert authority.intermediates == () and authority.chain_pem == ""
    assert authority.roots == (root,)


def test_a_restart_reads_the_same_root_back(tmp_path: Path) -> None:
    first = build_authority(settings_for(tmp_path), now())
    again = build_authority(settings_for(tmp_path), now())
    assert again.certificate == first.certificate
    assert again.bundle_version == first.bundle_version
    assert len(again.bundle_version) == 16


def _make_root(directory: str) -> bytes:
    cert, _, _ = load_or_create_root(Path(directory), "meshui.local", now())
    return cert.fingerprint(cert.signature_hash_algorithm)  # type: ignore[arg-type]


def test_processes_starting_at_once_end_up_with_one_root(tmp_path: Path) -> None:
    directory = str(tmp_path / "ca")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        fingerprints = pool.map(_make_root, [directory] * 8)
    assert len(set(fingerprints)) == 1
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == sorted([".lock", ROOT_CERT, ROOT_KEY])


def test_a_key_others_can_read_is_refused_naming_the_fix(tmp_path: Path) -> None:
    build_authority(settings_for(tmp_path), now())
    (tmp_path / "ca" / ROOT_KEY).chmod(0o644)
    with pytest.raises(CaProblem, match=r"readable by others \(mode 0644\); run chmod 600"):
        build_authority(settings_for(tmp_path), now())


def test_an_operator_intermediate_signs_and_its_chain_goes_with_each_leaf(tmp_path: Path) -> None:
    chain, key = operator_chain()
    config = settings_for(tmp_path, ca_cert=write_pem(tmp_path / "chain.pem", *chain),
                          ca_key=write_pem(tmp_path / "key.pem", key))
    authority = build_authority(config, now())
    assert authority.source == "operator"
    assert authority.certificate == chain[0]
    assert authority.roots == (chain[1],)  # the self-signed top is the bundle
    assert authority.intermediates == (chain[0],)
    assert not (tmp_path / "ca").exists()  # no root generated
    leaf = authority.sign(ec.generate_private_key(ec.SECP256R1()).public_key(), "payments",
                          now()).certificate
    sent = x509.load_pem_x509_certificates(authority.chain_of(leaf).encode())
    assert sent == [leaf, chain[0]]  # leaf + intermediates, never the root


@pytest.mark.parametrize("problem", ["wrong key", "not a CA", "expired", "no root", "order",
                                     "rsa key", "encrypted"])
def test_an_unusable_operator_ca_is_refused_with_a_clear_reason(tmp_path: Path, problem: str
                                                                ) -> None:
    from cryptography.hazmat.primitives import serialization

    chain, key = operator_chain()
    root = chain[1]
    root_key = None
    expected = {"wrong key": "is not the key of the first certificate",
                "not a CA": "is not a CA certificate", "expired": "expired at",
                "no root": "is not a self-signed root", "order": "is not the key of the first",
                "rsa key": "is a RSA 2048 key; the CA signs with ECDSA P-256",
                "encrypted": "is encrypted"}[problem]
    certs: list[x509.Certificate] = list(chain)
    key_path = tmp_path / "key.pem"
    if problem == "wrong key":
        key = ec.generate_private_key(ec.SECP256R1())
    if problem in ("not a CA", "expired"):
        from meshui.identity.root_store import new_root

        root, root_key = new_root("meshui.local", now())
        past = now() - timedelta(hours=1)
        certs = [ca_certificate("corp intermediate", key, root, root_key, ca=problem != "not a CA",
                                not_after=past if problem == "expired" else None), root]
    if problem == "no root":
        certs = [chain[0]]
    if problem == "order":
        certs = [chain[1], chain[0]]
    if problem == "rsa key":
        from tests.meshui.identity.pki import rsa_key

        key = rsa_key()
    write_pem(key_path, key)
    if problem == "encrypted":
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
    config = settings_for(tmp_path, ca_cert=write_pem(tmp_path / "chain.pem", *certs),
                          ca_key=key_path)
    with pytest.raises(CaProblem, match=expected) as refused:
        build_authority(config, now())
    assert str(refused.value).startswith(("MESHUI_CA_CERT", "MESHUI_CA_KEY"))


def test_extra_roots_join_the_trust_bundle(tmp_path: Path) -> None:
    old_chain, _ = operator_chain()
    extra = write_pem(tmp_path / "old-roots.pem", old_chain[1])
    authority = build_authority(settings_for(tmp_path, extra_roots=extra), now())
    assert authority.roots == (authority.certificate, old_chain[1])
    bundle = x509.load_pem_x509_certificates(authority.roots_pem.encode())
    assert bundle == [authority.certificate, old_chain[1]]
    alone = build_authority(settings_for(tmp_path), now())
    assert alone.bundle_version != authority.bundle_version


def test_an_extra_root_that_is_no_ca_is_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leafish = ca_certificate("not a ca", key, None, key, ca=False)
    with pytest.raises(CaProblem, match="MESHUI_CA_EXTRA_ROOTS: certificate 1 .* is not a CA"):
        build_authority(settings_for(tmp_path, extra_roots=write_pem(tmp_path / "x.pem", leafish)),
                        now())
