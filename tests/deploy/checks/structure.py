"""Template structure: modules wired to parameters that exist, and the security properties that a
typo would silently turn off."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from deploy.checks.bicep import BicepFile, accessor_chain, alternatives, file_named, source_of, trace

_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_modules(files: Mapping[Path, BicepFile]) -> list[str]:
    """Every local module exists; every parameter passed is declared; every required one is passed."""
    problems = []
    for file in files.values():
        for module in file.modules.values():
            where = f"{file.path.name}: module '{module.symbol}'"
            target = files.get(module.path)
            if target is None:
                problems.append(f"{where}: {module.path} is not a parsed .bicep file of infra/")
                continue
            for name in sorted(set(module.params) - set(target.parameters)):
                problems.append(f"{where}: passes '{name}', which {target.path.name} does not declare")
            for name, spec in target.parameters.items():
                if name not in module.params and spec.get("default") is None:
                    problems.append(f"{where}: does not pass '{name}', which {target.path.name} requires")
            for dependency in module.depends_on:
                if dependency not in file.modules and dependency not in file.resources:
                    problems.append(f"{where}: dependsOn '{dependency}', which is not declared")
    return problems


def check_api_versions(files: Mapping[Path, BicepFile]) -> list[str]:
    return [
        f"{file.path.name}: {resource.symbol} uses API version {resource.api_version} (use a GA version)"
        for file in files.values()
        for resource in file.resources.values()
        if not _DATED.match(resource.api_version)
    ]


def check_security(files: Mapping[Path, BicepFile]) -> list[str]:
    """Properties that keep secrets out: shared keys off on storage, local auth off on telemetry,
    SAS off on Service Bus in managed-identity mode, TLS 1.2, HTTPS only."""
    problems = []
    for file in files.values():
        for resource in file.resources.values():
            if resource.existing:
                continue
            props = resource.properties
            where = f"{file.path.name}: {resource.symbol}"
            if resource.type == "Microsoft.Storage/storageAccounts":
                for key, expected in (("allowSharedKeyAccess", False), ("allowBlobPublicAccess", False),
                                      ("minimumTlsVersion", "TLS1_2"), ("supportsHttpsTrafficOnly", True)):
                    if props.get(key) != expected:
                        problems.append(f"{where}: {key} must be {expected!r}, got {props.get(key)!r}")
            if resource.type == "Microsoft.Insights/components" and props.get("DisableLocalAuth") is not True:
                problems.append(f"{where}: DisableLocalAuth must be true (telemetry by identity only)")
            if resource.type == "Microsoft.Web/sites" and props.get("httpsOnly") is not True:
                problems.append(f"{where}: httpsOnly must be true")
            if resource.type == "Microsoft.ServiceBus/namespaces":
                values = alternatives(file, props.get("disableLocalAuth"))
                if values != [{"operator": {"type": "not", "operands": {"bool_value": "allowSasKeys"}}}] \
                        and values != [True]:
                    problems.append(f"{where}: disableLocalAuth must be true unless SAS keys are asked for")
            if resource.type == "Microsoft.KeyVault/vaults" and props.get("enableRbacAuthorization") is not True:
                problems.append(f"{where}: enableRbacAuthorization must be true (Key Vault Secrets User role)")
    return problems


def identity_of(files: Mapping[Path, BicepFile], file: BicepFile, expr: object, output: str) -> set[str]:
    """Which identity module (`<file>:<module symbol>`) a value is the `output` of."""
    found = set()
    for origin_file, origin in trace(files, file, expr):
        chain = accessor_chain(origin)
        if len(chain) == 3 and chain[1] == "outputs" and chain[2] == output and chain[0] in origin_file.modules:
            found.add(f"{origin_file.path.name}:{chain[0]}")
        else:
            found.add(f"not an identity output: {origin!r}")
    return found


def check_app_identity(files: Mapping[Path, BicepFile]) -> list[str]:
    """The app runs as, deploys with and resolves Key Vault references with one user-assigned
    identity: the same one all roles are granted to."""
    app_file = file_named(files, "function-app.bicep")
    (site,) = app_file.resources_of_type("Microsoft.Web/sites")
    problems = []
    identity = site.body.get("identity") or {}
    assigned = list((identity.get("userAssignedIdentities") or {}).keys())
    if identity.get("type") != "UserAssigned" or assigned != ["'${identityId}'"]:
        problems.append("function-app.bicep: the site must run as exactly the user-assigned identity `identityId`")
    config = site.properties.get("functionAppConfig") or {}
    auth = ((config.get("deployment") or {}).get("storage") or {}).get("authentication") or {}
    if auth.get("userAssignedIdentityResourceId") != "identityId":
        problems.append("function-app.bicep: the deployment container must be read with `identityId`")
    if site.properties.get("keyVaultReferenceIdentity") != "identityId":
        problems.append("function-app.bicep: keyVaultReferenceIdentity must be `identityId`")
    runs_as = identity_of(files, app_file, "identityId", "id")
    client = identity_of(files, app_file, "identityClientId", "clientId")
    rbac = file_named(files, "rbac.bicep")
    principal = identity_of(files, rbac, "principalId", "principalId")
    if not (len(runs_as) == 1 and runs_as == client == principal):
        problems.append(f"one identity must run the app ({runs_as}), give its client id ({client}) and receive "
                        f"the roles ({principal})")
    return problems


def resource_sources(files: Mapping[Path, BicepFile], file: BicepFile, expr: object) -> set[tuple[str, str]]:
    """(resource type, property path) each value of `expr` is read from, e.g. the hub's properties.hostName."""
    found = set()
    for origin_file, chain in source_of(files, file, expr):
        if chain and isinstance(chain[0], str) and chain[0] in origin_file.resources:
            found.add((origin_file.resources[chain[0]].type, ".".join(map(str, chain[1:]))))
        else:
            found.add(("?", repr(chain)))
    return found
