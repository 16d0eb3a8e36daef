"""Every package pinned in requirements.txt earns its place: a deployed module (a file .funcignore
keeps) imports it, or it is on a short allow-list whose reason is checked here."""

from __future__ import annotations

from pathlib import Path

from deploy.checks import package, requirements
from deploy.checks.paths import REPO_ROOT

#: Needed at run time, imported by nobody by name. Each reason is proven by a test below.
ALLOWED = {
    "azure-functions-runtime-v1": "the Python worker library for the v1 (function.json) model on Python 3.13+: "
    "Azure's worker loads it from the app's packages",
    "six": "azure-iot-hub imports six without declaring it",
}


def deployed_imports() -> dict[str, set[str]]:
    files = package.published_files(REPO_ROOT, package.funcignore(REPO_ROOT))
    return requirements.imports(REPO_ROOT / f for f in files if f.endswith(".py"))


def test_every_pinned_package_is_imported_by_deployed_code_or_allowed() -> None:
    """azure-iot-hub: imported by c2d/registry.py (device queries, queue purge), which lands separately."""
    text = (REPO_ROOT / "requirements.txt").read_text()
    assert requirements.unused(text, deployed_imports(), ALLOWED) == []


def test_an_unused_pin_is_reported() -> None:
    text = (REPO_ROOT / "requirements.txt").read_text() + "\npyyaml==6.0.3\n"
    assert "pyyaml is pinned in requirements.txt but no deployed module imports it" in (
        requirements.unused(text, deployed_imports(), ALLOWED)
    )


def test_imports_in_deployed_code_are_attributed_to_their_packages() -> None:
    imported = deployed_imports()
    assert "SendC2D/__init__.py" in {Path(f).relative_to(REPO_ROOT).as_posix() for f in requirements.importers("azure-functions", imported)}
    assert requirements.importers("uamqp", imported) and requirements.importers("azure-servicebus", imported)
    assert requirements.importers("azure-identity", imported), "a lazy import (inside a function) counts"
    assert not requirements.importers("azure-iot-device", imported), "the device simulator is not deployed"


def test_six_is_an_undeclared_dependency_of_azure_iot_hub() -> None:
    importing = requirements.modules_importing("azure-iot-hub", "six")
    assert importing, "azure-iot-hub no longer imports six: drop the six pin and its allow-list entry"
    assert "six" not in requirements.declared("azure-iot-hub"), "azure-iot-hub now declares six: the pin is redundant"
    others = [n for n in requirements.pinned((REPO_ROOT / "requirements.txt").read_text()) if n != "six"]
    assert "six" not in requirements.requires_closure(others), "something else pulls six in: the pin is redundant"


def test_azure_functions_runtime_v1_is_the_worker_library() -> None:
    provided = requirements.provided_modules("azure-functions-runtime-v1")
    assert "azure_functions_runtime_v1" in provided
    assert not requirements.importers("azure-functions-runtime-v1", deployed_imports())
