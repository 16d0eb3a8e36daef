"""A function that fails to load is reported with the worker's own error; the others still run."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcloud.functions_host.launcher import HostProcess, running_host

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broken_host(fixture_app: Callable[[str], Path]) -> Iterator[HostProcess]:
    with running_host(fixture_app("broken")) as host:
        yield host


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_good_function_still_runs(broken_host: HostProcess) -> None:
    assert broken_host.status["functions"] == ["Good"]
    assert _get(broken_host.base_url + "/api/good") == (200, b"good")


def test_wrong_binding_name_is_refused_with_the_workers_error(broken_host: HostProcess) -> None:
    error = broken_host.status["errors"]["WrongName"]
    # FunctionLoadError raised by azure-functions-runtime-v1 itself
    assert error == (
        "FunctionLoadError: cannot load the WrongName function: "
        "the following parameters are declared in Python but not in function.json: {'req'}"
    )
    assert "Worker failed to load function: 'WrongName'" in broken_host.output()
    assert _get(broken_host.base_url + "/api/wrong")[0] == 404


def test_import_error_is_reported(broken_host: HostProcess) -> None:
    error = broken_host.status["errors"]["ImportBroken"]
    assert "ModuleNotFoundError" in error
    assert "module_that_is_not_installed_xyz" in error
    assert "Worker failed to load function: 'ImportBroken'" in broken_host.output()


def test_unregistered_binding_type_is_refused_by_the_host(broken_host: HostProcess) -> None:
    error = broken_host.status["errors"]["Unregistered"]
    assert "blobTrigger" in error and "not registered" in error
    assert "Function 'Unregistered' is in error" in broken_host.output()
