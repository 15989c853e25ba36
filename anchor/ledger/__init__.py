"""The ledger: its values and ports, the RFC 6962 tree, the chain rules, the signed
registry and the audit (verify-ledger). No database and no HTTP here."""
