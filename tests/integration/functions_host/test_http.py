"""HTTP triggers: routes with parameters, methods, auth levels and RpcHttp conversion."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _call(app: Any, method: str, path: str, **kwargs: object) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, app.host.base_url + path, **kwargs) as resp,  # type: ignore[arg-type]
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def test_route_params_query_body_and_headers_reach_the_function(basic_app: Any) -> None:
    status, headers, body = await _call(
        basic_app, "POST", "/api/items/42/bob?x=1&y=two", data=b"payload", headers={"x-test": "yes"}
    )
    assert status == 200
    assert headers["x-fixture"] == "hello"
    assert headers["Content-Type"].startswith("application/json")
    got = json.loads(body)
    assert got["method"] == "POST"
    assert got["params"] == {"id": "42", "name": "bob"}
    assert got["query"] == {"x": "1", "y": "two"}
    assert got["body"] == "payload"
    assert got["header"] == "yes"
    assert got["greeting"] == "hello from local.settings.json"  # local.settings.json Values in the worker env
    assert got["url"].endswith("/api/items/42/bob?x=1&y=two")


async def test_optional_parameter_may_be_missing(basic_app: Any) -> None:
    status, _, body = await _call(basic_app, "GET", "/api/items/7")
    assert status == 200
    assert json.loads(body)["params"] == {"id": "7"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/items/notanint"),  # {id:int} constraint
        ("PUT", "/api/items/1"),  # methods: get, post only
        ("GET", "/items/1"),  # routePrefix 'api' is required
        ("GET", "/api/nosuchfunction"),
    ],
)
async def test_unmatched_routes_are_404(basic_app: Any, method: str, path: str) -> None:
    status, _, _ = await _call(basic_app, method, path)
    assert status == 404


async def test_default_route_is_function_name_and_named_output_binding(basic_app: Any) -> None:
    status, headers, body = await _call(basic_app, "PUT", "/api/echo", data=b"echo me")
    assert status == 201
    assert body == b"echo me"
    assert headers["Content-Type"].startswith("text/plain")


async def test_function_exception_is_500_and_logged(basic_app: Any) -> None:
    status, _, _ = await _call(basic_app, "GET", "/api/Echo?fail=1")
    assert status == 500
    basic_app.host.wait_for_output("ValueError: echo was asked to fail")


async def test_worker_logs_carry_function_name_and_invocation_id(basic_app: Any) -> None:
    status, _, _ = await _call(basic_app, "GET", "/api/items/31337")
    assert status == 200
    out = basic_app.host.wait_for_output("hello log marker 31337")
    line = next(line for line in out.splitlines() if "hello log marker 31337" in line)
    assert re.search(r"Hello \([0-9a-f-]{36}\): hello log marker 31337", line), line


@pytest.mark.parametrize(
    ("header", "query", "expected"),
    [
        (None, None, 401),
        ("wrong", None, 401),
        (None, "wrong", 401),
        ("function", None, 200),
        (None, "function", 200),
        ("master", None, 200),
    ],
)
async def test_function_auth_level(basic_app: Any, header: str | None, query: str | None, expected: int) -> None:
    keys = {"function": basic_app.function_key, "master": basic_app.master_key, "wrong": "wrong-key"}
    headers = {"x-functions-key": keys[header]} if header else {}
    suffix = f"?code={keys[query]}" if query else ""
    status, _, body = await _call(basic_app, "GET", "/api/secret" + suffix, headers=headers)
    assert status == expected
    if expected == 200:
        assert body == b"secret ok"  # and the host's key settings did not reach the worker


@pytest.mark.parametrize(("key", "expected"), [(None, 401), ("function", 401), ("master", 200)])
async def test_admin_auth_level_needs_master_key(basic_app: Any, key: str | None, expected: int) -> None:
    keys = {"function": basic_app.function_key, "master": basic_app.master_key}
    headers = {"x-functions-key": keys[key]} if key else {}
    status, _, body = await _call(basic_app, "DELETE", "/api/admin-only/a/b/c", headers=headers)
    assert status == expected
    if expected == 200:
        assert body == b"admin ok a/b/c"  # {*rest} catch-all parameter
