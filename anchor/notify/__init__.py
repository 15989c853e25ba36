"""Notifications: the responsible party and the lot's owner are told within seconds.

A disposition change (anchor.provenance.dispositions) or a claim event
(anchor.provenance.claims) enqueues, in the transaction that writes it, one outbox row
per organisation and channel (:mod:`anchor.notify.outbox`); a delivery loop
(:mod:`anchor.notify.deliver`) sends each at least once: a webhook POST signed with
HMAC-SHA256, or an MQTT message (QoS 1), retried with backoff, every attempt logged.
Subscriptions come from the file named by ``notify_file`` (:mod:`anchor.notify.config`).
"""
