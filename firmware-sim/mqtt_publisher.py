"""Publish simulated device messages to a broker (paho-mqtt, QoS 1)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt

__all__ = ["Publisher"]


class Publisher:
    """A blocking publisher: each message is PUBACKed by the broker before
    ``publish`` returns, so a test knows the broker holds it."""

    def __init__(self, host: str, port: int, client_id: str = "coldtrail-sim") -> None:
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
        )
        self._host, self._port = host, port

    def connect(self, timeout_s: float = 10.0) -> None:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self._client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._client.is_connected():
            raise ConnectionError(f"no MQTT broker answering at {self._host}:{self._port}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=10)
        if not info.is_published():
            raise ConnectionError(f"broker did not acknowledge a message on {topic}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()

    @classmethod
    @contextlib.contextmanager
    def connected(
        cls, host: str, port: int, client_id: str = "coldtrail-sim"
    ) -> Iterator[Publisher]:
        pub = cls(host, port, client_id)
        pub.connect()
        try:
            yield pub
        finally:
            pub.close()
