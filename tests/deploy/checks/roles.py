"""Role assignments: whom they grant what, where, under which name.

The documented roles (README, Deploy section) and where each may be granted. Ids are Azure's
built-in role definition ids, the same in every tenant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy.checks.bicep import (
    BicepFile,
    Expr,
    accessor_chain,
    alternatives,
    evaluate_bool,
    function,
    resolve_variable,
    trace,
)

ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
ROLE_DEFINITION = "Microsoft.Authorization/roleDefinitions"
IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"
CUSTOM_IOTHUB_ROLE = "custom IoT Hub C2D role"


@dataclass(frozen=True)
class Role:
    name: str
    scope_type: str


BUILT_IN_ROLES: Mapping[str, Role] = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": Role("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": Role("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": Role("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
    "3913510d-42f4-4e42-8a64-420c390055eb": Role("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": Role("Azure Service Bus Data Sender", "Microsoft.ServiceBus/namespaces/topics"),
    "4fc6c259-987e-4a07-842e-c321cc9d413f": Role("IoT Hub Data Contributor", "Microsoft.Devices/IotHubs"),
    "4633458b-17de-408a-b874-0445c86b69e6": Role("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),
}

# The only data actions the app uses on IoT Hub (send, feedback, purge, registry queries).
IOTHUB_DATA_ACTIONS = frozenset({
    "Microsoft.Devices/IotHubs/cloudToDeviceMessages/send/action",
    "Microsoft.Devices/IotHubs/cloudToDeviceMessages/feedback/action",
    "Microsoft.Devices/IotHubs/cloudToDeviceMessages/queue/purge/action",
    "Microsoft.Devices/IotHubs/twins/read",
})

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_NONDETERMINISTIC = {"new_guid", "newGuid", "utc_now", "utcNow"}


@dataclass(frozen=True)
class Grant:
    file: Path
    symbol: str
    role: str  # built-in role name or CUSTOM_IOTHUB_ROLE
    scope_type: str


def _canonical(file: BicepFile, value: Expr) -> Expr:
    """`someRoleDefinition.name` -> that resource's name expression (variables resolved)."""
    chain = accessor_chain(value)
    if len(chain) == 2 and chain[1] == "name" and chain[0] in file.resources:
        return resolve_variable(file, file.resources[chain[0]].body.get("name"))
    return resolve_variable(file, value)


def _custom_role_symbol(file: BicepFile, value: Expr) -> str | None:
    for resource in file.resources_of_type(ROLE_DEFINITION):
        if repr(_canonical(file, value)) == repr(_canonical(file, f"{resource.symbol}.name")) or (
            accessor_chain(value) == [resource.symbol, "name"]
        ):
            return resource.symbol
    return None


def _role_names(file: BicepFile, role_id_expr: Expr, problems: list[str], where: str,
                switches: Mapping[str, bool] | None = None) -> list[str]:
    func = function(role_id_expr)
    if not func or func[0] != "subscription_resource_id" or func[1].get("resource_type") != ROLE_DEFINITION:
        problems.append(f"{where}: roleDefinitionId is not subscriptionResourceId('{ROLE_DEFINITION}', <role id>)")
        return []
    names: list[str] = []
    for value in alternatives(file, func[1]["resource_name_1"], switches):
        custom = _custom_role_symbol(file, value)
        if custom is not None:
            problems.extend(check_custom_role(file, custom))
            names.append(CUSTOM_IOTHUB_ROLE)
        elif isinstance(value, str) and _GUID.match(value):
            if value in BUILT_IN_ROLES:
                names.append(BUILT_IN_ROLES[value].name)
            else:
                problems.append(f"{where}: role id {value} is not one of the documented roles")
        else:
            problems.append(f"{where}: cannot tell which role {value!r} is")
    return names


def check_custom_role(file: BicepFile, symbol: str) -> list[str]:
    where = f"{file.path.name}: role definition '{symbol}'"
    properties = file.resources[symbol].properties
    problems: list[str] = []
    permissions = properties.get("permissions") or []
    if len(permissions) != 1:
        return [f"{where}: expected exactly one permissions block"]
    (block,) = permissions
    data_actions = alternatives(file, block.get("dataActions"))
    if len(data_actions) != 1 or set(data_actions[0] or []) != IOTHUB_DATA_ACTIONS:
        problems.append(f"{where}: dataActions must be exactly {sorted(IOTHUB_DATA_ACTIONS)}, got {data_actions}")
    if block.get("actions") or block.get("notDataActions") or block.get("notActions"):
        problems.append(f"{where}: grants control-plane actions or exclusions; the app needs data actions only")
    return problems


