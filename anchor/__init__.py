"""The coldtrail anchoring service: verified ingest, the append-only log, provenance."""
