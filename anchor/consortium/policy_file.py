"""A member's view of its consortium: the policy file read, this node found in it.

The consortium's members and quorum are a C2SP tlog-policy (docs/consortium.md): one
``log`` line per member (its log key, all under the consortium's origin, and its URL),
one ``witness`` line per member (its cosigning key and its ``/witness`` URL), and the
group and quorum that make a checkpoint final. A node refuses to start unless its own
log key and cosigning key are in the policy, under the origin and name its config
gives, so a typo cannot make a node that cosigns nothing or signs for another log.
"""

from __future__ import annotations

from anchor.config import AnchorConfig
from anchor.consortium.member import ConsortiumSettings
from anchor.errors import ConfigError
from proofs.errors import ProofsError
from proofs.keystore import load_signing_key
from proofs.note import ALG_COSIGNATURE_V1, ALG_ED25519, NoteSigner
from proofs.policy import MAX_POLICY_BYTES, parse_policy

__all__ = ["load_consortium"]


def load_consortium(config: AnchorConfig) -> ConsortiumSettings:
    path = config.policy_file
    if path is None:
        raise ConfigError("consortium_policy is not set")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"consortium_policy {path}: {e.strerror}") from e
    if len(raw) > MAX_POLICY_BYTES:
        raise ConfigError(f"consortium_policy {path} is over {MAX_POLICY_BYTES} bytes")
    try:
        policy = parse_policy(raw)
    except ProofsError as e:
        raise ConfigError(f"consortium_policy {path}: {e}") from e
    if not policy.requires_cosignatures:
        raise ConfigError("a consortium's policy needs a quorum of cosignatures, not 'none'")
    log_v = NoteSigner(config.log_origin, load_signing_key(config.node_key_file), ALG_ED25519)
    if log_v.verifier not in policy.logs:
        raise ConfigError(
            f"this node's log key ({log_v.verifier.to_vkey()}) is not a log of the policy"
        )
    if any(v.name != config.log_origin for v in policy.logs):
        raise ConfigError(f"every log of the policy must be named {config.log_origin}")
    cosigner = NoteSigner(
        config.member_name, load_signing_key(config.cosigner_key_file), ALG_COSIGNATURE_V1
    ).verifier
    me = next((w for w in policy.witnesses if w.verifier == cosigner), None)
    if me is None:
        raise ConfigError(
            f"this node's cosigning key ({cosigner.to_vkey()}) is not a witness of the policy"
        )
    return ConsortiumSettings(
        policy=policy,
        genesis_text=raw.decode("utf-8"),
        me=me,
        nats_urls=config.nats_url_list(),
        stream=config.stream_name,
        subject=config.stream_subject,
        replicas=config.stream_replicas,
        finality_timeout_s=config.finality_timeout_s,
        split_view_webhook=config.split_view_webhook,
    )