def identity_principal_sources(files: Mapping[Path, BicepFile], file: BicepFile, expr: Expr) -> list[str]:
    """Describe where a principal id comes from; 'identity:<file>:<resource>' for a managed identity."""
    described = []
    for origin_file, origin in trace(files, file, expr):
        chain = accessor_chain(origin)
        if len(chain) == 3 and chain[0] in origin_file.modules and chain[1] == "outputs":
            target = files.get(origin_file.modules[chain[0]].path)
            output = target.outputs.get(chain[2]) if target else None
            inner = accessor_chain(output["value"]) if output else []
            if target and inner[1:] == ["properties", "principalId"] and inner[0] in target.resources \
                    and target.resources[inner[0]].type == IDENTITY:
                described.append(f"identity:{origin_file.path.name}:{chain[0]}")
                continue
        described.append(f"not an identity: {origin!r} in {origin_file.path.name}")
    return described


def check_assignment(files: Mapping[Path, BicepFile], file: BicepFile, symbol: str,
                     switches: Mapping[str, bool] | None = None) -> tuple[list[Grant], list[str]]:
    resource = file.resources[symbol]
    where = f"{file.path.name}: role assignment '{symbol}'"
    problems: list[str] = []
    properties = resource.properties
    principal = properties.get("principalId")
    if not file.is_param(principal):
        problems.append(f"{where}: principalId must be a parameter fed with the app's identity, got {principal!r}")
    else:
        for source in identity_principal_sources(files, file, principal):
            if not source.startswith("identity:"):
                problems.append(f"{where}: principal is {source}, not the app's user-assigned identity")
    if properties.get("principalType") != "ServicePrincipal":
        problems.append(f"{where}: principalType must be 'ServicePrincipal' (a managed identity)")
    scope = resource.body.get("scope")
    scope_resource = file.resources.get(scope) if isinstance(scope, str) else None
    if scope_resource is None:
        problems.append(f"{where}: scope must be a resource of this file, got {scope!r}")
    names = _role_names(file, properties.get("roleDefinitionId"), problems, where, switches)
    grants = []
    for name in names:
        allowed = "Microsoft.Devices/IotHubs" if name == CUSTOM_IOTHUB_ROLE else next(
            r.scope_type for r in BUILT_IN_ROLES.values() if r.name == name
        )
        if scope_resource is not None and scope_resource.type.lower() != allowed.lower():
            problems.append(f"{where}: {name} must be scoped to a {allowed}, not a {scope_resource.type}")
        grants.append(Grant(file.path, symbol, name, scope_resource.type if scope_resource else "?"))
    problems.extend(_check_name(file, resource.body.get("name"), principal, properties.get("roleDefinitionId"), where))
    return grants, problems


def _check_name(file: BicepFile, name: Expr, principal: Expr, role_id: Expr, where: str) -> list[str]:
    func = function(name)
    if not func or func[0] != "guid":
        return [f"{where}: name must be guid(scope id, principal, role) so re-deploying is idempotent"]
    arguments = list(func[1].values())
    text = repr(arguments)
    problems = []
    if any(f"'{word}'" in text for word in _NONDETERMINISTIC):
        problems.append(f"{where}: name must not depend on newGuid()/utcNow()")
    if principal not in arguments:
        problems.append(f"{where}: name must include the principal ({principal!r})")
    role_inner = function(role_id)[1].get("resource_name_1") if function(role_id) else None
    role_values = {repr(_canonical(file, v)) for v in alternatives(file, role_inner)}
    if not any({repr(_canonical(file, v)) for v in alternatives(file, a)} <= role_values
               for a in arguments if a != principal):
        problems.append(f"{where}: name must include the role id")
    if not any(accessor_chain(a)[-1:] == ["id"] for a in arguments):
        problems.append(f"{where}: name must include the scope's resource id")
    return problems


def check_all(files: Mapping[Path, BicepFile]) -> tuple[list[Grant], list[str]]:
    grants: list[Grant] = []
    problems: list[str] = []
    for file in files.values():
        for resource in file.resources_of_type(ROLE_ASSIGNMENT):
            found, issues = check_assignment(files, file, resource.symbol)
            grants.extend(found)
            problems.extend(issues)
    return grants, problems


def granted(files: Mapping[Path, BicepFile], switches: Mapping[str, bool]) -> set[str]:
    """Roles the app ends up with when the template's bool switches have these values."""
    result = set()
    for file in files.values():
        for resource in file.resources_of_type(ROLE_ASSIGNMENT):
            if resource.condition is not None and evaluate_bool(file, resource.condition, switches) is False:
                continue
            if any(m.condition is not None and evaluate_bool(caller, m.condition, switches) is False
                   for caller in files.values() for m in caller.modules.values() if m.path == file.path):
                continue
            names = _role_names(file, resource.properties.get("roleDefinitionId"), [], "", switches)
            result.update(names)
    return result
