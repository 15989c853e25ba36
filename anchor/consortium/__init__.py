"""Checkpoints and the members who cosign them (C2SP tlog-cosignature)."""
