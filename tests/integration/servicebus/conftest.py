"""One emulator subprocess for the whole session, with a test config of short windows.

Every test uses its own entities (suffix `-sync` / `-aio`), so tests do not see each other's messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.servicebus.launcher import ServiceBusProcess, running_servicebus

LOCK_SECONDS = 1
DUP_WINDOW_SECONDS = 2
MAX_DELIVERY = 3


def _queue(name: str, **props: Any) -> dict[str, Any]:
    base = {"LockDuration": "PT30S", "MaxDeliveryCount": MAX_DELIVERY, "DefaultMessageTimeToLive": "PT1H"}
    base.update(props)
    return {"Name": name, "Properties": base}


def _sql(name: str, expression: str) -> dict[str, Any]:
    return {"Name": name, "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": expression}}}


def _sub(name: str, *rules: dict[str, Any], **props: Any) -> dict[str, Any]:
    base = {"LockDuration": "PT30S", "MaxDeliveryCount": MAX_DELIVERY}
    base.update(props)
    return {"Name": name, "Properties": base, "Rules": list(rules)}


def _topic(name: str, subs: list[dict[str, Any]], **props: Any) -> dict[str, Any]:
    return {"Name": name, "Properties": props, "Subscriptions": subs}


def build_config() -> dict[str, Any]:
    queues = []
    topics = []
    for flavor in ("sync", "aio"):
        queues += [
            _queue(f"roundtrip-{flavor}"),
            _queue(f"abandon-{flavor}"),
            _queue(f"deadletter-{flavor}"),
            _queue(f"lockexpiry-{flavor}", LockDuration=f"PT{LOCK_SECONDS}S"),
            _queue(f"renew-{flavor}", LockDuration=f"PT{LOCK_SECONDS * 2}S"),
            _queue(f"maxdelivery-{flavor}"),
            _queue(
                f"dedup-{flavor}",
                RequiresDuplicateDetection=True,
                DuplicateDetectionHistoryTimeWindow=f"PT{DUP_WINDOW_SECONDS}S",
            ),
            _queue(f"mgmt-{flavor}"),
            _queue(f"ttl-{flavor}", DeadLetteringOnMessageExpiration=True),
            _queue(f"faults-{flavor}"),
            _queue(f"small-{flavor}", MaxMessageSizeInKilobytes=1),
            _queue(f"release-{flavor}"),
        ]
        topics.append(
            _topic(
                f"outcomes-{flavor}",
                [
                    _sub("all"),
                    _sub("failed", _sql("not-success", "status <> 'Success'")),
                    _sub("succeeded", _sql("success", "status = 'Success'")),
                    _sub(
                        "rich",
                        _sql(
                            "rich",
                            "sys.Label = 'alert' AND (priority > 5 OR deviceId LIKE 'crit-%') AND region IN ('eu', 'us') AND NOT EXISTS(muted)",
                        ),
                    ),
                    _sub("nullcheck", _sql("nullcheck", "code IS NULL AND sys.CorrelationId = 'corr-1'")),
                    _sub(
                        "correlation",
                        {
                            "Name": "corr",
                            "Properties": {
                                "FilterType": "Correlation",
                                "CorrelationFilter": {"Label": "alert", "Properties": {"region": "eu"}},
                            },
                        },
                    ),
                ],
                RequiresDuplicateDetection=True,
                DuplicateDetectionHistoryTimeWindow=f"PT{DUP_WINDOW_SECONDS}S",
            )
        )
    queues += [_queue("tls"), _queue("plain"), _queue("token-expiry"), _queue("token-receiver", LockDuration="PT5S")]
    topics.append(_topic("tls-topic", [_sub("all"), _sub("failed", _sql("f", "status <> 'Success'"))]))
    # The app's own topic, as in the default config (for the OutcomePublisher test).
    topics.append(
        _topic(
            "c2d-outcomes",
            [
                _sub("all"),
                _sub("failed", _sql("f", "status <> 'Success'")),
                _sub("succeeded", _sql("s", "status = 'Success'")),
            ],
            RequiresDuplicateDetection=True,
            DuplicateDetectionHistoryTimeWindow="PT10M",
        )
    )
    return {
        "UserConfig": {
            "Namespaces": [{"Name": "sbemulatorns", "Queues": queues, "Topics": topics}],
            "Logging": {"Type": "Console"},
        }
    }


@pytest.fixture(scope="session")
def servicebus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceBusProcess]:
    config_file = Path(tmp_path_factory.mktemp("servicebus")) / "Config.json"
    config_file.write_text(json.dumps(build_config(), indent=2), encoding="utf-8")
    with running_servicebus(config_path=config_file, key="test-key-not-secret", amqps=True) as emulator:
        yield emulator


@pytest.fixture
def conn_str(servicebus: ServiceBusProcess) -> str:
    return servicebus.connection_string
