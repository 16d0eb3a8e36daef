"""The two workflows lint clean with actionlint and validate against the GitHub workflow schema, and
do what the README says: test.yml runs `make test` on Python 3.13 / Node.js 20; deploy.yml tests, signs in
with OpenID Connect, provisions and deploys with azd."""

from __future__ import annotations

from pathlib import Path

from deploy.checks import workflows
from deploy.checks.paths import WORKFLOWS

FILES = [WORKFLOWS / "test.yml", WORKFLOWS / "deploy.yml"]


def test_the_workflows_lint_clean() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["deploy.yml", "test.yml"]
    assert workflows.actionlint(FILES) == []


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: broken\non: push\njobs:\n"
        "  deploy:\n    needs: tests\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - run: echo ${{ steps.missing.outputs.value }}\n"
    )
    findings = workflows.actionlint([broken])
    kinds = {(f["line"], f["kind"]) for f in findings}
    assert (4, "job-needs") in kinds, findings  # the job that needs a missing one
    assert any(f["kind"] == "expression" and "missing" in f["message"] for f in findings), findings


def test_the_workflows_match_the_github_workflow_schema() -> None:
    assert workflows.schema_problems(FILES) == []


def test_the_schema_check_reports_an_invalid_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  test:\n    steps:\n      - run: make test\n")
    assert workflows.schema_problems([broken]) != []


def test_test_workflow_runs_make_test_on_python_3_13_and_node_20() -> None:
    assert workflows.check_test_workflow(WORKFLOWS / "test.yml") == []


def test_deploy_workflow_tests_then_signs_in_with_oidc_and_runs_azd() -> None:
    assert workflows.check_deploy_workflow(WORKFLOWS / "deploy.yml") == []


def test_a_stored_credential_and_an_unpinned_action_are_reported(tmp_path: Path) -> None:
    text = (WORKFLOWS / "deploy.yml").read_text()
    text = text.replace("          client-id: ${{ secrets.AZURE_CLIENT_ID }}\n", "          creds: ${{ secrets.AZURE_CREDENTIALS }}\n")
    text = text.replace("Azure/setup-azd@v2", "Azure/setup-azd@main")
    broken = tmp_path / "deploy.yml"
    broken.write_text(text)
    assert workflows.check_deploy_workflow(broken) == [
        "deploy.yml: Azure/setup-azd@main is not pinned to a version (vN or a commit)",
        "deploy.yml: azure/login must use OpenID Connect (client-id, tenant-id, subscription-id; no stored credentials)",
    ]
