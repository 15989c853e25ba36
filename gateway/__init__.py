"""The coldtrail edge gateway: sources -> signer -> spool -> batcher -> uplink."""
