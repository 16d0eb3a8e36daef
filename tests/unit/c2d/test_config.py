from __future__ import annotations

import logging

import pytest
from c2d_testing.fakes import FAKE_KEY, SB_CS, SERVICE_CS

from c2d.config import (
    IoTHubSettings,
    check_all,
    load_feedback_settings,
    load_iothub_settings,
    load_send_settings,
    load_servicebus_settings,
    load_table_settings,
    sdk_log_level,
)
from c2d.errors import ConfigurationError


def test_connection_strings_parse() -> None:
    hub = load_iothub_settings({"IOTHUB_CONNECTION_STRING": SERVICE_CS, "IOTHUB_AMQP_PORT": "15671"})
    assert (hub.hostname, hub.policy_name, hub.amqp_port) == ("unit.azure-devices.net", "service", 15671)
    bus = load_servicebus_settings({"SERVICEBUS_CONNECTION": SB_CS})
    assert bus.topic == "c2d-outcomes" and not bus.uses_managed_identity


def test_managed_identity_settings() -> None:
    hub = load_iothub_settings({"IOTHUB_HOSTNAME": "myhub.azure-devices.net"})
    assert hub.uses_managed_identity and hub.key is None
    bus = load_servicebus_settings(
        {"SERVICEBUS__fullyQualifiedNamespace": "ns.servicebus.windows.net", "OUTCOME_TOPIC": "t"}
    )
    assert bus.uses_managed_identity and bus.namespace == "ns.servicebus.windows.net" and bus.topic == "t"


def test_every_problem_is_listed_at_once_with_no_value() -> None:
    env = {
        "IOTHUB_CONNECTION_STRING": f"HostName=h;SharedAccessKey={FAKE_KEY}",
        "SERVICEBUS_CONNECTION": f"Endpoint=https://wrong;SharedAccessKey={FAKE_KEY}",
        "C2D_DEFAULT_TTL_SECONDS": "ten",
        "FEEDBACK_MAX_DRAIN_SECONDS": "-1",
        "FEEDBACK_BATCH_SIZE": "9999",
    }
    problems = check_all(env)
    text = "\n".join(problems)
    for name in (
        "IOTHUB_CONNECTION_STRING", "SERVICEBUS_CONNECTION", "C2D_DEFAULT_TTL_SECONDS",
        "FEEDBACK_MAX_DRAIN_SECONDS", "FEEDBACK_BATCH_SIZE",
    ):
        assert name in text
    assert FAKE_KEY not in text and "wrong" not in text


def test_missing_settings_are_named() -> None:
    problems = check_all({})
    assert any("IOTHUB_CONNECTION_STRING" in p for p in problems)
    assert any("SERVICEBUS_CONNECTION" in p for p in problems)


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "HostName=h.azure-devices.net;SharedAccessKeyName=s;SharedAccessKey=not*base64",
        "HostName=h.azure-devices.net;DeviceId=d;SharedAccessKeyName=s;SharedAccessKey=" + FAKE_KEY,
    ],
    ids=["not-key-value", "key-not-base64", "device-connection-string"],
)
def test_malformed_iothub_connection_string(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_iothub_settings({"IOTHUB_CONNECTION_STRING": value})
    assert "IOTHUB_CONNECTION_STRING" in str(caught.value)
    assert FAKE_KEY not in str(caught.value)


def test_both_ways_at_once_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="only one"):
        load_iothub_settings({"IOTHUB_CONNECTION_STRING": SERVICE_CS, "IOTHUB_HOSTNAME": "h.azure-devices.net"})


def test_secrets_never_appear_in_repr_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hub = IoTHubSettings.from_connection_string(SERVICE_CS)
    bus = load_servicebus_settings({"SERVICEBUS_CONNECTION": SB_CS})
    logging.getLogger("test").info("settings: %r %s %r %s", hub, hub, bus, bus)
    assert FAKE_KEY not in caplog.text
    assert "SharedAccessKey=" not in caplog.text


def test_feedback_defaults() -> None:
    settings = load_feedback_settings({})
    assert settings.max_drain_s < 10, "must finish inside the default 10 s schedule"


@pytest.mark.parametrize(
    ("value", "level"),
    [("", logging.WARNING), ("  ", logging.WARNING), ("info", logging.INFO), ("10", 10), ("verbose", logging.WARNING)],
    ids=["blank", "spaces", "name", "number", "unknown-name"],
)
def test_sdk_log_level_never_raises(value: str, level: int) -> None:
    """Hole 6: C2D_SDK_LOG_LEVEL is read at import time; a blank or numeric value used to raise there."""
    assert sdk_log_level({"C2D_SDK_LOG_LEVEL": value}) == level


@pytest.mark.parametrize("value", ["", "15", "not-a-level"])
def test_importing_the_iothub_adapter_survives_any_sdk_log_level(value: str) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "C2D_SDK_LOG_LEVEL": value}
    result = subprocess.run(
        [sys.executable, "-c", "import c2d.iothub, logging; print(logging.getLogger('uamqp').level)"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == (15 if value == "15" else logging.WARNING)


def test_table_settings_from_connection_string_or_identity() -> None:
    conn = load_table_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert conn.connection_string and conn.table == "c2dstatus"
    identity = load_table_settings(
        {"AzureWebJobsStorage__accountName": "acct", "AzureWebJobsStorage__clientId": "id-1", "C2D_STATUS_TABLE": "x1y"}
    )
    assert identity.endpoint == "https://acct.table.core.windows.net" and identity.client_id == "id-1"
    assert identity.table == "x1y"
    with pytest.raises(ConfigurationError, match="C2D_STATUS_TABLE"):
        load_table_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "C2D_STATUS_TABLE": "bad-name"})
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage"):
        load_table_settings({})


def test_every_wait_is_bounded_under_the_http_limit() -> None:
    """Hole 7: the longest a request can take (busy wait + connect + confirmation) stays under the
    Functions host's 230 s HTTP limit whatever the settings allow."""
    env = {
        "IOTHUB_CONNECTION_STRING": SERVICE_CS,
        "C2D_SEND_BUSY_TIMEOUT_SECONDS": "60", "IOTHUB_CONNECT_TIMEOUT_SECONDS": "60",
        "IOTHUB_SEND_TIMEOUT_SECONDS": "100",
    }
    settings = load_iothub_settings(env)
    assert settings.busy_timeout_s + settings.connect_timeout_s + settings.send_timeout_s < 230
    for name, too_big in (("C2D_SEND_BUSY_TIMEOUT_SECONDS", "61"), ("IOTHUB_SEND_TIMEOUT_SECONDS", "101")):
        assert any(name in p for p in check_all({**env, name: too_big}))


def test_fan_out_cap_defaults_to_1000_and_is_bounded() -> None:
    assert load_send_settings({}).max_fan_out == 1000
    assert load_send_settings({"C2D_MAX_FAN_OUT": "10000"}).max_fan_out == 10_000
    with pytest.raises(ConfigurationError) as error:
        load_send_settings({"C2D_MAX_FAN_OUT": "0"})
    assert any("C2D_MAX_FAN_OUT" in p for p in error.value.problems)
