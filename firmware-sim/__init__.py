"""Simulated sensor and scanner firmware for demos and tests.

It writes the wire formats itself (serial frames, GS1 barcodes, MQTT payloads)
and never imports the gateway, so a parser bug cannot hide behind a shared
encoder. Everything is deterministic for a given seed and start time.

- :mod:`firmware_sim.frames` — the serial sensor line protocol
- :mod:`firmware_sim.gs1` — GTIN/SSCC check digits, element strings, Digital Link
- :mod:`firmware_sim.payloads` — Zigbee2MQTT, Ruuvi, Shelly Gen1/Gen2, Tasmota, JSON
- :mod:`firmware_sim.thermal` — temperatures with door-open excursions
- :mod:`firmware_sim.faults` — noise, garbage, dropouts, clock jumps
- :mod:`firmware_sim.scenario` — the generators tests and demos drive in-process
- :mod:`firmware_sim.pty_device` — a device on a real pseudo-terminal
- :mod:`firmware_sim.mqtt_publisher` — publishing to a broker
"""
