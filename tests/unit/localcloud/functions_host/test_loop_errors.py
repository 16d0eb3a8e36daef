"""The host's event-loop error handler: errors nobody awaited reach the host log; shutdown cancellations do not."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest

from localcloud.functions_host.cli import _loop_error_handler
from localcloud.functions_host.logs import HostLog


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_unawaited_error_is_logged_with_its_traceback(loop: asyncio.AbstractEventLoop) -> None:
    out = io.StringIO()
    handle = _loop_error_handler(HostLog(out), asyncio.Event())
    handle(loop, {"message": "Task exception was never retrieved", "exception": _raised(KeyError("x"))})
    text = out.getvalue()
    assert "Host error: Task exception was never retrieved" in text
    assert "Traceback (most recent call last)" in text and "KeyError: 'x'" in text


def test_cancellation_while_stopping_is_not_logged(loop: asyncio.AbstractEventLoop) -> None:
    out = io.StringIO()
    stopping = asyncio.Event()
    stopping.set()
    handle = _loop_error_handler(HostLog(out), stopping)
    handle(loop, {"message": "Exception in callback", "exception": asyncio.CancelledError()})
    assert out.getvalue() == ""


def test_cancellation_while_running_is_logged(loop: asyncio.AbstractEventLoop) -> None:
    out = io.StringIO()
    handle = _loop_error_handler(HostLog(out), asyncio.Event())
    handle(loop, {"message": "Exception in callback", "exception": asyncio.CancelledError()})
    assert "Host error: Exception in callback" in out.getvalue()
