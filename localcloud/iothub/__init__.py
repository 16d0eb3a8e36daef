"""Local IoT Hub emulator: AMQP service endpoint, MQTT + HTTPS device endpoints, admin API.

Dev only. Speaks the real wire protocols so the unmodified Azure SDKs can be tested against it.
"""
