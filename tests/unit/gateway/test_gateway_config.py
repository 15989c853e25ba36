"""Typed config: TOML tables map to fields, COLDTRAIL_* overrides win, refusals are explicit."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import config_from_mapping, load_config
from gateway.errors import ConfigError
from proofs.keys import SigningKey
from proofs.note import NoteSigner

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
