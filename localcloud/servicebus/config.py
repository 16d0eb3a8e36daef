"""Entity configuration in the shape of Microsoft's Service Bus emulator `Config.json`.

Durations are ISO 8601 (`PT1M`, `PT0.5S`). Unlike Microsoft's emulator, no lower bounds are
enforced, so tests can use sub-second lock durations and duplicate-detection windows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sqlfilter import FilterSyntaxError, compile_sql_filter

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.json")

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the offending entry."""


def parse_duration(text: str) -> float:
    """ISO 8601 duration (days and time part) in seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"invalid ISO 8601 duration {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


@dataclass(frozen=True)
class EntityProperties:
    """Properties of a queue, a topic or a subscription (each reads the ones that apply to it)."""

    default_message_ttl: float = 3600.0
    lock_duration: float = 60.0
    max_delivery_count: int = 10
    requires_duplicate_detection: bool = False
    duplicate_detection_window: float = 20.0
    dead_lettering_on_message_expiration: bool = False
    max_message_size: int = 256 * 1024


@dataclass(frozen=True)
class RuleConfig:
    name: str
    sql: str | None = None
    correlation: dict[str, Any] | None = None


@dataclass(frozen=True)
class SubscriptionConfig:
    name: str
    properties: EntityProperties
    rules: tuple[RuleConfig, ...] = ()


@dataclass(frozen=True)
class TopicConfig:
    name: str
    properties: EntityProperties
    subscriptions: tuple[SubscriptionConfig, ...] = ()


@dataclass(frozen=True)
class QueueConfig:
    name: str
    properties: EntityProperties


@dataclass(frozen=True)
class NamespaceConfig:
    name: str = "sbemulatorns"
    queues: tuple[QueueConfig, ...] = ()
    topics: tuple[TopicConfig, ...] = field(default_factory=tuple)


def _properties(raw: dict[str, Any] | None, where: str) -> EntityProperties:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: Properties must be an object")
    defaults = EntityProperties()
    try:
        return EntityProperties(
            default_message_ttl=parse_duration(raw["DefaultMessageTimeToLive"])
            if "DefaultMessageTimeToLive" in raw
            else defaults.default_message_ttl,
            lock_duration=parse_duration(raw["LockDuration"]) if "LockDuration" in raw else defaults.lock_duration,
            max_delivery_count=int(raw.get("MaxDeliveryCount", defaults.max_delivery_count)),
            requires_duplicate_detection=bool(raw.get("RequiresDuplicateDetection", False)),
            duplicate_detection_window=parse_duration(raw["DuplicateDetectionHistoryTimeWindow"])
            if "DuplicateDetectionHistoryTimeWindow" in raw
            else defaults.duplicate_detection_window,
            dead_lettering_on_message_expiration=bool(raw.get("DeadLetteringOnMessageExpiration", False)),
            max_message_size=int(raw.get("MaxMessageSizeInKilobytes", 256)) * 1024,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid property value: {exc}") from exc


def _name(raw: dict[str, Any], where: str) -> str:
    name = raw.get("Name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: Name is required")
    return name


def _rule(raw: dict[str, Any], where: str) -> RuleConfig:
    name = _name(raw, where)
    props = raw.get("Properties") or {}
    kind = props.get("FilterType")
    if kind == "Sql":
        expression = (props.get("SqlFilter") or {}).get("SqlExpression")
        if not isinstance(expression, str):
            raise ConfigError(f"{where} {name}: SqlFilter.SqlExpression is required")
        try:
            compile_sql_filter(expression)
        except FilterSyntaxError as exc:
            raise ConfigError(f"{where} {name}: {exc}") from exc
        return RuleConfig(name=name, sql=expression)
    if kind == "Correlation":
        corr = props.get("CorrelationFilter")
        if not isinstance(corr, dict) or not corr:
            raise ConfigError(f"{where} {name}: CorrelationFilter needs at least one property")
        return RuleConfig(name=name, correlation=dict(corr))
    raise ConfigError(f"{where} {name}: FilterType must be 'Sql' or 'Correlation'")


def parse_config(raw: dict[str, Any]) -> NamespaceConfig:
    """The first namespace of a `Config.json` document."""
    try:
        namespaces = raw["UserConfig"]["Namespaces"]
    except (KeyError, TypeError) as exc:
        raise ConfigError("UserConfig.Namespaces is required") from exc
    if not isinstance(namespaces, list) or len(namespaces) != 1:
        raise ConfigError("UserConfig.Namespaces must hold exactly one namespace")
    ns = namespaces[0]
    queues = []
    for i, q in enumerate(ns.get("Queues") or []):
        where = f"Queues[{i}]"
        queues.append(QueueConfig(name=_name(q, where), properties=_properties(q.get("Properties"), where)))
    topics = []
    for i, t in enumerate(ns.get("Topics") or []):
        where = f"Topics[{i}]"
        tname = _name(t, where)
        subs = []
        for j, s in enumerate(t.get("Subscriptions") or []):
            swhere = f"{where}.Subscriptions[{j}]"
            rules = tuple(_rule(r, f"{swhere}.Rules[{k}]") for k, r in enumerate(s.get("Rules") or []))
            subs.append(
                SubscriptionConfig(
                    name=_name(s, swhere), properties=_properties(s.get("Properties"), swhere), rules=rules
                )
            )
        topics.append(
            TopicConfig(name=tname, properties=_properties(t.get("Properties"), where), subscriptions=tuple(subs))
        )
    names = [q.name.lower() for q in queues] + [t.name.lower() for t in topics]
    if len(names) != len(set(names)):
        raise ConfigError("queue and topic names must be unique (case-insensitive)")
    return NamespaceConfig(name=str(ns.get("Name", "sbemulatorns")), queues=tuple(queues), topics=tuple(topics))


def load_config(path: str | Path | None = None) -> NamespaceConfig:
    file = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from exc
    return parse_config(raw)
