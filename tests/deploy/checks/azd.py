"""azure.yaml and infra/main.parameters.json: valid against their schemas (vendored, offline) and
consistent with the template."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from deploy.checks.bicep import BicepFile, file_named, unquote
from deploy.checks.paths import SCHEMAS
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

_SUBSTITUTION = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?:=([^}]*))?\}$")


def check_jsonschema(schema: Path, instance: Path) -> list[str]:
    """Run check-jsonschema (the CLI, offline: the schema is a local file)."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema), str(instance)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode == 0:
        return []
    return [f"{instance.name}: {line.strip()}" for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def check_azure_yaml(path: Path, files: Mapping[Path, BicepFile]) -> list[str]:
    problems = check_jsonschema(SCHEMAS / "azure.yaml.json", path)
    if problems:
        return problems
    config = yaml.safe_load(path.read_text())
    services = config.get("services") or {}
    if len(services) != 1:
        return [f"azure.yaml: expected one service, got {sorted(services)}"]
    ((name, service),) = services.items()
    expected = {"host": "function", "language": "python", "project": "."}
    for key, value in expected.items():
        if service.get(key) != value:
            problems.append(f"azure.yaml: services.{name}.{key} must be {value!r}, got {service.get(key)!r}")
    infra = config.get("infra") or {}
    module = path.parent / infra.get("path", "infra") / f"{infra.get('module', 'main')}.bicep"
    if module.resolve() not in files:
        problems.append(f"azure.yaml: infra module {module} is not one of the parsed templates")
    app = file_named(files, "function-app.bicep")
    (site,) = app.resources_of_type("Microsoft.Web/sites")
    tag = _azd_service_tag(app, site.body.get("tags"))
    main = file_named(files, "main.bicep")
    passed = next((m.params.get("serviceName") for m in main.modules.values() if m.path == app.path), None)
    if tag != "serviceName" or (passed or app.param_default("serviceName")) != name:
        problems.append(f"azure.yaml: service '{name}' must be the app's azd-service-name tag (tag: {tag!r}, "
                        f"value passed: {passed!r}); azd finds the app to deploy to by that tag")
    return problems


def _azd_service_tag(file: BicepFile, tags: Any) -> Any:
    from deploy.checks.bicep import function

    func = function(tags)
    objects = list(func[1].values()) if func and func[0] == "union" else [tags]
    for candidate in objects:
        if isinstance(candidate, Mapping):
            for key, value in candidate.items():
                if unquote(key) == "azd-service-name":
                    return value
    return None


def _registry() -> Registry:
    resources = []
    for name in ("deploymentParameters.json", "deploymentTemplate.definitions.json"):
        schema = json.loads((SCHEMAS / name).read_text())
        resources.append((schema["id"].rstrip("#"), Resource.from_contents(schema, default_specification=DRAFT4)))
    return Registry().with_resources(resources)


def check_parameters_file(path: Path, main: BicepFile) -> list[str]:
    document = json.loads(path.read_text())
    schema = json.loads((SCHEMAS / "deploymentParameters.json").read_text())
    validator = jsonschema.Draft4Validator(schema, registry=_registry())
    problems = [f"{path.name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    if problems:
        return problems
    given = document["parameters"]
    for name in sorted(set(given) - set(main.parameters)):
        problems.append(f"{path.name}: '{name}' is not a parameter of main.bicep")
    for name, spec in main.parameters.items():
        if spec.get("default") is None and name not in given:
            problems.append(f"{path.name}: main.bicep requires '{name}'")
    for name, entry in given.items():
        if name in main.parameters:
            problems.extend(_check_default(path.name, main, name, entry.get("value")))
    return problems


def _check_default(where: str, main: BicepFile, name: str, value: Any) -> list[str]:
    """A `${VAR=default}` value's default must be valid for the parameter (azd converts bool and int)."""
    match = _SUBSTITUTION.match(value) if isinstance(value, str) else None
    if not match or match.group(2) is None:
        return []
    default, kind = match.group(2), main.parameters[name]["type"]
    problems = []
    converted: Any = default
    if kind == "bool":
        if default not in ("true", "false"):
            return [f"{where}: {name}: default {default!r} is not a bool"]
        converted = default == "true"
    elif kind == "int":
        if not re.fullmatch(r"-?\d+", default):
            return [f"{where}: {name}: default {default!r} is not an int"]
        converted = int(default)
        low, high = main.decorator(name, "min_value"), main.decorator(name, "max_value")
        if (low is not None and converted < low) or (high is not None and converted > high):
            problems.append(f"{where}: {name}: default {converted} is outside {low}..{high}")
    allowed = main.decorator(name, "allowed")
    if allowed is not None and converted not in allowed:
        problems.append(f"{where}: {name}: default {converted!r} is not one of {allowed}")
    return problems
