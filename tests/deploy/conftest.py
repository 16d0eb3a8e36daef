"""Deploy checks: the azd template (infra/, azure.yaml), the workflows and the package a publish
uploads, checked offline. Each check returns the problems it finds; every check has a test that
seeds a mistake and sees it reported."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from deploy.checks import bicep
from deploy.checks.paths import INFRA, REPO_ROOT, InfraEditor


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def infra() -> Mapping[Path, bicep.BicepFile]:
    """Every .bicep file under infra/, parsed."""
    return bicep.parse_all(INFRA)


@pytest.fixture
def seeded_infra(tmp_path: Path) -> InfraEditor:
    """Copy infra/ to a temporary folder, replace `old` by `new` in one file (the replacement must
    happen) and parse the copy: a template with one seeded mistake."""

    def edit(relative: str, old: str, new: str) -> Mapping[Path, bicep.BicepFile]:
        copy = tmp_path / "infra"
        if not copy.exists():
            shutil.copytree(INFRA, copy)
        target = copy / relative
        text = target.read_text()
        assert old in text, f"seed: {old!r} is not in {relative}"
        target.write_text(text.replace(old, new, 1))
        return bicep.parse_all(copy)

    return edit
