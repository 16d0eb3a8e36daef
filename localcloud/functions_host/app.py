"""Reads a v1-model function app from disk: host.json, local.settings.json and each function.json."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Binding types this host implements; anything else is refused the way the real host refuses
# an unregistered extension (the function is in error, the others still run).
TRIGGER_TYPES = frozenset({"httpTrigger", "timerTrigger", "queueTrigger"})
OUTPUT_TYPES = frozenset({"http", "queue"})

# Settings that configure this host and never reach the worker's environment.
FUNCTION_KEY_SETTING = "LocalHost__FunctionKey"
MASTER_KEY_SETTING = "LocalHost__MasterKey"
HOST_ONLY_SETTINGS = frozenset({FUNCTION_KEY_SETTING, MASTER_KEY_SETTING})

_SETTING_REF = re.compile(r"%([^%]+)%")


class AppError(Exception):
    """The app as a whole cannot be run (missing host.json, unreadable settings)."""


@dataclass(frozen=True)
class FunctionSpec:
    """One function folder, as the host sends it to the worker."""

    name: str
    directory: Path
    script_file: Path
    entry_point: str
    bindings: tuple[dict[str, Any], ...]
    function_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if b.get("type") in TRIGGER_TYPES)

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])


@dataclass
class FunctionApp:
    root: Path
    host_json: dict[str, Any]
    settings: dict[str, str]
    functions: list[FunctionSpec]
    # function name -> why the host refused it before it reached the worker
    errors: dict[str, str]
    local_http_port: int | None = None

    def extension(self, name: str) -> dict[str, Any]:
        ext = self.host_json.get("extensions") or {}
        value = ext.get(name) or {}
        return value if isinstance(value, dict) else {}

    def worker_env(self) -> dict[str, str]:
        return {k: v for k, v in self.settings.items() if k not in HOST_ONLY_SETTINGS}


def expand_settings(value: str, settings: dict[str, str]) -> str:
    """Replace %NAME% with the app setting NAME, as the host does for binding properties."""

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in settings:
            raise AppError(f"app setting '{key}' referenced as '%{key}%' is not defined")
        return settings[key]

    return _SETTING_REF.sub(repl, value)


def _local_settings(root: Path) -> dict[str, Any]:
    path = root / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise AppError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise AppError(f"{path} must hold a JSON object")
    return data


def read_settings(root: Path) -> dict[str, str]:
    path = root / "local.settings.json"
    data = _local_settings(root)
    values = data.get("Values") or {}
    if not isinstance(values, dict):
        raise AppError(f"{path}: 'Values' must be an object")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def _is_disabled(name: str, raw: dict[str, Any], settings: dict[str, str]) -> bool:
    if raw.get("disabled") is True:
        return True
    flag = settings.get(f"AzureWebJobs.{name}.Disabled", "")
    return flag.strip().lower() in ("1", "true")


def _validate_bindings(name: str, bindings: list[Any]) -> tuple[dict[str, Any], ...]:
    if not bindings:
        raise AppError(f"function '{name}': function.json has no bindings")
    result = []
    unknown = []
    for b in bindings:
        if not isinstance(b, dict) or not b.get("type") or not b.get("name") or not b.get("direction"):
            raise AppError(f"function '{name}': every binding needs 'type', 'name' and 'direction'")
        if b["type"] not in TRIGGER_TYPES | OUTPUT_TYPES:
            unknown.append(b["type"])
        result.append(dict(b))
    if unknown:
        raise AppError(f"function '{name}': the binding type(s) '{', '.join(unknown)}' are not registered in this host")
    triggers = [b for b in result if b["type"] in TRIGGER_TYPES]
    if len(triggers) != 1:
        raise AppError(f"function '{name}': exactly one trigger binding is required, found {len(triggers)}")
    return tuple(result)


def read_function(directory: Path, settings: dict[str, str]) -> FunctionSpec | None:
    """Parse one function folder; None if it is disabled."""
    name = directory.name
    try:
        raw = json.loads((directory / "function.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise AppError(f"function '{name}': cannot read function.json: {exc}") from exc
    if _is_disabled(name, raw, settings):
        return None
    bindings = _validate_bindings(name, raw.get("bindings") or [])
    script = directory / str(raw.get("scriptFile") or "__init__.py")
    return FunctionSpec(
        name=name,
        directory=directory.resolve(),
        script_file=script.resolve(),
        entry_point=str(raw.get("entryPoint") or ""),
        bindings=bindings,
    )


#: App settings that override host.json, as in Azure: `AzureFunctionsJobHost__extensions__queues__batchSize`.
HOST_JSON_OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def apply_host_json_overrides(host_json: dict[str, Any], settings: dict[str, str]) -> dict[str, Any]:
    """A copy of host.json with every `AzureFunctionsJobHost__a__b` setting written to `a.b` (as a string,
    which is how the real host sees them too; the readers parse timespans and numbers from strings)."""
    result = json.loads(json.dumps(host_json))
    for name, value in settings.items():
        if not name.startswith(HOST_JSON_OVERRIDE_PREFIX):
            continue
        path = name[len(HOST_JSON_OVERRIDE_PREFIX):].split("__")
        node = result
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = value
    return result


def load_app(root: Path, extra_settings: dict[str, str] | None = None) -> FunctionApp:
    root = root.resolve()
    host_path = root / "host.json"
    if not host_path.is_file():
        raise AppError(f"{root} is not a function app: host.json not found")
    try:
        host_json = json.loads(host_path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise AppError(f"cannot parse {host_path}: {exc}") from exc
    settings = read_settings(root)
    settings.update(extra_settings or {})
    host_json = apply_host_json_overrides(host_json, settings)
    functions: list[FunctionSpec] = []
    errors: dict[str, str] = {}
    for directory in sorted(p for p in root.iterdir() if (p / "function.json").is_file()):
        try:
            spec = read_function(directory, settings)
        except AppError as exc:
            errors[directory.name] = str(exc)
            continue
        if spec is not None:
            functions.append(spec)
    host_section = _local_settings(root).get("Host") or {}
    port = host_section.get("LocalHttpPort") if isinstance(host_section, dict) else None
    return FunctionApp(
        root=root,
        host_json=host_json,
        settings=settings,
        functions=functions,
        errors=errors,
        local_http_port=int(port) if port else None,
    )


def parse_timespan(value: str | None, default: float) -> float:
    """host.json TimeSpan 'hh:mm:ss[.fff]' or 'd.hh:mm:ss' -> seconds."""
    if value is None:
        return default
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if not match:
        raise AppError(f"invalid TimeSpan '{value}' (expected hh:mm:ss)")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
