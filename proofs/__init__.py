"""coldtrail's pure core: canonical JSON, Ed25519, records, RFC 6962 Merkle proofs,
C2SP signed notes/checkpoints/cosignatures and proof bundles. No sockets, no asyncio.

The stable public surface lives in the submodules: ``proofs.merkle``,
``proofs.records``, ``proofs.note``, ``proofs.bundle``, ``proofs.keys``.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
