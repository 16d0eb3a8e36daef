"""Feedback messages as uamqp hands them over, turned into what the drain processes."""

from __future__ import annotations

import pytest
import uamqp

from c2d.feedback import MalformedFeedback, parse_feedback
from c2d.iothub import FeedbackReceiver


def test_a_bodiless_feedback_message_is_malformed_not_a_type_error() -> None:
    """Hole 10: `message.get_data()` raises TypeError for a message with no data section, which used
    to fail every FeedbackProcessor run on that message. It now reaches the drain with an empty body,
    which the drain rejects (dead-letters) as malformed."""
    bodiless = uamqp.Message()
    with pytest.raises(TypeError):
        list(bodiless.get_data())  # what the old code did

    feedback = FeedbackReceiver._wrap(bodiless)

    assert feedback.body == b"" and feedback.delivery_count == 0
    with pytest.raises(MalformedFeedback):
        parse_feedback(feedback.body)


def test_delivery_count_and_body_are_read_from_the_message() -> None:
    message = uamqp.Message(body=b'[{"originalMessageId":"m","deviceId":"d","statusCode":"Success"}]',
                            header=uamqp.message.MessageHeader())
    message.header.delivery_count = 4
    feedback = FeedbackReceiver._wrap(message)
    assert feedback.delivery_count == 4
    assert [r.original_message_id for r in parse_feedback(feedback.body)] == ["m"]
