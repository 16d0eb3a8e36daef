"""Subscription rules: SQL filters and correlation filters evaluated against one message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import RuleConfig
from .message import IncomingMessage, _text
from .sqlfilter import MessageFacts, SqlFilter, compile_sql_filter

# Correlation-filter keys -> AMQP properties field.
_CORRELATION_FIELDS = {
    "ContentType": "content_type",
    "CorrelationId": "correlation_id",
    "Label": "subject",
    "Subject": "subject",
    "MessageId": "message_id",
    "ReplyTo": "reply_to",
    "ReplyToSessionId": "reply_to_group_id",
    "SessionId": "group_id",
    "To": "to",
}


def system_facts(message: IncomingMessage, sequence_number: int, enqueued_time: float) -> dict[str, Any]:
    props = message.properties
    return {
        "MessageId": _text(props.get("message_id")),
        "CorrelationId": _text(props.get("correlation_id")),
        "Label": _text(props.get("subject")),
        "To": _text(props.get("to")),
        "ReplyTo": _text(props.get("reply_to")),
        "ContentType": _text(props.get("content_type")),
        "SessionId": _text(props.get("group_id")),
        "ReplyToSessionId": _text(props.get("reply_to_group_id")),
        "SequenceNumber": sequence_number,
        "Size": message.size,
        "DeliveryCount": 0,
        "EnqueuedTimeUtc": enqueued_time,
    }


def _user_value(value: Any) -> Any:
    return _text(value) if isinstance(value, bytes | memoryview) else value


@dataclass(frozen=True)
class Rule:
    name: str
    sql: SqlFilter | None
    correlation: dict[str, Any] | None

    def matches(self, message: IncomingMessage, facts: MessageFacts) -> bool:
        if self.sql is not None:
            return self.sql.matches(facts)
        assert self.correlation is not None
        for key, expected in self.correlation.items():
            if key == "Properties":
                for prop, value in (expected or {}).items():
                    if _user_value(message.application_properties.get(prop)) != value:
                        return False
                continue
            field_name = _CORRELATION_FIELDS.get(key)
            if field_name is None or message.text_property(field_name) != expected:
                return False
        return True


def compile_rule(config: RuleConfig) -> Rule:
    return Rule(
        name=config.name,
        sql=compile_sql_filter(config.sql) if config.sql is not None else None,
        correlation=config.correlation,
    )


def facts_for(message: IncomingMessage, sequence_number: int, enqueued_time: float) -> MessageFacts:
    user = {k: _user_value(v) for k, v in message.application_properties.items()}
    return MessageFacts(system_facts(message, sequence_number, enqueued_time), user)
