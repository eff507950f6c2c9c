"""The sidecar's mesh identity and the TLS contexts made from it (docs/security.md, "mTLS").

``MeshIdentity`` holds what the control channel brought: the trust bundle (the roots every
peer's certificate must chain to; during a CA rotation, the old and the new) and this
sidecar's certificate with its key. From them it builds two ``ssl.SSLContext``s, TLS 1.3
only, each asking the other side for a certificate from the bundle:

- ``server``: the inbound listener's, for connections from other sidecars;
- ``client``: the outbound pools', for connections to other sidecars (whose SPIFFE ID is
  checked against the destination service after the handshake: ``check_peer``).

Both are rebuilt, and swapped by reference, whenever the bundle or the certificate changes;
connections already open keep the context they were made with. Until a certificate is
installed (or after it expired without renewal) both are None: outbound then goes in
plaintext and the inbound listener can only take plaintext.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from proxies.identity import keys
from proxies.identity.spiffe import peer_identity, service_of, trust_domain_of

log = logging.getLogger("proxies.identity")

# A renewal is due at 2/3 of a certificate's life (Linkerd, SPIRE and Istio renew then):
# meshui says when in ``refresh_at``; this is the fallback for a certificate without it.
REFRESH_FRACTION = 2 / 3


class IdentityError(ValueError):
    """A trust bundle or certificate that cannot be used; what is wrong, for a person."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """This sidecar's certificate in force, as the admin port and heartbeats show it."""

    spiffe_id: str
    trust_domain: str
    serial: str  # lower-case hex
    not_before: float  # epoch seconds
    not_after: float
    refresh_at: float
    installed_at: float
    chain_pem: bytes


