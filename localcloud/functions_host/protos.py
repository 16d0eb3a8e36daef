"""FunctionRpc protobuf classes, loaded by file path from the azure-functions-runtime-v1 wheel.

The wheel ships its compiled protos only as a top-level ``tests/protos`` package, which would collide
with the project's own ``tests`` directory, so they are imported under a private module name.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_ALIAS = "_azure_functions_rpc_protos"
_DIST = "azure-functions-runtime-v1"


def protos_dir() -> Path:
    """Directory of the wheel's ``tests/protos`` package."""
    dist = importlib.metadata.distribution(_DIST)
    init = Path(str(dist.locate_file("tests/protos/__init__.py")))
    if not init.is_file():
        raise RuntimeError(f"{_DIST} does not contain tests/protos/__init__.py (looked at {init})")
    return init.parent


def load() -> ModuleType:
    """Import the protos package once per process under a private name and return it."""
    module = sys.modules.get(_ALIAS)
    if module is not None:
        return module
    directory = protos_dir()
    spec = importlib.util.spec_from_file_location(
        _ALIAS, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import FunctionRpc protos from {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_ALIAS] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_ALIAS]
        raise
    return module
