"""A copy of this app with one broken function: the host refuses that function with the worker's own
error, and the others still load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from c2d_testing.localcloud import REPO_ROOT

from localcloud.functions_host.launcher import running_host

pytestmark = pytest.mark.e2e
APP_FILES = ["host.json", "requirements.txt", "c2d", "SendC2D", "SendC2DFanOut", "SendC2DQueue", "FeedbackProcessor"]


def test_wrong_binding_name_is_refused_with_the_workers_error(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    for name in APP_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, app / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, app / name)
    spec_path = app / "SendC2D" / "function.json"
    spec = json.loads(spec_path.read_text())
    spec["bindings"][0]["name"] = "request"  # main(req) no longer matches
    spec_path.write_text(json.dumps(spec))

    with running_host(app, {"FEEDBACK_SCHEDULE": "0 0 0 1 1 *", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}) as host:
        status = host.host_status()

    assert "SendC2D" in status["errors"]
    error = status["errors"]["SendC2D"]
    assert "FunctionLoadError" in error and "declared in Python but not in function.json: {'req'}" in error
    assert {"SendC2DFanOut", "FeedbackProcessor"} <= set(status["functions"])
    assert "SendC2D" not in status["functions"]
