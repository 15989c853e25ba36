"""Ordering: what puts verified batches in one order and has them applied.

:class:`~anchor.ordering.local.LocalSequencer` (one process, a queue and a writer
thread) is the embedded default; a replicated stream that every member consumes in the
same order takes its place for the consortium (issue 11), behind the same ``submit`` and
``checkpoint_now``.
"""
