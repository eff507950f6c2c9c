"""A sidecar's identity: its SPIFFE ID, its key and certificate, and the TLS it speaks (docs/security.md)."""
