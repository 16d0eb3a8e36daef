"""NCRONTAB schedules and route templates (pure functions, no processes)."""

from __future__ import annotations

import datetime as dt

import pytest

from localcloud.functions_host.app import AppError, FunctionSpec, expand_settings, parse_timespan
from localcloud.functions_host.ncrontab import parse_schedule
from localcloud.functions_host.routes import Keys, build_route

T0 = dt.datetime(2026, 11, 26, 11, 59, 58, 500000, tzinfo=dt.UTC)  # a Thursday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/10 * * * * *", dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)),
        ("0 */5 * * * *", dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)),
        ("30 59 11 * * *", dt.datetime(2026, 11, 27, 11, 59, 30, tzinfo=dt.UTC)),
        ("0 30 9 * * Mon-Fri", dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)),
        ("0 0 10 * * 0,6", dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)),
        ("0 0 0 29 Feb *", dt.datetime(2028, 2, 29, tzinfo=dt.UTC)),
        ("0 0 0 1 1 *", dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ("5-7 * * * * *", dt.datetime(2026, 11, 26, 12, 0, 5, tzinfo=dt.UTC)),
        ("00:00:05", dt.datetime(2026, 11, 26, 12, 0, 3, 500000, tzinfo=dt.UTC)),
    ],
)
def test_next_occurrence(expression: str, expected: dt.datetime) -> None:
    assert parse_schedule(expression).next_after(T0) == expected


def test_next_occurrence_is_strictly_after() -> None:
    at = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_schedule("*/10 * * * * *").next_after(at) == at + dt.timedelta(seconds=10)


@pytest.mark.parametrize("expression", ["* * * * *", "61 * * * * *", "*/0 * * * * *", "a * * * * *", "5-1 * * * * *"])
def test_invalid_schedules_are_refused(expression: str) -> None:
    with pytest.raises(AppError):
        parse_schedule(expression)


def test_setting_expansion() -> None:
    assert expand_settings("%A%-%B%", {"A": "x", "B": "y"}) == "x-y"
    with pytest.raises(AppError, match="'MISSING'"):
        expand_settings("%MISSING%", {})


def test_timespans() -> None:
    assert parse_timespan("00:00:00.500", 0) == 0.5
    assert parse_timespan("1.02:00:00", 0) == 93600
    assert parse_timespan(None, 7) == 7


def _spec(trigger: dict[str, object]) -> FunctionSpec:
    binding = {"type": "httpTrigger", "direction": "in", "name": "req", **trigger}
    return FunctionSpec("Fn", None, None, "", (binding,))  # type: ignore[arg-type]


def test_route_template_parameters_and_constraints() -> None:
    route = build_route(_spec({"route": "items/{id:int}/{name?}", "methods": ["get"]}), "api")
    assert route.match("GET", "/api/items/42/bob") == {"id": "42", "name": "bob"}
    assert route.match("get", "/API/Items/42") == {"id": "42"}
    assert route.match("GET", "/api/items/x") is None
    assert route.match("POST", "/api/items/42") is None


def test_default_route_empty_prefix_and_catch_all() -> None:
    assert build_route(_spec({}), "api").match("PATCH", "/api/fn") == {}
    route = build_route(_spec({"route": "files/{*path}"}), "")
    assert route.match("GET", "/files/a/b/c.txt") == {"path": "a/b/c.txt"}


def test_default_auth_level_is_function() -> None:
    assert build_route(_spec({}), "api").auth_level == "function"


def test_keys() -> None:
    keys = Keys(function_key="f", master_key="m")
    assert keys.allows("anonymous", None)
    assert keys.allows("function", "f") and keys.allows("function", "m")
    assert not keys.allows("admin", "f") and keys.allows("admin", "m")
    assert not Keys().allows("function", "")  # no keys configured: nothing but anonymous


def test_route_precedence_literal_before_parameter_before_catch_all() -> None:
    routes = [
        build_route(_spec({"route": route}), "api")
        for route in ["{*rest}", "items/{name}", "items/{id:int}", "items/special", "items/{opt?}"]
    ]
    ordered = [r.template for r in sorted(routes, key=lambda r: r.precedence)]
    assert ordered == ["api/items/special", "api/items/{id:int}", "api/items/{name}", "api/items/{opt?}", "api/{*rest}"]
