"""App settings: what the template sets (per mode), what the code reads, what the README documents,
and what Flex Consumption rejects."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from deploy.checks.bicep import BicepFile, Expr, object_value

SITE = "Microsoft.Web/sites"
SITE_CONFIG = "Microsoft.Web/sites/config"

#: The two modes of the template (main.bicep `useManagedIdentity`).
MODES: Mapping[str, Mapping[str, bool]] = {
    "managed identity": {"useManagedIdentity": True},
    "connection strings": {"useManagedIdentity": False},
}

#: App settings Flex Consumption rejects or ignores: the runtime, deployment and scale settings moved
#: to `functionAppConfig`, and the content-share / Kudu build settings it has no use for
#: (Azure Functions app settings reference, "Flex Consumption plan deprecations").
FLEX_REJECTED_SETTINGS = frozenset({
    "DOCKER_REGISTRY_SERVER_PASSWORD", "DOCKER_REGISTRY_SERVER_URL", "DOCKER_REGISTRY_SERVER_USERNAME",
    "ENABLE_ORYX_BUILD", "FUNCTION_APP_EDIT_MODE", "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_WORKER_SHARED_MEMORY_DATA_TRANSFER_ENABLED", "SCALE_CONTROLLER_LOGGING_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_CONTENTSHARE", "WEBSITE_DNS_SERVER", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_VNET_ROUTE_ALL", "WEBSITE_TIME_ZONE", "TZ",
})

#: Site properties Flex Consumption rejects (they moved to functionAppConfig or do not apply).
FLEX_REJECTED_SITE_CONFIG = frozenset({
    "linuxFxVersion", "windowsFxVersion", "netFrameworkVersion", "javaVersion", "powerShellVersion",
    "pythonVersion", "functionAppScaleLimit", "minimumElasticInstanceCount", "preWarmedInstanceCount",
    "use32BitWorkerProcess", "alwaysOn",
})

#: Settings read by the platform or an SDK rather than by c2d/ itself, and what reads them.
PLATFORM_SETTINGS: Mapping[str, str] = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "Functions host: where telemetry goes",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Functions host: telemetry with the managed identity",
    "AZURE_CLIENT_ID": "azure-identity: DefaultAzureCredential uses this user-assigned identity",
}
#: Prefix of the host's identity-based storage connection (AzureWebJobsStorage__credential, ...).
HOST_STORAGE_PREFIX = "AzureWebJobsStorage__"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SETTING_REF = re.compile(r"%([^%]+)%")


# ---- the template -------------------------------------------------------------------------------
def app_settings_resource(files: Mapping[Path, BicepFile]) -> tuple[BicepFile, Expr]:
    found = [
        (file, resource.properties and resource.body["properties"])
        for file in files.values()
        for resource in file.resources_of_type(SITE_CONFIG)
        if resource.body.get("name") == "appsettings"
    ]
    if len(found) != 1:
        raise AssertionError(f"expected one Microsoft.Web/sites/config 'appsettings' resource, found {len(found)}")
    return found[0]


def template_settings(files: Mapping[Path, BicepFile], switches: Mapping[str, bool]) -> dict[str, Expr]:
    """Every app setting the template gives the function app under `switches`."""
    file, properties = app_settings_resource(files)
    settings = object_value(file, properties, switches)
    for site_file in files.values():
        for site in site_file.resources_of_type(SITE):
            for entry in (site.properties.get("siteConfig") or {}).get("appSettings") or []:
                settings[str(entry.get("name"))] = entry.get("value")
    return settings


def check_flex(files: Mapping[Path, BicepFile]) -> list[str]:
    problems = []
    for mode, switches in MODES.items():
        for name in sorted(set(template_settings(files, switches)) & FLEX_REJECTED_SETTINGS):
            problems.append(f"app setting {name} ({mode} mode): Flex Consumption rejects it")
    for file in files.values():
        for site in file.resources_of_type(SITE):
            site_config = site.properties.get("siteConfig") or {}
            for name in sorted(set(site_config) & FLEX_REJECTED_SITE_CONFIG):
                problems.append(f"{file.path.name}: siteConfig.{name}: Flex Consumption rejects it")
            config = site.properties.get("functionAppConfig") or {}
            runtime = config.get("runtime") or {}
            if (runtime.get("name"), runtime.get("version")) != ("python", "3.13"):
                problems.append(f"{file.path.name}: functionAppConfig.runtime must be python 3.13, got {runtime}")
            storage = (config.get("deployment") or {}).get("storage") or {}
            auth = storage.get("authentication") or {}
            if storage.get("type") != "blobContainer" or auth.get("type") != "UserAssignedIdentity":
                problems.append(f"{file.path.name}: the deployment container must be read with the user-assigned identity")
            scale = config.get("scaleAndConcurrency") or {}
            for key in ("instanceMemoryMB", "maximumInstanceCount"):
                if not file.is_param(scale.get(key)):
                    problems.append(f"{file.path.name}: scaleAndConcurrency.{key} must come from a parameter")
    return problems


# ---- the code -------------------------------------------------------------------------------------
def _module_constants(tree: ast.Module) -> dict[str, str]:
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            constants.update({t.id: node.value.value for t in targets if isinstance(t, ast.Name)})
    return constants


def _callee(node: ast.Call) -> tuple[str, str]:
    """(receiver text, function name) of a call: env.get -> ('env', 'get'), _int_setting -> ('', '_int_setting')."""
    func = node.func
    if isinstance(func, ast.Attribute):
        return ast.unparse(func.value), func.attr
    if isinstance(func, ast.Name):
        return "", func.id
    return "", ""


def _is_env(receiver: str) -> bool:
    last = receiver.rsplit(".", 1)[-1].lower()
    return last in ("env", "environ", "environment", "settings", "values") or last.endswith("env")


def _first_name(args: Iterable[ast.expr], constants: Mapping[str, str]) -> str | None:
    for arg in args:
        value = arg.value if isinstance(arg, ast.Constant) else constants.get(arg.id) if isinstance(arg, ast.Name) else None
        if isinstance(value, str):
            return value if _NAME.match(value) and any(c.isupper() for c in value) else None
    return None


def code_settings(paths: Iterable[Path]) -> dict[str, set[str]]:
    """Setting names passed as string literals (or module constants) to environment lookups
    (os.environ.get / os.getenv / env.get / os.environ[...]) and to setting helpers (any function whose
    name contains 'setting'), mapped to the files that read them."""
    found: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = _module_constants(tree)
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call):
                receiver, func = _callee(node)
                if (func == "get" and _is_env(receiver)) or (func == "getenv" and receiver in ("os", "")) \
                        or "setting" in func.lower():
                    name = _first_name(node.args, constants)
            elif isinstance(node, ast.Subscript) and _is_env(ast.unparse(node.value)):
                name = _first_name([node.slice], constants)
            if name:
                found.setdefault(name, set()).add(path.name)
    return found


def binding_settings(function_dirs: Iterable[Path]) -> dict[str, set[str]]:
    """Settings function.json files name: %SETTING% expressions and binding connections."""
    found: dict[str, set[str]] = {}
    for directory in function_dirs:
        spec = json.loads((directory / "function.json").read_text())
        for binding in spec.get("bindings", []):
            for value in binding.values():
                for name in _SETTING_REF.findall(str(value)):
                    found.setdefault(name, set()).add(f"{directory.name}/function.json")
            if binding.get("type", "").endswith("Trigger") and binding.get("type") not in ("httpTrigger", "timerTrigger"):
                name = binding.get("connection") or "AzureWebJobsStorage"
                found.setdefault(name, set()).add(f"{directory.name}/function.json")
    return found


# ---- the README -------------------------------------------------------------------------------
def readme_configuration(readme: str) -> dict[str, str]:
    """Setting name -> 'required' column of the README's Configuration table."""
    match = re.search(r"^## Configuration\n(.*?)(?=^## )", readme, re.S | re.M)
    if not match:
        raise AssertionError("README.md has no '## Configuration' section")
    rows: dict[str, str] = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


