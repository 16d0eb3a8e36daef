"""Every .bicep file parses (pycep-parser), its modules are wired to parameters that exist, and the
properties that keep keys out are set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from deploy.checks import structure
from deploy.checks.bicep import BicepFile, file_named
from deploy.checks.paths import INFRA, InfraEditor


def test_every_bicep_file_is_parsed(infra: Mapping[Path, BicepFile]) -> None:
    on_disk = {path.resolve() for path in INFRA.rglob("*.bicep")}
    assert set(infra) == on_disk
    assert {p.relative_to(INFRA).as_posix() for p in on_disk} >= {
        "main.bicep", "app/function-app.bicep", "app/rbac.bicep", "app/keyvault.bicep",
        "core/identity.bicep", "core/storage.bicep", "core/iothub.bicep", "core/servicebus.bicep",
        "core/monitoring.bicep",
    }
    assert all(f.resources or f.modules for f in infra.values())
    assert file_named(infra, "main.bicep").tree["globals"]["scope"]["value"] == "subscription"


def test_modules_pass_exactly_the_parameters_their_files_declare(infra: Mapping[Path, BicepFile]) -> None:
    assert structure.check_modules(infra) == []


def test_a_misspelt_module_parameter_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("main.bicep", "    feedbackSchedule: feedbackSchedule\n", "    feedbackSchedul: feedbackSchedule\n")
    problems = structure.check_modules(files)
    assert "main.bicep: module 'functionApp': passes 'feedbackSchedul', which function-app.bicep does not declare" in problems


def test_a_required_module_parameter_left_out_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("main.bicep", "    identityClientId: identity.outputs.clientId\n", "")
    assert "main.bicep: module 'functionApp': does not pass 'identityClientId', which function-app.bicep requires" in (
        structure.check_modules(files)
    )


def test_every_resource_uses_a_ga_api_version(infra: Mapping[Path, BicepFile]) -> None:
    assert structure.check_api_versions(infra) == []


def test_keys_stay_off(infra: Mapping[Path, BicepFile]) -> None:
    assert structure.check_security(infra) == []


def test_shared_key_access_turned_on_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("core/storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true")
    assert structure.check_security(files) == [
        "storage.bicep: account: allowSharedKeyAccess must be False, got True"
    ]


def test_one_identity_runs_the_app_and_receives_the_roles(infra: Mapping[Path, BicepFile]) -> None:
    assert structure.check_app_identity(infra) == []


def test_roles_for_another_identity_than_the_apps_are_reported(seeded_infra: InfraEditor) -> None:
    seeded_infra("main.bicep", "module identity 'core/identity.bicep' = {",
                 "module other 'core/identity.bicep' = {\n  name: 'other'\n  scope: rg\n  params: {\n"
                 "    name: 'id-other'\n    location: location\n  }\n}\n\nmodule identity 'core/identity.bicep' = {")
    files = seeded_infra("main.bicep", "principalId: identity.outputs.principalId", "principalId: other.outputs.principalId")
    (problem,) = structure.check_app_identity(files)
    assert "receive the roles ({'main.bicep:other'})" in problem


def test_the_flex_plan_and_python_3_13(infra: Mapping[Path, BicepFile]) -> None:
    app = file_named(infra, "function-app.bicep")
    (plan,) = app.resources_of_type("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.properties["reserved"] is True
    (site,) = app.resources_of_type("Microsoft.Web/sites")
    assert site.body["kind"] == "functionapp,linux"
    assert site.properties["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.13"}
    main = file_named(infra, "main.bicep")
    assert main.decorator("instanceMemoryMB", "allowed") == [512, 2048, 4096]
    assert main.param_default("instanceMemoryMB") == 2048
    assert (main.decorator("maximumInstanceCount", "min_value"), main.decorator("maximumInstanceCount", "max_value")) == (1, 1000)


def test_iot_hub_tier_units_and_c2d_settings_are_parameters(infra: Mapping[Path, BicepFile]) -> None:
    hub_file = file_named(infra, "iothub.bicep")
    (hub,) = hub_file.resources_of_type("Microsoft.Devices/IotHubs")
    c2d = hub.properties["cloudToDevice"]
    wired = {
        "sku": hub.body["sku"]["name"], "units": hub.body["sku"]["capacity"],
        "c2dMaxDeliveryCount": c2d["maxDeliveryCount"], "c2dDefaultTtl": c2d["defaultTtlAsIso8601"],
        "feedbackLockDuration": c2d["feedback"]["lockDurationAsIso8601"], "feedbackTtl": c2d["feedback"]["ttlAsIso8601"],
        "feedbackMaxDeliveryCount": c2d["feedback"]["maxDeliveryCount"],
    }
    assert all(hub_file.is_param(value) for value in wired.values()), wired
    main = file_named(infra, "main.bicep")
    module = next(m for m in main.modules.values() if m.path == hub_file.path)
    for param in ("c2dMaxDeliveryCount", "c2dDefaultTtl", "feedbackLockDuration", "feedbackTtl", "feedbackMaxDeliveryCount"):
        assert module.params[param] == param and main.is_param(param), param
    assert module.params["sku"] == "iotHubSku" and main.param_default("iotHubSku") == "S1"
    assert module.params["units"] == "iotHubUnits"
    assert "B1" not in main.decorator("iotHubSku", "allowed"), "Basic hubs have no cloud-to-device messages"


def test_outputs_name_what_the_readme_and_a_smoke_test_need(infra: Mapping[Path, BicepFile]) -> None:
    outputs = set(file_named(infra, "main.bicep").outputs)
    assert outputs >= {
        "AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME", "AZURE_FUNCTION_APP_URL", "AZURE_IOTHUB_NAME",
        "AZURE_IOTHUB_HOSTNAME", "AZURE_SERVICEBUS_NAMESPACE", "AZURE_SERVICEBUS_FQDN", "OUTCOME_TOPIC",
        "AZURE_STORAGE_ACCOUNT_NAME", "REQUEST_QUEUE", "POISON_QUEUE",
    }
    assert not any("KEY" in name.replace("KEY_VAULT", "") or "CONNECTION" in name for name in outputs), (
        "outputs are stored in plain text in the azd environment: no keys or connection strings"
    )
