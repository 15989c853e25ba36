"""The write path: parse a batch, verify it (stateless, on both cores), hand it to the
writer that applies it to the ledger (``pipeline``)."""
