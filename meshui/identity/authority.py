"""meshui's certificate authority: who signs, the chain sent with each leaf, the trust bundle.

Two sources (docs/security.md, "Identity and the CA"): a root meshui generates on its first
start and keeps in ``MESHUI_CA_DIR`` (root_store.py), or the operator's intermediate,
``MESHUI_CA_CERT`` and ``MESHUI_CA_KEY`` (operator_ca.py). The trust bundle is the root at
the top of the chain plus every certificate of ``MESHUI_CA_EXTRA_ROOTS``, so during a CA
rotation sidecars trust the old root and the new one at once.

One ``Authority`` per process and per configuration, loaded on first use (or at start-up,
apps.py) and kept: its files are read again only after a restart.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asgiref.sync import sync_to_async
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.utils import timezone

from meshui.identity.certs import (
    CaProblem,
    is_ca,
    load_certificates,
    pem_of,
    subject_text,
)
from meshui.identity.leaf import Leaf, sign_leaf
from meshui.identity.operator_ca import load_operator_ca
from meshui.identity.root_store import load_or_create_root
from proxies.identity.spiffe import spiffe_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CaSettings:
    """What decides which CA a process runs (the cache key)."""

    ca_dir: Path
    ca_cert: Path | None
    ca_key: Path | None
    extra_roots: Path | None
    trust_domain: str
    lifetime_s: int

    @classmethod
    def current(cls) -> CaSettings:
        def path(value: object) -> Path | None:
            return Path(str(value)) if value else None

        return cls(Path(settings.MESHUI_CA_DIR), path(settings.MESHUI_CA_CERT),
                   path(settings.MESHUI_CA_KEY), path(settings.MESHUI_CA_EXTRA_ROOTS),
                   settings.MESHUI_TRUST_DOMAIN, settings.MESHUI_CERT_LIFETIME_S)


@dataclass(frozen=True, slots=True)
class Authority:
    certificate: x509.Certificate  # the CA that signs the leaves
    key: ec.EllipticCurvePrivateKey
    intermediates: tuple[x509.Certificate, ...]  # sent after each leaf (the root is not)
    roots: tuple[x509.Certificate, ...]  # the trust bundle: the CA's root, then extra roots
    trust_domain: str
    lifetime_s: int
    source: str  # "generated" or "operator"
    chain_pem: str  # the intermediates' PEM
    roots_pem: str
    bundle_version: str  # the first 16 hex digits of the roots' SHA-256

    def identity(self, service: str) -> str:
        return spiffe_id(self.trust_domain, service)

    def sign(self, public_key: ec.EllipticCurvePublicKey, service: str, now: datetime) -> Leaf:
        return sign_leaf(self.certificate, self.key, public_key, service,
                         self.identity(service), now, self.lifetime_s)

    def chain_of(self, leaf: x509.Certificate) -> str:
        """What a sidecar is sent: its leaf, then the intermediates (not the root)."""
        return pem_of(leaf) + self.chain_pem


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def extra_roots(path: Path | None) -> list[x509.Certificate]:
    if path is None:
        return []
    certs = load_certificates(path, "MESHUI_CA_EXTRA_ROOTS")
    for n, cert in enumerate(certs):
        if not is_ca(cert):
            raise CaProblem(f"MESHUI_CA_EXTRA_ROOTS: certificate {n + 1} of {path} "
                            f"({subject_text(cert)}) is not a CA certificate")
    return certs


def build_authority(config: CaSettings, now: datetime) -> Authority:
    """Load (or, the first time, generate) the CA ``config`` names, or raise CaProblem."""
    if config.ca_cert is not None and config.ca_key is not None:
        chain, key = load_operator_ca(config.ca_cert, config.ca_key, now)
        source = "operator"
    else:
        root, key, made = load_or_create_root(config.ca_dir, config.trust_domain, now)
        if made:
            logger.warning("identity: generated a new root CA in %s (%s); sidecars trust it "
                           "from the trust bundle", config.ca_dir, subject_text(root))
        chain, source = [root], "generated"
    roots: list[x509.Certificate] = []
    for cert in [chain[-1], *extra_roots(config.extra_roots)]:
        if all(_fingerprint(cert) != _fingerprint(seen) for seen in roots):
            roots.append(cert)
    roots_pem = "".join(pem_of(cert) for cert in roots)
    return Authority(
        certificate=chain[0], key=key, intermediates=tuple(chain[:-1]), roots=tuple(roots),
        trust_domain=config.trust_domain, lifetime_s=config.lifetime_s, source=source,
        chain_pem="".join(pem_of(cert) for cert in chain[:-1]), roots_pem=roots_pem,
        bundle_version=hashlib.sha256(roots_pem.encode("ascii")).hexdigest()[:16],
    )


_loaded: dict[CaSettings, Authority] = {}
_loading = threading.Lock()


def current_authority() -> Authority:
    """This process's CA (loaded, or generated, on the first call)."""
    config = CaSettings.current()
    authority = _loaded.get(config)
    if authority is not None:
        return authority
    with _loading:
        authority = _loaded.get(config)
        if authority is None:
            authority = _loaded[config] = build_authority(config, timezone.now())
        return authority


async def acurrent_authority() -> Authority:
    """``current_authority`` from async code: no thread hop once it is loaded."""
    authority = _loaded.get(CaSettings.current())
    if authority is not None:
        return authority
    return await sync_to_async(current_authority, thread_sensitive=False)()
