"""App settings: none that Flex Consumption rejects; every setting the code reads is set by the
template or documented as optional in the README; every setting the template sets is read by
something; and the identity-mode settings point at the right resources."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from deploy.checks import settings
from deploy.checks.bicep import BicepFile, file_named, source_of
from deploy.checks.paths import README, REPO_ROOT, InfraEditor
from deploy.checks.structure import resource_sources

FUNCTION_DIRS = sorted(p.parent for p in REPO_ROOT.glob("*/function.json"))


def read_by_app(code_root: Path = REPO_ROOT / "c2d") -> dict[str, set[str]]:
    found = settings.code_settings(sorted(code_root.rglob("*.py")))
    for name, where in settings.binding_settings(FUNCTION_DIRS).items():
        found.setdefault(name, set()).update(where)
    return found


def by_mode(files: Mapping[Path, BicepFile]) -> dict[str, dict[str, object]]:
    return {mode: settings.template_settings(files, switches) for mode, switches in settings.MODES.items()}


def test_the_code_scan_finds_the_settings_config_reads() -> None:
    read = read_by_app()
    assert set(read) >= {
        "IOTHUB_CONNECTION_STRING", "IOTHUB_HOSTNAME", "IOTHUB_AMQP_PORT", "IOTHUB_SEND_TIMEOUT_SECONDS",
        "SERVICEBUS_CONNECTION", "SERVICEBUS__fullyQualifiedNamespace", "OUTCOME_TOPIC", "SERVICEBUS_RETRY_TOTAL",
        "C2D_DEFAULT_TTL_SECONDS", "FEEDBACK_MAX_DRAIN_SECONDS", "FEEDBACK_IDLE_WAIT_SECONDS", "FEEDBACK_BATCH_SIZE",
        "C2D_SDK_LOG_LEVEL", "FEEDBACK_SCHEDULE", "AzureWebJobsStorage",
    }
    assert read["FEEDBACK_SCHEDULE"] == {"FeedbackProcessor/function.json"}
    assert "WARNING" not in read and "c2d-outcomes" not in read, "defaults are not setting names"


def test_no_setting_or_site_property_flex_consumption_rejects(infra: Mapping[Path, BicepFile]) -> None:
    assert settings.check_flex(infra) == []


@pytest.mark.parametrize("name", ["FUNCTIONS_WORKER_RUNTIME", "WEBSITE_RUN_FROM_PACKAGE"])
def test_a_flex_rejected_setting_is_reported(seeded_infra: InfraEditor, name: str) -> None:
    files = seeded_infra("app/function-app.bicep", "  FEEDBACK_SCHEDULE: feedbackSchedule\n",
                         f"  FEEDBACK_SCHEDULE: feedbackSchedule\n  {name}: 'x'\n")
    assert settings.check_flex(files) == [
        f"app setting {name} (managed identity mode): Flex Consumption rejects it",
        f"app setting {name} (connection strings mode): Flex Consumption rejects it",
    ]


def test_a_flex_rejected_site_property_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/function-app.bicep", "      minTlsVersion: '1.2'\n",
                         "      minTlsVersion: '1.2'\n      linuxFxVersion: 'Python|3.13'\n")
    assert settings.check_flex(files) == ["function-app.bicep: siteConfig.linuxFxVersion: Flex Consumption rejects it"]


def test_every_setting_the_app_reads_is_set_or_documented_optional(infra: Mapping[Path, BicepFile]) -> None:
    rows = settings.readme_configuration(README.read_text())
    assert settings.check_read_settings(read_by_app(), rows, by_mode(infra)) == []


def test_a_required_setting_the_template_misses_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/function-app.bicep", "  FEEDBACK_SCHEDULE: feedbackSchedule\n", "")
    rows = settings.readme_configuration(README.read_text())
    assert settings.check_read_settings(read_by_app(), rows, by_mode(files)) == [
        "FEEDBACK_SCHEDULE (read by FeedbackProcessor/function.json) is not set by the template in managed identity "
        "and connection strings mode and is documented as required"
    ]


def test_a_new_setting_in_the_code_is_checked_without_editing_the_test(tmp_path: Path, infra: Mapping[Path, BicepFile]) -> None:
    code = tmp_path / "c2d"
    code.mkdir()
    (code / "status.py").write_text(
        "import os\nTABLE_SETTING = 'C2D_FUTURE_TABLE'\n\n"
        "def table(env=os.environ):\n    return env.get(TABLE_SETTING, 'c2dstatus')\n\n"
        "def lifetime(env):\n    return _int_setting(env, 'C2D_TOKEN_LIFETIME_SECONDS', 3600)\n"
    )
    read = read_by_app(code)
    assert {"C2D_FUTURE_TABLE", "C2D_TOKEN_LIFETIME_SECONDS"} <= set(read)
    rows = settings.readme_configuration(README.read_text())
    problems = settings.check_read_settings(read, rows, by_mode(infra))
    assert ("C2D_FUTURE_TABLE (read by status.py) is not set by the template in managed identity and connection "
            "strings mode and is not in the README's Configuration table") in problems
    rows["C2D_FUTURE_TABLE"] = rows["C2D_TOKEN_LIFETIME_SECONDS"] = "no"  # documented as optional
    assert settings.check_read_settings(read, rows, by_mode(infra)) == []


def test_both_or_neither_of_a_pair_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/function-app.bicep", "  IOTHUB_HOSTNAME: iotHubHostName\n", "")
    rows = settings.readme_configuration(README.read_text())
    problems = settings.check_read_settings(read_by_app(), rows, by_mode(files))
    assert any(p.startswith("IOTHUB_CONNECTION_STRING (read by config.py): the template must set exactly one of "
                            "IOTHUB_CONNECTION_STRING / IOTHUB_HOSTNAME") for p in problems)


def test_every_setting_the_template_sets_is_read(infra: Mapping[Path, BicepFile]) -> None:
    assert settings.check_template_settings(read_by_app(), by_mode(infra)) == []


def test_a_misspelt_template_setting_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("app/function-app.bicep", "  SERVICEBUS__fullyQualifiedNamespace:", "  SERVICEBUS__FullyQualifiedNamespace:")
    assert settings.check_template_settings(read_by_app(), by_mode(files)) == [
        "app setting SERVICEBUS__FullyQualifiedNamespace (managed identity mode) is read by nothing: c2d/ and "
        "function.json do not use it and it is not a platform setting"
    ]


def test_identity_mode_settings_point_at_the_resources(infra: Mapping[Path, BicepFile]) -> None:
    app = file_named(infra, "function-app.bicep")
    values = settings.template_settings(infra, settings.MODES["managed identity"])
    assert resource_sources(infra, app, values["IOTHUB_HOSTNAME"]) == {("Microsoft.Devices/IotHubs", "properties.hostName")}
    assert resource_sources(infra, app, values["AZURE_CLIENT_ID"]) == {
        ("Microsoft.ManagedIdentity/userAssignedIdentities", "properties.clientId")
    }
    assert resource_sources(infra, app, values["AzureWebJobsStorage__clientId"]) == resource_sources(infra, app, values["AZURE_CLIENT_ID"])
    for service in ("blob", "queue", "table"):
        assert resource_sources(infra, app, values[f"AzureWebJobsStorage__{service}ServiceUri"]) == {
            ("Microsoft.Storage/storageAccounts", f"properties.primaryEndpoints.{service}")
        }
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    assert values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    ((file, chain),) = source_of(infra, app, values["SERVICEBUS__fullyQualifiedNamespace"])
    assert chain == ["${namespace.name}.servicebus.windows.net"] and file.path.name == "servicebus.bicep"


def test_connection_string_mode_uses_key_vault_references(infra: Mapping[Path, BicepFile]) -> None:
    values = settings.template_settings(infra, settings.MODES["connection strings"])
    for name in ("IOTHUB_CONNECTION_STRING", "SERVICEBUS_CONNECTION"):
        assert values[name].startswith("@Microsoft.KeyVault(SecretUri=") and values[name].endswith(")"), name
    assert "IOTHUB_HOSTNAME" not in values and "SERVICEBUS__fullyQualifiedNamespace" not in values
