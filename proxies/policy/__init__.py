"""Traffic policy: what the sidecar does per destination service (docs/policy.md).

``schema`` holds the document's frozen dataclasses and their defaults, ``parser`` (with its
value ``checks``) turns a document into a ``Policy`` or a ``PolicyError`` naming the field
at fault, and ``store`` holds the policy in force and swaps in a new revision. The bottom of
the sidecar's layers: it imports nothing else of ``proxies``.
"""
