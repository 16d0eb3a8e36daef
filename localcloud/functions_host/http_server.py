"""aiohttp front end of the host: HTTP-trigger routes and the admin API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from aiohttp import web

from localcloud.functions_host.convert import http_result, queue_trigger_metadata, rpc_http_request, typed_data
from localcloud.functions_host.invocation import FunctionInvoker
from localcloud.functions_host.routes import presented_key

HTTP_REASON = "This function was programmatically called via the host APIs."
ADMIN_REASON = "This function was programmatically called via the host APIs."


def _joined(multi: Any, sep: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for key in multi:
        if key not in result:
            result[key] = sep.join(multi.getall(key))
    return result


def build_web_app(host: FunctionInvoker) -> web.Application:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.rstrip("/") in ("/admin/host/status", "/admin/functions") or path.startswith("/admin/functions/"):
            return await admin(request)
        for route in host.routes:
            params = route.match(request.method, path)
            if params is None:
                continue
            if not host.keys.allows(route.auth_level, presented_key(request.headers, request.query)):
                return web.Response(status=401)
            return await invoke_http(request, route.spec, params)
        return web.Response(status=404)

    async def invoke_http(request: web.Request, spec: Any, params: dict[str, str]) -> web.StreamResponse:
        protos = host_protos()
        body = await request.read()
        data = rpc_http_request(
            protos,
            method=request.method,
            url=str(request.url),
            headers=_joined(request.headers, ", "),
            query=_joined(request.query, ","),
            params=params,
            body=body,
        )
        trigger = spec.trigger
        result = await host.invoke(spec, {trigger["name"]: data}, {}, HTTP_REASON)
        if not result.ok:
            return web.Response(status=500)
        out = next((b for b in spec.bindings if b["type"] == "http" and b["direction"] == "out"), None)
        if out is None:
            return web.Response(status=204)
        response = result.response
        if out["name"] == "$return":
            value = response.return_value if response.HasField("return_value") else None
        else:
            value = next((o.data for o in response.output_data if o.name == out["name"]), None)
        if value is None:
            return web.Response(status=204)
        result = http_result(value)
        return web.Response(status=result.status, headers=result.headers, body=result.body)

    def host_protos() -> Any:
        return host.protos

    def admin_allowed(request: web.Request) -> bool:
        if not host.keys.master_key:
            return True  # like Core Tools: admin API open locally unless a master key is configured
        return host.keys.allows("admin", presented_key(request.headers, request.query))

    async def admin(request: web.Request) -> web.StreamResponse:
        if not admin_allowed(request):
            return web.Response(status=401)
        path = request.path.rstrip("/")
        if path == "/admin/host/status" and request.method == "GET":
            return web.json_response(host.status())
        if path == "/admin/functions" and request.method == "GET":
            return web.json_response(
                [{"name": n, "trigger": s.trigger_type} for n, s in sorted(host.functions.items())]
            )
        name = path[len("/admin/functions/") :]
        if request.method != "POST" or not name:
            return web.Response(status=405 if name else 404)
        spec = next((s for n, s in host.functions.items() if n.lower() == name.lower()), None)
        if spec is None:
            error = host.errors.get(name)
            return web.json_response({"error": error or f"function '{name}' not found"}, status=404)
        if spec.trigger_type == "httpTrigger":
            return web.json_response({"error": "HTTP-triggered functions are called on their route"}, status=400)
        try:
            payload = await request.json() if await request.read() else {}
        except ValueError:
            return web.json_response({"error": 'body must be JSON like {"input": "..."}'}, status=400)
        text = payload.get("input", "") if isinstance(payload, dict) else ""
        input_data, metadata = admin_input(spec, "" if text is None else str(text))
        host.invoke_later(spec, input_data, metadata, ADMIN_REASON)
        return web.Response(status=202)

    def admin_input(spec: Any, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
        protos = host_protos()
        trigger = spec.trigger
        if spec.trigger_type == "timerTrigger":
            from localcloud.functions_host.timers import timer_request_json

            return {trigger["name"]: protos.TypedData(json=timer_request_json(None, False))}, {}
        now = dt.datetime.now(dt.UTC)
        metadata = queue_trigger_metadata(
            protos,
            message_id=str(uuid.uuid4()),
            dequeue_count=1,
            inserted=now,
            expires=now + dt.timedelta(days=7),
            next_visible=now,
            pop_receipt="",
            body=text,
        )
        return {trigger["name"]: typed_data(protos, text)}, metadata

    app = web.Application(client_max_size=100 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
