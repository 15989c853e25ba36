"""The embedded SQLite driver (WAL, ``synchronous=FULL``); its schema is ``schema.sql``."""
