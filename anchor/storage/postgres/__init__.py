"""The ledger on PostgreSQL (psycopg 3): ``store`` (the ports), ``provenance`` (its reading
queries), ``errors`` (commit failures by SQLSTATE). docs/postgresql.md, docs/adr/0314."""
