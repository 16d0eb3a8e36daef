"""HTTP trigger routes: ASP.NET-style templates ("items/{id:int}/{name?}", "{*rest}") and auth levels."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from localcloud.functions_host.app import AppError, FunctionSpec

_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
}
_PARAM = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?(\?)?\}$")
AUTH_LEVELS = ("anonymous", "function", "admin")


@dataclass(frozen=True)
class Route:
    spec: FunctionSpec
    template: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    methods: frozenset[str] = field(default_factory=frozenset)  # empty: every method
    auth_level: str = "function"

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sort key, segment by segment: literal < constrained < plain < optional parameter < catch-all
        (the order ASP.NET routing tries templates in)."""
        ranks = []
        for segment in self.template.split("/"):
            m = _PARAM.match(segment)
            if m is None:
                ranks.append(0)
            else:
                catch_all, _, constraint, optional = m.groups()
                ranks.append(4 if catch_all else 3 if optional else 1 if constraint else 2)
        return tuple(ranks)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.methods and method.upper() not in self.methods:
            return None
        m = self.pattern.fullmatch(path.strip("/"))
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """Turn a route template into a case-insensitive regex over the path (no leading/trailing '/')."""
    parts: list[str] = []
    names: list[str] = []
    segments = [s for s in template.strip("/").split("/") if s != ""]
    for i, segment in enumerate(segments):
        m = _PARAM.match(segment)
        if m is None:
            if "{" in segment or "}" in segment:
                raise AppError(f"route template '{template}': unsupported segment '{segment}'")
            parts.append(("/" if i else "") + re.escape(segment))
            continue
        catch_all, name, constraint, optional = m.groups()
        if constraint and constraint.lower() not in _CONSTRAINTS:
            raise AppError(f"route template '{template}': unknown constraint '{constraint}'")
        names.append(name)
        body = ".*" if catch_all else _CONSTRAINTS[constraint.lower()] if constraint else r"[^/]+"
        sep = "/" if i else ""
        if optional or catch_all:
            parts.append(f"(?:{sep}(?P<{name}>{body}))?")
        else:
            parts.append(f"{sep}(?P<{name}>{body})")
    return re.compile("".join(parts), re.IGNORECASE), tuple(names)


def build_route(spec: FunctionSpec, prefix: str) -> Route:
    trigger = spec.trigger
    template = str(trigger.get("route") or spec.name)
    full = "/".join(p.strip("/") for p in (prefix, template) if p.strip("/"))
    pattern, params = compile_template(full)
    methods = frozenset(str(m).upper() for m in (trigger.get("methods") or []))
    level = str(trigger.get("authLevel") or "function").lower()
    if level not in AUTH_LEVELS:
        raise AppError(f"function '{spec.name}': unknown authLevel '{level}'")
    return Route(spec, full, pattern, params, methods, level)


@dataclass(frozen=True)
class Keys:
    """Keys from app settings (see app.FUNCTION_KEY_SETTING / MASTER_KEY_SETTING)."""

    function_key: str = ""
    master_key: str = ""

    def allows(self, level: str, presented: str | None) -> bool:
        if level == "anonymous":
            return True
        if not presented:
            return False
        if self.master_key and hmac.compare_digest(presented.encode(), self.master_key.encode()):
            return True
        return (
            level == "function"
            and bool(self.function_key)
            and hmac.compare_digest(presented.encode(), self.function_key.encode())
        )


def presented_key(headers: Any, query: Any) -> str | None:
    return headers.get("x-functions-key") or query.get("code")
