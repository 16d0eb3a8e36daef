"""The package proof: exactly what a publish uploads (`requirements.txt` installed alone in a clean
virtual environment + the files `.funcignore` keeps) imports, starts in the Functions host with that
environment's Python as the worker, and sends a message through SendC2D until its outcome is on the
topic. Seeded mistakes (a requirement missing, the app package ignored, a stray file kept) must fail it.

Run alone with `.venv/bin/python -m pytest -m package`. The clean environment is cached under
.pytest_cache, keyed by requirements.txt and the Python version, and checked with `pip freeze` on reuse.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from c2d_testing.devices import device_https
from deploy.checks import package
from deploy.checks.paths import REPO_ROOT

from localcloud.azurite import azurite
from localcloud.functions_host.launcher import running_host
from localcloud.functions_host.rpc import WORKER_PYTHON_SETTING
from localcloud.iothub.launcher import running_iothub
from localcloud.outcome_reader import OutcomeReader
from localcloud.servicebus.launcher import running_servicebus
from localcloud.stack import FUNCTION_KEY, MASTER_KEY, app_settings, post_json, trusting

pytestmark = pytest.mark.package
DEVICE = "package-proof-1"


@dataclass(frozen=True)
class Package:
    files: list[str]
    app: Path  # the staged upload
    venv: package.CleanVenv
    worker_deps: Path


@pytest.fixture(scope="session")
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Package:
    cache = Path(request.config.cache.mkdir("deploy-package"))
    venv = package.clean_venv(cache, REPO_ROOT / "requirements.txt")
    files = package.published_files(REPO_ROOT, package.funcignore(REPO_ROOT))
    app = package.stage(REPO_ROOT, tmp_path_factory.mktemp("package") / "app", files)
    deps = package.worker_dependencies(cache, venv, REPO_ROOT / "requirements-dev.txt")
    return Package(files, app, venv, deps)


def test_the_upload_holds_only_what_the_app_needs(built: Package) -> None:
    assert {"host.json", "requirements.txt", "SendC2D/function.json", "SendC2D/__init__.py", "c2d/config.py"} <= set(built.files)
    assert package.unexpected_files(REPO_ROOT, built.files) == []
    assert not any(f.startswith(("localcloud/", "tests/", "bench/", "infra/", ".venv/", "node_modules/")) for f in built.files)


def test_the_clean_environment_has_requirements_txt_alone(built: Package) -> None:
    installed = {line.split("==")[0].lower() for line in package.freeze(built.venv.python)}
    pinned = {line.split("==")[0].lower() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert pinned <= installed
    assert not installed & {"pytest", "grpcio", "protobuf", "azure-iot-device", "azure-storage-queue", "pathspec"}


def test_every_deployed_module_imports_with_the_clean_environment(built: Package) -> None:
    assert package.import_check(built.venv.python, built.app) == []


def test_the_package_runs_a_message_to_its_outcome(built: Package, tmp_path: Path) -> None:
    hub_limits = {"feedback_interval_s": 0.3}
    with (
        running_iothub(tmp_path / "iothub", limits=hub_limits, extra_config={"devices": [{"device_id": DEVICE}]}) as hub,
        running_servicebus() as bus,
        azurite(location=tmp_path / "azurite") as storage,
    ):
        settings = app_settings(
            iothub_connection_string=hub.service_connection_string, amqp_port=hub.ports.amqp,
            https_port=hub.ports.https, ca_bundle=hub.ca_bundle,
            servicebus_connection_string=bus.connection_string, storage_connection_string=storage.connection_string,
            extra={WORKER_PYTHON_SETTING: str(built.venv.python), "PYTHONPATH": str(built.worker_deps)},
        )
        with running_host(built.app, settings, master_key=MASTER_KEY) as host, trusting(hub.ca_bundle):
            status = host.host_status()
            assert status["errors"] == {}
            assert status["functions"] == [
                "DeliveryStatus", "FeedbackProcessor", "PurgeDeviceQueue", "RequestStatus", "SendC2D", "SendC2DFanOut",
                "SendC2DQueue", "StatusCleanup",
            ]
            assert _cmdline(status["workerPid"])[0] == str(built.venv.python), "the worker runs on the clean venv"

            reader = OutcomeReader(bus.connection_string)
            try:
                code, _, body = post_json(host.base_url, f"/api/devices/{DEVICE}/messages",
                                          {"payload": {"setpoint": 21.5}, "ack": "full"}, FUNCTION_KEY)
                assert code == 202, (body, host.output()[-3000:])
                assert device_https(hub, DEVICE, "complete") == 0
                reader.wait_for(lambda seen: any(o.correlation_id == body["messageId"] for o in seen), 60,
                                "the outcome on c2d-outcomes/all")
                (outcome,) = reader.for_message(body["messageId"])
            finally:
                reader.close()
    assert outcome.subject == "Success" and outcome.properties["deviceId"] == DEVICE


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


# ---- seeded mistakes: each must be caught, cheaply ---------------------------------------------------
@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        ("azure-servicebus", "import c2d.servicebus: ModuleNotFoundError: No module named 'azure.servicebus'"),
        ("azure-identity", "c2d/iothub.py imports azure.identity, which is not installed"),  # a lazy import
        ("uamqp", "import c2d.iothub: ModuleNotFoundError: No module named 'uamqp'"),
    ],
)
def test_a_missing_runtime_dependency_is_caught(built: Package, tmp_path: Path, distribution: str, expected: str) -> None:
    python = package.without_distribution(built.venv, distribution, tmp_path / "venv")
    assert expected in package.import_check(python, built.app)


def test_the_app_package_wrongly_ignored_is_caught(built: Package, tmp_path: Path) -> None:
    spec = package.funcignore(REPO_ROOT, (REPO_ROOT / ".funcignore").read_text() + "\nc2d\n")
    files = package.published_files(REPO_ROOT, spec)
    app = package.stage(REPO_ROOT, tmp_path / "app", files)
    problems = package.import_check(built.venv.python, app)
    assert "import SendC2D: ModuleNotFoundError: No module named 'c2d'" in problems
    assert "SendC2D/__init__.py imports c2d.http_api, which is not installed" in problems


def test_a_stray_file_in_the_upload_is_caught(tmp_path: Path) -> None:
    """azd restores a virtualenv into <project>_env and keeps its environment in .azure/: a .funcignore
    without those lines would upload both (this one has them)."""
    project = tmp_path / "c2d-functions"
    files = package.published_files(REPO_ROOT, package.funcignore(REPO_ROOT))
    package.stage(REPO_ROOT, project, files)
    (project / "c2d-functions_env" / "lib").mkdir(parents=True)
    (project / "c2d-functions_env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (project / ".azure" / "dev").mkdir(parents=True)
    (project / ".azure" / "dev" / ".env").write_text('AZURE_ENV_NAME="dev"\n')
    assert package.unexpected_files(project, package.published_files(project, package.funcignore(project))) == []
    without = "\n".join(line for line in (project / ".funcignore").read_text().splitlines() if line not in ("*_env", ".azure"))
    uploaded = package.published_files(project, package.funcignore(project, without))
    assert package.unexpected_files(project, uploaded) == [".azure/dev/.env", "c2d-functions_env/pyvenv.cfg"]


def test_funcignore_matching_agrees_with_git(tmp_path: Path) -> None:
    """The gitignore semantics (pathspec) against git itself, on this repository's files plus tricky cases."""
    tree = tmp_path / "tree"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    extra = ["a/localcloud/x.py", "nested/tests/t.py", "deep/README.md", "c2d/x_env/y.py", "keep.txt", "c2d/bench"]
    for relative in [*(t for t in tracked if Path(t).name != ".gitignore"), *extra]:  # only .funcignore's rules
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).touch()
    (tree / ".funcignore").write_text((REPO_ROOT / ".funcignore").read_text())
    ours = set(package.published_files(tree, package.funcignore(tree)))
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    listed = subprocess.run(
        ["git", "-c", f"core.excludesFile={tree / '.funcignore'}", "ls-files", "--others", "--exclude-standard"],
        cwd=tree, capture_output=True, text=True, check=True, env=env,
    ).stdout.split()
    assert ours == set(listed)
    assert "keep.txt" in ours and "a/localcloud/x.py" not in ours and "deep/README.md" not in ours
