"""azure.yaml and main.parameters.json: schema-valid (vendored schemas, offline) and consistent with
the Bicep template."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from deploy.checks import azd
from deploy.checks.bicep import BicepFile, file_named
from deploy.checks.paths import INFRA, REPO_ROOT


def test_azure_yaml_is_valid_and_names_the_function_app(infra: Mapping[Path, BicepFile]) -> None:
    assert azd.check_azure_yaml(REPO_ROOT / "azure.yaml", infra) == []


def test_an_azure_yaml_the_schema_refuses_is_reported(tmp_path: Path, infra: Mapping[Path, BicepFile]) -> None:
    broken = tmp_path / "azure.yaml"
    broken.write_text((REPO_ROOT / "azure.yaml").read_text().replace("name: c2d-functions", "name: C2D_Functions"))
    (tmp_path / "infra").symlink_to(INFRA)
    problems = azd.check_azure_yaml(broken, infra)
    assert problems and any("C2D_Functions" in p and "does not match" in p for p in problems), problems


def test_a_service_name_that_is_not_the_apps_tag_is_reported(tmp_path: Path, infra: Mapping[Path, BicepFile]) -> None:
    shutil.copy(REPO_ROOT / "azure.yaml", tmp_path / "azure.yaml")
    (tmp_path / "infra").symlink_to(INFRA)
    text = (tmp_path / "azure.yaml").read_text().replace("  api:\n", "  functions:\n")
    (tmp_path / "azure.yaml").write_text(text)
    (problem,) = azd.check_azure_yaml(tmp_path / "azure.yaml", infra)
    assert problem.startswith("azure.yaml: service 'functions' must be the app's azd-service-name tag")


def test_parameters_file_is_valid_and_matches_main_bicep(infra: Mapping[Path, BicepFile]) -> None:
    main = file_named(infra, "main.bicep")
    assert azd.check_parameters_file(INFRA / "main.parameters.json", main) == []
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert given["environmentName"] == {"value": "${AZURE_ENV_NAME}"}
    assert given["location"] == {"value": "${AZURE_LOCATION}"}


def test_a_parameters_file_the_schema_refuses_is_reported(tmp_path: Path, infra: Mapping[Path, BicepFile]) -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text())
    document["parameters"]["iotHubSku"] = {"val": "S1"}
    broken = tmp_path / "main.parameters.json"
    broken.write_text(json.dumps(document))
    problems = azd.check_parameters_file(broken, file_named(infra, "main.bicep"))
    assert any(p.startswith("main.parameters.json: parameters/iotHubSku:") for p in problems), problems


def test_an_unknown_parameter_and_a_bad_default_are_reported(tmp_path: Path, infra: Mapping[Path, BicepFile]) -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text())
    document["parameters"]["iotHubTier"] = {"value": "S1"}
    document["parameters"]["iotHubSku"] = {"value": "${C2D_IOTHUB_SKU=B1}"}
    document["parameters"]["instanceMemoryMB"] = {"value": "${C2D_INSTANCE_MEMORY_MB=1024}"}
    del document["parameters"]["location"]
    broken = tmp_path / "main.parameters.json"
    broken.write_text(json.dumps(document))
    assert azd.check_parameters_file(broken, file_named(infra, "main.bicep")) == [
        "main.parameters.json: 'iotHubTier' is not a parameter of main.bicep",
        "main.parameters.json: main.bicep requires 'location'",
        "main.parameters.json: iotHubSku: default 'B1' is not one of ['F1', 'S1', 'S2', 'S3']",
        "main.parameters.json: instanceMemoryMB: default 1024 is not one of [512, 2048, 4096]",
    ]