def parse_bundle(roots_pem: str) -> list[x509.Certificate]:
    """The CA certificates of a PEM bundle (at least one; each must be a CA)."""
    try:
        roots = x509.load_pem_x509_certificates(roots_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise IdentityError(f"trust bundle: not PEM certificates ({exc})") from exc
    for index, root in enumerate(roots):
        try:
            constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise IdentityError(f"trust bundle: certificate {index} is not a CA certificate")
    return roots


def _load_chain(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """``load_cert_chain`` reads only files: hand it an anonymous in-memory one (Linux
    memfd), so the private key never touches a disk; elsewhere a private temporary file."""
    data = chain_pem + key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("meshui-identity", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="meshui-identity-") as directory:
        path = os.path.join(directory, "identity.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(data)
        context.load_cert_chain(path)


def build_context(server: bool, chain_pem: bytes, key_pem: bytes, roots_pem: str) -> ssl.SSLContext:
    """A TLS 1.3 context presenting ``chain_pem`` and requiring a peer certificate that
    chains to ``roots_pem``. Host names are not checked: peers are named by SPIFFE ID."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if not server:
        context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    if server:
        # No TLS 1.3 session tickets: sidecars keep pooled connections open and never resume
        # (a full handshake per connection), and OpenSSL spends a third of a handshake's CPU
        # making the two it sends by default (bench/RESULTS.md, "new TLS connections").
        context.num_tickets = 0
    context.load_verify_locations(cadata=roots_pem)
    _load_chain(context, chain_pem, key_pem)
    return context


class MeshIdentity:
    """The trust bundle, this sidecar's certificate and key, and the contexts built from them."""

    def __init__(self, service: str, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.clock = clock  # wall clock: certificates are valid between epoch times
        self.roots_pem: str | None = None
        self.bundle_version: str | None = None
        self.certificate: Certificate | None = None
        self.installed = 0  # certificates installed since the sidecar started
        self.server: ssl.SSLContext | None = None
        self.client: ssl.SSLContext | None = None
        self.trust_domain: str | None = None
        self._key_pem: bytes | None = None
        self._listeners: list[Callable[[MeshIdentity, bool], None]] = []

    def subscribe(self, listener: Callable[[MeshIdentity, bool], None]) -> None:
        """Call ``listener(identity, became_ready)`` after every change of the contexts;
        ``became_ready`` is True when mTLS just became possible (plaintext pools go)."""
        self._listeners.append(listener)

    @property
    def rotations(self) -> int:
        """Certificates installed after the first."""
        return max(0, self.installed - 1)

    @property
    def ready(self) -> bool:
        return self.client is not None

    # what the control channel brings ---------------------------------------------------

    def set_bundle(self, roots_pem: str, version: str | None = None) -> None:
        """Trust these roots from now on (raises IdentityError, keeping the previous ones)."""
        parse_bundle(roots_pem)
        if roots_pem == self.roots_pem:
            return
        self.roots_pem = roots_pem
        self.bundle_version = version
        log.info("trust bundle %s in force", version or "(unversioned)")
        if self.certificate is not None and self._key_pem is not None:
            self._rebuild()

    def new_request(self) -> tuple[ec.EllipticCurvePrivateKey, str]:
        """A fresh key and the CSR for it (the key stays here until its certificate comes)."""
        key = keys.new_key()
        return key, keys.csr_pem(key, self.service)

    def install(
        self, key: ec.EllipticCurvePrivateKey, chain_pem: str, refresh_at: float | None = None
    ) -> Certificate:
        """Put a certificate issued for ``key`` in force (raises IdentityError, keeping the
        one in force: a certificate for another key or service, expired, or not from the bundle)."""
        if self.roots_pem is None:
            raise IdentityError("certificate: no trust bundle yet to check it against")
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise IdentityError(f"certificate: not a PEM chain ({exc})") from exc
        leaf = chain[0]
        if leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise IdentityError("certificate: issued for another key than the one we asked with")
        try:
            uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            ids = uris.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            ids = []
        if len(ids) != 1 or service_of(ids[0]) != self.service:
            raise IdentityError(f"certificate: names {ids or 'no SPIFFE ID'}, not service {self.service}")
        now = self.clock()
        not_before = leaf.not_valid_before_utc.timestamp()
        not_after = leaf.not_valid_after_utc.timestamp()
        if not_after <= now:
            raise IdentityError("certificate: already expired")
        try:
            store = Store(parse_bundle(self.roots_pem))
            PolicyBuilder().store(store).time(leaf.not_valid_before_utc).build_client_verifier().verify(
                leaf, chain[1:]
            )
        except VerificationError as exc:
            raise IdentityError(f"certificate: does not chain to the trust bundle ({exc})") from exc
        # meshui says when to renew; never later than 2/3 of what the certificate really
        # holds (its times are whole seconds, so it can be shorter than meshui meant).
        latest = not_before + (not_after - not_before) * REFRESH_FRACTION
        refresh_at = latest if refresh_at is None else min(refresh_at, latest)
        certificate = Certificate(
            spiffe_id=ids[0],
            trust_domain=trust_domain_of(ids[0]) or "",
            serial=format(leaf.serial_number, "x"),
            not_before=not_before,
            not_after=not_after,
            refresh_at=refresh_at,
            installed_at=now,
            chain_pem=chain_pem.encode("ascii"),
        )
        key_pem = keys.key_pem(key)
        self.installed += 1
        self.certificate, self._key_pem = certificate, key_pem
        self.trust_domain = certificate.trust_domain
        self._rebuild()
        log.info("identity %s in force: serial %s, valid until %s", certificate.spiffe_id,
                 certificate.serial, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(not_after)))
        return certificate

    def expire(self) -> bool:
        """Drop a certificate past its not-after (never renewed: its join token was revoked,
        or meshui is away). Peers would refuse it; without it outbound goes in plaintext."""
        certificate = self.certificate
        if certificate is None or self.clock() < certificate.not_after:
            return False
        log.error("identity %s expired without renewal (serial %s); mTLS is off until a new "
                  "certificate arrives", certificate.spiffe_id, certificate.serial)
        self.certificate = self._key_pem = None
        self.server = self.client = None
        self._notify(False)
        return True

    def renewal_due(self) -> float:
        """Seconds until a renewal is due (0: now, there is no certificate or it is late)."""
        certificate = self.certificate
        if certificate is None:
            return 0.0
        return max(0.0, certificate.refresh_at - self.clock())

    def _rebuild(self) -> None:
        assert self.certificate is not None and self._key_pem is not None and self.roots_pem is not None
        was_ready = self.ready
        chain, key = self.certificate.chain_pem, self._key_pem
        self.server = build_context(True, chain, key, self.roots_pem)
        self.client = build_context(False, chain, key, self.roots_pem)
        self._notify(not was_ready)

    def _notify(self, became_ready: bool) -> None:
        for listener in self._listeners:
            try:
                listener(self, became_ready)
            except Exception:  # a listener's bug must not undo the swap
                log.exception("identity listener failed")

    # peers ----------------------------------------------------------------------------

    def peer_service(self, peercert: dict[str, Any] | None) -> str | None:
        """The mesh service a verified peer certificate names, in our trust domain (None if
        it names none, several, or one of another trust domain)."""
        return service_of(peer_identity(peercert), self.trust_domain)

    def view(self) -> dict[str, Any]:
        """What the admin port's ``/identity`` shows."""
        certificate = self.certificate
        return {
            "service": self.service,
            "ready": self.ready,
            "trust_bundle": self.bundle_version,
            "rotations": self.rotations,
            "certificate": None if certificate is None else {
                "spiffe_id": certificate.spiffe_id,
                "serial": certificate.serial,
                "not_before": certificate.not_before,
                "not_after": certificate.not_after,
                "refresh_at": certificate.refresh_at,
                "installed_at": certificate.installed_at,
            },
        }
