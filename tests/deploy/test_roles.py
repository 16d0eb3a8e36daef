"""Role assignments: each for the app's identity, each a documented role on the scope it belongs to,
each with a deterministic name; and per mode, exactly the roles the README lists."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from deploy.checks import roles
from deploy.checks.bicep import BicepFile
from deploy.checks.paths import InfraEditor

IDENTITY_MODE = {
    "Storage Blob Data Owner", "Storage Queue Data Contributor", "Storage Table Data Contributor",
    "Monitoring Metrics Publisher", "Azure Service Bus Data Sender",
}
STORAGE_AND_TELEMETRY = IDENTITY_MODE - {"Azure Service Bus Data Sender"}


def test_every_role_assignment_is_for_the_app_identity_with_a_documented_role(infra: Mapping[Path, BicepFile]) -> None:
    grants, problems = roles.check_all(infra)
    assert problems == []
    assert {(g.role, g.scope_type) for g in grants} == {
        ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
        ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
        ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
        ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
        ("Azure Service Bus Data Sender", "Microsoft.ServiceBus/namespaces/topics"),
        ("IoT Hub Data Contributor", "Microsoft.Devices/IotHubs"),
        (roles.CUSTOM_IOTHUB_ROLE, "Microsoft.Devices/IotHubs"),
        ("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),
    }


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        ({"useManagedIdentity": True, "useIotHubDataContributorRole": False}, IDENTITY_MODE | {roles.CUSTOM_IOTHUB_ROLE}),
        ({"useManagedIdentity": True, "useIotHubDataContributorRole": True}, IDENTITY_MODE | {"IoT Hub Data Contributor"}),
        ({"useManagedIdentity": False, "useIotHubDataContributorRole": False}, STORAGE_AND_TELEMETRY | {"Key Vault Secrets User"}),
    ],
    ids=["managed identity", "IoT Hub Data Contributor fallback", "connection strings"],
)
def test_each_mode_grants_exactly_its_roles(infra: Mapping[Path, BicepFile], switches: dict[str, bool], expected: set[str]) -> None:
    assert roles.granted(infra, switches) == expected


def test_the_custom_iot_hub_role_allows_only_the_four_data_actions(infra: Mapping[Path, BicepFile]) -> None:
    (rbac,) = [f for f in infra.values() if f.resources_of_type(roles.ROLE_DEFINITION)]
    (definition,) = rbac.resources_of_type(roles.ROLE_DEFINITION)
    assert roles.check_custom_role(rbac, definition.symbol) == []
    assert definition.properties["type"] == "CustomRole"
    assert definition.properties["assignableScopes"] == [{"operator": {"type": "property_accessor", "operands": {
        "operand_1": {"function": {"type": "resource_group", "parameters": {"resource_group_name": None, "subscription_id": None}}},
        "operand_2": "id"}}}], "assignable in the app's resource group only"


def test_a_wrong_role_id_is_reported(seeded_infra: InfraEditor) -> None:
    # Storage Blob Data Contributor: a real role, but not the documented one
    files = seeded_infra("app/rbac.bicep", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "ba92f5b4-2d11-453d-a403-e96b0029c9fe")
    _, problems = roles.check_all(files)
    assert "rbac.bicep: role assignment 'blobOwner': role id ba92f5b4-2d11-453d-a403-e96b0029c9fe is not one of the documented roles" in problems


def test_a_role_on_the_wrong_scope_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/rbac.bicep", "  scope: outcomeTopic\n", "  scope: serviceBus\n")
    _, problems = roles.check_all(files)
    assert ("rbac.bicep: role assignment 'topicSender': Azure Service Bus Data Sender must be scoped to a "
            "Microsoft.ServiceBus/namespaces/topics, not a Microsoft.ServiceBus/namespaces") in problems


def test_a_role_for_another_principal_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/rbac.bicep", "    principalId: principalId\n    principalType: 'ServicePrincipal'\n  }\n}\n\nresource queueContributor",
                         "    principalId: deployer\n    principalType: 'ServicePrincipal'\n  }\n}\n\nresource queueContributor")
    _, problems = roles.check_all(files)
    assert ("rbac.bicep: role assignment 'blobOwner': principalId must be a parameter fed with the app's identity, "
            "got 'deployer'") in problems


def test_a_principal_from_a_deployment_parameter_is_reported(seeded_infra: InfraEditor) -> None:
    seeded_infra("main.bicep", "param resourceGroupName string = ''", "param resourceGroupName string = ''\nparam adminPrincipalId string")
    files = seeded_infra("main.bicep", "principalId: identity.outputs.principalId", "principalId: adminPrincipalId")
    _, problems = roles.check_all(files)
    assert any("role assignment 'blobOwner': principal is not an identity: 'adminPrincipalId' in main.bicep" in p for p in problems)


def test_a_random_role_assignment_name_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/rbac.bicep", "name: guid(storage.id, principalId, storageQueueDataContributor)",
                         "name: guid(storage.id, storageQueueDataContributor)")
    _, problems = roles.check_all(files)
    assert problems == ["rbac.bicep: role assignment 'queueContributor': name must include the principal ('principalId')"]


def test_an_extra_data_action_in_the_custom_role_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/rbac.bicep", "  'Microsoft.Devices/IotHubs/twins/read'\n",
                         "  'Microsoft.Devices/IotHubs/twins/read'\n  'Microsoft.Devices/IotHubs/devices/delete'\n")
    _, problems = roles.check_all(files)
    assert any("role definition 'iotHubSenderRole': dataActions must be exactly" in p for p in problems)
