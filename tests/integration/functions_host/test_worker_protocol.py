"""The worker proxy at the protocol level: WorkerChannel drives the real runtime over gRPC."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localcloud.functions_host.app import read_function
from localcloud.functions_host.rpc import WorkerChannel

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _hello_request(protos: Any, function_id: str, invocation_id: str) -> Any:
    http = protos.RpcHttp(
        method="GET", url="http://localhost/api/items/5", params={"id": "5"}, body=protos.TypedData(bytes=b"")
    )
    return protos.InvocationRequest(
        invocation_id=invocation_id,
        function_id=function_id,
        input_data=[protos.ParameterBinding(name="req", data=protos.TypedData(http=http))],
    )


async def test_env_reload_load_invoke_and_log_forwarding(fixture_app: Callable[[str], Path]) -> None:
    app = fixture_app("basic")
    logs: list[Any] = []
    env = dict(os.environ, GREETING="before reload")
    channel = WorkerChannel(app, env, logs.append, start_timeout=120)
    try:
        await channel.start()  # StartStream, WorkerInitRequest, FunctionsMetadataRequest
        reloaded = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH")}
        reloaded["GREETING"] = "after reload"
        await channel.reload_environment(reloaded, 60)
        spec = read_function(app / "Hello", {})
        assert spec is not None
        result = await channel.load(spec, 60)
        assert result.ok, result.error
        p = channel.protos
        invocation_id = str(uuid.uuid4())
        response = await channel.invoke(_hello_request(p, spec.function_id, invocation_id), 60)
        assert response.result.status == p.StatusResult.Success, response.result.exception.message
        http = response.return_value.http
        assert http.status_code == "200"
        payload = json.loads(http.body.bytes or http.body.string)
        assert payload["greeting"] == "after reload"
        assert payload["params"] == {"id": "5"}
        user_logs = [entry for entry in logs if "hello log marker 5" in entry.message]
        assert len(user_logs) == 1
        assert user_logs[0].invocation_id == invocation_id
        assert user_logs[0].log_category == p.RpcLog.RpcLogCategory.Value("User")
    finally:
        await channel.stop()
    assert channel.exited.is_set()  # the worker process is gone
