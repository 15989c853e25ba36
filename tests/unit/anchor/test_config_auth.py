"""Typed config with env overrides; hashed tokens with roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anchor.auth import authenticate, issue_token, require_role
from anchor.config import AnchorConfig, load_config
from anchor.errors import AnchorError, ConfigError
from anchor.storage.sqlite.store import SqliteLedger
from proofs.coldchain import FROZEN, Profile


def test_toml_then_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "anchor.toml"
    path.write_text('[anchor]\ndata_dir = "node"\nlisten_port = 9000\nquorum = 1\n')
    config = load_config(path, env={"COLDTRAIL_ANCHOR_LISTEN_PORT": "9100"})
    assert config.listen_port == 9100
    assert config.data_dir == (tmp_path / "node").resolve()
    assert config.db_file == config.data_dir / "ledger.sqlite3"


@pytest.mark.parametrize(
    "text",
    ['listen_port = "x"\n', "no_such_key = 1\n", "quorum = 5\n", "not toml ["],
)
def test_bad_config_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "anchor.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path, env={})


def test_config_is_frozen() -> None:
    config = AnchorConfig()
    with pytest.raises(AttributeError):
        config.listen_port = 1  # type: ignore[misc]


@pytest.fixture
def store(tmp_path: Path) -> SqliteLedger:
    s = SqliteLedger(tmp_path / "ledger.sqlite3")
    s.add_organisation("acme", "Acme", 0)
    return s


def test_tokens_are_stored_hashed_and_checked(store: SqliteLedger) -> None:
    token, row = issue_token(store, "acme", "operator", 0)
    assert token.split("_", 2)[2].encode() not in row.token_hash  # the secret may hold "_"
    principal = authenticate(store, f"Bearer {token}", 1)
    assert (principal.org_id, principal.role) == ("acme", "operator")
    with pytest.raises(AnchorError) as info:
        require_role(principal, "gateway")
    assert info.value.code == "forbidden"
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(AnchorError) as info:
        authenticate(store, f"Bearer {tampered}", 1)
    assert info.value.code == "unauthenticated"
    store.revoke_token(row.id, 5)
    assert authenticate(store, f"Bearer {token}", 4).token_id == row.id
    with pytest.raises(AnchorError):
        authenticate(store, f"Bearer {token}", 5)


def test_an_unknown_role_is_refused(store: SqliteLedger) -> None:
    with pytest.raises(ValueError):
        issue_token(store, "acme", "admin", 0)


def test_revocation_can_only_move_earlier(store: SqliteLedger) -> None:
    from anchor.auth import enroll_gateway
    from proofs.keys import SigningKey

    key = SigningKey.generate().public_key.to_base64()
    enroll_gateway(store, "gw-1", "acme", key, None, 0)
    assert store.revoke_gateway("gw-1", 100, "lost", 1000).revoked_at == 100
    assert store.revoke_gateway("gw-1", 200, "again", 2000).revoked_at == 100
    g = store.revoke_gateway("gw-1", 50, "earlier", 3000)
    assert g.revoked_at == 50
    # Ingest refused from when the first revocation was recorded; batches accepted
    # between the compromise time and then are kept, flagged.
    assert g.refused_from == 1000
    assert g.compromised_batch(60) and g.compromised_batch(999)
    assert not g.compromised_batch(49) and not g.compromised_batch(1000)
    assert g.refused_at(1000) and not g.refused_at(999)


def test_a_public_key_is_enrolled_at_most_once_ever(store: SqliteLedger) -> None:
    from anchor.auth import enroll_gateway
    from proofs.keys import SigningKey

    key = SigningKey.generate().public_key.to_base64()
    enroll_gateway(store, "gw-1", "acme", key, None, 0)
    store.revoke_gateway("gw-1", 10, "stolen", 10)
    with pytest.raises(ValueError, match="enrolled at most once"):
        enroll_gateway(store, "gw-2", "acme", key, None, 20)
    assert store.gateway("gw-2") is None
    assert store.gateway_by_key(key) is not None


def test_places_belong_to_one_organisation_and_scope_enrolments(store: SqliteLedger) -> None:
    from anchor.auth import add_organisation, enroll_gateway, register_place
    from proofs.errors import FormatError
    from proofs.keys import SigningKey

    add_organisation(store, "north", "Northside Cold", 0)
    register_place(store, "cold-room-3", "north", "asset", 0)
    register_place(store, "truck-07", "acme", "asset", 0)
    with pytest.raises(ValueError, match="registered already by north"):
        register_place(store, "cold-room-3", "acme", "asset", 0)
    with pytest.raises(FormatError):
        register_place(store, "cold-room-3\n", "acme", "asset", 0)
    key = SigningKey.generate().public_key.to_base64()
    with pytest.raises(ValueError, match="belongs to north"):
        enroll_gateway(store, "gw-1", "acme", key, "truck-07", 0, ["cold-room-3"])
    with pytest.raises(ValueError, match="no asset or read point 'dock-9'"):
        enroll_gateway(store, "gw-1", "acme", key, "truck-07", 0, ["dock-9"])
    assert store.gateway("gw-1") is None
    g = enroll_gateway(store, "gw-1", "acme", key, "truck-07", 0)
    assert g.places == {"truck-07"} and store.gateway("gw-1") == g
    assert [p.id for p in store.places("north")] == ["cold-room-3"]


@pytest.mark.parametrize("bad", ["acme\n", "", "a b", "x" * 129])
def test_organisation_ids_follow_the_identifier_rule(store: SqliteLedger, bad: str) -> None:
    from anchor.auth import add_organisation
    from proofs.errors import FormatError

    with pytest.raises(FormatError):
        add_organisation(store, bad, None, 0)


def test_organisation_names_are_clean(store: SqliteLedger) -> None:
    from anchor.auth import add_organisation
    from proofs.errors import FormatError

    with pytest.raises(FormatError):
        add_organisation(store, "evil", "Evil\u202eCorp", 0)


def test_cold_chain_profiles_from_config_reach_the_provenance_answer(tmp_path) -> None:
    from anchor.http.app import create_app
    from anchor.http.pages import PROVENANCE_CONFIG

    custom = Profile("salad", 2, "custom", 0.0, 4.0)
    (tmp_path / "salad.json").write_text(json.dumps(custom.to_dict()))
    cfg = load_config(
        env={"COLDTRAIL_ANCHOR_PROFILE_BY_GTIN": "09501101530003=frozen"},
        default_profile=str(tmp_path / "salad.json"),
    )
    default, by_gtin = cfg.profiles()
    assert default == custom and by_gtin == {"09501101530003": FROZEN}
    prov = create_app(cfg)[PROVENANCE_CONFIG]
    assert (prov.default_range.low, prov.default_range.high) == (0.0, 4.0)
    frozen = prov.range_for("09501101530003")
    assert (frozen.low, frozen.high) == (None, -18.0)
    assert prov.profile_for("09506000134352") == custom
    for bad in ("123=frozen", "09506000134352:frozen", "09506000134352=nope"):
        with pytest.raises(ConfigError):
            AnchorConfig(profile_by_gtin=bad)
    (tmp_path / "broken.json").write_text('{"type": "coldchain-profile"}')
    with pytest.raises(ConfigError, match="profile-malformed"):
        AnchorConfig(default_profile=str(tmp_path / "broken.json"))
