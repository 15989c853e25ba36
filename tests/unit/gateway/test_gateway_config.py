"""Typed config: TOML tables map to fields, COLDTRAIL_* overrides win, refusals are explicit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.config import MAX_ANCHOR_MEMBERS, AnchorMember, config_from_mapping, load_config
from gateway.errors import ConfigError
from proofs.keys import SigningKey
from proofs.note import ALG_COSIGNATURE_V1, ALG_ED25519, NoteSigner

VKEY = NoteSigner("anchor.example/log", SigningKey.generate()).verifier.to_vkey()


def base(**extra):
    data = {
        "gateway": {"id": "truck-07", "state_dir": "/var/lib/ct"},
        "uplink": {"url": "https://anchor.example", "anchor_vkey": VKEY, "token_file": "tok"},
    }
    for table, values in extra.items():
        data.setdefault(table, {}).update(values)
    return data


def test_example_config_in_the_repo_loads() -> None:
    path = Path(__file__).resolve().parents[3] / "config" / "gateway.example.toml"
    config = load_config(path, environ={})
    assert config.gateway_id and config.batch_max_records >= 1
    assert {s.kind for s in config.sources} >= {"mqtt"}


def test_defaults_units_and_paths_under_the_state_dir() -> None:
    c = config_from_mapping(base(batch={"max_age_s": 2}), environ={})
    assert c.batch_max_age_s == 2.0 and isinstance(c.batch_max_age_s, float)
    assert c.spool_file == Path("/var/lib/ct/spool.sqlite3")
    assert c.uplink_token_file == Path("/var/lib/ct/tok")
    assert c.metrics_port == 9108


def test_environment_overrides_the_file() -> None:
    env = {"COLDTRAIL_SPOOL_BUDGET_BYTES": "1048576", "COLDTRAIL_GATEWAY_ID": "truck-08"}
    c = config_from_mapping(base(spool={"budget_bytes": 999_999}), environ=env)
    assert c.spool_budget_bytes == 1_048_576 and c.gateway_id == "truck-08"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"uplink": {"url": "http://anchor.example"}}, "https"),
        ({"batch": {"max_records": 20_000}}, "max_records"),
        ({"spool": {"budget_byte": 1}}, "unknown key"),
        ({"uplink": {"anchor_vkey": "nope"}}, "anchor_vkey"),
        ({"spool": {"budget_bytes": "lots"}}, "budget_bytes"),
        ({"spool": {"min_free_bytes": -1}}, "spool.min_free_bytes"),
        ({"spool": {"reserve_bytes": -1}}, "spool.reserve_bytes"),
    ],
)
def test_bad_values_are_refused_with_a_sentence(extra, needle) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_mapping(base(**extra), environ={})
    assert needle in str(e.value)


def test_plain_http_is_allowed_on_loopback_only() -> None:
    c = config_from_mapping(base(uplink={"url": "http://127.0.0.1:8080"}), environ={})
    assert c.uplink_url.startswith("http://")


def test_missing_required_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[gateway]\nid = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert "uplink.url" in str(e.value) and e.value.code == "missing-key"


def test_sources_keep_their_options() -> None:
    data = base()
    data["sources"] = [{"kind": "mqtt", "name": "broker", "host": "127.0.0.1", "port": 1883}]
    c = config_from_mapping(data, environ={})
    assert c.sources[0].kind == "mqtt" and c.sources[0].options["port"] == 1883


def test_mqtt_client_id_defaults_to_gateway_and_source() -> None:
    """Two gateways with a source of the same name must not share a broker session."""
    from gateway.config import config_from_mapping

    def source_ids(gw: str, **extra: str) -> list[str]:
        data = {
            "gateway": {"id": gw},
            "uplink": {"url": "http://127.0.0.1:1", "anchor_vkey": VKEY},
            "sources": [{"kind": "mqtt", "name": "broker", "host": "127.0.0.1", **extra}],
        }
        cfg = config_from_mapping(data, environ={})
        return [s.options["client_id"] for s in cfg.sources]

    assert source_ids("truck-07") == ["coldtrail-truck-07-broker"]
    assert source_ids("truck-08") == ["coldtrail-truck-08-broker"]
    assert source_ids("truck-07", client_id="mine") == ["mine"]


# --- several member nodes: [[uplink.anchors]] ------------------------------------------

ORIGIN = "coldtrail.example/log"


def member_vkey(origin: str = ORIGIN, alg: int = ALG_ED25519) -> str:
    return NoteSigner(origin, SigningKey.generate(), alg).verifier.to_vkey()


def listed(*members: tuple[str, str], **uplink) -> dict:
    data = base()
    del data["uplink"]["url"], data["uplink"]["anchor_vkey"]
    data["uplink"]["anchors"] = [{"url": u, "anchor_vkey": k} for u, k in members]
    data["uplink"].update(uplink)
    return data


def refusal(data: dict, environ: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        config_from_mapping(data, environ=environ or {})
    return e.value


def test_one_anchor_is_a_list_of_one_member() -> None:
    c = config_from_mapping(base(), environ={})
    assert c.uplink_anchors == (AnchorMember("https://anchor.example", VKEY),)
    assert c.uplink_failback_s == 60.0


def test_members_are_kept_in_order_the_home_member_first(tmp_path: Path) -> None:
    a, b = member_vkey(), member_vkey()
    path = tmp_path / "g.toml"
    path.write_text(
        '[gateway]\nid = "truck-07"\n[uplink]\nfailback_s = 5\n'
        f'[[uplink.anchors]]\nurl = "https://a.example"\nanchor_vkey = "{a}"\n'
        f'[[uplink.anchors]]\nurl = "https://b.example/"\nanchor_vkey = "{b}"\n'
    )
    c = load_config(path, environ={})
    assert [m.url for m in c.uplink_anchors] == ["https://a.example", "https://b.example/"]
    assert [m.anchor_vkey for m in c.uplink_anchors] == [a, b]
    assert c.uplink_failback_s == 5.0
    assert c.uplink_url == ""  # the one-anchor keys stay as given; code reads uplink_anchors
    assert dataclasses.replace(c, uplink_failback_s=6).uplink_anchors == c.uplink_anchors


def test_members_from_the_environment() -> None:
    a, b = member_vkey(), member_vkey()
    env = {"COLDTRAIL_UPLINK_ANCHORS": f"https://a.example {a}\n  https://b.example {b}"}
    data = base()
    del data["uplink"]["url"], data["uplink"]["anchor_vkey"]
    c = config_from_mapping(data, environ=env)
    assert c.uplink_anchors == (
        AnchorMember("https://a.example", a),
        AnchorMember("https://b.example", b),
    )
    e = refusal(data, {"COLDTRAIL_UPLINK_ANCHORS": f"https://a.example {a} https://b.example"})
    assert "pairs" in str(e)


def test_one_form_or_the_other_not_both() -> None:
    a = member_vkey()
    both = listed(("https://a.example", a), url="https://anchor.example", anchor_vkey=VKEY)
    assert refusal(both).code == "uplink-form-conflict"
    # An environment override of the one-anchor URL does not silently drop the list.
    e = refusal(listed(("https://a.example", a)), {"COLDTRAIL_UPLINK_URL": "https://x.example"})
    assert e.code == "uplink-form-conflict"
    assert refusal(listed(("https://a.example", a), url="https://a.example")).code == (
        "uplink-form-conflict"
    )


def test_neither_form_names_what_is_missing() -> None:
    data = base()
    del data["uplink"]["url"], data["uplink"]["anchor_vkey"]
    e = refusal(data)
    assert e.code == "missing-key" and "uplink.url" in e.message
    assert refusal(listed()).code == "bad-config"  # an empty list is no member at all


@pytest.mark.parametrize(
    ("urls", "same"),
    [
        (("https://a.example", "https://A.example:443/"), "url"),
        (("http://127.0.0.1:8080/", "http://127.0.0.1:8080"), "url"),
    ],
)
def test_a_member_listed_twice_is_refused(urls, same) -> None:
    e = refusal(listed((urls[0], member_vkey()), (urls[1], member_vkey())))
    assert e.code == "duplicate-anchor" and f"same {same}" in e.message


def test_two_members_with_one_log_key_are_refused() -> None:
    shared = member_vkey()
    e = refusal(listed(("https://a.example", shared), ("https://b.example", shared)))
    assert e.code == "duplicate-anchor" and "anchor_vkey" in e.message


def test_every_member_signs_the_same_log() -> None:
    e = refusal(
        listed(
            ("https://a.example", member_vkey()),
            ("https://b.example", member_vkey("other.example/log")),
        )
    )
    assert e.code == "anchor-origin-mismatch"
    assert "uplink.anchors[1]" in e.message and "other.example/log" in e.message


def test_at_most_sixteen_members() -> None:
    members = [(f"https://m{i}.example", member_vkey()) for i in range(MAX_ANCHOR_MEMBERS + 1)]
    assert refusal(listed(*members)).code == "too-many-anchors"
    assert len(config_from_mapping(listed(*members[:-1]), environ={}).uplink_anchors) == 16


@pytest.mark.parametrize(
    ("entry", "needle", "code"),
    [
        ({"url": "http://b.example"}, "uplink.anchors[1].url must be https://", "bad-config"),
        ({"url": "https://b.example:99999"}, "uplink.anchors[1].url has a bad port", "bad-config"),
        ({"anchor_vkey": "nope"}, "uplink.anchors[1].anchor_vkey", "bad-config"),
        ({"anchor_vkey": ""}, "uplink.anchors[1].anchor_vkey is required", "bad-config"),
        ({"anchor_vkey": member_vkey(alg=ALG_COSIGNATURE_V1)}, "Ed25519", "bad-config"),
        ({"token_file": "b.token"}, "uplink.anchors[1].token_file", "unknown-key"),
    ],
)
def test_each_member_is_checked_like_the_one_anchor(entry, needle, code) -> None:
    data = listed(("https://a.example", member_vkey()), ("https://b.example", member_vkey()))
    data["uplink"]["anchors"][1].update(entry)
    e = refusal(data)
    assert needle in e.message and e.code == code


def test_failback_must_not_be_negative() -> None:
    assert "failback_s" in str(refusal(base(uplink={"failback_s": -1})))
