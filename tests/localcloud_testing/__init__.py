"""Helpers the emulator tests share (tests/integration/iothub, tests/integration/servicebus)."""
