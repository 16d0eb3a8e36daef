"""SQL filter grammar and three-valued evaluation (pure Python, no sockets)."""

from __future__ import annotations

import pytest

from localcloud.servicebus.config import ConfigError, parse_config, parse_duration
from localcloud.servicebus.sqlfilter import FilterSyntaxError, MessageFacts, compile_sql_filter

FACTS = MessageFacts(
    {"Label": "alert", "MessageId": "m-1", "CorrelationId": None, "ContentType": "application/json"},
    {"status": "Failed", "n": 5, "ratio": 0.5, "deviceId": "dev-1", "my prop": 1, "flag": True},
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("status <> 'Success'", True),
        ("status = 'Success'", False),
        ("status != 'Success'", True),
        ("NOT status = 'Success'", True),
        ("not (status = 'Failed')", False),
        ("sys.Label = 'alert' AND n > 3", True),
        ("sys.label = 'alert'", True),  # system property names are case-insensitive
        ("sys.MessageId = 'm-1' OR missing = 1", True),
        ("n >= 5 AND n <= 5 AND n < 6 AND n > 4", True),
        ("n IN (1, 5, 9)", True),
        ("status NOT IN ('Failed', 'Expired')", False),
        ("deviceId LIKE 'dev-%'", True),
        ("deviceId LIKE 'dev-_'", True),
        ("deviceId NOT LIKE 'dev%'", False),
        ("deviceId LIKE 'dev!_%' ESCAPE '!'", False),
        ("missing IS NULL", True),
        ("status IS NOT NULL", True),
        ("sys.CorrelationId IS NULL", True),
        ("EXISTS(status) AND NOT EXISTS(missing)", True),
        ("(n + 1) * 2 = 12 AND n % 2 = 1 AND n / 2 = 2 AND -n = 0 - 5", True),
        ("ratio * 2 = 1.0", True),
        ("user.status = 'Failed'", True),
        ("[my prop] = 1", True),
        ("flag = TRUE", True),
        ("1 = 1", True),
        ("TRUE", True),
        ("FALSE OR status = 'Failed'", True),
        ("status = 'it''s'", False),
        # Unknown (NULL) comparisons never match, and NOT unknown is still unknown.
        ("missing = 1", False),
        ("NOT missing = 1", False),
        ("missing = 1 OR n = 5", True),
        ("missing = 1 AND n = 5", False),
        ("n = 'five'", False),
    ],
)
def test_filter_evaluation(expression: str, expected: bool) -> None:
    assert compile_sql_filter(expression).matches(FACTS) is expected


@pytest.mark.parametrize(
    "expression", ["status = ", "status = 'x' AND", "n IN ()", "foo.bar = 1", "status == 'x'", "'unterminated"]
)
def test_syntax_errors_are_reported(expression: str) -> None:
    with pytest.raises(FilterSyntaxError):
        compile_sql_filter(expression)


def _ns(**subscription: object) -> dict[str, object]:
    return {
        "UserConfig": {
            "Namespaces": [
                {"Name": "sbemulatorns", "Queues": [], "Topics": [{"Name": "t", "Subscriptions": [subscription]}]}
            ]
        }
    }


def test_config_rejects_bad_filter_with_location() -> None:
    bad_rule = {"Name": "r1", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "status = "}}}
    with pytest.raises(ConfigError, match=r"Topics\[0\]\.Subscriptions\[0\]\.Rules\[0\] r1"):
        parse_config(_ns(Name="s", Rules=[bad_rule]))


def test_config_parses_properties_and_durations() -> None:
    config = parse_config(
        _ns(
            Name="s", Properties={"LockDuration": "PT0.5S", "MaxDeliveryCount": 2, "DefaultMessageTimeToLive": "P1DT1H"}
        )
    )
    props = config.topics[0].subscriptions[0].properties
    assert (props.lock_duration, props.max_delivery_count, props.default_message_ttl) == (0.5, 2, 90000.0)
    assert parse_duration("PT1M30S") == 90.0
    with pytest.raises(ConfigError):
        parse_duration("1 minute")