def is_optional(required: str) -> bool:
    return required.lower() == "no" or required.lower().startswith(("no ", "local"))


# ---- the checks -------------------------------------------------------------------------------
def _satisfied(name: str, settings: Mapping[str, Expr]) -> bool:
    """Set, or (for a connection) given identity-based as NAME__credential / NAME__*ServiceUri."""
    return name in settings or any(key.startswith(f"{name}__") for key in settings)


def check_read_settings(read: Mapping[str, set[str]], readme_rows: Mapping[str, str],
                        by_mode: Mapping[str, Mapping[str, Expr]]) -> list[str]:
    """Every setting the app reads is set by the template in every mode, or documented as optional,
    or one of a documented 'one of these two' pair of which the template sets exactly one."""
    problems = []
    pairs = [name for name, required in readme_rows.items() if required.startswith("one of")]
    for name, where in sorted(read.items()):
        unset_modes = [mode for mode, settings in by_mode.items() if not _satisfied(name, settings)]
        if not unset_modes:
            continue
        required = readme_rows.get(name)
        if required is not None and is_optional(required):
            continue
        partners = _pair_of(name, readme_rows)
        if partners and all(sum(_satisfied(p, s) for p in partners) == 1 for s in by_mode.values()):
            continue
        if name in pairs or partners:
            problems.append(f"{name} (read by {', '.join(sorted(where))}): the template must set exactly one of "
                            f"{' / '.join(partners or [name])} in every mode")
            continue
        documented = "documented as required" if required is not None else "not in the README's Configuration table"
        problems.append(f"{name} (read by {', '.join(sorted(where))}) is not set by the template in "
                        f"{' and '.join(unset_modes)} mode and is {documented}")
    return problems


def _pair_of(name: str, rows: Mapping[str, str]) -> list[str]:
    """README pairs: a 'one of these two' row followed by its alternative (required column empty)."""
    names = list(rows)
    for i, row in enumerate(names):
        if rows[row].startswith("one of") and i + 1 < len(names) and rows[names[i + 1]] == "":
            pair = [row, names[i + 1]]
            if name in pair:
                return pair
    return []


def check_template_settings(read: Mapping[str, set[str]], by_mode: Mapping[str, Mapping[str, Expr]]) -> list[str]:
    """Every setting the template sets is read by the app, the host or an SDK: a misspelt name is
    otherwise silently ignored and the app falls back to a default."""
    problems = []
    for mode, settings in by_mode.items():
        for name in sorted(settings):
            if name in read or name in PLATFORM_SETTINGS or name.startswith(HOST_STORAGE_PREFIX):
                continue
            problems.append(f"app setting {name} ({mode} mode) is read by nothing: c2d/ and function.json do not "
                            "use it and it is not a platform setting")
    return problems
