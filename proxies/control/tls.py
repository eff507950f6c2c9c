"""TLS of the control channel: the sidecar's client context, and what a failed check says.

A ``wss://`` control URL is verified the way a browser verifies a site: the certificate
chains to a trusted CA and names the URL's host. The trusted CAs are the ``--control-ca``
bundle when one is given (a private CA, or meshui's self-signed certificate itself), else
the system's store (which also honours ``SSL_CERT_FILE``). The context is built for every
connection attempt, so a CA file replaced on disk is used from the next retry on.
"""

from __future__ import annotations

import ssl


def client_context(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """The context for ``url``: ``None`` for ``ws://``, which has no TLS."""
    if not url.lower().startswith("wss://"):
        return None
    return ssl.create_default_context(cafile=ca_file)


def verification_failure(exc: ssl.SSLCertVerificationError, ca_file: str | None) -> str:
    """A last_error a person can act on: what the certificate was checked against, and why
    it failed (OpenSSL's words: "self-signed certificate", "Hostname mismatch", ...)."""
    trusted = (f"the CA bundle {ca_file} (--control-ca)" if ca_file else
               "the system's trust store (a private CA needs --control-ca FILE)")
    why = exc.verify_message or exc.reason or str(exc)
    return f"meshui's TLS certificate did not verify against {trusted}: {why}"
